"""Per-request cost of the hot paths as a gunicorn worker pays it, minus sockets: time
`app(environ, start_response)` directly, beside the bare Flask app of bench/baseline.py.

    .venv/bin/python -m bench.wsgi_bench [DATABASE_URL] [case,case,...]

DATABASE_URL: an empty database to seed ("" or nothing: a temporary SQLite file). Cases:
device_read_device_token, device_read_pat, list_100, token, token_many (default: all).
Each line prints ms per request and the ratio baseline / case (the bench targets are such
ratios). The machine is shared and noisy: repeat, and compare ratios rather than times.
"""

from __future__ import annotations

import base64
import io
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from bench import seed
from bench.baseline import app as base_app
from bioweb import create_app
from bioweb.extensions import db

WARMUP = 300


def environ(method: str, path: str, auth: str, body: bytes = b"", ctype: str = "") -> dict[str, Any]:
    path, _, query = path.partition("?")
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.multithread": False,
        "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000", "HTTP_AUTHORIZATION": auth,
    }  # fmt: skip
    if body:
        env["CONTENT_LENGTH"], env["CONTENT_TYPE"] = str(len(body)), ctype
    return env


def main(argv: list[str]) -> None:
    url = (argv and argv[0]) or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    config = {
        "SQLALCHEMY_DATABASE_URI": url,
        "BIOWEB_TOKEN_KEYS": seed.TOKEN_KEYS,
        "RATELIMIT_ENABLED": False,
    }
    app = create_app(config)
    with app.app_context():
        db.drop_all()
        db.create_all()
    data = seed.seed_load_data(
        sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://")), 10, 100
    )
    device = data.devices[0]
    pat = next(u.pat for u in data.users if u.id == device.user_id)
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        statuses.append(status)

    def run(wsgi: Callable[..., Any], method: str, path: str, auth: str | list[str], body: bytes = b"",
            ctype: str = "", n: int = 3000) -> float:  # fmt: skip
        auths = auth if isinstance(auth, list) else [auth]
        start = 0.0
        for i in range(n + WARMUP):
            if i == WARMUP:
                start = time.perf_counter()
            for _chunk in wsgi(environ(method, path, auths[i % len(auths)], body, ctype), start_response):
                pass
        return (time.perf_counter() - start) / n * 1000

    def basic(d: seed.SeededDevice) -> str:
        return "Basic " + base64.b64encode(f"{d.client_id}:{d.client_secret}".encode()).decode()

    form = (b"grant_type=client_credentials", "application/x-www-form-urlencoded")
    cases: dict[str, tuple[Any, ...]] = {
        "baseline": (base_app, "GET", "/api/v1/x", ""),
        "device_read_device_token": (
            app,
            "GET",
            f"/api/v1/device/{device.id}",
            "Bearer " + device.access_token,
        ),
        "device_read_pat": (app, "GET", f"/api/v1/device/{device.id}", "Bearer " + pat),
        "list_100": (app, "GET", "/api/v1/devices?limit=100", "Bearer " + pat),
        "token": (app, "POST", "/token", basic(device), *form),
        "token_many": (app, "POST", "/token", [basic(d) for d in data.devices], *form),
    }
    only = argv[1].split(",") if len(argv) > 1 else list(cases)
    results: dict[str, float] = {}
    for name in ["baseline"] + [c for c in only if c != "baseline"]:
        statuses.clear()
        results[name] = ms = run(*cases[name])
        ratio = results["baseline"] / ms
        print(f"{name:28} {ms:.3f} ms  ratio {ratio:.0%}  last status {statuses[-1]}")


if __name__ == "__main__":
    main(sys.argv[1:])
