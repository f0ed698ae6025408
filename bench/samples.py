"""The samples benchmarks of issue 11: the building blocks bench/run.py puts together.

- **Ingest**: batches of 1,000 samples (`POST /api/v1/quantity-samples`) sent with a device
  token by a small pool of Python clients (one thread and one `http.client` connection each,
  one device and one metric each, the bodies encoded before the clock starts, so the clients
  cost next to nothing while the clock runs); every sample new (its own client_sample_id).
- **Ceiling**: the same kind of rows inserted by the driver alone, no HTTP, one connection,
  the same batches of 1,000 each committed: sqlite3 `executemany` (with the app's pragmas) or
  psycopg `COPY`, into the same quantity_samples table, for metrics of their own.
- **InfluxDB** (1.x, Debian package `influxdb`) as the purpose-built peer: a throwaway
  `influxd` (data in a temporary directory, free loopback ports), the same batches as line
  protocol to `/write`.
- **Scale**: many samples over many metrics seeded in bulk (time-major, as devices upload:
  every metric gets its next sample before any gets the one after), then reads and inserts.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa

from bench import seed, servers
from bioweb.config import normalize_database_url
from bioweb.models import SLOT_SECONDS, Metric, Sample
from bioweb.services import rollups

BATCH = 1000
SAMPLE_TYPE, UNIT = "heartRate", "count/min"
# The quantity_samples columns a writer fills (the id is the database's), from the model.
COLUMNS = [c.name for c in Sample.__table__.columns if c.name != "id"]
PATH = "/api/v1/quantity-samples"


def log(message: str) -> None:
    import sys

    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Writer:
    """A device sending samples of one of its metrics with its own access token."""

    metric_id: int
    device_id: int
    token: str


def _uuids(n: int, upper: bool = False) -> list[str]:
    """`n` random UUID-shaped strings (version-4 layout), fast enough for millions."""
    text = os.urandom(16 * n).hex()
    if upper:
        text = text.upper()
    return [
        f"{text[i : i + 8]}-{text[i + 8 : i + 12]}-4{text[i + 13 : i + 16]}-"
        f"{text[i + 16 : i + 20]}-{text[i + 20 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


def _uuids7(n: int, at: datetime) -> list[str]:
    """`n` version 7 UUIDs of the time `at`, as the service makes for the samples it stores."""
    ms = f"{int(at.timestamp() * 1000):012x}"
    prefix = f"{ms[:8]}-{ms[8:]}-7"
    text = os.urandom(10 * n).hex()
    return [
        f"{prefix}{text[i : i + 3]}-8{text[i + 3 : i + 6]}-{text[i + 6 : i + 18]}"
        for i in range(0, 20 * n, 20)
    ]


def create_metrics(engine: sa.Engine, data: seed.LoadData, count: int, offset: int = 0) -> list[Writer]:
    """`count` new heart-rate metrics, round-robin over the seeded active devices (from the
    `offset`-th), written in bulk; each with its device's token."""
    devices = data.devices[offset:] + data.devices[:offset]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        tenants = dict(conn.execute(sa.text("SELECT id, tenant_id FROM devices")).tuples().all())
        first = seed._next_id(conn, Metric)
        rows, writers = [], []
        for i in range(count):
            device = devices[i % len(devices)]
            rows.append(
                {
                    "id": first + i,
                    "tenant_id": tenants[device.id],
                    "user_id": device.user_id,
                    "device_id": device.id,
                    "name": f"bench {i}",
                    "sample_type": SAMPLE_TYPE,
                    "quantity_type": UNIT,
                    "is_continuous_data": True,
                    "created_time": now,
                    "modified_time": now,
                }
            )
            writers.append(Writer(first + i, device.id, device.access_token))
        writer = seed._Writer(conn)
        writer.insert(Metric, rows)
        writer.fix_sequences(Metric)
    return writers


class Timeline:
    """Consecutive samples of one metric from `start`, one every `step`, each with a fresh
    client_sample_id (a HealthKit UUID)."""

    def __init__(self, metric_id: int, start: datetime, step: timedelta = timedelta(seconds=1)):
        self.metric_id = metric_id
        self.next = start
        self.step = step
        self.count = 0

    def items(self, n: int = BATCH) -> list[dict[str, Any]]:
        ids = _uuids(n, upper=True)
        out = []
        for i in range(n):
            start = self.next
            self.next += self.step
            out.append(
                {
                    "metric_id": self.metric_id,
                    "start_date": start,
                    "end_date": start + self.step,
                    "quantity": 55.0 + (self.count + i) % 60,
                    "client_sample_id": ids[i],
                }
            )
        self.count += n
        return out


