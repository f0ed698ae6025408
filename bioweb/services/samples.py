"""Quantity samples: submit one or a batch (idempotent, exactly once), read them back in order, delete.

Idempotency keys are unique constraints of the table: (metric_id, client_sample_id) when
the client sends an id, else (metric_id, start_date, end_date). A submission reads which of
its keys exist, inserts the rest with ON CONFLICT DO NOTHING ... RETURNING (so a concurrent
writer of the same key makes it a duplicate, never a second row), and replaces a stored
sample only for a higher client_sample_version, with a conditional UPDATE. Everything of one
submission commits together.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Annotated, Any, Literal, cast

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .. import reads
from ..errors import Conflict, InvalidInput, NotFound
from ..extensions import db
from ..models import MAX_ID, DeviceState, EventKind, Metric, Sample, utcnow
from ..readmodels import SampleBatchResult, SampleList, SampleRejected, SampleView
from . import Actor, Principal, events, metrics, rollups
from .events import Origin

MAX_BATCH = 1000
FUTURE_ALLOWANCE = timedelta(minutes=10)
FRACTION_UNIT = "%"

_samples, _metrics = Sample.__table__, Metric.__table__
# Both dialects' insert() offer on_conflict_do_nothing.
_INSERTS: dict[str, Callable[[sa.Table], Any]] = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}

MetricId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
AwareTime = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with an offset, or Z.")]


class SampleIn(msgspec.Struct, forbid_unknown_fields=True):
    """One submitted sample, as the API accepts it (types and ranges; the rules that need the
    metric or the clock are checked by `submit`)."""

    metric_id: MetricId
    start_date: AwareTime
    end_date: AwareTime
    quantity: float | None = None
    sample_motion_context: Literal["NotSet", "Sedentary", "Active"] = "NotSet"
    sample_sensor_location: Annotated[int, msgspec.Meta(ge=0, le=6)] | None = None
    sample_sensor_location_other: Annotated[str, msgspec.Meta(max_length=100)] = ""
    is_null: bool = False
    client_sample_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    client_sample_version: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] = 1


class SampleBatch(msgspec.Struct, forbid_unknown_fields=True):
    """A batch of samples (for the OpenAPI document; the API checks each item on its own)."""

    samples: Annotated[list[SampleIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


def validation_fields(error: msgspec.ValidationError) -> dict[str, list[str]]:
    """msgspec's message ("Expected `int` >= 1 - at `$.metric_id`") as {field: [message]}."""
    message = str(error)
    text, _, where = message.partition(" - at `$")
    if where:
        name = where.rstrip("`").lstrip(".").split(".")[0].split("[")[0] or "body"
        return {name: [text.replace("`", "") + "."]}
    if message.startswith("Object contains unknown field"):
        name = message.split("`")[1] if "`" in message else "body"
        known = ", ".join(SampleIn.__struct_fields__)
        return {name: [f"Unknown field; the fields are: {known}."]}
    if message.startswith("Object missing required field"):
        name = message.split("`")[1] if "`" in message else "body"
        return {name: ["This field is required."]}
    return {"body": [message.replace("`", "") + "."]}


@dataclass
class _Pending:
    index: int
    item: SampleIn
    key: tuple[Any, ...]


@dataclass
class _Outcome:
    accepted: int = 0
    duplicates: int = 0
    replaced: int = 0
    rejected: list[SampleRejected] = field(default_factory=list)
    # index of each stored item -> (uuid, duplicate?) for the answer to a single sample
    stored: dict[int, tuple[str, bool]] = field(default_factory=dict)


def _key(item: SampleIn) -> tuple[Any, ...]:
    if item.client_sample_id is not None:
        return ("id", item.metric_id, item.client_sample_id)
    return ("dates", item.metric_id, item.start_date, item.end_date)


