"""Calculations: a function of samples per local calendar bucket, from the rollups.

`calculate` answers GET /api/v1/quantity-sample-calculations (docs/samples.md,
Calculations) for one metric, or for all of a person's metrics of one sample type:

- The buckets are local: hours, days, ISO weeks, months or years of an IANA time zone, with
  daylight-saving changes (a local day of 23 or 25 hours). Every bucket overlapping the range
  [start_gte, finish_lte] is answered whole, `partial` when the range cuts it, empty ones with
  value null and count 0.
- The work is done over the rollups (services/rollups.py: per metric and hour, and per metric
  and 15 minutes, of UTC), never the raw samples, but for the at most two slots the range cuts.
  Every zone's offset is a multiple of 15 minutes, so each local bucket is a run of whole slots:
  its whole UTC hours are read from the hour level, the rest (zones at :30 or :45) from the slot
  level. The database sums each bucket's range through the primary key (one index range per
  bucket, the ranges sent as one array), whatever the zone's daylight-saving changes.
- Across devices (`sample_type`): a cumulative type takes, in each slot, one source — the
  person's priority order of devices for the type, else the device with the most samples in
  the slot — so a walk recorded by a phone and a watch counts once; a discrete type pools
  the samples. Test-mode devices never count in a person's figures.
"""

from __future__ import annotations

import bisect
import json
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from .. import quantitytypes, reads
from ..errors import InvalidInput, NotFound
from ..models import (
    MAX_ID,
    SLOT_SECONDS,
    Device,
    HourRollup,
    Metric,
    Sample,
    SampleRollup,
    SourcePriority,
    User,
)
from ..readmodels import CalculationBucket, CalculationResult, MetricDetail, MetricFigures
from . import Actor, accounts, metrics
from .rollups import EPOCH, SLOTS_PER_HOUR, SUMMARISED, Rollup, slot_of, slot_start, summarise

FUNCTIONS = {1: "average", 2: "sum", 3: "minimum", 4: "maximum", 5: "count", 6: "latest"}
FREQUENCIES = {1: "day", 2: "week", 3: "month", 4: "year", 5: "hour"}
AVERAGE, SUM, MINIMUM, MAXIMUM, COUNT, LATEST = 1, 2, 3, 4, 5, 6
DAY, WEEK, MONTH, YEAR, HOUR = 1, 2, 3, 4, 5
MAX_BUCKETS = 10_000
PARAMETERS = (
    "metric_id",
    "sample_type",
    "quantity_type",
    "function",
    "frequency",
    "start_gte",
    "finish_lte",
    "time_zone",
)

_rollups, _hour_rollups = SampleRollup.__table__, HourRollup.__table__
_samples, _metrics = Sample.__table__, Metric.__table__
_devices, _priorities, _users = Device.__table__, SourcePriority.__table__, User.__table__


@dataclass(frozen=True)
class CalculationQuery:
    """A calculation, parsed: times aware UTC, function and frequency as the published integers."""

    function: int
    frequency: int
    start: datetime
    finish: datetime
    time_zone: str
    metric_id: int | None = None
    sample_type: str | None = None
    quantity_type: str | None = None


# --- parsing --------------------------------------------------------------------------------------


def zone_named(name: str, field: str = "time_zone") -> zoneinfo.ZoneInfo:
    """The IANA zone `name` (accounts.valid_time_zone: case-insensitive, with close names when
    there is none). Raises InvalidInput naming `field`."""
    return zoneinfo.ZoneInfo(accounts.valid_time_zone(name, field))


def _choice(name: str, value: str, choices: Mapping[int, str]) -> int:
    if value.isascii() and value.isdigit() and int(value) in choices:
        return int(value)
    for number, word in choices.items():
        if value == word:
            return number
    listed = ", ".join(f"{number} {word}" for number, word in choices.items())
    message = f"Must be one of {listed} (the number or the name)."
    raise InvalidInput(f"{name}: {message}", {name: [message]})