def json_body(items: list[dict[str, Any]]) -> bytes:
    return msgspec.json.encode({"samples": items})


def line_body(items: list[dict[str, Any]]) -> bytes:
    """The same samples as InfluxDB line protocol (tag metric_id; nanosecond timestamps)."""
    lines = []
    for item in items:
        start = int(item["start_date"].timestamp()) * 1_000_000_000
        end = int(item["end_date"].timestamp()) * 1_000_000_000
        lines.append(
            f"quantity,metric_id={item['metric_id']} q={item['quantity']},end={end}i,"
            f'ver=1i,csid="{item["client_sample_id"]}" {start}'
        )
    return ("\n".join(lines) + "\n").encode()


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def db_rows(items: list[dict[str, Any]], sqlite: bool) -> list[tuple[Any, ...]]:
    """The rows the service would store for these items, as the driver takes them."""
    now = datetime.now(UTC)
    stamp = (lambda v: _sqlite_time(v)) if sqlite else (lambda v: v)
    uuids = _uuids7(len(items), now)
    rows = []
    for item, sample_uuid in zip(items, uuids, strict=True):
        values = {
            "uuid": sample_uuid,
            "metric_id": item["metric_id"],
            "start_date": stamp(item["start_date"]),
            "end_date": stamp(item["end_date"]),
            "quantity": item["quantity"],
            "sample_motion_context": "NotSet",
            "sample_sensor_location": None,
            "sample_sensor_location_other": "",
            "is_null": 0 if sqlite else False,
            "client_sample_id": item["client_sample_id"],
            "client_sample_version": 1,
            "received_time": stamp(now),
        }
        rows.append(tuple(values[c] for c in COLUMNS))
    return rows


# --- HTTP clients ---------------------------------------------------------------------------------


def _post(conn: http.client.HTTPConnection, token: str, body: bytes) -> dict[str, Any]:
    conn.request(
        "POST",
        PATH,
        body=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"POST {PATH} answered {response.status}: {data[:300]!r}")
    return json.loads(data)


def _connection(base_url: str) -> http.client.HTTPConnection:
    parsed = urllib.parse.urlsplit(base_url)
    return http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=60)


def batch_latency(base_url: str, writer: Writer, timeline: Timeline, batches: int) -> dict[str, Any]:
    """One client, one batch after another (after one warm-up batch): per-batch wall time."""
    bodies = [json_body(timeline.items()) for _ in range(batches + 1)]
    conn = _connection(base_url)
    _post(conn, writer.token, bodies[0])
    times = []
    for body in bodies[1:]:
        started = time.perf_counter()
        result = _post(conn, writer.token, body)
        times.append((time.perf_counter() - started) * 1000)
        if result["accepted"] != BATCH:
            raise RuntimeError(f"a batch of new samples was not all accepted: {result}")
    conn.close()
    p50 = statistics.median(times)
    return {"batches": batches, "p50_ms": p50, "max_ms": max(times), "samples_per_s": BATCH * 1000 / p50}


def concurrent_posts(
    base_url: str, jobs: list[tuple[str, list[bytes]]], path: str = PATH, expect: int = 200
) -> dict[str, Any]:
    """Each job (token, bodies) in its own thread with its own connection, all started together;
    returns the wall time from the start to the last answer and the per-batch latencies."""
    barrier = threading.Barrier(len(jobs) + 1)
    latencies: list[float] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def client(token: str, bodies: list[bytes]) -> None:
        conn = _connection(base_url)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        mine = []
        barrier.wait()
        try:
            for body in bodies:
                started = time.perf_counter()
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if response.status != expect:
                    raise RuntimeError(f"POST {path} answered {response.status}: {data[:300]!r}")
                if path == PATH and json.loads(data)["accepted"] != BATCH:
                    raise RuntimeError(f"a batch of new samples was not all accepted: {data[:300]!r}")
                mine.append((time.perf_counter() - started) * 1000)
        except BaseException as error:  # reported by the caller
            failures.append(error)
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=client, args=job, daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} client(s) failed: {failures[0]}")
    return {
        "seconds": seconds,
        "batches": len(latencies),
        "batch_p50_ms": statistics.median(latencies),
        "batch_p90_ms": statistics.quantiles(latencies, n=10)[-1] if len(latencies) > 1 else latencies[0],
    }


