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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa

from bench import seed, servers
from bioweb.models import Metric, Sample

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


def seed_samples(
    url: str, metric_ids: list[int], per_metric: int, start: datetime, step: timedelta
) -> dict[str, Any]:
    """`per_metric` samples for each metric, sample t of every metric at `start + t * step`,
    time-major (as devices upload), each with a client_sample_id (a HealthKit UUID) and a
    time-ordered uuid (version 7, as the service makes them).

    A bulk load as a database administrator would do it: the secondary indexes (the unique
    keys, the time-range and uuid indexes: all but the primary key) are dropped, the rows go
    in with raw executemany in transactions of a million rows (SQLite) or one COPY
    (PostgreSQL), and the indexes are rebuilt from their own definitions; then ANALYZE (and
    VACUUM on PostgreSQL, what autovacuum does after a bulk insert). Rebuilt indexes are
    denser than ones grown row by row, which if anything makes later inserts split more pages.
    """
    started = time.perf_counter()
    received = start + step * per_metric
    total = per_metric * len(metric_ids)
    names = ", ".join(COLUMNS)
    timings: dict[str, float] = {}
    if url.startswith("sqlite"):
        conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        for pragma in ("journal_mode=WAL", "busy_timeout=60000", "synchronous=NORMAL", "cache_size=-1000000"):
            conn.execute(f"PRAGMA {pragma}")
        indexes = _secondary_indexes(conn, sqlite=True)
        for name, _sql in indexes:
            conn.execute(f"DROP INDEX {name}")
        sql = f"INSERT INTO quantity_samples ({names}) VALUES ({', '.join('?' * len(COLUMNS))})"
        rcv = _sqlite_time(received)

        def rows(t_from: int, t_to: int) -> Iterator[tuple[Any, ...]]:
            for t in range(t_from, t_to):
                begin = _sqlite_time(start + step * t)
                end = _sqlite_time(start + step * (t + 1))
                uuids = _uuids7(len(metric_ids), start + step * (t + 1))
                ids = _uuids(len(metric_ids), upper=True)
                q = 55.0 + t % 60
                for m, sample_uuid, csid in zip(metric_ids, uuids, ids, strict=True):
                    yield (sample_uuid, m, begin, end, q, "NotSet", None, "", 0, csid, 1, rcv)

        per_tx = max(1, 1_000_000 // len(metric_ids))
        for t_from in range(0, per_metric, per_tx):
            conn.execute("BEGIN")
            conn.executemany(sql, rows(t_from, min(per_metric, t_from + per_tx)))
            conn.execute("COMMIT")
        timings["rows_seconds"] = time.perf_counter() - started
        for _name, create in indexes:
            conn.execute(create)
        timings["indexes_seconds"] = time.perf_counter() - started - timings["rows_seconds"]
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    else:
        import psycopg

        rcv = received.isoformat()
        with psycopg.connect(url) as conn:
            indexes = _secondary_indexes(conn, sqlite=False)
            for name, _sql in indexes:
                conn.execute(f'DROP INDEX "{name}"')
            with conn.cursor() as cursor:
                with cursor.copy(f"COPY quantity_samples ({names}) FROM STDIN") as copy:
                    for t in range(per_metric):
                        begin = (start + step * t).isoformat()
                        end = (start + step * (t + 1)).isoformat()
                        uuids = _uuids7(len(metric_ids), start + step * (t + 1))
                        ids = _uuids(len(metric_ids), upper=True)
                        q = 55.0 + t % 60
                        copy.write(
                            "".join(
                                f"{u}\t{m}\t{begin}\t{end}\t{q}\tNotSet\t\\N\t\tf\t{c}\t1\t{rcv}\n"
                                for m, u, c in zip(metric_ids, uuids, ids, strict=True)
                            )
                        )
            timings["rows_seconds"] = time.perf_counter() - started
            conn.execute("SET maintenance_work_mem = '256MB'")
            for _name, create in indexes:
                conn.execute(create)
            conn.commit()
            timings["indexes_seconds"] = time.perf_counter() - started - timings["rows_seconds"]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE quantity_samples")
            conn.execute("CHECKPOINT")
    return {
        "samples": total,
        "metrics": len(metric_ids),
        "seconds": time.perf_counter() - started,
        "indexes_rebuilt": len(indexes),
        **timings,
    }
