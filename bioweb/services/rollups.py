"""Rollups: count, sum, min, max and latest of each metric's samples per slot of 15 minutes of
UTC, and per hour of UTC (the coarser level most calculations read: a year is 8,760 rows).

Every write to the samples updates both in the same transaction, so a calculation over them is
always exact (services/calculations.py reads them; it never scans raw samples but for the
at most two slots a range cuts):

- new samples are added (an upsert adding counts and sums, keeping the smaller minimum, the
  greater maximum and the later latest);
- duplicates change nothing;
- a replaced or deleted sample makes its slots be recomputed from the samples (a minimum
  cannot be subtracted). On PostgreSQL the slot's rollup row is locked first (created if
  missing), so a concurrent insert into the same slot waits and then adds to the recomputed
  figures instead of being overwritten by them; the hours of those slots are then recomputed
  from their slots, locked the same way;
- a deleted metric's rollups go with its samples, in batches.

Samples with is_null true count in no function and have no part in any rollup.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..extensions import db
from ..models import SLOT_SECONDS, HourRollup, Sample, SampleRollup

_rollups, _hours, _samples = SampleRollup.__table__, HourRollup.__table__, Sample.__table__
SLOTS_PER_HOUR = 3600 // SLOT_SECONDS
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SLOT = timedelta(seconds=SLOT_SECONDS)


def slot_of(moment: datetime) -> int:
    """The slot holding `moment` (aware): floor(seconds since the Unix epoch / 900)."""
    return (moment - EPOCH) // SLOT


def slot_start(slot: int) -> datetime:
    return EPOCH + slot * SLOT


@dataclass
class Rollup:
    """One slot's figures, as they are combined in Python (for edges and recomputation)."""

    count: int
    total: float
    minimum: float
    maximum: float
    latest_value: float
    latest_key: tuple[datetime, datetime, int]  # (start_date, received_time, id)

    @classmethod
    def of(cls, value: float, start: datetime, received: datetime, sample_id: int) -> Rollup:
        return cls(1, value, value, value, value, (start, received, sample_id))

    def add(self, other: Rollup) -> None:
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        if other.latest_key > self.latest_key:
            self.latest_value, self.latest_key = other.latest_value, other.latest_key

    def copy(self) -> Rollup:
        return Rollup(self.count, self.total, self.minimum, self.maximum, self.latest_value, self.latest_key)

    def row(self, metric_id: int, slot: int, unit: str = "slot") -> dict[str, Any]:
        start, received, sample_id = self.latest_key
        return {
            "metric_id": metric_id,
            unit: slot,
            "sample_count": self.count,
            "total": self.total,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "latest_value": self.latest_value,
            "latest_start": start,
            "latest_received": received,
            "latest_id": sample_id,
        }


def summarise(samples: Iterable[Any]) -> dict[tuple[int, int], Rollup]:
    """(metric_id, slot) -> Rollup of sample rows with metric_id, start_date, received_time, id,
    quantity, is_null (is_null ones skipped)."""
    found: dict[tuple[int, int], Rollup] = {}
    for sample in samples:
        if sample.is_null or sample.quantity is None:
            continue
        one = Rollup.of(sample.quantity, sample.start_date, sample.received_time, sample.id)
        key = (sample.metric_id, slot_of(sample.start_date))
        if key in found:
            found[key].add(one)
        else:
            found[key] = one
    return found