# --- the ceiling ----------------------------------------------------------------------------------


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def ceiling(url: str, batches: list[list[tuple[Any, ...]]]) -> dict[str, Any]:
    """The driver's own insert of `batches` (pre-built rows), one connection, one commit per
    batch: sqlite3 executemany with the app's pragmas, or psycopg COPY."""
    names = ", ".join(COLUMNS)
    if url.startswith("sqlite"):
        conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        for pragma in ("journal_mode=WAL", "busy_timeout=10000", "foreign_keys=ON", "synchronous=NORMAL"):
            conn.execute(f"PRAGMA {pragma}")
        sql = f"INSERT INTO quantity_samples ({names}) VALUES ({', '.join('?' * len(COLUMNS))})"
        started = time.perf_counter()
        for batch in batches:
            conn.execute("BEGIN")
            conn.executemany(sql, batch)
            conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        conn.close()
        method = "sqlite3 executemany"
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            started = time.perf_counter()
            for batch in batches:
                with conn.cursor() as cursor:
                    with cursor.copy(f"COPY quantity_samples ({names}) FROM STDIN") as copy:
                        for row in batch:
                            copy.write_row(row)
                conn.commit()
            seconds = time.perf_counter() - started
        method = "psycopg COPY"
    samples = sum(len(b) for b in batches)
    return {"method": method, "samples": samples, "seconds": seconds, "samples_per_s": samples / seconds}


# --- InfluxDB -------------------------------------------------------------------------------------

INFLUX_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{dir}/meta"
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[ifql]
  enabled = false
[continuous_queries]
  enabled = false
