"""Rollups: count, sum, min, max and latest of each metric's samples per slot of 15 minutes of UTC.

Every write to the samples updates them in the same transaction, so a calculation over them is
always exact (services/calculations.py reads them; it never scans raw samples but for the
at most two slots a range cuts):

- new samples are added (an upsert adding counts and sums, keeping the smaller minimum, the
  greater maximum and the later latest);
- duplicates change nothing;
- a replaced or deleted sample makes its slots be recomputed from the samples (a minimum
  cannot be subtracted). On PostgreSQL the slot's rollup row is locked first (created if
  missing), so a concurrent insert into the same slot waits and then adds to the recomputed
  figures instead of being overwritten by them;
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
from ..models import SLOT_SECONDS, Sample, SampleRollup

_rollups, _samples = SampleRollup.__table__, Sample.__table__
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

    def row(self, metric_id: int, slot: int) -> dict[str, Any]:
        start, received, sample_id = self.latest_key
        return {
            "metric_id": metric_id,
            "slot": slot,
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


def _upsert(connection: sa.Connection | None, rows: list[dict[str, Any]], *, replace: bool) -> None:
    """Write rollup rows, in (metric_id, slot) order (concurrent writers lock them in one order).

    replace=False adds them to what is stored; replace=True overwrites it."""
    if not rows:
        return
    bind = connection if connection is not None else db.session.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    insert = (postgresql_insert if postgresql else sqlite_insert)(_rollups)
    new = insert.excluded
    smaller, greater = (sa.func.least, sa.func.greatest) if postgresql else (sa.func.min, sa.func.max)
    values: dict[str, Any]
    if replace:
        values = {name: new[name] for name in rows[0] if name not in ("metric_id", "slot")}
    else:
        later = sa.tuple_(new.latest_start, new.latest_received, new.latest_id) > sa.tuple_(
            _rollups.c.latest_start, _rollups.c.latest_received, _rollups.c.latest_id
        )
        values = {
            "sample_count": _rollups.c.sample_count + new.sample_count,
            "total": _rollups.c.total + new.total,
            "minimum": smaller(_rollups.c.minimum, new.minimum),
            "maximum": greater(_rollups.c.maximum, new.maximum),
            **{
                name: sa.case((later, new[name]), else_=_rollups.c[name])
                for name in ("latest_value", "latest_start", "latest_received", "latest_id")
            },
        }
    statement = insert.on_conflict_do_update(index_elements=["metric_id", "slot"], set_=values)
    ordered = sorted(rows, key=lambda row: (row["metric_id"], row["slot"]))
    if connection is not None:
        connection.execute(statement, ordered)
    else:
        db.session.execute(statement, ordered)


def add_samples(samples: Iterable[Any]) -> None:
    """Add newly stored samples (rows with metric_id, start_date, received_time, id, quantity,
    is_null) to their slots' rollups, in the caller's transaction."""
    _upsert(None, [rollup.row(m, s) for (m, s), rollup in summarise(samples).items()], replace=False)


_SUMMARISED = (
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


def recompute(affected: set[tuple[int, int]]) -> None:
    """Recompute the rollups of these (metric_id, slot) pairs from the samples, in the caller's
    transaction (after a sample was replaced or deleted)."""
    if not affected:
        return
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    if postgresql:
        # Lock the rows first, creating the missing ones, so a concurrent insert waits for us.
        placeholder = Rollup(0, 0.0, 0.0, 0.0, 0.0, (EPOCH, EPOCH, 0))
        statement = postgresql_insert(_rollups)
        statement = statement.on_conflict_do_update(
            index_elements=["metric_id", "slot"], set_={"sample_count": _rollups.c.sample_count}
        )
        db.session.execute(statement, [placeholder.row(m, s) for m, s in sorted(affected)])
    by_metric: dict[int, set[int]] = {}
    for metric_id, slot in affected:
        by_metric.setdefault(metric_id, set()).add(slot)
    found: dict[tuple[int, int], Rollup] = {}
    for metric_id, slots in by_metric.items():
        for first, last in _slot_ranges(slots):
            rows = db.session.execute(
                sa.select(*_SUMMARISED).where(
                    _samples.c.metric_id == metric_id,
                    _samples.c.start_date >= slot_start(first),
                    _samples.c.start_date < slot_start(last + 1),
                )
            )
            found.update(summarise(rows))
    for metric_id, slots in by_metric.items():
        db.session.execute(
            sa.delete(_rollups).where(_rollups.c.metric_id == metric_id, _rollups.c.slot.in_(sorted(slots)))
        )
    _upsert(None, [rollup.row(m, s) for (m, s), rollup in found.items()], replace=True)


def delete_batch(metric_id: int, size: int) -> int:
    """Delete up to `size` rollup rows of a (deleted) metric; how many went. No commit."""
    batch = sa.select(_rollups.c.slot).where(_rollups.c.metric_id == metric_id).limit(size).scalar_subquery()
    result = db.session.execute(
        sa.delete(_rollups).where(_rollups.c.metric_id == metric_id, _rollups.c.slot.in_(batch))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def rebuild(connection: sa.Connection, metric_ids: Iterable[int] | None = None, chunk: int = 50_000) -> int:
    """Rebuild the rollups of these metrics (all when None) from their samples, on `connection`
    (the migration that introduced rollups, and the benchmark's seeding). Returns rows written."""
    if metric_ids is None:
        metric_ids = connection.execute(sa.select(_samples.c.metric_id).distinct()).scalars().all()
    written = 0
    for metric_id in metric_ids:
        connection.execute(sa.delete(_rollups).where(_rollups.c.metric_id == metric_id))
        position: tuple[datetime, int] | None = None
        pending: dict[tuple[int, int], Rollup] = {}
        while True:
            query = sa.select(*_SUMMARISED).where(_samples.c.metric_id == metric_id)
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
            # Every slot before the last row's is complete: write those, keep the last open.
            last = slot_of(rows[-1].start_date)
            done = [key for key in pending if key[1] < last]
            _upsert(connection, [pending.pop(key).row(*key) for key in done], replace=True)
            written += len(done)
        _upsert(connection, [rollup.row(*key) for key, rollup in pending.items()], replace=True)
        written += len(pending)
    return written
