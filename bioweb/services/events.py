"""The audit trail of each device: append-only events with time, actor, IP and request id."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Device, Event, EventKind, User, utcnow

AGGREGATED = {EventKind.TOKEN_ISSUED, EventKind.AUTH_FAILED}


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
            device_id=device_id, kind=kind, time=now, last_time=now,
            actor=origin.actor, ip=origin.ip, request_id=origin.request_id,
        )
    )


def add_aggregated(device_id: int, kind: EventKind, origin: Origin | None) -> None:
    """Count one more `kind` for the device in the current hour's row (no commit).

    The row keeps the first occurrence's time, actor, IP and request id, and the latest
    time in `last_time`. The unique (device, kind, bucket) constraint settles races.
    """
    origin = origin or Origin()
    now = utcnow()
    bucket = now.replace(minute=0, second=0, microsecond=0)
    bump = (
        sa.update(Event)
        .where(Event.device_id == device_id, Event.kind == kind, Event.bucket == bucket)
        .values(count=Event.count + 1, last_time=now)
    )
    if db.session.execute(bump).rowcount:
        return
    try:
        with db.session.begin_nested():
            db.session.add(
                Event(
                    device_id=device_id, kind=kind, time=now, last_time=now, bucket=bucket,
                    actor=origin.actor, ip=origin.ip, request_id=origin.request_id,
                )
            )
    except IntegrityError:
        db.session.execute(bump)


def record_failed_authentication(device: Device, origin: Origin | None) -> None:
    """A wrong secret (or a disabled device's secret) was presented for this client id. Commits."""
    add_aggregated(device.id, EventKind.AUTH_FAILED, origin)
    db.session.commit()


def list_events(
    actor: User, device_id: int, offset: int = 0, limit: int = 100, sort_order: str = "asc"
) -> "Page":
    """A keyset page of the events of one of the actor's devices, by id.

    Raises NotFound for a device that is not the actor's.
    """
    from .devices import Page, get_device  # devices records events: import here, not at the top

    device = get_device(actor, device_id)
    query = sa.select(Event).where(Event.device_id == device.id)
    if offset:
        query = query.where(Event.id > offset if sort_order == "asc" else Event.id < offset)
    order = Event.id.asc() if sort_order == "asc" else Event.id.desc()
    results = list(db.session.scalars(query.order_by(order).limit(limit)))
    count = db.session.scalar(sa.select(sa.func.count()).select_from(Event).where(Event.device_id == device.id))
    return Page(results, count or 0, results[-1].id if results else None)