def by_hour(slots: dict[tuple[int, int], Rollup]) -> dict[tuple[int, int], Rollup]:
    """(metric_id, slot) rollups combined into (metric_id, hour) ones."""
    hours: dict[tuple[int, int], Rollup] = {}
    for (metric_id, slot), rollup in slots.items():
        key = (metric_id, slot // SLOTS_PER_HOUR)
        if key in hours:
            hours[key].add(rollup)
        else:
            hours[key] = rollup.copy()
    return hours


def _rows(table: sa.Table, rollups: dict[tuple[int, int], Rollup]) -> list[dict[str, Any]]:
    unit = _unit(table).name
    return [rollup.row(metric_id, number, unit) for (metric_id, number), rollup in rollups.items()]


def _unit(table: sa.Table) -> sa.Column[int]:
    """The table's slot or hour column."""
    return table.c.slot if table is _rollups else table.c.hour


# The figures of a rollup row after its key (metric_id, slot or hour), in the tables' order.
FIGURES = (
    "sample_count",
    "total",
    "minimum",
    "maximum",
    "latest_value",
    "latest_start",
    "latest_received",
    "latest_id",
)
_UPSERTS: dict[tuple[str, str, bool], Any] = {}


def _upsert_statement(dialect: str, table: sa.Table, *, replace: bool) -> Any:
    """INSERT ... ON CONFLICT (metric_id, unit) DO UPDATE for a rollup table, built once.

    replace=False adds to what is stored (counts and sums added, the smaller minimum, the greater
    maximum, the later latest); replace=True overwrites it."""
    key = (dialect, table.name, replace)
    if key in _UPSERTS:
        return _UPSERTS[key]
    unit = _unit(table).name
    postgresql = dialect == "postgresql"
    insert = (postgresql_insert if postgresql else sqlite_insert)(table)
    new = insert.excluded
    smaller, greater = (sa.func.least, sa.func.greatest) if postgresql else (sa.func.min, sa.func.max)
    figures = FIGURES
    values: dict[str, Any]
    if replace:
        values = {name: new[name] for name in figures}
    else:
        later = sa.tuple_(new.latest_start, new.latest_received, new.latest_id) > sa.tuple_(
            table.c.latest_start, table.c.latest_received, table.c.latest_id
        )
        values = {
            "sample_count": table.c.sample_count + new.sample_count,
            "total": table.c.total + new.total,
            "minimum": smaller(table.c.minimum, new.minimum),
            "maximum": greater(table.c.maximum, new.maximum),
            **{name: sa.case((later, new[name]), else_=table.c[name]) for name in figures[4:]},
        }
    _UPSERTS[key] = insert.on_conflict_do_update(index_elements=["metric_id", unit], set_=values)
    return _UPSERTS[key]


def _upsert(
    connection: sa.Connection | None, table: sa.Table, rows: list[dict[str, Any]], *, replace: bool
) -> None:
    """Write rollup rows, in key order (concurrent writers lock them in one order)."""
    if not rows:
        return
    unit = _unit(table).name
    bind = connection if connection is not None else db.session.get_bind()
    statement = _upsert_statement(bind.dialect.name, table, replace=replace)
    ordered = sorted(rows, key=lambda row: (row["metric_id"], row[unit]))
    if connection is not None:
        connection.execute(statement, ordered)
    else:
        db.session.execute(statement, ordered)


def add_samples(samples: Iterable[Any]) -> None:
    """Add newly stored samples (rows with metric_id, start_date, received_time, id, quantity,
    is_null) to their slots' and hours' rollups, in the caller's transaction."""
    slots = summarise(samples)
    _upsert(None, _rollups, _rows(_rollups, slots), replace=False)
    _upsert(None, _hours, _rows(_hours, by_hour(slots)), replace=False)


# The sample columns `summarise` reads (recompute, rebuild, and calculations' cut slots).
SUMMARISED = (
    _samples.c.id,
    _samples.c.metric_id,
    _samples.c.start_date,
    _samples.c.received_time,
    _samples.c.quantity,
    _samples.c.is_null,
)


def _slot_ranges(slots: set[int]) -> list[tuple[int, int]]:
    """Sorted slots as runs [first, last]."""
    runs: list[tuple[int, int]] = []
    for slot in sorted(slots):
        if runs and runs[-1][1] == slot - 1:
            runs[-1] = (runs[-1][0], slot)
        else:
            runs.append((slot, slot))
    return runs


def _lock(table: sa.Table, keys: set[tuple[int, int]]) -> None:
    """PostgreSQL: lock these rollup rows, creating the missing ones (count 0), in key order."""
    placeholder = Rollup(0, 0.0, 0.0, 0.0, 0.0, (EPOCH, EPOCH, 0))
    unit = _unit(table)
    statement = postgresql_insert(table).on_conflict_do_update(
        index_elements=["metric_id", unit.name], set_={"sample_count": table.c.sample_count}
    )
    db.session.execute(statement, [placeholder.row(m, n, unit.name) for m, n in sorted(keys)])


def _replace_rows(table: sa.Table, keys: set[tuple[int, int]], found: dict[tuple[int, int], Rollup]) -> None:
    """Make the rows of `keys` exactly `found` (those missing from it are deleted)."""
    unit = _unit(table)
    by_metric: dict[int, list[int]] = {}
    for metric_id, number in keys:
        by_metric.setdefault(metric_id, []).append(number)
    for metric_id, numbers in by_metric.items():
        db.session.execute(sa.delete(table).where(table.c.metric_id == metric_id, unit.in_(sorted(numbers))))
    _upsert(None, table, _rows(table, found), replace=True)


def recompute(affected: set[tuple[int, int]]) -> None:
    """Recompute the rollups of these (metric_id, slot) pairs, and of their hours, from the
    samples, in the caller's transaction (after a sample was replaced or deleted)."""
    if not affected:
        return
    hours = {(metric_id, slot // SLOTS_PER_HOUR) for metric_id, slot in affected}
    if db.session.get_bind().dialect.name == "postgresql":
        # Lock the rows first, creating the missing ones, so a concurrent insert waits for us.
        _lock(_rollups, affected)
        _lock(_hours, hours)
    by_metric: dict[int, set[int]] = {}
    for metric_id, slot in affected:
        by_metric.setdefault(metric_id, set()).add(slot)
    found: dict[tuple[int, int], Rollup] = {}
    for metric_id, slots in by_metric.items():
        for first, last in _slot_ranges(slots):
            rows = db.session.execute(
                sa.select(*SUMMARISED).where(
                    _samples.c.metric_id == metric_id,
                    _samples.c.start_date >= slot_start(first),
                    _samples.c.start_date < slot_start(last + 1),
                )
            )
            found.update(summarise(rows))
    _replace_rows(_rollups, affected, found)
    # The hours, from all their slots (those not affected included).
    hour_slots: dict[tuple[int, int], Rollup] = {}
    for metric_id, hour in hours:
        rows = db.session.execute(
            sa.select(_rollups).where(
                _rollups.c.metric_id == metric_id,
                _rollups.c.slot >= hour * SLOTS_PER_HOUR,
                _rollups.c.slot < (hour + 1) * SLOTS_PER_HOUR,
                _rollups.c.sample_count > 0,
            )
        )
        hour_slots.update({(row.metric_id, row.slot): from_row(row) for row in rows})
    _replace_rows(_hours, hours, by_hour(hour_slots))


def from_row(row: Any) -> Rollup:
    """A Rollup of a rollup row (either level)."""
    return Rollup(
        row.sample_count,
        row.total,
        row.minimum,
        row.maximum,
        row.latest_value,
        (row.latest_start, row.latest_received, row.latest_id),
    )


def delete_batch(metric_id: int, size: int) -> int:
    """Delete up to `size` rollup rows of a (deleted) metric, its slots first, then its hours;
    how many went. No commit."""
    removed = 0
    for table in (_rollups, _hours):
        unit = _unit(table)
        batch = sa.select(unit).where(table.c.metric_id == metric_id).limit(size - removed).scalar_subquery()
        result = db.session.execute(sa.delete(table).where(table.c.metric_id == metric_id, unit.in_(batch)))
        removed += int(getattr(result, "rowcount", 0) or 0)
        if removed >= size:
            break
    return removed


def rebuild(connection: sa.Connection, metric_ids: Iterable[int] | None = None, chunk: int = 50_000) -> int:
    """Rebuild the rollups of these metrics (all when None) from their samples, on `connection`
    (the migration that introduced rollups, and the benchmark's seeding). Returns the slot rows
    written."""
    if metric_ids is None:
        metric_ids = connection.execute(sa.select(_samples.c.metric_id).distinct()).scalars().all()
    written = 0
    for metric_id in metric_ids:
        connection.execute(sa.delete(_rollups).where(_rollups.c.metric_id == metric_id))
        connection.execute(sa.delete(_hours).where(_hours.c.metric_id == metric_id))
        position: tuple[datetime, int] | None = None
        pending: dict[tuple[int, int], Rollup] = {}
        while True:
            query = sa.select(*SUMMARISED).where(_samples.c.metric_id == metric_id)
            if position is not None:
                after = sa.tuple_(
                    sa.literal(position[0], _samples.c.start_date.type),
                    sa.literal(position[1], _samples.c.id.type),
                )
                query = query.where(sa.tuple_(_samples.c.start_date, _samples.c.id) > after)
            rows = connection.execute(query.order_by(_samples.c.start_date, _samples.c.id).limit(chunk)).all()
            if not rows:
                break
            position = (rows[-1].start_date, rows[-1].id)
            for key, rollup in summarise(rows).items():
                if key in pending:
                    pending[key].add(rollup)
                else:
                    pending[key] = rollup
            # Every hour before the last row's is complete: write those, keep the last open.
            last = slot_of(rows[-1].start_date) // SLOTS_PER_HOUR
            done = {key: pending.pop(key) for key in [k for k in pending if k[1] // SLOTS_PER_HOUR < last]}
            _upsert(connection, _rollups, _rows(_rollups, done), replace=True)
            _upsert(connection, _hours, _rows(_hours, by_hour(done)), replace=True)
            written += len(done)
        _upsert(connection, _rollups, _rows(_rollups, pending), replace=True)
        _upsert(connection, _hours, _rows(_hours, by_hour(pending)), replace=True)
        written += len(pending)
    return written