def parse_query(
    args: Mapping[str, str], default_time_zone: str, metric_id: int | None = None
) -> CalculationQuery:
    """The query string of a calculation (the API's, or the dashboard's with the metric in the
    path). Raises InvalidInput naming every bad parameter."""
    from .samples import parse_time  # noqa: PLC0415 (samples imports metrics, which imports us not)

    allowed = set(PARAMETERS) - ({"metric_id", "sample_type", "quantity_type"} if metric_id else set())
    unknown = sorted(set(args) - allowed)
    if unknown:
        message = f"Unknown parameter; the parameters are: {', '.join(sorted(allowed))}."
        raise InvalidInput(
            f"Invalid query parameters: {', '.join(u[:100] for u in unknown)}.",
            {u[:100]: [message] for u in unknown},
        )
    problems: dict[str, list[str]] = {}

    def collect(check: Any, *a: Any) -> Any:
        try:
            return check(*a)
        except InvalidInput as error:
            problems.update(error.fields or {})
            return None

    sample_type = None
    quantity_type = None
    if metric_id is None:
        raw_metric = args.get("metric_id", "")
        sample_type = args.get("sample_type") or None
        quantity_type = args.get("quantity_type") or None
        if raw_metric and sample_type:
            problems["sample_type"] = ["Give metric_id or sample_type, not both."]
        elif raw_metric:
            if raw_metric.isascii() and raw_metric.isdigit() and 1 <= int(raw_metric) <= MAX_ID:
                metric_id = int(raw_metric)
            else:
                problems["metric_id"] = ["Must be the id of one of your metrics."]
        elif sample_type:
            qtype = quantitytypes.lookup(sample_type)
            if qtype is None:
                problems["sample_type"] = [f"{sample_type[:100]!r} is not a HealthKit quantity type."]
            else:
                sample_type = qtype.identifier
        else:
            problems["metric_id"] = ["Give metric_id (one metric) or sample_type (all of yours of a type)."]
    function = collect(_choice, "function", args.get("function", ""), FUNCTIONS)
    frequency = collect(_choice, "frequency", args.get("frequency", ""), FREQUENCIES)
    start = finish = None
    for name in ("start_gte", "finish_lte"):
        if not args.get(name):
            problems[name] = ["Is required: RFC 3339 with an offset, or epoch milliseconds."]
    if not problems.keys() & {"start_gte", "finish_lte"}:
        start = collect(parse_time, "start_gte", args["start_gte"])
        finish = collect(parse_time, "finish_lte", args["finish_lte"])
        if start is not None and finish is not None and finish < start:
            problems["finish_lte"] = ["Must not be before start_gte."]
    zone_name = args.get("time_zone") or default_time_zone
    zone = collect(zone_named, zone_name)
    if problems or start is None or finish is None:
        raise InvalidInput(f"Invalid query parameters: {', '.join(sorted(problems))}.", problems)
    return CalculationQuery(
        function=function,
        frequency=frequency,
        start=start,
        finish=finish,
        time_zone=zone.key,
        metric_id=metric_id,
        sample_type=sample_type,
        quantity_type=quantity_type,
    )


# --- local buckets --------------------------------------------------------------------------------