def _check(item: SampleIn, metric: Any, now: datetime) -> dict[str, list[str]]:
    """The rules that need the metric and the clock; {} when the item may be stored."""
    problems: dict[str, list[str]] = {}
    if metric is None:
        return {"metric_id": [f"You have no metric with id {item.metric_id}."]}
    for name in ("start_date", "end_date"):
        try:  # an offset can push year 1 or 9999 out of what a datetime holds in UTC
            getattr(item, name).astimezone(UTC)
        except OverflowError:
            problems[name] = ["Is out of range: years 1 to 9999, in UTC."]
    for name in ("client_sample_id", "sample_sensor_location_other"):
        if "\x00" in (getattr(item, name) or ""):  # PostgreSQL text cannot hold NUL
            problems[name] = ["Must not contain NUL characters."]
    if problems:
        return problems
    if metric.device_state != DeviceState.ACTIVE:
        problems["metric_id"] = [
            f"The device of metric {item.metric_id} is disabled; nothing is stored for it."
        ]
    if item.end_date < item.start_date:
        problems["end_date"] = ["Must not be before start_date."]
    if item.start_date > now + FUTURE_ALLOWANCE:
        problems["start_date"] = ["Is more than 10 minutes in the future."]
    if item.quantity is None:
        if not item.is_null:
            problems["quantity"] = ["Required unless is_null is true."]
    elif not math.isfinite(item.quantity):
        problems["quantity"] = ["Must be a finite number."]
    elif metric.quantity_type == FRACTION_UNIT and not 0 <= item.quantity <= 1:
        problems["quantity"] = ["A % metric takes fractions from 0 to 1, as HealthKit sends them."]
    return problems


def _row(item: SampleIn, sample_uuid: str, now: datetime) -> dict[str, Any]:
    return {
        "uuid": sample_uuid,
        "metric_id": item.metric_id,
        "start_date": item.start_date.astimezone(UTC),
        "end_date": item.end_date.astimezone(UTC),
        "quantity": item.quantity,
        "sample_motion_context": item.sample_motion_context,
        "sample_sensor_location": item.sample_sensor_location,
        "sample_sensor_location_other": item.sample_sensor_location_other,
        "is_null": item.is_null,
        "client_sample_id": item.client_sample_id,
        "client_sample_version": item.client_sample_version,
        "received_time": now,
    }


def _existing(pending: list[_Pending]) -> dict[tuple[Any, ...], Any]:
    """The stored samples holding any of these keys: key -> row (id, uuid, version)."""
    # One query per metric and kind of key, `metric_id = ? AND x IN (...)`: both databases
    # search the key's partial unique index with it. A row-value IN over (metric_id, x) made
    # SQLite scan the whole table, and PostgreSQL spend ~0.3 s planning 500 pairs.
    found: dict[tuple[Any, ...], Any] = {}
    by_id: dict[int, list[str]] = {}
    by_dates: dict[int, set[datetime]] = {}
    for p in pending:
        if p.item.client_sample_id is not None:
            by_id.setdefault(p.item.metric_id, []).append(p.item.client_sample_id)
        else:
            by_dates.setdefault(p.item.metric_id, set()).add(p.item.start_date)
    columns = (
        _samples.c.id,
        _samples.c.uuid,
        _samples.c.client_sample_version,
        _samples.c.metric_id,
        _samples.c.start_date,
    )
    for metric_id, client_ids in by_id.items():
        for chunk in _chunks(client_ids):
            query = sa.select(*columns, _samples.c.client_sample_id).where(
                _samples.c.metric_id == metric_id, _samples.c.client_sample_id.in_(chunk)
            )
            for row in db.session.execute(query):
                found[("id", row.metric_id, row.client_sample_id)] = row
    for metric_id, starts in by_dates.items():
        for chunk in _chunks(sorted(starts)):
            dated_query = sa.select(*columns, _samples.c.end_date).where(
                _samples.c.metric_id == metric_id,
                _samples.c.client_sample_id.is_(None),
                _samples.c.start_date.in_(chunk),
            )
            for dated in db.session.execute(dated_query):
                found[("dates", dated.metric_id, dated.start_date, dated.end_date)] = dated
    return found


