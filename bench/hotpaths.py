"""Profile bioweb's hot paths in process: SQL statements per request and where the time goes.

    .venv/bin/python bench/hotpaths.py [--requests 400] [--database-url URL] [--top 25]

Seeds a small database (bench/seed.py; a temporary SQLite file unless --database-url names
an empty database), then sends each benchmarked request through Flask's test client
under cProfile, with a SQLAlchemy listener counting statements. Prints, per endpoint: the
mean in-process time per request (and the bare baseline's), the statements one request
runs, the time per library, and the functions with the most cumulative and own time.
Not part of `make bench`: it is for finding out why a figure of bench/run.py is what it is.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

import sqlalchemy as sa

from bench import seed
from bench.baseline import app as baseline_app
from bioweb import create_app
from bioweb.extensions import db


@dataclass
class Case:
    name: str
    method: str
    items: list[tuple[str, str]]  # (path, Authorization)
    body: str | None = None
    content_type: str | None = None


def cases(data: seed.LoadData) -> list[Case]:
    pats = {u.id: u.pat for u in data.users}
    devices = data.devices[:200]
    return [
        Case(
            "device_read_pat",
            "GET",
            [(f"/api/v1/device/{d.id}", f"Bearer {pats[d.user_id]}") for d in devices],
        ),
        Case(
            "device_read_device_token",
            "GET",
            [(f"/api/v1/device/{d.id}", f"Bearer {d.access_token}") for d in devices],
        ),
        Case("list_100", "GET", [("/api/v1/devices?limit=100", f"Bearer {u.pat}") for u in data.users]),
        Case(
            "token",
            "POST",
            [
                ("/token", "Basic " + base64.b64encode(f"{d.client_id}:{d.client_secret}".encode()).decode())
                for d in devices
            ],
            "grant_type=client_credentials",
            "application/x-www-form-urlencoded",
        ),
        Case(
            "create_device",
            "POST",
            [("/api/v1/devices", f"Bearer {u.pat}") for u in data.users],
            '{"manufacturer": "Apple", "device_code": "iPhone14,2"}',
            "application/json",
        ),
    ]


def _send(client, case: Case, i: int):
    path, auth = case.items[i % len(case.items)]
    headers = {"Authorization": auth}
    if case.content_type:
        headers["Content-Type"] = case.content_type
    return client.open(path, method=case.method, headers=headers, data=case.body)


def library(filename: str) -> str:
    """The package a profiled function belongs to (first directory under site-packages), else its kind."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/bioweb/" in filename:
        return "bioweb"
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    return "stdlib"


def by_library(stats: pstats.Stats) -> Counter[str]:
    """Own time (tottime) summed per library."""
    totals: Counter[str] = Counter()
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        totals[library(filename)] += tottime
    return totals


def profile_case(app, case: Case, requests: int, top: int, statements: list[str]) -> None:
    client = app.test_client()
    for i in range(20):  # warm caches, compiled statements, the identity of the throttled writes
        response = _send(client, case, i)
        assert response.status_code == 200, (case.name, response.status_code, response.get_data()[:200])
    statements.clear()
    response = _send(client, case, 20)
    one_request = list(statements)
    statements.clear()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for i in range(requests):
        _send(client, case, 21 + i)
    profiler.disable()
    elapsed = time.perf_counter() - started
    per_request = len(statements) / requests

    base_client = baseline_app.test_client()
    base_started = time.perf_counter()
    for i in range(requests):
        _send(base_client, case, i)
    base_elapsed = time.perf_counter() - base_started

    print(f"\n## {case.name}: {case.method} {case.items[0][0]}")
    print(
        f"in process: {elapsed / requests * 1000:.2f} ms/request under cProfile "
        f"(baseline app {base_elapsed / requests * 1000:.2f} ms without); "
        f"SQL statements per request: {per_request:.2f} on average over {requests}"
    )
    print("statements of one request (after warm-up):")
    for sql in one_request:
        print("   ", " ".join(sql.split())[:200])
    stats = pstats.Stats(profiler)
    total = sum(by_library(stats).values())
    print("own time per library:")
    for name, seconds in by_library(stats).most_common(12):
        print(f"    {name:24} {seconds / total:6.1%}")
    for order in ("cumulative", "tottime"):
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).strip_dirs().sort_stats(order).print_stats(top)
        print(f"top {top} by {order}:")
        body = buffer.getvalue().split("ncalls", 1)[1]
        print("  ncalls" + body.rstrip())


def _per_call_ms(fn, repeat: int) -> float:
    for _ in range(min(50, repeat)):
        fn()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat * 1000