"""


class Influx:
    """A throwaway influxd (1.x): data in a temporary directory, free loopback ports."""

    def __init__(self, work_dir: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="influx-", dir=work_dir))
        self.port = servers.free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        binary = shutil.which("influxd")
        if binary is None:
            raise RuntimeError("influxd is not installed (Debian: apt-get install influxdb)")
        config = self.dir / "influxdb.conf"
        config.write_text(INFLUX_CONFIG.format(dir=self.dir, port=self.port, rpc_port=servers.free_port()))
        log_file = (self.dir / "influxd.log").open("wb")
        self.process = subprocess.Popen(
            [binary, "-config", str(config)], stdout=log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"influxd exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=2) as response:
                    if response.status == 204:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"influxd did not answer /ping within {timeout:g} s: {self.log_tail()}")
        query = urllib.parse.urlencode({"q": "CREATE DATABASE bench"}).encode()
        with urllib.request.urlopen(self.url + "/query", data=query, timeout=10) as response:
            response.read()

    def log_tail(self) -> str:
        path = self.dir / "influxd.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        assert self.process is not None
        return servers.rss_kb(self.process.pid) / 1024

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def influx_ingest(work_dir: Path, batches: list[list[list[dict[str, Any]]]]) -> dict[str, Any]:
    """The same batches (one list per client) written to a fresh InfluxDB over HTTP, one client
    per list as for bioweb. Raises RuntimeError when influxd is missing or does not start."""
    influx = Influx(work_dir)
    try:
        influx.start()
        version = subprocess.run(["influxd", "version"], capture_output=True, text=True).stdout.strip()
        path = "/write?db=bench&precision=ns"
        jobs = [("", [line_body(items) for items in client]) for client in batches]
        concurrent_posts(influx.url, [("", bodies[:1]) for _, bodies in jobs], path, expect=204)  # warm-up
        jobs = [(token, bodies[1:]) for token, bodies in jobs]
        cpu = influx.cpu_seconds()
        run = concurrent_posts(influx.url, jobs, path, expect=204)
        cpu = influx.cpu_seconds() - cpu
        samples = run["batches"] * BATCH
        return {
            **run,
            "version": version,
            "samples": samples,
            "samples_per_s": samples / run["seconds"],
            "cpu_us_per_sample": cpu * 1e6 / samples,
            "rss_mb": influx.rss_mb(),
        }
    finally:
        influx.stop()


# --- scale ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollupLevel:
    """A rollup table of the models: its unit column (slot, hour) and how many 15-minute
    slots make one unit."""

    table: sa.Table
    unit: str
    slots: int

    @property
    def columns(self) -> list[str]:
        """The columns in the order `Series.rollup_rows` yields them (all of the table's)."""
        names = ["metric_id", self.unit, *ROLLUP_FIGURES]
        if set(names) != {c.name for c in self.table.columns}:
            raise RuntimeError(f"bench/samples.py does not know every column of {self.table.name}")
        return names


# The figures of a rollup row, after (metric_id, unit), in the order the seeding writes them.
ROLLUP_FIGURES = rollups.FIGURES
# The units the seeding knows how to fill; a rollup table keyed by anything else stops the run
# (seeding it wrong or not at all would make every calculation figure meaningless).
_UNIT_SLOTS = {"slot": 1, "hour": 3600 // SLOT_SECONDS}


def rollup_levels() -> list[RollupLevel]:
    """Every rollup table of the models (a table with metric_id and latest_id), finest first."""
    levels = []
    for table in Sample.metadata.sorted_tables:
        if "latest_id" not in table.c or "metric_id" not in table.c:
            continue
        (unit,) = [c.name for c in table.primary_key.columns if c.name != "metric_id"]
        if unit not in _UNIT_SLOTS:
            raise RuntimeError(f"bench/samples.py does not know how to seed {table.name} (keyed by {unit})")
        levels.append(RollupLevel(table, unit, _UNIT_SLOTS[unit]))
    return sorted(levels, key=lambda level: level.slots)


def _secondary_indexes(conn: Any, sqlite: bool) -> list[tuple[str, str]]:
    """(name, CREATE statement) of quantity_samples' indexes that back no constraint (all but
    the primary key), from the database itself, so a bulk load can rebuild them exactly."""
    if sqlite:
        query = (
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'quantity_samples' AND sql IS NOT NULL"
        )
    else:
        query = (
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = 'quantity_samples'::regclass "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        )
    # PostgreSQL spells a partitioned table's index "ON ONLY" (the parent alone); rebuilt
    # without it, the index is made on every partition too, as the migration made it.
    return [(name, sql.replace(" ON ONLY ", " ON ")) for name, sql in conn.execute(query).fetchall()]


def quantity(t: int) -> float:
    """The value of sample t of every seeded metric: 55 ... 114, repeating every 60 samples
    (so any run of a multiple of 60 consecutive samples averages 84.5)."""
    return 55.0 + t % 60


@dataclass(frozen=True)
class Series:
    """`per_metric` samples of each of `metric_ids`, sample t at `start + t * step`, all
    received at `start + per_metric * step`."""

    metric_ids: list[int]
    per_metric: int
    start: datetime
    step: timedelta

    @property
    def samples(self) -> int:
        return self.per_metric * len(self.metric_ids)

    @property
    def received(self) -> datetime:
        return self.start + self.step * self.per_metric

    def sample_id(self, first_id: int, t: int, j: int) -> int:
        """The id of sample t of the j-th metric: time-major, from `first_id`."""
        return first_id + t * len(self.metric_ids) + j

    def units(self, slots: int) -> list[tuple[int, int, float, float, float, int]]:
        """(unit, count, total, minimum, maximum, last t) of every unit of `slots` slots the
        series' samples fill, the same for each of its metrics (they share times and values)."""
        found: list[list[Any]] = []
        for t in range(self.per_metric):
            unit, q = rollups.slot_of(self.start + self.step * t) // slots, quantity(t)
            if found and found[-1][0] == unit:
                entry = found[-1]
                entry[1] += 1
                entry[2] += q
                entry[3] = min(entry[3], q)
                entry[4] = max(entry[4], q)
                entry[5] = t
            else:
                found.append([unit, 1, q, q, q, t])
        return [tuple(entry) for entry in found]  # type: ignore[misc]

    def rollup_rows(
        self, first_id: int, level: RollupLevel, stamp: Callable[[datetime], Any] = lambda moment: moment
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of one rollup table for the series, in `level.columns` order, metric by
        metric, unit by unit; times as `stamp` makes them (computed once a unit, not once a
        row). The latest sample of a unit is its last t: every sample of a metric has its own
        start_date, so no tie is left for received_time and id to break."""
        received = stamp(self.received)
        units = [
            (unit, count, total, minimum, maximum, quantity(last), stamp(self.start + self.step * last), last)
            for unit, count, total, minimum, maximum, last in self.units(level.slots)
        ]
        width = len(self.metric_ids)
        for j, metric_id in enumerate(self.metric_ids):
            base = first_id + j
            for unit, count, total, minimum, maximum, value, latest, last in units:
                yield (
                    metric_id,
                    unit,
                    count,
                    total,
                    minimum,
                    maximum,
                    value,
                    latest,
                    received,
                    base + last * width,  # = self.sample_id(first_id, last, j)
                )


def seed_samples(
    url: str, metric_ids: list[int], per_metric: int, start: datetime, step: timedelta
) -> dict[str, Any]:
    """`seed_series` of one series."""
    return seed_series(url, [Series(metric_ids, per_metric, start, step)])


def seed_series(url: str, series: list[Series], rebuild_indexes: bool | None = None) -> dict[str, Any]:
    """The samples of each series (one after the other; within one, time-major: sample t of
    every metric before sample t + 1 of any, as devices upload), each with a client_sample_id
    (a HealthKit UUID), a time-ordered uuid (version 7, as the service makes them) and an
    explicit id; then their rows in every rollup table (`rollup_levels`: per slot, per hour),
    computed from the same arithmetic and written in bulk. `verify_rollups` checks them
    against the samples afterwards.

    A bulk load as a database administrator would do it: unless the table already holds
    more rows than are loaded (`rebuild_indexes` None) the secondary indexes (the unique
    keys, the time-range and uuid indexes: all but the primary key) are dropped, the rows go
    in with raw executemany in transactions of a million rows (SQLite) or one COPY
    (PostgreSQL), and the indexes are rebuilt from their own definitions; then ANALYZE (and
    VACUUM on PostgreSQL, what autovacuum does after a bulk insert). Rebuilt indexes are
    denser than ones grown row by row, which if anything makes later inserts split more pages.
    """
    started = time.perf_counter()
    total = sum(s.samples for s in series)
    names = ", ".join(["id", *COLUMNS])
    levels = rollup_levels()
    timings: dict[str, float] = {}
    sqlite = url.startswith("sqlite")
    engine = sa.create_engine(normalize_database_url(url))
    with engine.connect() as conn:
        existing = conn.execute(sa.select(sa.func.count()).select_from(Sample)).scalar_one()
        first_id = conn.execute(sa.select(sa.func.coalesce(sa.func.max(Sample.id), 0))).scalar_one() + 1
    engine.dispose()
    if rebuild_indexes is None:
        rebuild_indexes = existing < total
    firsts, at = [], first_id
    for s in series:
        firsts.append(at)
        at += s.samples
    rollup_rows = {level.table.name: 0 for level in levels}
    if sqlite:
        conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        for pragma in ("journal_mode=WAL", "busy_timeout=60000", "synchronous=NORMAL", "cache_size=-1000000"):
            conn.execute(f"PRAGMA {pragma}")
        indexes = _secondary_indexes(conn, sqlite=True) if rebuild_indexes else []
        for name, _sql in indexes:
            conn.execute(f"DROP INDEX {name}")
        sql = f"INSERT INTO quantity_samples ({names}) VALUES ({', '.join('?' * (len(COLUMNS) + 1))})"

        def rows(s: Series, first: int, t_from: int, t_to: int) -> Iterator[tuple[Any, ...]]:
            rcv = _sqlite_time(s.received)
            for t in range(t_from, t_to):
                begin = _sqlite_time(s.start + s.step * t)
                end = _sqlite_time(s.start + s.step * (t + 1))
                uuids = _uuids7(len(s.metric_ids), s.start + s.step * (t + 1))
                ids = _uuids(len(s.metric_ids), upper=True)
                q = quantity(t)
                base = s.sample_id(first, t, 0)
                for j, (m, sample_uuid, csid) in enumerate(zip(s.metric_ids, uuids, ids, strict=True)):
                    yield (base + j, sample_uuid, m, begin, end, q, "NotSet", None, "", 0, csid, 1, rcv)

        for s, first in zip(series, firsts, strict=True):
            per_tx = max(1, 1_000_000 // len(s.metric_ids))
            for t_from in range(0, s.per_metric, per_tx):
                conn.execute("BEGIN")
                conn.executemany(sql, rows(s, first, t_from, min(s.per_metric, t_from + per_tx)))
                conn.execute("COMMIT")
        timings["rows_seconds"] = time.perf_counter() - started
        for _name, create in indexes:
            conn.execute(create)
        timings["indexes_seconds"] = time.perf_counter() - started - timings["rows_seconds"]
        mark = time.perf_counter()

        def sqlite_rollups(s: Series, first: int, level: RollupLevel) -> Iterator[tuple[Any, ...]]:
            for row in s.rollup_rows(first, level, _sqlite_time):
                rollup_rows[level.table.name] += 1
                yield row

        conn.execute("BEGIN")
        for level in levels:
            columns = level.columns
            insert = f"INSERT INTO {level.table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            for s, first in zip(series, firsts, strict=True):
                conn.executemany(insert, sqlite_rollups(s, first, level))
        conn.execute("COMMIT")
        timings["rollups_seconds"] = time.perf_counter() - mark
        if rebuild_indexes:
            conn.execute("ANALYZE")
        else:
            for level in levels:
                conn.execute(f"ANALYZE {level.table.name}")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            indexes = _secondary_indexes(conn, sqlite=False) if rebuild_indexes else []
            for name, _sql in indexes:
                conn.execute(f'DROP INDEX "{name}"')
            with conn.cursor() as cursor:
                with cursor.copy(f"COPY quantity_samples ({names}) FROM STDIN") as copy:
                    for s, first in zip(series, firsts, strict=True):
                        rcv = s.received.isoformat()
                        for t in range(s.per_metric):
                            begin = (s.start + s.step * t).isoformat()
                            end = (s.start + s.step * (t + 1)).isoformat()
                            uuids = _uuids7(len(s.metric_ids), s.start + s.step * (t + 1))
                            ids = _uuids(len(s.metric_ids), upper=True)
                            q = quantity(t)
                            base = s.sample_id(first, t, 0)
                            copy.write(
                                "".join(
                                    f"{base + j}\t{u}\t{m}\t{begin}\t{end}\t{q}\tNotSet\t\\N\t\tf\t{c}\t1\t{rcv}\n"
                                    for j, (m, u, c) in enumerate(zip(s.metric_ids, uuids, ids, strict=True))
                                )
                            )
            # The service's inserts take their ids from the sequence: move it past ours.
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('quantity_samples', 'id'), "
                "(SELECT MAX(id) FROM quantity_samples))"
            )
            timings["rows_seconds"] = time.perf_counter() - started
            conn.execute("SET maintenance_work_mem = '256MB'")
            for _name, create in indexes:
                conn.execute(create)
            conn.commit()
            timings["indexes_seconds"] = time.perf_counter() - started - timings["rows_seconds"]
            mark = time.perf_counter()
            for level in levels:
                columns = level.columns
                with conn.cursor() as cursor:
                    with cursor.copy(f"COPY {level.table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                        for s, first in zip(series, firsts, strict=True):
                            lines = []
                            for row in s.rollup_rows(first, level, datetime.isoformat):
                                rollup_rows[level.table.name] += 1
                                lines.append("\t".join(map(str, row)) + "\n")
                                if len(lines) >= 10_000:
                                    copy.write("".join(lines))
                                    lines.clear()
                            copy.write("".join(lines))
            conn.commit()
            timings["rollups_seconds"] = time.perf_counter() - mark
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE quantity_samples")
            for level in levels:
                conn.execute(f"VACUUM ANALYZE {level.table.name}")
            conn.execute("CHECKPOINT")
    return {
        "samples": total,
        "metrics": sum(len(s.metric_ids) for s in series),
        "series": [
            {
                "metrics": len(s.metric_ids),
                "per_metric": s.per_metric,
                "start": s.start.isoformat(),
                "step_seconds": s.step.total_seconds(),
            }
            for s in series
        ],
        "rows_before": existing,
        "rollup_rows": rollup_rows,
        "seconds": time.perf_counter() - started,
        "indexes_rebuilt": len(indexes),
        **timings,
    }


def verify_rollups(url: str, metric_ids: list[int], picks: int = 30, seed: int = 12) -> dict[str, Any]:
    """Check the rollups of these metrics against their samples, in every rollup table: for
    `picks` random (metric, unit) pairs of each table, and the first and last unit of the first
    and last metric and the unit before the first, the stored row must equal what
    `bioweb.services.rollups.summarise` makes of the raw samples of that unit (its slots'
    summaries combined); over all `metric_ids`, each table's sample_count must add up to the
    number of (non-null) samples. Raises RuntimeError on any difference; returns what was
    checked."""
    import random

    rng = random.Random(seed)
    engine = sa.create_engine(normalize_database_url(url))
    samples = Sample.__table__
    columns = (
        samples.c.id,
        samples.c.metric_id,
        samples.c.start_date,
        samples.c.received_time,
        samples.c.quantity,
        samples.c.is_null,
    )
    checked: dict[str, int] = {}
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        in_samples = conn.execute(
            sa.select(sa.func.count())
            .select_from(samples)
            .where(
                samples.c.metric_id.in_(metric_ids),
                samples.c.is_null.is_(False),
                samples.c.quantity.is_not(None),
            )
        ).scalar_one()
        for level in rollup_levels():
            table, unit = level.table, level.table.c[level.unit]
            pairs: list[tuple[int, int]] = []
            for metric_id in dict.fromkeys([metric_ids[0], metric_ids[-1]]):
                first, last = conn.execute(
                    sa.select(sa.func.min(unit), sa.func.max(unit)).where(table.c.metric_id == metric_id)
                ).one()
                if first is None:
                    raise RuntimeError(f"metric {metric_id} has no rows in {table.name}")
                pairs += [(metric_id, first), (metric_id, last), (metric_id, first - 1)]
            units: dict[int, list[int]] = {}
            for _ in range(picks):
                metric_id = rng.choice(metric_ids)
                if metric_id not in units:
                    units[metric_id] = (
                        conn.execute(sa.select(unit).where(table.c.metric_id == metric_id)).scalars().all()
                    )
                pairs.append((metric_id, rng.choice(units[metric_id])))
            for metric_id, number in pairs:
                raw = conn.execute(
                    sa.select(*columns).where(
                        samples.c.metric_id == metric_id,
                        samples.c.start_date >= rollups.slot_start(number * level.slots),
                        samples.c.start_date < rollups.slot_start((number + 1) * level.slots),
                    )
                ).all()
                combined: rollups.Rollup | None = None
                for _key, part in sorted(rollups.summarise(raw).items()):
                    if combined is None:
                        combined = rollups.Rollup(
                            part.count,
                            part.total,
                            part.minimum,
                            part.maximum,
                            part.latest_value,
                            part.latest_key,
                        )
                    else:
                        combined.add(part)
                stored = conn.execute(
                    sa.select(table).where(table.c.metric_id == metric_id, unit == number)
                ).one_or_none()
                want = None
                if combined is not None:
                    start, received, sample_id = combined.latest_key
                    want = {
                        "metric_id": metric_id,
                        level.unit: number,
                        "sample_count": combined.count,
                        "total": combined.total,
                        "minimum": combined.minimum,
                        "maximum": combined.maximum,
                        "latest_value": combined.latest_value,
                        "latest_start": start,
                        "latest_received": received,
                        "latest_id": sample_id,
                    }
                got = None if stored is None else dict(stored._mapping)
                if got != want:
                    raise RuntimeError(
                        f"{table.name} of metric {metric_id}, {level.unit} {number}: stored {got}, "
                        f"from the samples {want}"
                    )
            checked[table.name] = len(pairs)
            counts[table.name] = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(table.c.sample_count), 0)).where(
                    table.c.metric_id.in_(metric_ids)
                )
            ).scalar_one()
            if counts[table.name] != in_samples:
                raise RuntimeError(
                    f"{table.name} counts {counts[table.name]:,} samples, the table holds {in_samples:,}"
                )
    engine.dispose()
    return {"units_checked": checked, "samples_counted": in_samples}