def _chunks(values: list[Any], size: int = 500) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _replace(row: Any, item: SampleIn, now: datetime) -> bool:
    """Replace a stored sample by a higher version of it; False when the stored one is as new."""
    values = _row(item, row.uuid, now)
    del values["uuid"]
    result = db.session.execute(
        sa.update(_samples)
        .where(
            _samples.c.id == row.id,
            _samples.c.metric_id == item.metric_id,
            _samples.c.client_sample_version < item.client_sample_version,
        )
        .values(**values)
    )
    return cast("sa.CursorResult[Any]", result).rowcount == 1


def time_ordered_uuid() -> str:
    """A version 7 UUID (RFC 9562): the Unix time in milliseconds, then 74 random bits.

    Samples are found by uuid through an index; random (version 4) uuids put every new sample
    on a random page of it, so a batch of 1,000 into a table of millions dirtied ~1,000 index
    pages. Time-ordered ones go to its end, like the ids. The time they tell is the sample's
    received_time, which every answer shows anyway.
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10)) & _UUID7_RANDOM
    return str(uuid.UUID(int=value | _UUID7_BITS))


_UUID7_RANDOM = ~(0xF << 76 | 0x3 << 62) & ((1 << 80) - 1)  # all but the version and variant bits
_UUID7_BITS = 0x7 << 76 | 0x2 << 62  # version 7, variant 10


def _insert(rows: list[dict[str, Any]]) -> dict[str, int]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING uuid, id of `rows`; uuid -> id of those stored.

    On PostgreSQL the rows go as one array per column through unnest(): a short statement
    psycopg parses once and caches, the arrays adapted in C. The multi-VALUES form SQLAlchemy
    renders otherwise (12,000 placeholders for 1,000 rows) cost psycopg a regex parse of
    ~150 KB per batch, more than the insert itself.
    """
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        names = list(rows[0])
        selected = sa.select(
            *(
                sa.func.unnest(
                    sa.bindparam(f"{name}_values", [row[name] for row in rows], ARRAY(_samples.c[name].type))
                ).label(name)
                for name in names
            )
        )
        statement = postgresql_insert(_samples).from_select(names, selected)
        returning = statement.on_conflict_do_nothing().returning(_samples.c.uuid, _samples.c.id)
        return {row.uuid: row.id for row in db.session.execute(returning)}
    insert = _INSERTS[dialect](_samples)
    statement = insert.on_conflict_do_nothing().returning(_samples.c.uuid, _samples.c.id)
    return {row.uuid: row.id for row in db.session.execute(statement, rows)}


def _store(pending: list[_Pending], outcome: _Outcome, now: datetime) -> None:
    """Insert the new keys, replace older versions, count the rest as duplicates (no commit).

    Optimistic: every key is inserted (ON CONFLICT DO NOTHING), and only the keys that were
    not (already stored, or stored by a concurrent writer) are read back. New samples, the
    common case, cost one statement, and one upsert for their slots' rollups; a resent batch
    costs the insert attempt and the read. A replacement recomputes the rollups of the slots
    it left and entered.
    """
    uuids = {p.key: time_ordered_uuid() for p in pending}
    rows = {p.key: _row(p.item, uuids[p.key], now) for p in pending}
    inserted = _insert(list(rows.values()))
    raced = []
    new_rows = []
    for p in pending:
        sample_id = inserted.get(uuids[p.key])
        if sample_id is not None:
            outcome.accepted += 1
            outcome.stored[p.index] = (uuids[p.key], False)
            new_rows.append(SimpleNamespace(id=sample_id, **rows[p.key]))
        else:  # stored before, or by a concurrent writer: ours is not new
            raced.append(p)
    rollups.add_samples(new_rows)
    existing = _existing(raced)
    changed_slots: set[tuple[int, int]] = set()
    for p in raced:
        row = existing[p.key]
        if p.item.client_sample_version > row.client_sample_version and _replace(row, p.item, now):
            outcome.replaced += 1
            outcome.stored[p.index] = (row.uuid, False)
            changed_slots.add((p.item.metric_id, rollups.slot_of(row.start_date)))
            changed_slots.add((p.item.metric_id, rollups.slot_of(p.item.start_date.astimezone(UTC))))
        else:
            outcome.duplicates += 1
            outcome.stored[p.index] = (row.uuid, True)
    rollups.recompute(changed_slots)


