"""What the dashboard's charts need from the server: each period's range in the owner's time
zone, as ready-made URLs of the pages' JSON routes, so static/js/charts.js does no date or
time-zone arithmetic at all; and the JSON answer of those routes (the API's encoding of the
same service call).

The periods, each ending with the current local bucket (whole buckets, none partial):
- day: the last 24 hours, hourly (local hours: 23 or 25 only in zones shifting by half an hour);
- week: the last 7 local days, daily (7 points);
- month: the last 30 local days, daily;
- year: the last 12 local months, monthly (12 points: a month is the calendar unit people
  compare, and 52 weekly bars are hard to read on a phone).
Cumulative types (steps, energy) chart each bucket's sum, as bars; discrete ones (heart rate,
body mass) its average, as a line with points; types outside the table (other) are averaged,
as the figures are.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Response, jsonify, url_for

from ..readmodels import CalculationResult, to_builtins
from ..services import calculations

# One microsecond before the next bucket: finish_lte is inclusive, and a range ending exactly on
# the next bucket's start would add that bucket (partial, empty) to the answer.
_JUST_BEFORE = timedelta(microseconds=1)


@dataclass(frozen=True)
class Period:
    key: str  # day, week, month, year
    button: str  # the button's text
    frequency: int  # calculations.HOUR, DAY, MONTH
    words: str  # "the last 24 hours"
    bucket: str  # "hour": what one point is


PERIODS = (
    Period("day", "Day", calculations.HOUR, "the last 24 hours", "hour"),
    Period("week", "Week", calculations.DAY, "the last 7 days", "day"),
    Period("month", "Month", calculations.DAY, "the last 30 days", "day"),
    Period("year", "Year", calculations.MONTH, "the last 12 months", "month"),
)
DEFAULT_PERIOD = "week"


def _midnight(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    """The first instant of a local day (after the gap where midnight does not exist), in UTC."""
    return datetime.combine(day, time(), zone).astimezone(UTC)


def _months_back(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def period_range(key: str, zone: zoneinfo.ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """[start, finish] (UTC, finish inclusive) of a chart period ending with now's local bucket."""
    today = now.astimezone(zone).date()
    if key == "day":
        hour = calculations.bucket_bounds(calculations.HOUR, zone, now, now)
        end = hour[-1]
        start = calculations.bucket_bounds(calculations.HOUR, zone, end - timedelta(hours=24), end)[0]
    elif key == "week":
        start, end = _midnight(today - timedelta(days=6), zone), _midnight(today + timedelta(days=1), zone)
    elif key == "month":
        start, end = _midnight(today - timedelta(days=29), zone), _midnight(today + timedelta(days=1), zone)
    elif key == "year":
        start = _midnight(_months_back(today, 11), zone)
        end = _midnight(_months_back(today, -1), zone)
    else:
        raise ValueError(f"no chart period {key!r}")
    return start, end - _JUST_BEFORE


def function_for(aggregation: str | None) -> int:
    """Sum for a cumulative type, average otherwise (as the figures)."""
    return calculations.SUM if aggregation == "cumulative" else calculations.AVERAGE


def _query(key: str, frequency: int, function: int, zone: zoneinfo.ZoneInfo, now: datetime) -> dict[str, Any]:
    start, finish = period_range(key, zone, now)
    return {
        "function": function,
        "frequency": frequency,
        "start_gte": start.astimezone(zone).isoformat(),
        "finish_lte": finish.astimezone(zone).isoformat(),
        "time_zone": zone.key,
    }


@dataclass(frozen=True)
class ChartPeriod:
    period: Period
    url: str
    caption: str  # "Average per day, the last 7 days (Europe/Berlin)"


def chart_periods(
    endpoint: str, aggregation: str | None, zone_name: str, now: datetime | None = None, **values: Any
) -> list[ChartPeriod]:
    """Each period's URL of `endpoint` (with `values` for its path) and caption, in the zone."""
    now = now or datetime.now(UTC)
    zone = zoneinfo.ZoneInfo(zone_name)
    function = function_for(aggregation)
    what = "Total" if function == calculations.SUM else "Average"
    found = []
    for period in PERIODS:
        query = _query(period.key, period.frequency, function, zone, now)
        found.append(
            ChartPeriod(
                period,
                url_for(endpoint, **values, **query),
                f"{what} per {period.bucket}, {period.words} ({zone.key})",
            )
        )
    return found


def sparkline_url(
    endpoint: str, aggregation: str | None, zone_name: str, now: datetime | None = None, **values: Any
) -> str:
    """The URL of the last 7 local days, daily, for a row's small chart."""
    zone = zoneinfo.ZoneInfo(zone_name)
    query = _query("week", calculations.DAY, function_for(aggregation), zone, now or datetime.now(UTC))
    return url_for(endpoint, **values, **query)


def calculation_answer(result: CalculationResult) -> Response:
    """A calculation as GET /api/v1/quantity-sample-calculations answers it (the same read
    model through the same encoding: readmodels.to_builtins and the app's JSON provider)."""
    response = jsonify(to_builtins(result))
    response.headers["Cache-Control"] = "private, no-store"
    return response
