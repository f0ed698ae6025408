"""In-process cost of one page of 100 devices, step by step (no server, no profiler).

    .venv/bin/python -m bench.list_micro

Seeds a temporary SQLite database (10 users, 100 devices each) and times, per call: the
service (`services.devices.list_devices`: query, count, rows -> read models), its page
query alone, the same query on the raw DB-API cursor (the floor), turning the page into
JSON-ready builtins and encoding them as the API does, and a whole request through Flask's
test client (limit=100 and limit=1). Compare runs on the same machine, several times: a
2-core machine shared with other work is noisy.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa

from bench import seed
from bioweb import create_app, reads
from bioweb.extensions import db
from bioweb.readmodels import to_builtins
from bioweb.services import devices


def timed(label: str, fn: Callable[[], Any], n: int = 2000) -> None:
    for _ in range(50):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    print(f"{label:40} {(time.perf_counter() - start) / n * 1e3:.3f} ms")


def main() -> None:
    url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "BIOWEB_TOKEN_KEYS": seed.TOKEN_KEYS})
    with app.app_context():
        db.create_all()
    data = seed.seed_load_data(sa.create_engine(url), 10, 100)
    user = data.users[0]

    class Actor:
        id = user.id
        tenant_id = 1

    with app.app_context():
        statement = devices._page_statement("id", "asc", False)
        columns = ", ".join(devices.SUMMARY_COLUMNS)
        timed("list_devices service", lambda: devices.list_devices(Actor(), limit=100))

        def query() -> None:
            with reads.connection() as conn:
                conn.execute(statement, {"user_id": user.id, "limit": 100, "cursor_id": 0}).all()

        timed("page query only (.all())", query)

        def raw() -> None:
            with db.engine.connect() as conn:
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                cursor.execute(
                    f"SELECT {columns} FROM devices WHERE user_id = ? ORDER BY id LIMIT ?", (user.id, 100)
                )
                cursor.fetchall()

        timed("raw dbapi fetchall", raw)
        page = devices.list_devices(Actor(), limit=100)
        timed("read models -> builtins", lambda: to_builtins(page))
        builtins = to_builtins(page)
        timed("orjson dumps", lambda: orjson.dumps(builtins))
        timed("engine.connect+close", lambda: db.engine.connect().close())

    client = app.test_client()
    auth = {"Authorization": "Bearer " + user.pat}
    timed("full request via test client", lambda: client.get("/api/v1/devices?limit=100", headers=auth), 500)
    timed("full request limit=1", lambda: client.get("/api/v1/devices?limit=1", headers=auth), 500)


if __name__ == "__main__":
    main()