def _submit(actor: Actor, items: list[Any], origin: Origin | None) -> tuple[_Outcome, dict[int, Any]]:
    now = utcnow()
    outcome = _Outcome()
    valid: list[tuple[int, SampleIn]] = []
    for index, raw in enumerate(items):
        try:
            valid.append((index, msgspec.convert(raw, SampleIn)))
        except msgspec.ValidationError as error:
            outcome.rejected.append(SampleRejected(index=index, fields=validation_fields(error)))
    writable = metrics.find_writable(actor, {item.metric_id for _, item in valid})
    pending: dict[tuple[Any, ...], _Pending] = {}
    for index, item in valid:
        problems = _check(item, writable.get(item.metric_id), now)
        if problems:
            outcome.rejected.append(SampleRejected(index=index, fields=problems))
            continue
        key = _key(item)
        earlier = pending.get(key)
        if earlier is None:
            pending[key] = _Pending(index, item, key)
        elif item.client_sample_version > earlier.item.client_sample_version:
            # The same key again in one batch: a higher version replaces the earlier item.
            outcome.replaced += 1
            pending[key] = _Pending(index, item, key)
        else:
            outcome.duplicates += 1
    if pending:
        _store(list(pending.values()), outcome, now)
    outcome.rejected.sort(key=lambda r: r.index)
    _audit(actor, writable, pending, outcome, origin)
    db.session.commit()
    return outcome, writable


def _audit(
    actor: Actor,
    writable: dict[int, Any],
    pending: dict[tuple[Any, ...], _Pending],
    outcome: _Outcome,
    origin: Origin | None,
) -> None:
    """Count the submission in the hourly audit rows of the device written to (no commit)."""
    device_ids = {row.device_id for row in writable.values()}
    if isinstance(actor, Principal) and actor.device is not None:
        device_ids.add(actor.device.id)
    if len(device_ids) != 1:  # several devices or none: count per device only what is certain
        for row in writable.values():
            duplicate = [outcome.stored[p.index][1] for p in pending.values() if p.item.metric_id == row.id]
            for kind, amount in (
                (EventKind.SAMPLES_ACCEPTED, duplicate.count(False)),
                (EventKind.SAMPLES_DUPLICATE, duplicate.count(True)),
            ):
                if amount:
                    events.add_aggregated(row.device_id, kind, origin, amount=amount)
        return
    (device_id,) = device_ids
    for kind, amount in (
        (EventKind.SAMPLES_ACCEPTED, outcome.accepted + outcome.replaced),
        (EventKind.SAMPLES_DUPLICATE, outcome.duplicates),
        (EventKind.SAMPLES_REJECTED, len(outcome.rejected)),
    ):
        if amount:
            events.add_aggregated(device_id, kind, origin, amount=amount)


def submit_batch(actor: Actor, items: list[Any], origin: Origin | None = None) -> SampleBatchResult:
    """Store a batch (up to MAX_BATCH raw items, as decoded from JSON). Bad items are listed in
    `rejected` and change nothing; the rest are stored, duplicates counted. Commits."""
    outcome, _ = _submit(actor, items, origin)
    return SampleBatchResult(
        accepted=outcome.accepted,
        duplicates=outcome.duplicates,
        replaced=outcome.replaced,
        rejected=outcome.rejected,
    )


