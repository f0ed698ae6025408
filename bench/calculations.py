"""The calculations benchmark of issue 12: the building blocks bench/run.py puts together.

- **Data**: one heart-rate metric with one sample a minute for a year (525,600 samples, the
  last one just before the run) in a table of at least 10,000,000 samples (the samples scale
  phase's, topped up with filler metrics when that phase did not run), every seeded sample
  with its rollups written in bulk (bench/samples.py `seed_series`) and checked against
  `bioweb.services.rollups.summarise` of the raw samples (`verify_rollups`). The metric's
  owner lives in Europe/Berlin (`users.time_zone`).
- **Over HTTP**, against the run's gunicorn server, with the owner's PAT (samples:read): a
  year of daily buckets (`GET /api/v1/quantity-sample-calculations`, average and sum, the
  range on local midnights, so no slot is cut; and once more ending "now", which cuts a slot at
  each end), the metric with its figures (`GET /api/v1/metric/<id>`), and as the ceiling a
  trivial read of bioweb's with the same PAT (`GET /api/v1/device/<id>`). One client, one
  request at a time (a new connection each: gunicorn's sync workers close it), a warm-up, then
  the cases in turn over a few rounds; p50 and p99 of every request. Every answer is checked
  (status, and once the figures themselves: a full local day of this metric averages 84.5).
- **In process** (no HTTP, no gunicorn): the service calls `calculations.calculate` and
  `calculations.metric_detail`, timed, profiled (cProfile), and the SQL they run with the
  database's plan (EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite).
"""

from __future__ import annotations

import cProfile
import http.client
import io
import json
import math
import os
import pstats
import statistics
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from bench import seed
from bioweb.services.calculations import PERIODS as FIGURES

PATH = "/api/v1/quantity-sample-calculations"
YEAR_SAMPLES = 525_600  # one a minute for 365 days
ZONE = "Europe/Berlin"
# A run of a multiple of 60 consecutive seeded samples averages this (bench/samples.quantity).
FULL_AVERAGE = 84.5


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    path: str
    auth: str


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def query_path(metric_id: int, function: str, start: datetime, finish: datetime) -> str:
    query = urllib.parse.urlencode(
        {
            "metric_id": metric_id,
            "function": function,
            "frequency": "day",
            "start_gte": rfc3339(start),
            "finish_lte": rfc3339(finish),
            "time_zone": ZONE,
        }
    )
    return f"{PATH}?{query}"


def year_of_days(now: datetime) -> tuple[datetime, datetime]:
    """[start, finish]: the 365 local days (Europe/Berlin) ending with today: from a local
    midnight to the last microsecond before the next one (finish_lte is inclusive, so a finish
    on midnight would add the next day as a 366th bucket)."""
    zone = ZoneInfo(ZONE)
    local = now.astimezone(zone)
    after = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), zone)
    start = datetime.combine(after.date() - timedelta(days=365), datetime.min.time(), zone)
    return start.astimezone(UTC), after.astimezone(UTC) - timedelta(microseconds=1)


def set_time_zone(engine: sa.Engine, user_id: int, zone: str = ZONE) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE users SET time_zone = :zone WHERE id = :id"), {"zone": zone, "id": user_id}
        )


def _get(conn: http.client.HTTPConnection, case: Case) -> tuple[int, bytes]:
    conn.request("GET", case.path, headers={"Authorization": case.auth})
    response = conn.getresponse()
    return response.status, response.read()


def _connection(base_url: str) -> http.client.HTTPConnection:
    parsed = urllib.parse.urlsplit(base_url)
    return http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=60)