def add_probe_routes(app) -> None:
    """Bench-only routes on this process's app object (bioweb's code is untouched): a no-op
    JSON view, and the same behind the bearer check, to split a request's cost into layers."""
    from flask import jsonify

    from bioweb.bearer import require_token

    app.add_url_rule("/bench/noop", "bench_noop", lambda: jsonify(status="ok"))

    @require_token("devices:read")
    def bench_auth():
        return jsonify(status="ok")

    app.add_url_rule("/api/v1/bench-auth", "bench_auth", bench_auth)


def layers(app, data: seed.LoadData, repeat: int) -> None:
    """Unprofiled time per request through successively more of bioweb, then `micro`."""
    user = data.users[0]
    device = next(d for d in data.devices if d.user_id == user.id)
    auth = {"Authorization": f"Bearer {user.pat}"}
    client, bare = app.test_client(), baseline_app.test_client()
    rows = [
        ("bare Flask app (bench/baseline.py)", lambda: bare.get("/api/v1/x")),
        ("bioweb app, no-op JSON view (hooks, extensions)", lambda: client.get("/bench/noop")),
        (
            "bioweb app, no-op view behind require_token (PAT)",
            lambda: client.get("/api/v1/bench-auth", headers=auth),
        ),
        ("GET /api/v1/device/<id> (PAT)", lambda: client.get(f"/api/v1/device/{device.id}", headers=auth)),
        ("GET /api/v1/devices?limit=100", lambda: client.get("/api/v1/devices?limit=100", headers=auth)),
    ]
    print("## layers: in-process time per request, no profiler")
    for label, fn in rows:
        print(f"    {_per_call_ms(fn, repeat):6.3f} ms  {label}")

    with app.app_context():
        micro(data, repeat)


def micro(data: seed.LoadData, repeat: int) -> None:
    """The PAT lookup, as bioweb does it and cheaper (in an app context)."""
    from bioweb.models import Device, Token, User
    from bioweb.security import digest
    from bioweb.services import tokens

    user = data.users[0]
    print("## the token lookup, three ways (same SQL result)")
    t, u, d = Token.__table__, User.__table__, Device.__table__
    core = (
        sa.select(t.c.id, t.c.kind, t.c.scope, t.c.user_id, t.c.device_id, t.c.expires_time, t.c.revoked_time,
                  t.c.last_used_time, u.c.tenant_id, d.c.state, d.c.last_active_time)
        .select_from(t.join(u, u.c.id == t.c.user_id).outerjoin(d, d.c.id == t.c.device_id))
        .where(t.c.digest == sa.bindparam("digest"))
    )  # fmt: skip
    raw_sql = str(core.compile(db.engine))
    raw_params = (digest(user.pat),) if db.engine.dialect.name == "sqlite" else {"digest": digest(user.pat)}

    def orm() -> None:
        tokens.find_personal_token(user.pat)
        db.session.remove()

    def core_lookup() -> None:
        with db.engine.connect() as conn:
            conn.execute(core, {"digest": digest(user.pat)}).first()

    def raw_lookup() -> None:
        with db.engine.connect() as conn:
            conn.exec_driver_sql(raw_sql, raw_params).first()

    for label, fn in (
        ("services.tokens.find_personal_token (session, one joined query)", orm),
        ("Core select of the 11 columns the check needs", core_lookup),
        ("driver SQL, same statement", raw_lookup),
    ):
        print(f"    {_per_call_ms(fn, repeat):6.3f} ms  {label}")

    # The page of 100 (fetch, read models, JSON) is measured by bench/list_micro.py.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument(
        "--database-url", default=None, help="an empty database (default: a temporary SQLite file)"
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--only", default=None, help="comma-separated case names")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/hotpaths.db"
        app = create_app({**seed.APP_CONFIG, "SQLALCHEMY_DATABASE_URI": url})
        with app.app_context():
            db.create_all()
            engine = db.engine
            data = seed.seed_load_data(engine, users=20, devices_per_user=100)
        statements: list[str] = []

        @sa.event.listens_for(engine, "before_cursor_execute")
        def _count(conn, cursor, statement, parameters, context, executemany) -> None:
            statements.append(statement)

        # Requests run with no outer app context, as under gunicorn: each request then gets
        # its own app context, and Flask-SQLAlchemy's session is removed at its teardown
        # (an outer context would keep one session, its identity map and its connection).
        add_probe_routes(app)
        layers(app, data, args.requests)
        for case in cases(data):
            if args.only and case.name not in args.only.split(","):
                continue
            profile_case(app, case, args.requests, args.top, statements)
        with app.app_context():
            if args.database_url:
                db.drop_all()
            db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