def submit_one(actor: Actor, item: Any, origin: Origin | None = None) -> SampleView:
    """Store one sample; the stored sample, with `duplicate` true when it was there already.

    Raises InvalidInput naming the bad fields, NotFound for a metric that is not the actor's,
    Conflict for a disabled device. Commits.
    """
    outcome, writable = _submit(actor, [item], origin)
    if outcome.rejected:
        fields = outcome.rejected[0].fields
        metric_problem = fields.get("metric_id", [""])[0]
        if metric_problem.startswith("You have no metric"):
            raise NotFound(metric_problem)
        if "disabled" in metric_problem:
            raise Conflict(metric_problem)
        raise InvalidInput(f"The sample has invalid fields: {', '.join(sorted(fields))}.", fields)
    sample_uuid, duplicate = outcome.stored[0]
    return _read_one(actor, sample_uuid, duplicate)


# --- reading -----------------------------------------------------------------------------------

# A sample's stored columns, as the API answers them (services/export.py writes the same).
SAMPLE_COLUMNS = (
    _samples.c.id,
    _samples.c.uuid,
    _samples.c.metric_id,
    _samples.c.quantity,
    _samples.c.start_date,
    _samples.c.end_date,
    _samples.c.sample_motion_context,
    _samples.c.sample_sensor_location,
    _samples.c.sample_sensor_location_other,
    _samples.c.is_null,
    _samples.c.client_sample_id,
    _samples.c.client_sample_version,
    _samples.c.received_time,
)


def _sample_view(row: Any, metric: Any, duplicate: bool = False) -> SampleView:
    return SampleView(
        uuid=row.uuid,
        metric_id=row.metric_id,
        device_id=metric.device_id,
        sample_type=metric.sample_type,
        quantity=row.quantity,
        quantity_type=metric.quantity_type,
        start_date=row.start_date,
        end_date=row.end_date,
        sample_motion_context=row.sample_motion_context,
        sample_sensor_location=row.sample_sensor_location,
        sample_sensor_location_other=row.sample_sensor_location_other,
        is_null=row.is_null,
        client_sample_id=row.client_sample_id,
        client_sample_version=row.client_sample_version,
        received_time=row.received_time,
        duplicate=duplicate,
    )


def _find_by_uuid(actor: Actor, sample_uuid: str) -> Any:
    """A sample of the actor's with its metric's device_id, sample_type and quantity_type; or NotFound."""
    row = None
    if len(sample_uuid) == 36 and "\x00" not in sample_uuid:
        row = db.session.execute(
            sa.select(*SAMPLE_COLUMNS, _metrics.c.device_id, _metrics.c.sample_type, _metrics.c.quantity_type)
            .select_from(_samples.join(_metrics, _metrics.c.id == _samples.c.metric_id))
            .where(_samples.c.uuid == sample_uuid, metrics.visible_to(actor))
        ).first()
    if row is None:
        raise NotFound(f"You have no sample {sample_uuid}.")
    return row


def _read_one(actor: Actor, sample_uuid: str, duplicate: bool) -> SampleView:
    row = _find_by_uuid(actor, sample_uuid)
    return _sample_view(row, row, duplicate)


def delete_sample(actor: Actor, sample_uuid: str) -> None:
    """Delete one of the actor's samples. Raises NotFound. Commits."""
    row = _find_by_uuid(actor, sample_uuid)
    db.session.execute(
        sa.delete(_samples).where(_samples.c.id == row.id, _samples.c.metric_id == row.metric_id)
    )
    rollups.recompute({(row.metric_id, rollups.slot_of(row.start_date))})
    db.session.commit()