def _local_midnight(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    """The first instant of a local day, in UTC. Where midnight does not exist (a clock moved
    forward at 00:00) the day begins when the clock shows the first time after the gap."""
    return datetime.combine(day, time(), zone).astimezone(UTC)


def _first_day(frequency: int, day: date) -> date:
    if frequency == WEEK:
        return day - timedelta(days=day.weekday())
    if frequency == MONTH:
        return day.replace(day=1)
    if frequency == YEAR:
        return day.replace(month=1, day=1)
    return day


def _next_day(frequency: int, day: date) -> date:
    if frequency == WEEK:
        return day + timedelta(days=7)
    if frequency == MONTH:
        return date(day.year + day.month // 12, day.month % 12 + 1, 1)
    if frequency == YEAR:
        return date(day.year + 1, 1, 1)
    return day + timedelta(days=1)


_APPROXIMATE = {
    HOUR: 3600,
    DAY: 86400 - 3600,
    WEEK: 7 * 86400 - 3600,
    MONTH: 28 * 86400 - 3600,
    YEAR: 365 * 86400 - 3600,
}


def bucket_bounds(
    frequency: int, zone: zoneinfo.ZoneInfo, start: datetime, finish: datetime
) -> list[datetime]:
    """UTC instants b0 <= start <= finish < bn: the local buckets [b_i, b_i+1) overlapping the
    range. Raises InvalidInput beyond MAX_BUCKETS buckets or outside years 1 to 9999."""
    name = FREQUENCIES[frequency]
    too_many = (
        f"The range holds more than {MAX_BUCKETS:,} {name} buckets; narrow it or choose a longer frequency."
    )
    # A first, generous estimate keeps the walk below short; the exact count is checked after it.
    if (finish - start).total_seconds() / _APPROXIMATE[frequency] > MAX_BUCKETS * 1.1:
        raise InvalidInput(f"finish_lte: {too_many}", {"finish_lte": [too_many]})
    bounds: list[datetime] = []
    try:
        if frequency == HOUR:
            # Local hours begin where the local minute is 0: walk 15 minutes at a time from the
            # first slot of the hour holding `start`. A zone whose offset then was not a multiple
            # of 15 minutes (local mean time) has no such slot: stop after two hours without one.
            moment = slot_start(slot_of(start) - SLOTS_PER_HOUR)
            while not bounds or bounds[-1] <= finish:
                local = moment.astimezone(zone)
                if local.minute == 0 and local.second == 0:
                    if moment <= start:
                        bounds = [moment]
                    else:
                        bounds.append(moment)
                elif moment - (bounds[-1] if bounds else start) > timedelta(hours=2):
                    bound_slots([moment + timedelta(seconds=1)], zone)  # raises, naming the offset
                moment += timedelta(seconds=SLOT_SECONDS)
        else:
            day = _first_day(frequency, start.astimezone(zone).date())
            bounds.append(_local_midnight(day, zone))
            while bounds[-1] <= finish:
                day = _next_day(frequency, day)
                bounds.append(_local_midnight(day, zone))
    except (OverflowError, ValueError):
        message = "The range with its buckets must lie in the years 1 to 9999."
        raise InvalidInput(f"finish_lte: {message}", {"finish_lte": [message]}) from None
    if len(bounds) - 1 > MAX_BUCKETS:
        raise InvalidInput(f"finish_lte: {too_many}", {"finish_lte": [too_many]})
    return bounds


def _offset_seconds(zone: zoneinfo.ZoneInfo, moment: datetime) -> int:
    """The zone's UTC offset at an instant, in seconds."""
    offset = moment.astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def bound_slots(bounds: list[datetime], zone: zoneinfo.ZoneInfo) -> list[int]:
    """The bucket bounds as slot numbers. Raises InvalidInput where a bound is not on a slot
    boundary: the zone's offset then was not a multiple of 15 minutes (local mean time, before
    1972 in some zones)."""
    slots = []
    for bound in bounds:
        seconds, rest = divmod(bound - EPOCH, timedelta(seconds=SLOT_SECONDS))
        if rest:
            offset = _offset_seconds(zone, bound)
            sign = "-" if offset < 0 else "+"
            hours, minutes = divmod(abs(offset), 3600)
            message = (
                f"{zone.key} was at UTC{sign}{hours:02d}:{minutes // 60:02d}:{minutes % 60:02d} on "
                f"{bound.astimezone(zone).date()}, not a multiple of 15 minutes; calculations cover "
                "the times when a zone's offsets are (for every zone, since 1972)."
            )
            raise InvalidInput(f"time_zone: {message}", {"time_zone": [message]})
        slots.append(seconds)
    return slots


# --- reading the rollups --------------------------------------------------------------------------
#
# A calculation is a list of ranges (bucket index, first, end) over one rollup level; the database
# sums each range through the primary key, (metric_id, slot or hour): one index range per bucket,
# however the zone's offsets run. A bucket's whole UTC hours are read from the hour level, the
# slots before its first and after its last whole hour (zones at :30 or :45) from the slot level.


@dataclass(frozen=True)
class _Scope:
    """The metrics a calculation reads, and how several are combined."""

    metric_ids: list[int]
    metric_id: int | None
    sample_type: str
    unit: str
    cumulative: bool
    priority: dict[int, int]  # metric id -> position of its device in the person's order

    @property
    def choosing(self) -> bool:
        """Several metrics of a cumulative type: each slot counts one of them (slot level only)."""
        return self.cumulative and len(self.metric_ids) > 1


Ranges = list[tuple[int, int, int]]  # (bucket index, first, end) of slots or hours


def _ranges(scope: _Scope, starts: list[tuple[int, int, int]]) -> tuple[Ranges, Ranges]:
    """(hour ranges, slot ranges) covering the slot ranges (index, first, end)."""
    hours: Ranges = []
    slots: Ranges = []
    for index, first, end in starts:
        if first >= end:
            continue
        hour_first = -(-first // SLOTS_PER_HOUR)
        hour_end = end // SLOTS_PER_HOUR
        if scope.choosing or hour_first >= hour_end:
            slots.append((index, first, end))
            continue
        hours.append((index, hour_first, hour_end))
        if first < hour_first * SLOTS_PER_HOUR:
            slots.append((index, first, hour_first * SLOTS_PER_HOUR))
        if hour_end * SLOTS_PER_HOUR < end:
            slots.append((index, hour_end * SLOTS_PER_HOUR, end))
    return hours, slots


def _range_table(dialect: str) -> tuple[Any, Any, Any, Any]:
    """The ranges as a table (bucket, first, end), one bound parameter whatever their number:
    unnest of three arrays on PostgreSQL, json_each of one JSON array on SQLite."""
    if dialect == "postgresql":
        columns = [sa.bindparam(f"range_{n}", type_=ARRAY(sa.BigInteger)) for n in range(3)]
        table = sa.func.unnest(*columns).table_valued("bucket", "first", "end").render_derived(name="ranges")
        return table, table.c.bucket, table.c.first, table.c.end
    table = sa.func.json_each(sa.bindparam("ranges", type_=sa.String)).table_valued("value").alias("ranges")
    bucket, first, end = (sa.func.json_extract(table.c.value, f"$[{n}]") for n in range(3))
    return table, bucket, first, end


def _range_parameters(dialect: str, ranges: Ranges) -> dict[str, Any]:
    if dialect == "postgresql":
        return {f"range_{n}": [r[n] for r in ranges] for n in range(3)}
    return {"ranges": json.dumps(ranges)}


def _metric_match(column: Any, scope: _Scope) -> Any:
    """The scope's metrics, as bound parameters (metric_id, or the expanding metric_ids)."""
    if len(scope.metric_ids) == 1:
        return column == sa.bindparam("metric_id")
    return column.in_(sa.bindparam("metric_ids", expanding=True))


def _source(scope: _Scope, level: sa.Table) -> tuple[Any, Any]:
    """(rows, their unit column): the level's rollup rows; for several metrics of a cumulative
    type, each slot's chosen source only (the person's order, else the most samples), between
    the bound parameters low and high."""
    if not scope.choosing:
        return level, level.c[_UNIT[level.name]]
    position = (
        sa.case(*[(level.c.metric_id == m, p) for m, p in scope.priority.items()], else_=sa.literal(MAX_ID))
        if scope.priority
        else sa.literal(MAX_ID)
    )
    rank = sa.func.row_number().over(
        partition_by=level.c.slot, order_by=(position, level.c.sample_count.desc(), level.c.metric_id)
    )
    ranked = (
        sa.select(level, rank.label("rank"))
        .where(
            _metric_match(level.c.metric_id, scope),
            level.c.slot >= sa.bindparam("low"),
            level.c.slot < sa.bindparam("high"),
        )
        .subquery()
    )
    chosen = sa.select(*(ranked.c[c.name] for c in level.c)).where(ranked.c.rank == 1).subquery()
    return chosen, chosen.c.slot


_UNIT = {"quantity_rollups": "slot", "quantity_hour_rollups": "hour"}
_STATEMENTS: dict[tuple[str, str, bool], sa.Select[Any]] = {}


def _sums_statement(dialect: str, scope: _Scope, level: sa.Table) -> sa.Select[Any]:
    """SELECT bucket, last, n, total, minimum, maximum per range; built once per shape (but with
    a person's order of sources, which it spells out)."""
    key = (dialect, level.name, len(scope.metric_ids) == 1)
    if not scope.choosing and key in _STATEMENTS:
        return _STATEMENTS[key]
    source, unit = _source(scope, level)
    table, bucket, first, end = _range_table(dialect)
    sums = (
        sa.func.max(unit).label("last"),
        sa.func.sum(source.c.sample_count).label("n"),
        sa.func.sum(source.c.total).label("total"),
        sa.func.min(source.c.minimum).label("minimum"),
        sa.func.max(source.c.maximum).label("maximum"),
    )
    in_range = sa.and_(_metric_match(source.c.metric_id, scope), unit >= first, unit < end)
    if dialect == "postgresql":
        # One aggregate per range (LATERAL): the only plan is a primary-key range scan each. A
        # join and GROUP BY let the planner read all of a metric's rows against every range
        # when there were few ranges (18-33 ms for two instead of 0.3), and a generic plan
        # (prepared statements) do so always.
        per_range = sa.select(*sums).where(in_range).lateral("sums")
        statement = sa.select(bucket.label("bucket"), *per_range.c).select_from(
            table.join(per_range, sa.true())
        )
    else:
        # SQLite already searches the primary key once per range (json_each drives the join).
        statement = (
            sa.select(bucket.label("bucket"), *sums)
            .select_from(table.join(source, in_range))
            .group_by(bucket)
        )
    if not scope.choosing:
        _STATEMENTS[key] = statement
    return statement


def _sum_ranges(
    conn: sa.Connection, scope: _Scope, level: sa.Table, ranges: Ranges, with_latest: bool
) -> list[tuple[int, Rollup]]:
    """[(bucket index, Rollup)] of the level's rows in each range."""
    if not ranges:
        return []
    dialect = conn.dialect.name
    parameters = _range_parameters(dialect, ranges)
    if len(scope.metric_ids) == 1:
        parameters["metric_id"] = scope.metric_ids[0]
    else:
        parameters["metric_ids"] = scope.metric_ids
    if scope.choosing:
        parameters.update(low=min(r[1] for r in ranges), high=max(r[2] for r in ranges))
    # (A range without rows answers no row on SQLite, a row of nulls through LATERAL.)
    grouped = [row for row in conn.execute(_sums_statement(dialect, scope, level), parameters) if row.n]
    latest = _latest_of(conn, scope, level, {row.last for row in grouped}) if with_latest else {}
    nothing = (0.0, (EPOCH, EPOCH, 0))
    found = []
    for bucket, last, n, total, minimum, maximum in grouped:
        if not n:
            continue
        value, key = latest.get(last, nothing)
        found.append((int(bucket), Rollup(int(n), float(total), minimum, maximum, value, key)))
    return found


def _latest_of(
    conn: sa.Connection, scope: _Scope, level: sa.Table, numbers: set[int]
) -> dict[int, tuple[float, tuple[datetime, datetime, int]]]:
    """slot or hour -> (latest value, its key) of the counted rollup rows there."""
    unit = level.c[_UNIT[level.name]]
    rows: list[Any] = []
    ordered = sorted(numbers)
    for chunk in range(0, len(ordered), 1000):
        rows += conn.execute(
            sa.select(level, unit.label("number")).where(
                level.c.metric_id.in_(scope.metric_ids), unit.in_(ordered[chunk : chunk + 1000])
            )
        ).all()
    chosen = _choose(scope, rows) if scope.choosing else None
    best: dict[int, tuple[float, tuple[datetime, datetime, int]]] = {}
    for row in rows:
        if chosen is not None and chosen[row.number] != row.metric_id:
            continue
        key = (row.latest_start, row.latest_received, row.latest_id)
        if row.number not in best or key > best[row.number][1]:
            best[row.number] = (row.latest_value, key)
    return best


def _choose(scope: _Scope, rows: Sequence[Any]) -> dict[int, int]:
    """slot -> the metric counted in it, by the rule _source applies (for edges and latest)."""
    chosen: dict[int, tuple[int, int, int]] = {}
    for row in rows:
        rank = (scope.priority.get(row.metric_id, MAX_ID), -row.sample_count, row.metric_id)
        if row.slot not in chosen or rank < chosen[row.slot]:
            chosen[row.slot] = rank
    return {slot: rank[2] for slot, rank in chosen.items()}


def _edges(
    conn: sa.Connection, scope: _Scope, pieces: list[tuple[datetime, datetime, bool]]
) -> list[tuple[int, Rollup]]:
    """[(slot, Rollup)] of the raw samples in the pieces of slots the range cuts: (from, to,
    to included). Several metrics of a cumulative type: only each slot's chosen source."""
    found: list[tuple[int, Rollup]] = []
    for start, end, inclusive in pieces:
        ending = _samples.c.start_date <= end if inclusive else _samples.c.start_date < end
        samples = conn.execute(
            sa.select(*SUMMARISED).where(
                _samples.c.metric_id.in_(scope.metric_ids), _samples.c.start_date >= start, ending
            )
        ).all()
        summary = summarise(samples)
        if scope.choosing and summary:
            slot = slot_of(start)
            rollup_rows = conn.execute(
                sa.select(_rollups.c.metric_id, _rollups.c.slot, _rollups.c.sample_count).where(
                    _rollups.c.metric_id.in_(scope.metric_ids), _rollups.c.slot == slot
                )
            ).all()
            source = _choose(scope, rollup_rows).get(slot)
            summary = {key: value for key, value in summary.items() if key[0] == source}
        found += [(slot, rollup) for (_, slot), rollup in summary.items()]
    return found


def _value(function: int, rollup: Rollup | None) -> float | None:
    if rollup is None or rollup.count == 0:
        return None
    if function == AVERAGE:
        return rollup.total / rollup.count
    if function == SUM:
        return rollup.total
    if function == MINIMUM:
        return rollup.minimum
    if function == MAXIMUM:
        return rollup.maximum
    if function == COUNT:
        return float(rollup.count)
    return rollup.latest_value


def _combine(size: int, parts: list[tuple[int, Rollup]]) -> list[Rollup | None]:
    """(bucket index, Rollup) parts combined per bucket."""
    buckets: list[Rollup | None] = [None] * size
    for index, rollup in parts:
        existing = buckets[index]
        if existing is None:
            buckets[index] = rollup.copy()
        else:
            existing.add(rollup)
    return buckets


def _read(
    conn: sa.Connection, scope: _Scope, starts: list[tuple[int, int, int]], with_latest: bool
) -> list[tuple[int, Rollup]]:
    """(bucket index, Rollup) parts of the whole-slot ranges (index, first slot, end slot)."""
    hours, slots = _ranges(scope, starts)
    return _sum_ranges(conn, scope, _hour_rollups, hours, with_latest) + _sum_ranges(
        conn, scope, _rollups, slots, with_latest
    )


def _compute(
    conn: sa.Connection, scope: _Scope, query: CalculationQuery, zone: zoneinfo.ZoneInfo
) -> tuple[list[datetime], list[Rollup | None]]:
    bounds = bucket_bounds(query.frequency, zone, query.start, query.finish)
    edges = bound_slots(bounds, zone)
    # Whole slots [low, high) are read from the rollups; the slots the range cuts, raw.
    low = -(-(query.start - EPOCH) // timedelta(seconds=SLOT_SECONDS))
    high = slot_of(query.finish)
    pieces: list[tuple[datetime, datetime, bool]] = []
    if low > high:  # the whole range lies inside one slot
        pieces.append((query.start, query.finish, True))
        low = high
    else:
        if query.start < slot_start(low):
            pieces.append((query.start, slot_start(low), False))
        if query.finish + timedelta(microseconds=1) == slot_start(high + 1):
            high += 1  # the range ends with its last slot (...:59:59.999999): whole, not cut
        else:
            pieces.append((slot_start(high), query.finish, True))
    starts = [(i, max(edges[i], low), min(edges[i + 1], high)) for i in range(len(edges) - 1)]
    parts = _read(conn, scope, starts, query.function == LATEST)
    parts += [(bisect.bisect_right(edges, slot) - 1, rollup) for slot, rollup in _edges(conn, scope, pieces)]
    return bounds, _combine(len(bounds) - 1, parts)


def _scope_of_metric(conn: sa.Connection, actor: Actor, metric_id: int) -> _Scope:
    row = conn.execute(
        sa.select(_metrics.c.id, _metrics.c.sample_type, _metrics.c.quantity_type).where(
            _metrics.c.id == metric_id, metrics.visible_to(actor)
        )
    ).first()
    if row is None:
        raise NotFound(f"You have no metric with id {metric_id}.")
    return _Scope([row.id], row.id, row.sample_type, row.quantity_type, _is_cumulative(row.sample_type), {})


def _is_cumulative(sample_type: str) -> bool:
    qtype = quantitytypes.lookup(sample_type) if sample_type != metrics.OTHER else None
    return qtype is not None and qtype.aggregation == "cumulative"


def _scope_of_type(conn: sa.Connection, actor: Actor, sample_type: str, unit: str | None) -> _Scope:
    """All the actor's metrics of a type on live-mode devices, in one unit (the one asked for,
    else the one most of them use)."""
    rows = conn.execute(
        sa.select(_metrics.c.id, _metrics.c.device_id, _metrics.c.quantity_type)
        .select_from(_metrics.join(_devices, _devices.c.id == _metrics.c.device_id))
        .where(
            metrics.visible_to(actor),
            _metrics.c.sample_type == sample_type,
            _devices.c.is_test_mode.is_(False),
        )
        .order_by(_metrics.c.id)
    ).all()
    if not rows:
        raise NotFound(f"You have no metric of type {sample_type} on a device that is not in test mode.")
    units: dict[str, int] = {}
    for row in rows:
        units[row.quantity_type] = units.get(row.quantity_type, 0) + 1
    if unit is None:
        unit = max(units, key=lambda u: (units[u], u))
    elif unit not in units:
        message = f"None of your {sample_type} metrics is in {unit[:40]!r}; they are in: {', '.join(sorted(units))}."
        raise InvalidInput(f"quantity_type: {message}", {"quantity_type": [message]})
    chosen = [row for row in rows if row.quantity_type == unit]
    order = source_order(conn, actor.id, sample_type)
    priority = {row.id: order[row.device_id] for row in chosen if row.device_id in order}
    return _Scope([row.id for row in chosen], None, sample_type, unit, _is_cumulative(sample_type), priority)


def source_order(conn: sa.Connection, user_id: int, sample_type: str) -> dict[int, int]:
    """device id -> position in the person's order of sources for a type (lower counts first)."""
    rows = conn.execute(
        sa.select(_priorities.c.device_id, _priorities.c.position).where(
            _priorities.c.user_id == user_id, _priorities.c.sample_type == sample_type
        )
    )
    return {device_id: position for device_id, position in rows}


def user_time_zone(conn: sa.Connection, actor: Actor) -> str:
    return conn.execute(sa.select(_users.c.time_zone).where(_users.c.id == actor.id)).scalar() or "UTC"


def calculate(actor: Actor, query: CalculationQuery) -> CalculationResult:
    """Answer a calculation. Raises NotFound (no such metric of the actor's, or none of the
    type) and InvalidInput (range limits, units)."""
    zone = zoneinfo.ZoneInfo(query.time_zone)
    with reads.connection() as conn:
        if query.metric_id is not None:
            scope = _scope_of_metric(conn, actor, query.metric_id)
        else:
            scope = _scope_of_type(conn, actor, query.sample_type or "", query.quantity_type)
        bounds, buckets = _compute(conn, scope, query, zone)
    results = []
    last_instant = query.finish + timedelta(microseconds=1)
    local = [bound.astimezone(zone) for bound in bounds]
    for index, rollup in enumerate(buckets):
        low, high = bounds[index], bounds[index + 1]
        results.append(
            CalculationBucket(
                start=local[index],
                finish=local[index + 1],
                value=_value(query.function, rollup),
                count=rollup.count if rollup is not None else 0,
                partial=low < query.start or high > last_instant,
            )
        )
    return CalculationResult(
        metric_id=scope.metric_id,
        sample_type=scope.sample_type,
        unit=scope.unit,
        metric_ids=scope.metric_ids,
        function=query.function,
        frequency=query.frequency,
        time_zone=zone.key,
        start_gte=query.start,
        finish_lte=query.finish,
        results=results,
    )


# --- figures --------------------------------------------------------------------------------------

PERIODS = (
    "today",
    "yesterday",
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "this_year",
    "last_year",
)


def period_bounds(zone: zoneinfo.ZoneInfo, now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Each figure's period [start, end) in UTC: local today, yesterday, this and last ISO week,
    month and year."""
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    month = today.replace(day=1)
    last_month = (month - timedelta(days=1)).replace(day=1)
    year = today.replace(month=1, day=1)
    days = {
        "today": (today, today + timedelta(days=1)),
        "yesterday": (today - timedelta(days=1), today),
        "this_week": (monday, monday + timedelta(days=7)),
        "last_week": (monday - timedelta(days=7), monday),
        "this_month": (month, _next_day(MONTH, month)),
        "last_month": (last_month, month),
        "this_year": (year, _next_day(YEAR, year)),
        "last_year": (year.replace(year=year.year - 1), year),
    }
    return {name: (_local_midnight(a, zone), _local_midnight(b, zone)) for name, (a, b) in days.items()}


def _figures(conn: sa.Connection, scope: _Scope, zone: zoneinfo.ZoneInfo, now: datetime) -> MetricFigures:
    """The eight periods as eight (overlapping) ranges of one read."""
    periods = list(period_bounds(zone, now).items())
    edges = bound_slots([moment for _, bounds in periods for moment in bounds], zone)
    starts = [(i, edges[2 * i], edges[2 * i + 1]) for i in range(len(periods))]
    totals = _combine(len(periods), _read(conn, scope, starts, with_latest=False))
    function = SUM if scope.cumulative else AVERAGE
    figures = {f"avg_{name}": _value(function, totals[i]) for i, (name, _) in enumerate(periods)}
    return MetricFigures(time_zone=zone.key, **figures)


def metric_figures(actor: Actor, metric_id: int, now: datetime | None = None) -> MetricFigures:
    """A metric's avg_today ... avg_last_year in its owner's time zone. Raises NotFound."""
    with reads.connection() as conn:
        scope = _scope_of_metric(conn, actor, metric_id)
        zone = zoneinfo.ZoneInfo(user_time_zone(conn, actor))
        return _figures(conn, scope, zone, now or datetime.now(UTC))


def metric_detail(actor: Actor, metric_id: int, now: datetime | None = None) -> MetricDetail:
    """One of the actor's metrics with its figures (GET /api/v1/metric/<id>). Raises NotFound."""
    metric = metrics.get_metric(actor, metric_id)
    figures = metric_figures(actor, metric_id, now)
    return MetricDetail(**msgspec.structs.asdict(metric), **msgspec.structs.asdict(figures))


@dataclass(frozen=True)
class TypeFigures:
    """A person's figures for one sample type across their live devices (the dashboard's home)."""

    sample_type: str
    type_name: str
    unit: str
    cumulative: bool
    metric_ids: list[int]
    figures: MetricFigures


def person_figures(actor: Actor, now: datetime | None = None) -> list[TypeFigures]:
    """The person's figures per sample type over all their metrics on live-mode devices
    (cumulative types one source per slot, discrete ones pooled), in their time zone."""
    with reads.connection() as conn:
        types = (
            conn.execute(
                sa.select(_metrics.c.sample_type)
                .select_from(_metrics.join(_devices, _devices.c.id == _metrics.c.device_id))
                .where(
                    metrics.visible_to(actor),
                    _devices.c.is_test_mode.is_(False),
                    _metrics.c.sample_type != metrics.OTHER,
                )
                .distinct()
            )
            .scalars()
            .all()
        )
        return [_type_figures(conn, actor, sample_type, now) for sample_type in sorted(types)]


def type_figures(actor: Actor, sample_type: str, now: datetime | None = None) -> TypeFigures:
    """The person's figures for one sample type, as person_figures. Raises NotFound when they
    have no metric of it on a live-mode device."""
    with reads.connection() as conn:
        return _type_figures(conn, actor, sample_type, now)


def _type_figures(conn: sa.Connection, actor: Actor, sample_type: str, now: datetime | None) -> TypeFigures:
    scope = _scope_of_type(conn, actor, sample_type, None)
    zone = zoneinfo.ZoneInfo(user_time_zone(conn, actor))
    qtype = quantitytypes.lookup(sample_type)
    return TypeFigures(
        sample_type=sample_type,
        type_name=qtype.name if qtype else sample_type,
        unit=scope.unit,
        cumulative=scope.cumulative,
        metric_ids=scope.metric_ids,
        figures=_figures(conn, scope, zone, now or datetime.now(UTC)),
    )
