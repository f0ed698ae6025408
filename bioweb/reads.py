"""Plain reads for the hot paths, on a Core connection with no ORM session.

The bearer check, a device reading itself, the device list and the client lookup of /token
run on every device and script request. On those paths the ORM session (begin, connection
for bind, close at teardown) cost as much as the query; a Core connection from the same pool
returns the same typed rows for a fraction of it. Everything that writes, and every other
read, goes through `db.session` as usual. What these return is read-only: `sa.Row`s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeAlias

import sqlalchemy as sa

from .extensions import db

# A row of any columns (sa.Row is generic over the types of its columns).
Row: TypeAlias = sa.Row[*tuple[Any, ...]]


@contextmanager
def connection() -> Iterator[sa.Connection]:
    """A pooled Core connection for several reads in a row (returned to the pool after)."""
    with db.engine.connect() as conn:
        yield conn


def first(statement: sa.Executable, params: Mapping[str, Any] | None = None) -> Row | None:
    """The first row of a read, or None."""
    with db.engine.connect() as conn:
        return conn.execute(statement, params).first()