def parse_time(name: str, value: str) -> datetime:
    """A time parameter: epoch milliseconds (the published API) or RFC 3339 with an offset, as
    aware UTC. Raises InvalidInput naming `name`."""
    parsed: datetime | None
    try:
        if value.lstrip("-").isascii() and value.lstrip("-").isdigit():
            parsed = datetime.fromtimestamp(int(value) / 1000, UTC)
        else:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(UTC)  # OverflowError when an offset leaves years 1 to 9999
    except (ValueError, OverflowError, OSError):
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        message = "Must be epoch milliseconds or an RFC 3339 time with an offset (2022-01-12T06:33:26Z)."
        raise InvalidInput(f"{name}: {message}", {name: [message]})
    return parsed


@dataclass(frozen=True)
class SampleFilter:
    """The reading parameters, already parsed (times aware)."""

    metric_id: int
    start_gt: datetime | None = None
    start_gte: datetime | None = None
    end_lt: datetime | None = None
    end_lte: datetime | None = None
    limit: int = 100
    sort_order: Literal["asc", "desc"] = "asc"
    cursor: str | None = None


def encode_cursor(start_date: datetime, sample_id: int) -> str:
    """An opaque, exact position: after (start_date, id) in the (start_date, id) order."""
    raw = json.dumps([start_date.astimezone(UTC).isoformat(), sample_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Raises InvalidInput for a cursor this service did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        start, sample_id = json.loads(raw)
        if not isinstance(start, str) or type(sample_id) is not int or not 0 < sample_id < 2**63:
            raise ValueError
        moment = datetime.fromisoformat(start)
        if moment.tzinfo is None:
            raise ValueError
        return moment.astimezone(UTC), sample_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, OverflowError):
        message = "Not a cursor of this API; pass back next_cursor as it was given."
        raise InvalidInput(f"cursor: {message}", {"cursor": [message]}) from None


def list_samples(actor: Actor, query: SampleFilter) -> SampleList:
    """One page of a metric's samples in (start_date, id) order, with the exact count of all
    that match the filters and the cursor of the next page. Raises NotFound, InvalidInput."""
    with reads.connection() as conn:
        metric = conn.execute(
            sa.select(
                _metrics.c.id, _metrics.c.device_id, _metrics.c.sample_type, _metrics.c.quantity_type
            ).where(_metrics.c.id == query.metric_id, metrics.visible_to(actor))
        ).first()
        if metric is None:
            raise NotFound(f"You have no metric with id {query.metric_id}.")
        conditions = [_samples.c.metric_id == query.metric_id]
        if query.start_gt is not None:
            conditions.append(_samples.c.start_date > query.start_gt)
        if query.start_gte is not None:
            conditions.append(_samples.c.start_date >= query.start_gte)
        if query.end_lt is not None:
            conditions.append(_samples.c.end_date < query.end_lt)
        if query.end_lte is not None:
            conditions.append(_samples.c.end_date <= query.end_lte)
        count = (
            conn.execute(sa.select(sa.func.count()).select_from(_samples).where(*conditions)).scalar() or 0
        )
        page = list(conditions)
        key = sa.tuple_(_samples.c.start_date, _samples.c.id)
        if query.cursor:
            start, sample_id = decode_cursor(query.cursor)
            position = sa.tuple_(
                sa.literal(start, _samples.c.start_date.type), sa.literal(sample_id, _samples.c.id.type)
            )
            page.append(key > position if query.sort_order == "asc" else key < position)
        direction = sa.asc if query.sort_order == "asc" else sa.desc
        rows = conn.execute(
            sa.select(*SAMPLE_COLUMNS)
            .where(*page)
            .order_by(direction(_samples.c.start_date), direction(_samples.c.id))
            .limit(query.limit + 1)
        ).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    last = rows[-1] if rows else None
    return SampleList(
        next_timestamp=int(last.start_date.timestamp() * 1000) if last is not None else None,
        next_cursor=encode_cursor(last.start_date, last.id) if last is not None and more else None,
        count=count,
        results=[_sample_view(row, metric) for row in rows],
    )
