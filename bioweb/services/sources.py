"""A person's data sources per sample type (HealthKit's Data Sources): the order of their
devices that decides which one counts where two recorded the same 15 minutes of a cumulative
type (services/calculations.py). Devices without a place come after, by most samples."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from .. import quantitytypes
from ..errors import InvalidInput
from ..extensions import db
from ..models import Device, Metric, SourcePriority
from . import Actor, metrics

_priorities, _devices, _metrics = SourcePriority.__table__, Device.__table__, Metric.__table__


@dataclass(frozen=True)
class Source:
    """One device recording a type for a person, in the person's order."""

    device_id: int
    label: str  # the person's name for it, else its product name
    product_name: str
    is_test_mode: bool
    position: int | None  # None: not placed; it counts after the placed ones


def sources(actor: Actor, sample_type: str) -> list[Source]:
    """The actor's devices with a metric of `sample_type`, placed ones first in their order,
    then the rest by id. Test-mode devices are listed, but never count in figures."""
    rows = db.session.execute(
        sa.select(
            _devices.c.id,
            _devices.c.name,
            _devices.c.product_name,
            _devices.c.is_test_mode,
            _priorities.c.position,
        )
        .select_from(
            _devices.outerjoin(
                _priorities,
                sa.and_(
                    _priorities.c.device_id == _devices.c.id,
                    _priorities.c.user_id == actor.id,
                    _priorities.c.sample_type == sample_type,
                ),
            )
        )
        .where(
            _devices.c.id.in_(
                sa.select(_metrics.c.device_id).where(
                    metrics.visible_to(actor), _metrics.c.sample_type == sample_type
                )
            )
        )
    ).all()
    listed = [
        Source(r.id, r.name or r.product_name, r.product_name, r.is_test_mode, r.position) for r in rows
    ]
    return sorted(listed, key=lambda s: (s.position is None, s.position or 0, s.device_id))


def set_order(actor: Actor, sample_type: str, device_ids: list[int]) -> None:
    """Make `device_ids` the actor's order for `sample_type` (first counts first). Raises
    InvalidInput for an unknown type, a repeated device or one that records no such metric.
    Commits."""
    if quantitytypes.lookup(sample_type) is None:
        raise InvalidInput(f"sample_type: {sample_type[:100]!r} is not a HealthKit quantity type.")
    known = {source.device_id for source in sources(actor, sample_type)}
    if len(set(device_ids)) != len(device_ids) or not set(device_ids) <= known:
        message = "Give each of your devices that records this type at most once."
        raise InvalidInput(f"device_ids: {message}", {"device_ids": [message]})
    db.session.execute(
        sa.delete(_priorities).where(
            _priorities.c.user_id == actor.id, _priorities.c.sample_type == sample_type
        )
    )
    if device_ids:
        db.session.execute(
            sa.insert(_priorities),
            [
                {
                    "user_id": actor.id,
                    "sample_type": sample_type,
                    "device_id": device_id,
                    "position": position,
                }
                for position, device_id in enumerate(device_ids)
            ],
        )
    db.session.commit()


def move(actor: Actor, sample_type: str, device_id: int, step: int) -> None:
    """Move one device up (step -1) or down (+1) in the order, placing all listed devices."""
    order = [source.device_id for source in sources(actor, sample_type)]
    if device_id not in order:
        raise InvalidInput("device_id: not one of your devices recording this type.")
    index = order.index(device_id)
    target = max(0, min(len(order) - 1, index + step))
    order.insert(target, order.pop(index))
    set_order(actor, sample_type, order)
