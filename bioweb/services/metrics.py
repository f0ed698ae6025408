"""Metrics: one measured thing on one device. Register, list, read, delete (with its samples).

A person reaches the metrics of their own devices; a device's own token reaches its own
device's metrics only. Anything else is NotFound, exactly like a metric that does not exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa

from .. import quantitytypes, reads
from ..errors import Conflict, InvalidInput, NotFound
from ..extensions import db
from ..models import MAX_ID, Device, DeviceState, Metric, Sample, utcnow
from ..readmodels import MetricList, MetricOverview, MetricView
from . import Actor, Principal, devices, rollups

OTHER = "other"
# Deleting a metric removes its samples this many rows per transaction, so other writers
# interleave (SQLite included); a request spends at most DELETE_BUDGET_SECONDS on it, and
# `flask --app app maintenance` finishes the rest.
DELETE_BATCH = 5000
DELETE_BUDGET_SECONDS = 0.5

_metrics, _devices, _samples = Metric.__table__, Device.__table__, Sample.__table__

# Every column of a metric answer but the latest sample, which is read beside it.
_METRIC_COLUMNS = (
    _metrics.c.id,
    _metrics.c.uuid,
    _metrics.c.device_id,
    _metrics.c.tenant_id,
    _metrics.c.user_id,
    _metrics.c.name,
    _metrics.c.sample_type,
    _metrics.c.sample_type_other,
    _metrics.c.quantity_type,
    _metrics.c.quantity_type_other,
    _metrics.c.is_continuous_data,
    _metrics.c.created_time,
    _metrics.c.modified_time,
)

_LATEST = (
    sa.select(_samples.c.quantity, _samples.c.start_date)
    .where(
        _samples.c.metric_id == sa.bindparam("metric_id"),
        _samples.c.is_null.is_(False),
    )
    .order_by(_samples.c.start_date.desc(), _samples.c.id.desc())
    .limit(1)
)


def visible_to(actor: Actor) -> sa.ColumnElement[bool]:
    """The metrics `actor` may reach: a device token its own device's, a person their own."""
    if isinstance(actor, Principal) and actor.device is not None:
        return sa.and_(_metrics.c.device_id == actor.device.id, _metrics.c.deleted_time.is_(None))
    return sa.and_(_metrics.c.user_id == actor.id, _metrics.c.deleted_time.is_(None))


def _view(row: Any, latest: Any) -> MetricView:
    qtype = quantitytypes.lookup(row.sample_type) if row.sample_type != OTHER else None
    return MetricView(
        **row._mapping,
        aggregation=qtype.aggregation if qtype else None,
        latest_value=latest.quantity if latest is not None else None,
        latest_timestamp=latest.start_date if latest is not None else None,
    )


