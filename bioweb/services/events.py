"""The audit trail of each device: append-only events with time, actor, IP and request id.

This module only writes, and imports nothing back from the other services (they record
events through it); reading a device's events is services.devices.list_events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..extensions import db
from ..models import Event, EventKind, utcnow
from ..reads import Row

_events = Event.__table__
# Both dialects' insert() offer on_conflict_do_update with the same arguments.
_UPSERT_INSERTS: dict[str, Callable[[sa.Table], Any]] = {
    "postgresql": postgresql_insert,
    "sqlite": sqlite_insert,
}


@dataclass(frozen=True)
class Origin:
    """Where a use case was asked from: the surface fills it in, services only record it."""

    actor: str = "anonymous"
    ip: str | None = None
    request_id: str | None = None


OPERATOR = Origin(actor="operator")


def add(device_id: int, kind: EventKind, origin: Origin | None) -> None:
    """Append one event (no commit: it joins the caller's transaction)."""
    origin = origin or Origin()
    now = utcnow()
    db.session.add(
        Event(
            device_id=device_id,
            kind=kind,
            time=now,
            last_time=now,
            actor=origin.actor,
            ip=origin.ip,
            request_id=origin.request_id,
        )
    )


def add_aggregated(device_id: int, kind: EventKind, origin: Origin | None, amount: int = 1) -> None:
    """Count `amount` more `kind` for the device in the current hour's row (no commit).

    One upsert on the unique (device, kind, bucket) constraint, so concurrent writers add up
    rather than collide. The row keeps the first occurrence's time, actor, IP and request
    id, and the latest time in `last_time`.
    """
    origin = origin or Origin()
    now = utcnow()
    insert = _UPSERT_INSERTS[db.session.get_bind().dialect.name]
    statement = insert(_events).values(
        device_id=device_id,
        kind=kind.value,
        time=now,
        last_time=now,
        bucket=now.replace(minute=0, second=0, microsecond=0),
        count=amount,
        actor=origin.actor,
        ip=origin.ip,
        request_id=origin.request_id,
    )
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=["device_id", "kind", "bucket"],
            set_={"count": _events.c.count + amount, "last_time": now},
        )
    )


def record_failed_authentication(device: Row, origin: Origin | None) -> None:
    """A wrong secret (or a disabled device's secret) was presented for this client id. Commits."""
    add_aggregated(device.id, EventKind.AUTH_FAILED, origin)
    db.session.commit()
