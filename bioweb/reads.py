"""Plain reads for the hot paths, on a Core connection with no ORM session.

The bearer check, a device reading itself, the device list and the client lookup of /token
run on every device and script request. On those paths the ORM session (begin, connection
for bind, close at teardown) cost as much as the query; a Core connection returns the same
typed rows for a fraction of it. Everything that writes, and every other read, goes through
`db.session` as usual. What these return is read-only: `sa.Row`s.

`first()` — one statement — runs, on PostgreSQL, on an engine of its own: the same database,
autocommit (no BEGIN and ROLLBACK around a single SELECT) and no pre-ping (no `SELECT 1` at
every checkout). Measured in process, those two round trips were two thirds of a read's
cost. What the pre-ping bought, a connection the server closed is replaced before use, the
read gets by trying once more on a fresh connection when the first one was found dead.
`connection()` — several statements in a row — stays on the app's engine (pre-ping, one
transaction, so its reads agree with each other). SQLite uses the app's engine for both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeAlias

import sqlalchemy as sa
from flask import Flask, current_app

from .extensions import db

# A row of any columns (sa.Row is generic over the types of its columns).
Row: TypeAlias = sa.Row[*tuple[Any, ...]]

_EXTENSION = "bioweb.reads"


def init_app(app: Flask) -> None:
    """Make the engine of single reads for `app` (call inside its app context, after db.init_app).
    It is disposed whenever the app's engine is."""
    main = db.engine
    engine = main
    if main.dialect.name == "postgresql":
        options = app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {})
        engine = sa.create_engine(
            main.url,
            isolation_level="AUTOCOMMIT",
            pool_pre_ping=False,
            pool_size=options.get("pool_size", 5),
            connect_args=options.get("connect_args", {}),
        )
        sa.event.listen(main, "engine_disposed", lambda _engine: engine.dispose())
    app.extensions[_EXTENSION] = engine


@contextmanager
def connection() -> Iterator[sa.Connection]:
    """A pooled Core connection for several reads in a row (returned to the pool after)."""
    with db.engine.connect() as conn:
        yield conn


def first(statement: sa.Executable, params: Mapping[str, Any] | None = None) -> Row | None:
    """The first row of a read, or None. Tried once more on a fresh connection when the pooled
    one turns out to be dead (a database restart); any other error is raised."""
    engine: sa.Engine = current_app.extensions[_EXTENSION]
    try:
        with engine.connect() as conn:
            return conn.execute(statement, params).first()
    except sa.exc.DBAPIError as error:
        if not error.connection_invalidated:
            raise
    with engine.connect() as conn:
        return conn.execute(statement, params).first()