def fetch(base_url: str, case: Case) -> Any:
    """One request; its JSON answer. Raises RuntimeError unless it is a 200."""
    conn = _connection(base_url)
    try:
        status, body = _get(conn, case)
    finally:
        conn.close()
    if status != 200:
        raise RuntimeError(f"{case.label}: {status} {body[:300]!r}")
    return json.loads(body)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def sequential(
    base_url: str,
    cases: list[Case],
    requests: int,
    warmup: int,
    rounds: int = 4,
    cpu_seconds: Callable[[], float] | None = None,
    db_cpu_seconds: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """One client, one request at a time: `warmup` requests of each case, then `requests` of
    each, the cases taking turns in `rounds` rounds (so a burst of other work on the machine
    falls on all of them). Wall time per request, connection included; every answer must be
    a 200. With `cpu_seconds` (the server's workers' CPU time) and `db_cpu_seconds` (the
    database server's, PostgreSQL), also their CPU per request of each case: unlike wall time
    it hardly moves with other load on the machine."""
    conn = _connection(base_url)
    times: dict[str, list[float]] = {c.name: [] for c in cases}
    per_round: dict[str, list[float]] = {c.name: [] for c in cases}
    cpu: dict[str, float] = {c.name: 0.0 for c in cases}
    db_cpu: dict[str, float] = {c.name: 0.0 for c in cases}
    try:
        for case in cases:
            for _ in range(warmup):
                status, body = _get(conn, case)
                if status != 200:
                    raise RuntimeError(f"{case.label}: {status} {body[:300]!r}")
        each = max(1, requests // rounds)
        for _round in range(rounds):
            for case in cases:
                mine = []
                cpu_before = cpu_seconds() if cpu_seconds else 0.0
                db_before = db_cpu_seconds() if db_cpu_seconds else 0.0
                for _ in range(each):
                    started = time.perf_counter()
                    status, body = _get(conn, case)
                    mine.append((time.perf_counter() - started) * 1000)
                    if status != 200:
                        raise RuntimeError(f"{case.label}: {status} {body[:300]!r}")
                if cpu_seconds:
                    cpu[case.name] += cpu_seconds() - cpu_before
                if db_cpu_seconds:
                    db_cpu[case.name] += db_cpu_seconds() - db_before
                times[case.name] += mine
                per_round[case.name].append(statistics.median(mine))
    finally:
        conn.close()
    return {
        c.name: {
            "label": c.label,
            "requests": len(times[c.name]),
            "p50_ms": statistics.median(times[c.name]),
            "p99_ms": percentile(times[c.name], 0.99),
            "mean_ms": statistics.fmean(times[c.name]),
            "min_ms": min(times[c.name]),
            "max_ms": max(times[c.name]),
            "rounds_p50_ms": per_round[c.name],
            "worker_cpu_ms": cpu[c.name] * 1000 / len(times[c.name]) if cpu_seconds else None,
            "db_cpu_ms": db_cpu[c.name] * 1000 / len(times[c.name]) if db_cpu_seconds else None,
        }
        for c in cases
    }


def postgres_cpu(url: str) -> tuple[Callable[[], float], Callable[[], None]]:
    """(CPU seconds used so far by the PostgreSQL backends connected to the database of `url`,
    other than the one asking; close). The server must run on this machine (/proc)."""
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    ticks = os.sysconf("SC_CLK_TCK")

    def seconds() -> float:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        total = 0
        for (pid,) in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # ended meanwhile
                continue
            total += int(fields[11]) + int(fields[12])
        return total / ticks

    return seconds, conn.close


# --- checks of the answers ------------------------------------------------------------------------


def check_days(
    answer: dict[str, Any], function: str, data: tuple[datetime, datetime], expected_count: int
) -> dict[str, Any]:
    """A day-bucket answer for the year metric: its counts add up to the samples in the range,
    and every local day the data covers whole has a sample a minute and averages 84.5 (sum:
    84.5 a sample). `data` is [first sample, last sample + 1 minute). Raises RuntimeError."""
    results = answer["results"]
    counted = sum(r["count"] for r in results)
    if counted != expected_count:
        raise RuntimeError(
            f"{function}: the buckets count {counted:,} samples, the range holds {expected_count:,}"
        )
    full = 0
    for bucket in results:
        start, finish = datetime.fromisoformat(bucket["start"]), datetime.fromisoformat(bucket["finish"])
        if start < data[0] or finish > data[1]:
            continue
        minutes = int((finish - start).total_seconds()) // 60
        want = FULL_AVERAGE if function == "average" else FULL_AVERAGE * minutes
        if bucket["count"] != minutes or bucket["value"] is None or abs(bucket["value"] - want) > 1e-6 * want:
            raise RuntimeError(f"{function}: bucket {bucket} should count {minutes} samples worth {want}")
        full += 1
    return {"buckets": len(results), "full_days_checked": full, "samples": counted}


def check_figures(answer: dict[str, Any], data: tuple[datetime, datetime], now: datetime) -> dict[str, Any]:
    """The metric's figures: present, and 84.5 for every period the data covers whole."""
    zone = ZoneInfo(ZONE)
    missing = [f"avg_{name}" for name in FIGURES if f"avg_{name}" not in answer]
    if missing:
        raise RuntimeError(f"GET /api/v1/metric/<id> has no {', '.join(missing)}: {sorted(answer)}")
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    month = today.replace(day=1)
    last_month = (month - timedelta(days=1)).replace(day=1)
    year = today.replace(month=1, day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    periods = {
        "today": (today, today + timedelta(days=1)),
        "yesterday": (today - timedelta(days=1), today),
        "this_week": (monday, monday + timedelta(days=7)),
        "last_week": (monday - timedelta(days=7), monday),
        "this_month": (month, next_month),
        "last_month": (last_month, month),
        "this_year": (year, year.replace(year=year.year + 1)),
        "last_year": (year.replace(year=year.year - 1), year),
    }
    checked = []
    for name, (first, after) in periods.items():
        start = datetime.combine(first, datetime.min.time(), zone)
        end = datetime.combine(after, datetime.min.time(), zone)
        if start >= data[0] and end <= data[1]:
            value = answer[f"avg_{name}"]
            if value is None or abs(value - FULL_AVERAGE) > 1e-9:
                raise RuntimeError(f"avg_{name} is {value}, the data make it {FULL_AVERAGE}")
            checked.append(name)
    return {
        "figures": {f"avg_{name}": answer[f"avg_{name}"] for name in FIGURES},
        "checked_exact": checked,
        "latest_value": answer.get("latest_value"),
    }


# --- in process -----------------------------------------------------------------------------------


def in_process(
    url: str,
    user_id: int,
    metric_id: int,
    queries: dict[str, dict[str, str]],
    repeat: int,
    db_cpu_seconds: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """The service calls without HTTP: `calculations.calculate` of each query (query-string
    arguments, parsed by the service's own parser) and `calculations.metric_detail`: median,
    p99 and max wall time and this process's CPU time (the database server's not included)
    over `repeat` calls after a warm-up; a cProfile of `repeat` more
    (top functions by own time); the SQL of one call, each statement with its plan."""
    from bioweb import create_app
    from bioweb.extensions import db
    from bioweb.models import User
    from bioweb.services import calculations

    app = create_app({**seed.APP_CONFIG, "SQLALCHEMY_DATABASE_URI": url})
    result: dict[str, Any] = {}
    with app.app_context():
        actor = db.session.get(User, user_id)
        db.session.expunge(actor)
        db.session.remove()
        calls = {
            name: (lambda args=args: calculations.calculate(actor, calculations.parse_query(args, ZONE)))
            for name, args in queries.items()
        }
        calls["metric_figures"] = lambda: calculations.metric_detail(actor, metric_id)
        postgresql = db.engine.dialect.name == "postgresql"
        statements: list[tuple[str, Any]] = []

        def record(conn, cursor, statement, parameters, context, executemany) -> None:
            statements.append((statement, parameters))

        for name, call in calls.items():
            for _ in range(5):
                call()
            times = []
            db_cpu = db_cpu_seconds() if db_cpu_seconds else 0.0
            cpu = time.process_time()
            for _ in range(repeat):
                started = time.perf_counter()
                call()
                times.append((time.perf_counter() - started) * 1000)
            cpu = (time.process_time() - cpu) * 1000 / repeat
            db_cpu = (db_cpu_seconds() - db_cpu) * 1000 / repeat if db_cpu_seconds else None
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(repeat):
                call()
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(14)
            statements.clear()
            for engine in {db.engine, app.extensions.get("bioweb.reads", db.engine)}:
                sa.event.listen(engine, "before_cursor_execute", record)
            started = time.perf_counter()
            call()
            traced_ms = (time.perf_counter() - started) * 1000
            for engine in {db.engine, app.extensions.get("bioweb.reads", db.engine)}:
                sa.event.remove(engine, "before_cursor_execute", record)
            plans = []
            for statement, parameters in statements:
                explain = "EXPLAIN (ANALYZE, BUFFERS) " if postgresql else "EXPLAIN QUERY PLAN "
                with db.engine.connect() as conn:
                    rows = conn.exec_driver_sql(explain + statement, parameters).all()
                plans.append(
                    {
                        "sql": " ".join(statement.split()),
                        "parameters": repr(parameters)[:2000],
                        "plan": [" ".join(map(str, r)) for r in rows],
                    }
                )
            result[name] = {
                "median_ms": statistics.median(times),
                "p99_ms": percentile(times, 0.99),
                "max_ms": max(times),
                "cpu_ms": cpu,
                "db_cpu_ms": db_cpu,
                "traced_call_ms": traced_ms,
                "profile": text.getvalue().splitlines()[:40],
                "statements": plans,
            }
        db.session.remove()
        db.engine.dispose()
    return result