def _rowcount(result: sa.Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (db.session.execute is typed as a plain Result)."""
    return cast("sa.CursorResult[Any]", result).rowcount


def _not_found(metric_id: int) -> NotFound:
    return NotFound(f"You have no metric with id {metric_id}.")


def validate_type_and_unit(
    sample_type: str, sample_type_other: str, quantity_type: str, quantity_type_other: str
) -> tuple[str, str]:
    """The stored (short) sample type and (canonical) unit. Raises InvalidInput naming the
    field: an unknown type (with close matches), a unit that does not fit it (with the units
    that do), or "other" without its description."""
    fields: dict[str, list[str]] = {}
    if sample_type == OTHER:
        if not sample_type_other.strip():
            fields["sample_type_other"] = ["Describe the type when sample_type is other."]
        qtype = None
    else:
        qtype = quantitytypes.lookup(sample_type)
        if qtype is None:
            close = quantitytypes.suggest(sample_type)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            fields["sample_type"] = [
                f"{sample_type!r} is not a HealthKit quantity type (such as heartRate or stepCount), "
                f"nor other.{hint}"
            ]
    unit = quantity_type
    if quantity_type == OTHER:
        if not quantity_type_other.strip():
            fields["quantity_type_other"] = ["Describe the unit when quantity_type is other."]
    elif qtype is not None:
        resolved = quantitytypes.resolve_unit(qtype, quantity_type)
        if resolved is None:
            fitting = ", ".join(quantitytypes.fitting_units(qtype))
            fields["quantity_type"] = [
                f"{quantity_type!r} does not measure {qtype.identifier}; send one of: {fitting}."
            ]
        else:
            unit = resolved
    if fields:
        raise InvalidInput(f"The request has invalid fields: {', '.join(sorted(fields))}.", fields)
    return (qtype.identifier if qtype else OTHER), unit


def create_metric(
    actor: Actor,
    device_id: int,
    sample_type: str,
    quantity_type: str,
    name: str = "",
    sample_type_other: str = "",
    quantity_type_other: str = "",
    is_continuous_data: bool = False,
) -> MetricView:
    """Register a metric on one of the actor's devices (a device token: its own device only).

    Raises InvalidInput (type or unit), NotFound (not the actor's device), Conflict (the
    device is disabled). Commits.
    """
    stored_type, unit = validate_type_and_unit(
        sample_type, sample_type_other, quantity_type, quantity_type_other
    )
    if isinstance(actor, Principal) and actor.device is not None and actor.device.id != device_id:
        raise NotFound(f"You have no device with id {device_id}.")
    device = db.session.get(Device, device_id) if 0 < device_id <= MAX_ID else None
    if device is None or device.user_id != actor.id:
        raise NotFound(f"You have no device with id {device_id}.")
    if device.state != DeviceState.ACTIVE:
        raise Conflict(f"Device {device_id} is disabled; re-authorize it to record data again.")
    now = utcnow()
    metric = Metric(
        tenant_id=device.tenant_id,
        user_id=device.user_id,
        device_id=device.id,
        name=name.strip(),
        sample_type=stored_type,
        sample_type_other=sample_type_other.strip() if stored_type == OTHER else "",
        quantity_type=unit,
        quantity_type_other=quantity_type_other.strip() if unit == OTHER else "",
        is_continuous_data=is_continuous_data,
        created_time=now,
        modified_time=now,
    )
    db.session.add(metric)
    db.session.commit()
    return get_metric(actor, metric.id)


def get_metric(actor: Actor, metric_id: int) -> MetricView:
    """One of the actor's metrics, with its latest sample. Raises NotFound."""
    row = None
    if 0 < metric_id <= MAX_ID:
        with reads.connection() as conn:
            row = conn.execute(
                sa.select(*_METRIC_COLUMNS).where(_metrics.c.id == metric_id, visible_to(actor))
            ).first()
            latest = conn.execute(_LATEST, {"metric_id": metric_id}).first() if row is not None else None
    if row is None:
        raise _not_found(metric_id)
    return _view(row, latest)


def list_metrics(
    actor: Actor, device_id: int | None = None, offset: int = 0, limit: int = 100, sort_order: str = "asc"
) -> MetricList:
    """A keyset page (by id) of the actor's metrics, of one device when `device_id` is given."""
    query = sa.select(*_METRIC_COLUMNS).where(visible_to(actor))
    counted = sa.select(sa.func.count()).select_from(_metrics).where(visible_to(actor))
    if device_id is not None:
        query = query.where(_metrics.c.device_id == device_id)
        counted = counted.where(_metrics.c.device_id == device_id)
    if offset:
        query = query.where(_metrics.c.id > offset if sort_order == "asc" else _metrics.c.id < offset)
    order = _metrics.c.id.asc() if sort_order == "asc" else _metrics.c.id.desc()
    with reads.connection() as conn:
        rows = conn.execute(query.order_by(order).limit(limit)).all()
        results = [_view(row, conn.execute(_LATEST, {"metric_id": row.id}).first()) for row in rows]
        count = conn.execute(counted).scalar() or 0
    return MetricList(next_id=results[-1].id if results else None, count=count, results=results)


def find_writable(actor: Actor, metric_ids: set[int]) -> dict[int, Any]:
    """The actor's live metrics among `metric_ids`, with their device's state: id -> row
    (id, device_id, user_id, tenant_id, sample_type, quantity_type, device_state)."""
    wanted = [m for m in metric_ids if 0 < m <= MAX_ID]
    if not wanted:
        return {}
    query = (
        sa.select(
            _metrics.c.id,
            _metrics.c.device_id,
            _metrics.c.user_id,
            _metrics.c.tenant_id,
            _metrics.c.sample_type,
            _metrics.c.quantity_type,
            _devices.c.state.label("device_state"),
        )
        .select_from(_metrics.join(_devices, _devices.c.id == _metrics.c.device_id))
        .where(_metrics.c.id.in_(wanted), visible_to(actor))
    )
    return {row.id: row for row in db.session.execute(query)}


def delete_metric(actor: Actor, metric_id: int) -> None:
    """Delete a metric and its samples. It is gone for everyone from this moment; its samples
    go in batches of DELETE_BATCH rows (each its own transaction, so the table is never locked
    for long), for at most DELETE_BUDGET_SECONDS here, the rest by purge_deleted_metrics.
    A second delete is NotFound, like any metric the actor does not have. Commits."""
    found = (
        _rowcount(
            db.session.execute(
                sa.update(_metrics)
                .where(_metrics.c.id == metric_id, visible_to(actor))
                .values(deleted_time=utcnow(), modified_time=utcnow())
            )
        )
        if 0 < metric_id <= MAX_ID
        else 0
    )
    if not found:
        db.session.rollback()
        raise _not_found(metric_id)
    db.session.commit()
    _purge_metric(metric_id, time.monotonic() + DELETE_BUDGET_SECONDS)


# Told (table name, rows) of each batch, in the batch's own transaction (services.deletion counts them).
Counter = Callable[[str, int], None]


def _purge_metric(metric_id: int, deadline: float, counted: Counter | None = None) -> bool:
    """Delete the samples of a deleted metric, then their rollups, a batch per transaction, then
    the metric row; `counted` is told each batch's rows before its commit.
    Returns True when it finished before `deadline`."""
    batch = (
        sa.select(_samples.c.id)
        .where(_samples.c.metric_id == metric_id)
        .limit(DELETE_BATCH)
        .scalar_subquery()
    )
    while True:
        removed = _rowcount(
            db.session.execute(
                sa.delete(_samples).where(_samples.c.metric_id == metric_id, _samples.c.id.in_(batch))
            )
        )
        if counted is not None and removed:
            counted(_samples.name, removed)
        db.session.commit()
        if removed < DELETE_BATCH:
            break
        if time.monotonic() > deadline:
            return False
    while True:
        removed = rollups.delete_batch(metric_id, DELETE_BATCH)
        if counted is not None and removed:
            counted("rollups", removed)
        db.session.commit()
        if removed < DELETE_BATCH:
            break
        if time.monotonic() > deadline:
            return False
    try:
        db.session.execute(
            sa.delete(_metrics).where(_metrics.c.id == metric_id, _metrics.c.deleted_time.is_not(None))
        )
        db.session.commit()
    except sa.exc.IntegrityError:
        # A writer that found the metric before it was marked stored a sample after the last
        # batch (its foreign key holds the row): the next purge takes that one too.
        db.session.rollback()
        return False
    return True


def purge_metric(metric_id: int, deadline: float, counted: Counter | None = None) -> bool:
    """Finish deleting one metric already marked deleted (deleted_time set): its samples and
    rollups in batches, then its row, until `deadline` (time.monotonic()). True when it is gone.
    For services.deletion, which deletes devices' and accounts' metrics the same way. Commits
    per batch."""
    return _purge_metric(metric_id, deadline, counted)


def purge_deleted_metrics(budget_seconds: float = 300.0) -> tuple[int, int]:
    """Finish deleting metrics whose delete request ran out of time (for `flask maintenance`).
    Returns (metrics finished, metrics still pending). Commits per batch."""
    deadline = time.monotonic() + budget_seconds
    pending = list(db.session.scalars(sa.select(_metrics.c.id).where(_metrics.c.deleted_time.is_not(None))))
    finished = 0
    for metric_id in pending:
        if time.monotonic() > deadline or not _purge_metric(metric_id, deadline):
            break
        finished += 1
    return finished, len(pending) - finished


# --- the dashboard's overviews --------------------------------------------------------------------

RECENT = timedelta(hours=24)
DEVICE_METRICS_LIMIT = 100


def type_name(metric: MetricView) -> str:
    """A metric's type in words: the table's plain name (Heart rate), or the description given
    with "other"."""
    qtype = quantitytypes.lookup(metric.sample_type) if metric.sample_type != OTHER else None
    if qtype is not None:
        return qtype.name
    return metric.sample_type_other or metric.sample_type


def _recent_counts(metric_ids: list[int]) -> dict[int, int]:
    """metric id -> samples that started in the last RECENT (ix_quantity_samples_metric_start)."""
    if not metric_ids:
        return {}
    since = utcnow() - RECENT
    query = (
        sa.select(_samples.c.metric_id, sa.func.count())
        .where(_samples.c.metric_id.in_(metric_ids), _samples.c.start_date >= since)
        .group_by(_samples.c.metric_id)
    )
    with reads.connection() as conn:
        return {metric_id: count for metric_id, count in conn.execute(query)}


def device_metrics(actor: Actor, device_id: int, limit: int = DEVICE_METRICS_LIMIT) -> list[MetricOverview]:
    """The first `limit` metrics (by id) of one of the actor's devices, each with its latest
    sample, its type in words and its samples of the last 24 hours. Raises NotFound for a
    device that is not the actor's. Reads only."""
    device = devices.read_device(actor, device_id)
    page = list_metrics(actor, device_id=device.id, limit=limit, sort_order="asc")
    counts = _recent_counts([metric.id for metric in page.results])
    return [
        MetricOverview(metric=metric, type_name=type_name(metric), samples_last_24h=counts.get(metric.id, 0))
        for metric in page.results
    ]


def metric_overview(actor: Actor, metric_id: int) -> MetricOverview:
    """One of the actor's metrics as device_metrics lists it. Raises NotFound. Reads only."""
    metric = get_metric(actor, metric_id)
    counts = _recent_counts([metric.id])
    return MetricOverview(
        metric=metric, type_name=type_name(metric), samples_last_24h=counts.get(metric.id, 0)
    )
