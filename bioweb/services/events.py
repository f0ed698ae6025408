"""The audit trail of each device: append-only events with time, actor, IP and request id.

This module only writes, and imports nothing back from the other services (they record
events through it); reading a device's events is services.devices.list_events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

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
    # The browser's User-Agent (the account's events show it); device events do not keep it.
    user_agent: str | None = None


OPERATOR = Origin(actor="operator")


def add(device_id: int, kind: EventKind, origin: Origin | None, secret_slot: int = 0) -> None:
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
            secret_slot=secret_slot,
        )
    )


_AGGREGATE_KEY = ["device_id", "kind", "bucket", "secret_slot"]


def add_aggregated(device_id: int, kind: EventKind, origin: Origin | None, amount: int = 1) -> None:
    """Count `amount` more `kind` for the device in the current hour's row (no commit).

    One upsert on the unique (device, kind, bucket, secret slot) constraint, so concurrent
    writers add up rather than collide. The row keeps the first occurrence's time, actor, IP
    and request id, and the latest time in `last_time`.
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
        secret_slot=0,
        count=amount,
        actor=origin.actor,
        ip=origin.ip,
        request_id=origin.request_id,
    )
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=_AGGREGATE_KEY,
            set_={"count": _events.c.count + amount, "last_time": now},
        )
    )


class Count(NamedTuple):
    """Occurrences of an aggregated kind, counted elsewhere and written later (add_counts)."""

    device_id: int
    kind: EventKind
    bucket: datetime  # the hour they happened in
    secret_slot: int
    amount: int
    first: datetime
    last: datetime
    origin: Origin | None


# Rows per statement: SQLite allows 32,766 bound parameters, each row takes 11.
_COUNTS_PER_STATEMENT = 500


def add_counts(counts: Iterable[Count]) -> None:
    """Add each count to its (device, kind, hour, slot) row, creating the rows that do not exist
    yet, in one upsert per 500 (no commit). Counts of the same row are merged first (an upsert
    may not touch a row twice). A new row takes its first occurrence's time and origin; an
    existing one keeps its own and moves `last_time` forward only."""
    merged: dict[tuple[int, str, datetime, int], Count] = {}
    for c in counts:
        key = (c.device_id, c.kind.value, c.bucket, c.secret_slot)
        held = merged.get(key)
        if held is not None:
            c = held._replace(
                amount=held.amount + c.amount, first=min(held.first, c.first), last=max(held.last, c.last)
            )
        merged[key] = c
    if not merged:
        return
    insert = _UPSERT_INSERTS[db.session.get_bind().dialect.name]
    rows = [
        {
            "device_id": c.device_id,
            "kind": c.kind.value,
            "bucket": c.bucket,
            "secret_slot": c.secret_slot,
            "count": c.amount,
            "time": c.first,
            "last_time": c.last,
            "actor": (c.origin or Origin()).actor,
            "ip": (c.origin or Origin()).ip,
            "request_id": (c.origin or Origin()).request_id,
        }
        for c in merged.values()
    ]
    for start in range(0, len(rows), _COUNTS_PER_STATEMENT):
        statement = insert(_events).values(rows[start : start + _COUNTS_PER_STATEMENT])
        later = statement.excluded.last_time > _events.c.last_time
        db.session.execute(
            statement.on_conflict_do_update(
                index_elements=_AGGREGATE_KEY,
                set_={
                    "count": _events.c.count + statement.excluded["count"],
                    "last_time": sa.case((later, statement.excluded.last_time), else_=_events.c.last_time),
                },
            )
        )


def record_failed_authentication(device: Row, origin: Origin | None) -> None:
    """A wrong secret (or a disabled device's secret) was presented for this client id. Commits."""
    add_aggregated(device.id, EventKind.AUTH_FAILED, origin)
    db.session.commit()
