"""`make bench`: throughput, scale and memory benchmarks of bioweb against a bare Flask baseline.

For each database backend (SQLite, and PostgreSQL when reachable):

1. a fresh database, schema by `flask db upgrade`, bulk-seeded with 100 users, 10,000
   devices and their tokens (bench/seed.py);
2. bioweb (`app:app`) and the baseline (`bench/baseline.py`) served side by side by gunicorn
   with the production gunicorn.conf.py, and driven in turn by wrk (bench/wrk.lua), baseline
   and target runs interleaved; requests per second, p50 and p99, and the ratio to the baseline;
3. the resident memory of every worker after the load runs;
4. one user with 1,000,000 devices (and 1,000,000 tokens): single-connection latency of the
   first page, a page near the end (id cursor), a deep page sorted by code, a token
   lookup; the cost of `count`;
5. samples ingest (issue 11): batches of 1,000 new samples over HTTP with device tokens from
   a few concurrent clients, against the driver's own insert of as many rows (executemany or
   COPY, the ceiling) and InfluxDB; worker CPU per sample, worker memory after it
   (bench/samples.py);
6. samples scale: 10,000,000 samples over 1,000 metrics seeded in bulk (with their rollups),
   then 1,000 samples of one metric read from the start, middle and end of its range, and a
   batch inserted into the full table against the empty one;
7. calculations (issue 12): a metric with one sample a minute for a year (525,600) added to
   the table of 10,000,000 samples (filler metrics seeded first when the samples phase did not
   run), rollups seeded in bulk and checked against the raw samples; over HTTP with the
   owner's PAT, single connection: a year of daily buckets (average, sum) and the metric with
   its figures, against a trivial read (the device, same PAT) as the ceiling; the same
   service calls in process, profiled, with their SQL and plans (bench/calculations.py);
8. export (issue 16): one user's account with 10,000,000 samples (BENCH_EXPORT_SAMPLES) over
   BENCH_EXPORT_METRICS metrics seeded in bulk, downloaded as its ZIP from a gunicorn worker
   of its own while that worker's resident memory is sampled: peak VmRSS against the memory
   budget (RSS_TARGET_MB) and against the same worker's idle RSS measured first
   (bench/export.py); the ZIP checked (CRCs, the manifest's sample counts).

Prints the tables and writes them, with every raw figure, to bench/out/<timestamp>/.
Environment (or the matching options): BENCH_BACKENDS, BENCH_DURATION, BENCH_ROUNDS,
BENCH_THREADS, BENCH_CONNECTIONS, BENCH_SCALE_DEVICES, BENCH_PG_URL, BENCH_PG_DB, BENCH_WARMUP,
BENCH_USERS, BENCH_DEVICES_PER_USER, BENCH_OUT,
BENCH_PHASES (throughput,scale,ingest,samples,calculations), BENCH_INGEST_CLIENTS,
BENCH_INGEST_BATCHES, BENCH_INFLUX, BENCH_SAMPLES_SCALE, BENCH_SAMPLES_METRICS,
BENCH_INSERT_BATCHES, BENCH_CALC_REQUESTS, BENCH_EXPORT_SAMPLES, BENCH_EXPORT_METRICS.
`bench/run.py --report bench/out/<timestamp>/results.json` prints the tables of a saved run.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Response

from bench import calculations as bench_calculations
from bench import export as bench_export
from bench import loadgen, seed, servers
from bench import samples as bench_samples
from bench.loadgen import LoadSpec, WrkResult
from bioweb.config import normalize_database_url

ROOT = servers.ROOT
OUT = ROOT / "bench" / "out"
FLASK = ROOT / ".venv" / "bin" / "flask"

# Targets of issue 6: minimum ratio of bioweb's requests per second to the baseline's.
# Targets of issue 10: minimum ratio of bioweb's requests per second to the baseline's, per backend.
RPS_TARGETS = {
    "sqlite": {"device_read_pat": 0.45, "device_read_device_token": 0.50, "list_100": 0.25, "token": 0.40},
    "postgresql": {"device_read_device_token": 0.30, "token": 0.25},
}
# /token again with the rate limiter on, as production runs it (storage URI per label).
LIMITER_STORAGES = {
    "memory": "memory://",
    "redis": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
}
DEPTH_TARGET = 1.2  # deepest page p50 <= 1.2 x first page p50
COUNT_TARGET_MS = 50.0
RSS_TARGET_MB = 90.0
# Issue 11: samples per second over HTTP as a share of the driver's own bulk insert, per backend;
# reads at the start, middle and end of a metric within 1.5 x of each other; a batch into the
# full table no slower than into the empty one by more than 1.5 x.
INGEST_TARGETS = {"sqlite": 0.25, "postgresql": 0.15}
READ_SPREAD_TARGET = 1.5
INSERT_FULL_TARGET = 1.5
# Issue 12: a year of daily buckets of a metric with a sample a minute, and the metric's
# figures, each <= 20 ms p50 at 10,000,000 samples in the table.
CALC_TARGET_MS = 20.0
# The phases of a run (--phases): the wrk throughput runs (with memory and the token read
# before scale), the device scale, the samples ingest (with InfluxDB and memory after it),
# the samples scale, the calculations.
PHASES = ("throughput", "scale", "ingest", "samples", "calculations", "export")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Options:
    backends: list[str]
    duration: float
    rounds: int
    threads: int
    connections: int
    workers: int
    scale_devices: int
    scale_duration: float
    pg_url: str
    pg_db: str
    keep: bool
    # Sizes of the run; the defaults are the published benchmark. The smoke test
    # (tests/test_bench_smoke.py) shrinks them to run every phase in seconds.
    warmup: float = 2
    scale_rounds: int = 3  # single-connection latency runs per case, taking turns
    users: int = 100
    devices_per_user: int = 100
    out: str = str(OUT)
    phases: list[str] = field(default_factory=lambda: list(PHASES))
    # Samples (issue 11): concurrent clients and batches of 1,000 they send in all; InfluxDB
    # beside it; the samples and metrics of the scale phase; batches of the single-client runs.
    ingest_clients: int = 4
    ingest_batches: int = 240
    influx: bool = True
    samples_scale: int = 10_000_000
    samples_metrics: int = 1000
    insert_batches: int = 20
    # Calculations (issue 12): requests of each case over HTTP (and calls in process).
    calc_requests: int = 200
    # Export (issue 16): the samples of the exported account, and its metrics.
    export_samples: int = 10_000_000
    export_metrics: int = 10


@dataclass
class EndpointResult:
    name: str
    label: str
    backend: str = "sqlite"
    target: list[WrkResult] = field(default_factory=list)
    baseline: list[WrkResult] = field(default_factory=list)

    @staticmethod
    def _rps(runs: list[WrkResult]) -> float:
        return sum(r.requests for r in runs) / sum(r.seconds for r in runs)

    def summary(self) -> dict[str, Any]:
        """Requests per second over all rounds; latencies averaged over rounds."""
        mean = statistics.fmean
        target_rps, baseline_rps = self._rps(self.target), self._rps(self.baseline)
        ratio = target_rps / baseline_rps
        goal = RPS_TARGETS.get(self.backend, {}).get(self.name)
        return {
            "endpoint": self.label,
            "rps": target_rps,
            "p50_ms": mean(r.p50_ms for r in self.target),
            "p99_ms": mean(r.p99_ms for r in self.target),
            "baseline_rps": baseline_rps,
            "baseline_p50_ms": mean(r.p50_ms for r in self.baseline),
            "baseline_p99_ms": mean(r.p99_ms for r in self.baseline),
            "ratio": ratio,
            # Worker CPU per request, baseline over bioweb: the throughput ratio the workers
            # alone would allow. Unlike req/s it does not move with other load on the machine.
            "cpu_ratio": statistics.fmean(r.worker_cpu_ms or 0 for r in self.baseline)
            / max(statistics.fmean(r.worker_cpu_ms or 0 for r in self.target), 1e-9),
            "cpu_ms": mean(r.worker_cpu_ms or 0 for r in self.target),
            "baseline_cpu_ms": mean(r.worker_cpu_ms or 0 for r in self.baseline),
            "target": f">= {goal:.0%}" if goal else "-",
            "ok": None if goal is None else ratio >= goal,
            "errors": sum(r.socket_errors + r.non_2xx for r in self.target + self.baseline),
        }


# --- databases ------------------------------------------------------------------------------------


class BenchDatabase:
    """A database created for this run and dropped after it."""

    def __init__(self, backend: str, opts: Options, work_dir: Path):
        self.backend = backend
        self.opts = opts
        if backend == "sqlite":
            self.path = work_dir / "bench.db"
            self.url = f"sqlite:///{self.path}"
        else:
            self.url = opts.pg_url.rstrip("/") + "/" + opts.pg_db

    def _admin(self) -> sa.Engine:
        admin_url = normalize_database_url(self.opts.pg_url.rstrip("/") + "/postgres")
        return sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})

    def reachable(self) -> bool:
        if self.backend == "sqlite":
            return True
        engine = self._admin()
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except sa.exc.OperationalError:
            return False
        finally:
            engine.dispose()

    def create(self) -> None:
        """A fresh, empty database with the schema of the migrations (`flask db upgrade`)."""
        self.drop()
        if self.backend != "sqlite":
            engine = self._admin()
            with engine.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{self.opts.pg_db}"')
            engine.dispose()
        env = {**os.environ, **seed.server_env(self.url)}
        subprocess.run(
            [str(FLASK), "--app", "app", "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True
        )

    def drop(self) -> None:
        if self.backend == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            return
        engine = self._admin()
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.opts.pg_db}" WITH (FORCE)')
        engine.dispose()

    def version(self, engine: sa.Engine) -> str:
        if self.backend == "sqlite":
            return f"SQLite {sqlite3.sqlite_version}"
        with engine.connect() as conn:
            return "PostgreSQL " + conn.exec_driver_sql("SHOW server_version").scalar_one()


# --- load specs -----------------------------------------------------------------------------------


def load_specs(data: seed.LoadData, sample: int = 1000) -> list[LoadSpec]:
    """The five measured requests, each cycling over many users, devices and credentials."""
    rng = random.Random(42)
    devices = rng.sample(data.devices, min(sample, len(data.devices)))
    pats = {u.id: u.pat for u in data.users}
    basic = [
        "Basic " + base64.b64encode(f"{d.client_id}:{d.client_secret}".encode()).decode() for d in devices
    ]
    return [
        LoadSpec(
            "device_read_pat",
            "GET /api/v1/device/<id> (PAT)",
            "GET",
            [(f"/api/v1/device/{d.id}", f"Bearer {pats[d.user_id]}") for d in devices],
        ),
        LoadSpec(
            "device_read_device_token",
            "GET /api/v1/device/<id> (device token)",
            "GET",
            [(f"/api/v1/device/{d.id}", f"Bearer {d.access_token}") for d in devices],
        ),
        LoadSpec(
            "list_100",
            "GET /api/v1/devices?limit=100",
            "GET",
            [("/api/v1/devices?limit=100", f"Bearer {u.pat}") for u in data.users],
        ),
        LoadSpec(
            "token",
            "POST /token (client credentials, Basic)",
            "POST",
            [("/token", header) for header in basic],
            body="grant_type=client_credentials",
            content_type="application/x-www-form-urlencoded",
        ),
        LoadSpec(
            "create_device",
            "POST /api/v1/devices",
            "POST",
            [("/api/v1/devices", f"Bearer {u.pat}") for u in data.users],
            body='{"manufacturer": "Apple", "device_code": "iPhone14,2"}',
            content_type="application/json",
        ),
    ]


def check_spec(server: servers.Server, spec: LoadSpec) -> None:
    status, body = loadgen.check(server.url, spec)
    if status != 200:
        raise RuntimeError(f"{server.name} answered {status} to {spec.label}: {body[:300]!r}")


# --- phases ---------------------------------------------------------------------------------------


def run_load(
    opts: Options, target: servers.Server, baseline: servers.Server, specs: list[LoadSpec], backend: str
) -> list[EndpointResult]:
    """Warm both servers up, then measure every spec on baseline and target in turn."""
    for spec in specs:
        check_spec(baseline, spec)
        check_spec(target, spec)
    log("warm-up")
    for spec in specs if opts.warmup else ():
        for server in (baseline, target):
            loadgen.run_wrk(server.url, spec, opts.threads, opts.connections, opts.warmup)
    results = {spec.name: EndpointResult(spec.name, spec.label, backend) for spec in specs}
    for round_no in range(opts.rounds):
        # Alternate which server goes first, so neither always runs on a warmer machine.
        order = (baseline, target) if round_no % 2 == 0 else (target, baseline)
        for spec in specs:
            for server in order:
                cpu_before = server.cpu_seconds()
                run = loadgen.run_wrk(server.url, spec, opts.threads, opts.connections, opts.duration)
                cpu = (server.cpu_seconds() - cpu_before) * 1000 / max(run.requests, 1)
                run = dataclasses.replace(run, worker_cpu_ms=cpu)
                kind = "baseline" if server is baseline else "target"
                getattr(results[spec.name], kind).append(run)
                log(
                    f"round {round_no + 1} {kind:8} {spec.name:26} {run.rps:8.0f} req/s "
                    f"p50 {run.p50_ms:6.2f} ms p99 {run.p99_ms:7.2f} ms cpu {cpu:5.2f} ms/req "
                    f"errors {run.socket_errors + run.non_2xx}"
                )
    return list(results.values())


def redis_reachable(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:  # any failure to reach it: that run is skipped with a message
        return False


def limited_token_load(
    opts: Options,
    env: dict[str, str],
    log_dir: Path,
    baseline: servers.Server,
    specs: list[LoadSpec],
    backend: str,
) -> list[EndpointResult]:
    """POST /token on bioweb with the rate limiter on (memory, then Redis storage): limits high
    enough never to trip, so what is measured is the limiter's cost on every request."""
    results: list[EndpointResult] = []
    for label, uri in LIMITER_STORAGES.items():
        if uri.startswith("redis") and not redis_reachable(uri):
            log(f"{backend}: Redis not reachable at {uri}; /token with the Redis limiter skipped")
            continue
        limited_env = {
            **env,
            "RATELIMIT_ENABLED": "true",
            "RATELIMIT_STORAGE_URI": uri,
            "BIOWEB_TOKEN_RATELIMIT_PER_CLIENT": "1000000/minute",
            "BIOWEB_TOKEN_RATELIMIT_PER_IP": "1000000/minute",
        }
        server = servers.start("bioweb", env=limited_env, log_dir=log_dir, workers=opts.workers)
        try:
            limited_specs = [
                dataclasses.replace(
                    s, name=f"{s.name}_limiter_{label}", label=f"{s.label}, limiter on ({label})"
                )
                for s in specs
            ]
            results += run_load(opts, server, baseline, limited_specs, backend)
        finally:
            server.stop()
    return results


def single_connection(opts: Options, server: servers.Server, specs: dict[str, LoadSpec]) -> dict[str, Any]:
    """Latency of each spec with one connection (no queueing): p50, p99, requests per second.

    The specs take turns over `scale_rounds` rounds and each figure is the median over the
    rounds, so a burst of other work on the machine cannot make one case look deep.
    """
    runs: dict[str, list[WrkResult]] = {key: [] for key in specs}
    for spec in specs.values():
        check_spec(server, spec)
    for _round in range(opts.scale_rounds):
        for key, spec in specs.items():
            run = loadgen.run_wrk(server.url, spec, 1, 1, opts.scale_duration / opts.scale_rounds)
            if run.non_2xx or run.socket_errors:
                raise RuntimeError(
                    f"{spec.label}: {run.non_2xx} error responses, {run.socket_errors} socket errors"
                )
            runs[key].append(run)
    median = statistics.median
    return {
        key: {
            "label": specs[key].label,
            "p50_ms": median(r.p50_ms for r in runs[key]),
            "p99_ms": median(r.p99_ms for r in runs[key]),
            "rps": median(r.rps for r in runs[key]),
            "rounds_p50_ms": [r.p50_ms for r in runs[key]],
        }
        for key in specs
    }


def timed(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    """Median and max wall time of `fn` in milliseconds over `repeat` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": statistics.median(times), "max_ms": max(times)}


def in_process(url: str) -> tuple[Any, Any]:
    """An app (for its session and services) against the bench database, and the token service."""
    from bioweb import create_app
    from bioweb.services import tokens

    return create_app({**seed.APP_CONFIG, "SQLALCHEMY_DATABASE_URI": url}), tokens


def token_lookup_ms(url: str, sample: list[seed.SeededDevice]) -> dict[str, float]:
    """`bearer.authenticate` of a device token (signature in process + one primary-key read of
    the device row), in process, after one warm pass (the once-a-minute activity writes)."""
    from bioweb import bearer
    from bioweb.extensions import db

    app, _ = in_process(url)
    headers = ["Bearer " + d.access_token for d in sample[:500]]
    with app.test_request_context():
        for header in headers:
            assert not isinstance(bearer.authenticate(header), Response)
        cycle = iter(headers * 3)

        def lookup() -> None:
            assert not isinstance(bearer.authenticate(next(cycle)), Response)
            db.session.remove()  # no identity-map help from the previous lookup

        result = timed(lookup, len(headers))
        db.engine.dispose()
    return result


def page_queries(url: str, user_id: int, pages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each page through `services.devices.list_devices` in process (database and ORM, no HTTP):
    median time, the SQL it runs, and the database's plan for each statement.

    `pages` maps a case to the service's keyword arguments. Shows whether depth costs
    anything once HTTP noise is gone, and which index the database picks.
    """
    from bioweb.extensions import db
    from bioweb.models import User
    from bioweb.services import devices

    app, _ = in_process(url)
    result: dict[str, Any] = {}
    with app.app_context():
        actor = db.session.get(User, user_id)
        statements: list[tuple[str, Any]] = []

        def record(conn, cursor, statement, parameters, context, executemany) -> None:
            statements.append((statement, parameters))

        for key, kwargs in pages.items():

            def page(kwargs: dict[str, Any] = kwargs) -> None:
                devices.list_devices(actor, **kwargs)
                db.session.expunge_all()  # hydrate fresh objects every time, as a request would

            page()
            sa.event.listen(db.engine, "before_cursor_execute", record)
            page()
            sa.event.remove(db.engine, "before_cursor_execute", record)
            plans = []
            for statement, parameters in statements:
                explain = "EXPLAIN QUERY PLAN " if db.engine.dialect.name == "sqlite" else "EXPLAIN "
                with db.engine.connect() as conn:
                    rows = conn.exec_driver_sql(explain + statement, parameters).all()
                plans.append(
                    {"sql": " ".join(statement.split()), "plan": [" ".join(map(str, r)) for r in rows]}
                )
            statements.clear()
            result[key] = {**timed(page, 30), "statements": plans}
        db.session.remove()
        db.engine.dispose()
    return result


def count_ms(url: str, user_id: int, expected: int) -> dict[str, Any]:
    """Cost of the list's `count` (the service's read of users.device_count), and of COUNT(*) for contrast."""
    import sqlalchemy as sa

    from bioweb.extensions import db
    from bioweb.models import Device, User

    app, _ = in_process(url)
    with app.app_context():
        count_query = sa.select(User.device_count).where(User.id == user_id)
        value = db.session.scalar(count_query)
        if value != expected:
            raise RuntimeError(f"users.device_count is {value}, expected {expected}")
        stored = timed(lambda: db.session.scalar(count_query), 200)
        star_query = sa.select(sa.func.count()).select_from(Device).where(Device.user_id == user_id)
        star = timed(lambda: db.session.scalar(star_query), 3)
        db.session.remove()
        db.engine.dispose()
    return {"device_count_column": stored, "count_star": star}


def run_scale(opts: Options, db: BenchDatabase, engine: sa.Engine, target: servers.Server) -> dict[str, Any]:
    """Seed one user with many devices, then time the deep-list, count and token-lookup cases."""
    n = opts.scale_devices
    log(f"seeding the scale user: {n:,} devices and {n:,} tokens")
    data = seed.seed_scale_data(engine, n)
    log(f"seeded in {data.seconds:.1f} s")
    with engine.connect() as conn:
        ids_from = conn.exec_driver_sql(
            f"SELECT id FROM devices WHERE user_id = {data.user_id} ORDER BY id LIMIT 1 OFFSET {n - 101}"
        ).scalar_one()
        code_from = conn.exec_driver_sql(
            f"SELECT id FROM devices WHERE user_id = {data.user_id} "
            f"ORDER BY code, id LIMIT 1 OFFSET {n - 101}"
        ).scalar_one()
        total_tokens = conn.exec_driver_sql("SELECT COUNT(*) FROM tokens").scalar_one()
    auth = f"Bearer {data.pat}"

    def page(label: str, query: str) -> LoadSpec:
        return LoadSpec(label, label, "GET", [(f"/api/v1/devices?{query}", auth)])

    cases = {
        "first_page_id": page("first page (id)", "limit=100"),
        "near_end_id": page("page near the end (id cursor)", f"limit=100&offset={ids_from}"),
        "first_page_code": page("first page by code", "limit=100&sort_field=code"),
        "deep_page_code": page("deep page by code", f"limit=100&sort_field=code&offset={code_from}"),
        "device_token_read": LoadSpec(
            "device_token_read",
            f"device read, device token among {total_tokens:,} tokens",
            "GET",
            [(f"/api/v1/device/{d.id}", f"Bearer {d.access_token}") for d in data.sample],
        ),
    }
    latencies = single_connection(opts, target, cases)
    for row in latencies.values():
        log(f"scale {row['label']}: p50 {row['p50_ms']:.2f} ms (rounds {row['rounds_p50_ms']})")
    status, body = loadgen.check(target.url, cases["first_page_id"])
    api_count = json.loads(body)["count"]
    return {
        "devices": n,
        "tokens": total_tokens,
        "seed_seconds": data.seconds,
        "latency": latencies,
        "api_count": api_count,
        "count": count_ms(db.url, data.user_id, n),
        "page_queries": page_queries(
            db.url,
            data.user_id,
            {
                "first_page_id": {"limit": 100},
                "near_end_id": {"limit": 100, "offset": ids_from},
                "first_page_code": {"limit": 100, "sort_field": "code"},
                "deep_page_code": {"limit": 100, "sort_field": "code", "offset": code_from},
            },
        ),
        "token_lookup": token_lookup_ms(db.url, data.sample),
    }


def run_ingest(
    opts: Options,
    db: BenchDatabase,
    engine: sa.Engine,
    data: seed.LoadData,
    target: servers.Server,
    work_dir: Path,
) -> dict[str, Any]:
    """Batches of 1,000 new samples over HTTP from `ingest_clients` devices at once, against the
    driver's own insert of as many rows (the ceiling) and InfluxDB; one client alone on the
    empty table first (the reference of the scale phase); worker memory after."""
    bs = bench_samples
    clients = opts.ingest_clients
    per_client = max(1, opts.ingest_batches // clients)
    start = datetime.now(UTC) - timedelta(days=60)
    writers = bs.create_metrics(engine, data, clients + 1)
    timelines = [bs.Timeline(w.metric_id, start) for w in writers]
    empty = bs.batch_latency(target.url, writers[-1], timelines[-1], opts.insert_batches)
    log(f"ingest: one client, empty table: batch p50 {empty['p50_ms']:.1f} ms")
    items = [[t.items() for _ in range(per_client + 1)] for t in timelines[:clients]]  # + warm-up
    jobs = [(w.token, [bs.json_body(b) for b in batches]) for w, batches in zip(writers, items, strict=False)]
    bs.concurrent_posts(target.url, [(token, bodies[:1]) for token, bodies in jobs])
    cpu = target.cpu_seconds()
    http = bs.concurrent_posts(target.url, [(token, bodies[1:]) for token, bodies in jobs])
    cpu = target.cpu_seconds() - cpu
    samples = http["batches"] * bs.BATCH
    http.update(
        samples=samples, samples_per_s=samples / http["seconds"], cpu_us_per_sample=cpu * 1e6 / samples
    )
    log(
        f"ingest: HTTP {http['samples_per_s']:,.0f} samples/s ({clients} clients, batch p50 "
        f"{http['batch_p50_ms']:.1f} ms), worker CPU {http['cpu_us_per_sample']:.1f} us/sample"
    )
    memory = target.worker_rss_mb()
    # The ceiling: as many rows, the same shape, metrics of their own, batches of 1,000.
    own = [
        bs.Timeline(w.metric_id, start) for w in bs.create_metrics(engine, data, clients, offset=clients + 1)
    ]
    sqlite = db.backend == "sqlite"
    rows = [bs.db_rows(t.items(), sqlite) for _ in range(per_client) for t in own]
    ceiling = bs.ceiling(db.url, rows)
    del rows
    log(f"ingest: ceiling ({ceiling['method']}) {ceiling['samples_per_s']:,.0f} samples/s")
    influx: dict[str, Any]
    if opts.influx:
        try:
            influx = bs.influx_ingest(work_dir, items)
            log(f"ingest: InfluxDB {influx['samples_per_s']:,.0f} samples/s")
        except (RuntimeError, OSError) as error:
            influx = {"error": str(error)[:500]}
            log(f"ingest: InfluxDB skipped: {influx['error']}")
    else:
        influx = {"error": "not run (--no-influx)"}
    return {
        "clients": clients,
        "http": http,
        "ceiling": ceiling,
        "ratio": http["samples_per_s"] / ceiling["samples_per_s"],
        "influx": influx,
        "insert_empty": empty,
        "memory_mb": memory,
    }


def run_samples_scale(
    opts: Options,
    db: BenchDatabase,
    engine: sa.Engine,
    data: seed.LoadData,
    target: servers.Server,
    ingest: dict[str, Any] | None,
) -> dict[str, Any]:
    """`samples_scale` samples over `samples_metrics` metrics, seeded in bulk; then 1,000
    samples of one metric read at the start, middle and end of its range (single connection),
    and single-client batches into that metric (full table) against the empty-table figure."""
    bs = bench_samples
    offset = 2 * opts.ingest_clients + 1
    writers = bs.create_metrics(engine, data, opts.samples_metrics, offset=offset)
    per_metric = max(1, opts.samples_scale // len(writers))
    step = timedelta(minutes=5)
    start = datetime.now(UTC).replace(microsecond=0) - step * per_metric - timedelta(days=1)
    empty = ingest["insert_empty"] if ingest else None
    if empty is None:
        (alone,) = bs.create_metrics(engine, data, 1, offset=offset + opts.samples_metrics)
        empty = bs.batch_latency(target.url, alone, bs.Timeline(alone.metric_id, start), opts.insert_batches)
    log(f"samples scale: seeding {per_metric * len(writers):,} samples over {len(writers):,} metrics")
    seeded = bs.seed_samples(db.url, [w.metric_id for w in writers], per_metric, start, step)
    log(f"samples scale: seeded in {seeded['seconds']:.1f} s (rollups {seeded['rollups_seconds']:.1f} s)")
    seeded["rollups_checked"] = bs.verify_rollups(db.url, [w.metric_id for w in writers])
    log(
        f"samples scale: rollups equal the samples' summaries on {seeded['rollups_checked']['units_checked']}"
    )
    metric = writers[len(writers) // 2]
    auth = f"Bearer {metric.token}"
    points = {"start": 0, "middle": per_metric // 2, "end": max(0, per_metric - bs.BATCH)}
    specs = {}
    for name, t in points.items():
        ms = int((start + step * t).timestamp() * 1000)
        query = f"metric_id={metric.metric_id}&start_date_gte={ms}&limit=1000"
        label = f"1,000 samples of one metric from its {name} (sample {t:,} of {per_metric:,})"
        specs[name] = LoadSpec(name, label, "GET", [(f"{bs.PATH}?{query}", auth)])
    status, body = loadgen.check(target.url, specs["start"])
    returned = len(json.loads(body)["results"])
    latency = single_connection(opts, target, specs)
    for row in latency.values():
        log(f"samples scale: {row['label']}: p50 {row['p50_ms']:.2f} ms")
    full = bs.batch_latency(
        target.url, metric, bs.Timeline(metric.metric_id, start + step * per_metric), opts.insert_batches
    )
    log(
        f"samples scale: one client, full table: batch p50 {full['p50_ms']:.1f} ms (empty {empty['p50_ms']:.1f})"
    )
    with engine.connect() as conn:
        total = conn.exec_driver_sql("SELECT COUNT(*) FROM quantity_samples").scalar_one()
    return {
        "seeded": seeded,
        "per_metric": per_metric,
        "rows_in_table": total,
        "returned": returned,
        "read": latency,
        "insert_empty": empty,
        "insert_full": full,
        "memory_mb": target.worker_rss_mb(),
    }


def run_calculations(
    opts: Options, db: BenchDatabase, engine: sa.Engine, data: seed.LoadData, target: servers.Server
) -> dict[str, Any]:
    """A metric with one sample a minute for a year (min(525,600, samples_scale)) in a table of
    at least `samples_scale` samples (filler metrics first when the samples phase has not filled
    it), its owner in Europe/Berlin; rollups seeded in bulk and checked against the samples;
    then the year of daily buckets and the metric's figures over HTTP against a trivial read
    with the same PAT, and the same service calls in process (bench/calculations.py)."""
    bc, bs = bench_calculations, bench_samples
    with engine.connect() as conn:
        existing = conn.exec_driver_sql("SELECT COUNT(*) FROM quantity_samples").scalar_one()
    year = min(bc.YEAR_SAMPLES, opts.samples_scale)
    offset = 2 * opts.ingest_clients + 2 + opts.samples_metrics
    (metric,) = bs.create_metrics(engine, data, 1, offset=offset)
    minute = timedelta(minutes=1)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    series = []
    need = opts.samples_scale - existing - year
    if need > 0:
        fillers = bs.create_metrics(engine, data, max(1, opts.samples_metrics - 1), offset=offset + 1)
        per_metric = -(-need // len(fillers))
        step = timedelta(minutes=5)
        start = now - step * per_metric - timedelta(days=1)
        series.append(bs.Series([w.metric_id for w in fillers], per_metric, start, step))
    first_sample = now - minute * year
    series.append(bs.Series([metric.metric_id], year, first_sample, minute))
    log(
        f"calculations: seeding {sum(s.samples for s in series):,} samples ({year:,} of one metric, a minute "
        f"apart) with their rollups into a table of {existing:,}"
    )
    seeded = bs.seed_series(db.url, series)
    log(
        f"calculations: seeded in {seeded['seconds']:.1f} s (rollup rows {seeded['rollup_rows']} in "
        f"{seeded['rollups_seconds']:.1f} s)"
    )
    checked = bs.verify_rollups(db.url, [m for s in series for m in s.metric_ids])
    year_checked = bs.verify_rollups(db.url, [metric.metric_id], picks=20, seed=13)
    if year_checked["samples_counted"] != year:
        raise RuntimeError(
            f"the year metric's rollups count {year_checked['samples_counted']:,}, not {year:,}"
        )
    log(
        f"calculations: rollups equal the samples' summaries on {checked['units_checked']} and "
        f"{year_checked['units_checked']} (year metric), counts add up"
    )
    with engine.connect() as conn:
        rows_in_table = conn.exec_driver_sql("SELECT COUNT(*) FROM quantity_samples").scalar_one()
        rollups_in_table = {
            level.table.name: conn.exec_driver_sql(f"SELECT COUNT(*) FROM {level.table.name}").scalar_one()
            for level in bs.rollup_levels()
        }
    device = next(d for d in data.devices if d.id == metric.device_id)
    pat = next(u.pat for u in data.users if u.id == device.user_id)
    bc.set_time_zone(engine, device.user_id)
    auth = f"Bearer {pat}"
    data_span = (first_sample, now)  # [first sample, last sample + 1 minute)
    asked = datetime.now(UTC)
    days = bc.year_of_days(asked)
    rolling = (asked - timedelta(days=365), asked)

    def in_range(low: datetime, high: datetime) -> int:
        first = max(0, -(-(low - first_sample) // minute))
        last = min(year - 1, (high - first_sample) // minute)
        return max(0, last - first + 1)

    m = metric.metric_id
    cases = [
        bc.Case(
            "days_average",
            "a year of daily buckets, average (365 local days, midnight to midnight)",
            bc.query_path(m, "average", *days),
            auth,
        ),
        bc.Case(
            "days_sum", "a year of daily buckets, sum (the same range)", bc.query_path(m, "sum", *days), auth
        ),
        bc.Case(
            "days_average_now",
            "a year of daily buckets, average, [now - 365 days, now] (366 buckets, two cut slots read raw)",
            bc.query_path(m, "average", *rolling),
            auth,
        ),
        bc.Case(
            "figures",
            "GET /api/v1/metric/<id> with its figures (avg_today ... avg_last_year, latest)",
            f"/api/v1/metric/{m}",
            auth,
        ),
        bc.Case(
            "ceiling",
            "ceiling: GET /api/v1/device/<id> (same PAT)",
            f"/api/v1/device/{metric.device_id}",
            auth,
        ),
    ]
    by_name = {c.name: c for c in cases}
    answers = {
        "days_average": bc.check_days(
            bc.fetch(target.url, by_name["days_average"]), "average", data_span, in_range(*days)
        ),
        "days_sum": bc.check_days(
            bc.fetch(target.url, by_name["days_sum"]), "sum", data_span, in_range(*days)
        ),
        "days_average_now": bc.check_days(
            bc.fetch(target.url, by_name["days_average_now"]), "average", data_span, in_range(*rolling)
        ),
        "figures": bc.check_figures(bc.fetch(target.url, by_name["figures"]), data_span, asked),
    }
    log(f"calculations: answers checked: {answers}")
    db_cpu, close = bc.postgres_cpu(db.url) if db.backend == "postgresql" else (None, lambda: None)
    load_before = os.getloadavg()
    try:
        http = bc.sequential(
            target.url,
            cases,
            opts.calc_requests,
            warmup=20,
            cpu_seconds=target.cpu_seconds,
            db_cpu_seconds=db_cpu,
        )
    finally:
        close()
    load_after = os.getloadavg()
    ceiling = http["ceiling"]["p50_ms"]
    for row in http.values():
        log(
            f"calculations: {row['label']}: p50 {row['p50_ms']:.2f} ms p99 {row['p99_ms']:.2f} ms "
            f"worker CPU {row['worker_cpu_ms']:.2f} ms database CPU {row['db_cpu_ms'] or 0:.2f} ms "
            f"({row['p50_ms'] / ceiling:.2f}x the ceiling; rounds {[round(x, 2) for x in row['rounds_p50_ms']]})"
        )
    memory = target.worker_rss_mb()
    queries = {}
    for name in ("days_average", "days_sum", "days_average_now"):
        args = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(by_name[name].path).query))
        queries[name] = args
    db_cpu, close = bc.postgres_cpu(db.url) if db.backend == "postgresql" else (None, lambda: None)
    try:
        local = bc.in_process(
            db.url, device.user_id, m, queries, repeat=max(5, opts.calc_requests // 4), db_cpu_seconds=db_cpu
        )
    finally:
        close()
    for name, row in local.items():
        log(f"calculations: in process {name}: median {row['median_ms']:.2f} ms, CPU {row['cpu_ms']:.2f} ms")
    return {
        "seeded": seeded,
        "rollups_checked": {"all": checked, "year_metric": year_checked},
        "rows_in_table": rows_in_table,
        "rollups_in_table": rollups_in_table,
        "metric_id": m,
        "year_samples": year,
        "time_zone": bc.ZONE,
        "answers": answers,
        "http": http,
        "in_process": local,
        "memory_mb": memory,
        # Other work on the machine moves these figures: how busy it was around the HTTP runs.
        "load_average": {"before": load_before, "after": load_after},
    }


def run_export(
    opts: Options,
    db: BenchDatabase,
    engine: sa.Engine,
    data: seed.LoadData,
    env: dict[str, str],
    log_dir: Path,
    work_dir: Path,
) -> dict[str, Any]:
    """One account with `export_samples` samples downloads its export (bench/export.py)."""
    log(f"export: seeding {opts.export_samples:,} samples over {opts.export_metrics} metrics of one user")
    offset = 2 * opts.ingest_clients + 3 + opts.samples_metrics
    account = bench_export.seed_account(
        engine, db.url, data, len(data.users) - 1, opts.export_samples, opts.export_metrics, offset
    )
    log(f"export: seeded {account['samples']:,} in {account['seeded']['seconds']:.0f} s; downloading")
    measured = bench_export.run(env, log_dir, work_dir, account)
    log(
        f"export: {measured['samples']:,} samples, {measured['bytes'] / 1e6:,.0f} MB ZIP in "
        f"{measured['seconds']:.0f} s ({measured['samples_per_s']:,.0f} samples/s); worker RSS idle "
        f"{measured['baseline_rss_mb']:.1f} MiB, peak {measured['peak_rss_mb']:.1f} MiB "
        f"({measured['rss_ratio']:.2f}x); ZIP {measured['checked']}"
    )
    return {**measured, "seeded": account["seeded"]}


def bench_backend(backend: str, opts: Options, work_dir: Path) -> dict[str, Any] | None:
    """Every phase on one backend. Returns its figures, or None when the backend is unreachable."""
    db = BenchDatabase(backend, opts, work_dir)
    if not db.reachable():
        log(f"{backend}: not reachable at {opts.pg_url}; skipped")
        return None
    started = time.perf_counter()
    log(f"{backend}: fresh database, schema by flask db upgrade")
    db.create()
    engine = sa.create_engine(normalize_database_url(db.url))
    running: list[servers.Server] = []
    try:
        data = seed.seed_load_data(engine, opts.users, opts.devices_per_user)
        log(
            f"{backend}: seeded {len(data.users)} users, "
            f"{sum(len(u.device_ids) for u in data.users):,} devices"
        )
        env = seed.server_env(db.url)
        log_dir = work_dir / backend
        log_dir.mkdir(parents=True, exist_ok=True)
        target = servers.start("bioweb", env=env, log_dir=log_dir, workers=opts.workers)
        running.append(target)
        result: dict[str, Any] = {
            "backend": backend,
            "database": db.version(engine),
            "load": [],
            "load_raw": {},
        }
        if "throughput" in opts.phases:
            baseline = servers.start(
                "baseline",
                "baseline:app",
                cwd=servers.BENCH,
                env=env,
                log_dir=log_dir,
                health_path="/",
                workers=opts.workers,
            )
            running.append(baseline)
            specs = load_specs(data)
            load = run_load(opts, target, baseline, specs, backend)
            memory = {"bioweb": target.worker_rss_mb(), "baseline": baseline.worker_rss_mb()}
            load += limited_token_load(
                opts, env, log_dir, baseline, [s for s in specs if s.name == "token"], backend
            )
            log(f"{backend}: worker RSS MB bioweb {memory['bioweb']} baseline {memory['baseline']}")
            small = data.devices[:1000]
            with engine.connect() as conn:
                tokens_before = conn.exec_driver_sql("SELECT COUNT(*) FROM tokens").scalar_one()
            result["before_scale"] = {
                "tokens": tokens_before,
                "device_token_read": single_connection(
                    opts,
                    target,
                    {
                        "device_token_read": LoadSpec(
                            "device_token_read",
                            f"device read, device token among {tokens_before:,} tokens",
                            "GET",
                            [(f"/api/v1/device/{d.id}", f"Bearer {d.access_token}") for d in small],
                        )
                    },
                )["device_token_read"],
                "token_lookup": token_lookup_ms(db.url, small),
            }
            result["load"] = [r.summary() for r in load]
            result["load_raw"] = {
                r.name: {"target": [asdict(x) for x in r.target], "baseline": [asdict(x) for x in r.baseline]}
                for r in load
            }
            result["memory_mb"] = memory
        if "scale" in opts.phases and opts.scale_devices:
            result["scale"] = run_scale(opts, db, engine, target)
            result["memory_after_scale_mb"] = {"bioweb": target.worker_rss_mb()}
        ingest = None
        if "ingest" in opts.phases:
            ingest = result["ingest"] = run_ingest(opts, db, engine, data, target, work_dir)
        if "samples" in opts.phases and opts.samples_scale:
            result["samples_scale"] = run_samples_scale(opts, db, engine, data, target, ingest)
        if "calculations" in opts.phases and opts.samples_scale:
            result["calculations"] = run_calculations(opts, db, engine, data, target)
        if "export" in opts.phases and opts.export_samples:
            result["export"] = run_export(opts, db, engine, data, env, log_dir, work_dir)
        result["seconds"] = time.perf_counter() - started
        return result
    finally:
        for server in reversed(running):
            server.stop()
        engine.dispose()
        if not opts.keep:
            db.drop()


# --- report ---------------------------------------------------------------------------------------


def _ok(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "**NO**")


def report(results: list[dict[str, Any]], opts: Options) -> str:
    """The markdown tables of one run."""
    lines = [
        f"wrk -t{opts.threads} -c{opts.connections} -d{opts.duration:g}s x {opts.rounds} rounds, "
        f"gunicorn.conf.py with WEB_CONCURRENCY={opts.workers}, RATELIMIT_ENABLED=false",
        "",
        "### Throughput (bioweb vs bare Flask baseline, same gunicorn settings)",
        "",
        "| backend | endpoint | req/s | p50 ms | p99 ms | baseline req/s | baseline p50 ms | baseline p99 ms "
        "| ratio | target | met | worker CPU ms/req | baseline CPU ms/req | CPU ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for res in results:
        for row in res["load"]:
            lines.append(
                f"| {res['backend']} | {row['endpoint']} | {row['rps']:.0f} | {row['p50_ms']:.2f} | "
                f"{row['p99_ms']:.2f} | {row['baseline_rps']:.0f} | {row['baseline_p50_ms']:.2f} | "
                f"{row['baseline_p99_ms']:.2f} | {row['ratio']:.0%} | {row['target']} | {_ok(row['ok'])} | "
                f"{row['cpu_ms']:.2f} | {row['baseline_cpu_ms']:.2f} | {row.get('cpu_ratio', 0):.0%} |"
            )
    lines += [
        "",
        "### Scale (one user with N devices; single connection, wrk -t1 -c1)",
        "",
        "| backend | case | p50 ms | p99 ms | vs first page | target | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for res in results:
        before = res.get("before_scale")
        if not before:
            continue
        lines.append(
            f"| {res['backend']} | {before['device_token_read']['label']} | "
            f"{before['device_token_read']['p50_ms']:.2f} | "
            f"{before['device_token_read']['p99_ms']:.2f} | - | - | - |"
        )
        scale = res.get("scale")
        if not scale:
            continue
        lat = scale["latency"]
        firsts = {"near_end_id": "first_page_id", "deep_page_code": "first_page_code"}
        for key, row in lat.items():
            first = firsts.get(key)
            ratio = row["p50_ms"] / lat[first]["p50_ms"] if first else None
            ok = None if ratio is None else ratio <= DEPTH_TARGET
            lines.append(
                f"| {res['backend']} | {row['label']} ({scale['devices']:,} devices) | {row['p50_ms']:.2f} | "
                f"{row['p99_ms']:.2f} | {'-' if ratio is None else f'{ratio:.2f}x'} | "
                f"{'-' if ratio is None else f'<= {DEPTH_TARGET}x'} | {_ok(ok)} |"
            )
        for key, row in scale["page_queries"].items():
            first = firsts.get(key)
            ratio = row["median_ms"] / scale["page_queries"][first]["median_ms"] if first else None
            lines.append(
                f"| {res['backend']} | in process, list_devices service: {lat[key]['label']} | "
                f"{row['median_ms']:.2f} | max {row['max_ms']:.2f} | "
                f"{'-' if ratio is None else f'{ratio:.2f}x'} | - | - |"
            )
        cnt = scale["count"]
        lines.append(
            f"| {res['backend']} | count: users.device_count read (API count = {scale['api_count']:,}) | "
            f"{cnt['device_count_column']['median_ms']:.3f} | "
            f"max {cnt['device_count_column']['max_ms']:.3f} | - | "
            f"<= {COUNT_TARGET_MS:g} ms | {_ok(cnt['device_count_column']['max_ms'] <= COUNT_TARGET_MS)} |"
        )
        lines.append(
            f"| {res['backend']} | (for contrast) SELECT COUNT(*) of the user's devices | "
            f"{cnt['count_star']['median_ms']:.1f} | max {cnt['count_star']['max_ms']:.1f} | - | - | - |"
        )
        for label, lookup in (
            (f"{before['tokens']:,}", before["token_lookup"]),
            (f"{scale['tokens']:,}", scale["token_lookup"]),
        ):
            lines.append(
                f"| {res['backend']} | bearer check of a device token in process ({label} stored tokens) | "
                f"{lookup['median_ms']:.3f} | max {lookup['max_ms']:.3f} | - | - | - |"
            )
    lines += [
        "",
        "### Resident memory per worker after the load runs (VmRSS, MiB)",
        "",
        "| backend | server | workers | per worker | max | target | met |",
        "|---|---|---:|---|---:|---|---|",
    ]
    for res in results:
        memories = dict(res.get("memory_mb") or {})
        if res.get("ingest"):
            memories["bioweb, after the samples ingest"] = res["ingest"]["memory_mb"]
        if res.get("samples_scale"):
            memories["bioweb, after the samples scale reads"] = res["samples_scale"]["memory_mb"]
        if res.get("calculations"):
            memories["bioweb, after the calculations"] = res["calculations"]["memory_mb"]
        for name, values in memories.items():
            goal = name.startswith("bioweb")
            lines.append(
                f"| {res['backend']} | {name} | {len(values)} | {', '.join(f'{v:.1f}' for v in values)} | "
                f"{max(values):.1f} | {f'<= {RSS_TARGET_MB:g}' if goal else '-'} | "
                f"{_ok(max(values) <= RSS_TARGET_MB) if goal else '-'} |"
            )
    lines += samples_report(results)
    lines += calculations_report(results)
    lines += export_report(results)
    return _without_empty_tables("\n".join(lines))


def _without_empty_tables(text: str) -> str:
    """Drop the sections whose table has no rows (their phase did not run)."""
    head, *sections = text.split("\n### ")
    kept = [s for s in sections if s.rstrip().splitlines()[-1].startswith("| ")]
    return "\n### ".join([head, *kept])


def samples_report(results: list[dict[str, Any]]) -> list[str]:
    """The tables of issue 11: samples ingest, and samples at scale."""
    lines: list[str] = []
    ingests = [r for r in results if r.get("ingest")]
    if ingests:
        lines += [
            "",
            "### Samples ingest (batches of 1,000 new samples; HTTP with a device token vs the driver alone)",
            "",
            "| backend | case | samples/s | vs ceiling | target | met | batch p50 ms | worker CPU us/sample |",
            "|---|---|---:|---:|---|---|---:|---:|",
        ]
        for res in ingests:
            ing, backend = res["ingest"], res["backend"]
            http, ceil, goal = ing["http"], ing["ceiling"], INGEST_TARGETS.get(res["backend"])
            lines.append(
                f"| {backend} | bioweb over HTTP, {ing['clients']} clients ({http['samples']:,} samples) | "
                f"{http['samples_per_s']:,.0f} | {ing['ratio']:.0%} | {f'>= {goal:.0%}' if goal else '-'} | "
                f"{_ok(None if goal is None else ing['ratio'] >= goal)} | {http['batch_p50_ms']:.1f} | "
                f"{http['cpu_us_per_sample']:.1f} |"
            )
            lines.append(
                f"| {backend} | ceiling: {ceil['method']}, one connection, a commit per 1,000 | "
                f"{ceil['samples_per_s']:,.0f} | 100% | - | - | "
                f"{ceil['seconds'] * 1000 * 1000 / ceil['samples']:.1f} | - |"
            )
            empty = ing["insert_empty"]
            lines.append(
                f"| {backend} | bioweb over HTTP, one client, empty table | {empty['samples_per_s']:,.0f} | "
                f"{empty['samples_per_s'] / ceil['samples_per_s']:.0%} | - | - | {empty['p50_ms']:.1f} | - |"
            )
            influx = ing.get("influx") or {}
            if "error" in influx:
                lines.append(f"| {backend} | InfluxDB: {influx['error']} | - | - | - | - | - | - |")
            else:
                lines.append(
                    f"| {backend} | InfluxDB {influx['version'].split()[1]} (line protocol, "
                    f"{ing['clients']} clients) | {influx['samples_per_s']:,.0f} | "
                    f"{influx['samples_per_s'] / ceil['samples_per_s']:.0%} | - | - | "
                    f"{influx['batch_p50_ms']:.1f} | {influx['cpu_us_per_sample']:.1f} (influxd) |"
                )
    scaled = [r for r in results if r.get("samples_scale")]
    if scaled:
        lines += [
            "",
            "### Samples at scale (single connection; wrk -t1 -c1 for reads, one client for inserts)",
            "",
            "| backend | case | p50 ms | vs fastest / empty | target | met |",
            "|---|---|---:|---:|---|---|",
        ]
        for res in scaled:
            sc, backend = res["samples_scale"], res["backend"]
            seeded = sc["seeded"]
            lines.append(
                f"| {backend} | seeded {seeded['samples']:,} samples over {seeded['metrics']:,} metrics in "
                f"{seeded['seconds']:.0f} s ({sc['rows_in_table']:,} rows in the table) | - | - | - | - |"
            )
            fastest = min(row["p50_ms"] for row in sc["read"].values())
            spread = max(row["p50_ms"] for row in sc["read"].values()) / fastest
            for row in sc["read"].values():
                lines.append(
                    f"| {backend} | {row['label']} | {row['p50_ms']:.2f} | {row['p50_ms'] / fastest:.2f}x | "
                    f"<= {READ_SPREAD_TARGET}x | {_ok(spread <= READ_SPREAD_TARGET)} |"
                )
            empty, full = sc["insert_empty"], sc["insert_full"]
            ratio = full["p50_ms"] / empty["p50_ms"]
            lines.append(
                f"| {backend} | a batch of 1,000 into an empty metric, near-empty table | {empty['p50_ms']:.1f} | "
                f"- | - | - |"
            )
            lines.append(
                f"| {backend} | a batch of 1,000 into a full metric, full table | {full['p50_ms']:.1f} | "
                f"{ratio:.2f}x | <= {INSERT_FULL_TARGET}x | {_ok(ratio <= INSERT_FULL_TARGET)} |"
            )
    return lines


def calculations_report(results: list[dict[str, Any]]) -> list[str]:
    """The table of issue 12: calculations and figures at scale, against the ceiling."""
    calculated = [r for r in results if r.get("calculations")]
    if not calculated:
        return []
    lines = [
        "",
        "### Calculations and figures (issue 12; one client, one request at a time, owner's PAT)",
        "",
        "| backend | case | p50 ms | p99 ms | p50 vs ceiling | target | met | CPU ms/req: workers + database "
        "| in process median ms (CPU ms: process + database) |",
        "|---|---|---:|---:|---:|---|---|---:|---:|",
    ]
    for res in calculated:
        calc, backend = res["calculations"], res["backend"]
        seeded = calc["seeded"]
        rollups = ", ".join(f"{table} {count:,} rows" for table, count in calc["rollups_in_table"].items())
        checked = sum(n for part in calc["rollups_checked"].values() for n in part["units_checked"].values())
        lines.append(
            f"| {backend} | {calc['rows_in_table']:,} samples in the table ({rollups}); "
            f"{seeded['samples']:,} seeded here in {seeded['seconds']:.0f} s (rollups "
            f"{seeded['rollups_seconds']:.0f} s), rollups checked against the samples on {checked} rows"
            f" | - | - | - | - | - | - | - |"
        )
        ceiling = calc["http"]["ceiling"]["p50_ms"]
        for name, row in calc["http"].items():
            goal = name in ("days_average", "days_sum", "figures")
            local = calc["in_process"].get("metric_figures" if name == "figures" else name)
            in_process = f"{local['median_ms']:.2f} ({local['cpu_ms']:.2f}" if local else "-"
            if local and local.get("db_cpu_ms") is not None:
                in_process += f" + {local['db_cpu_ms']:.2f}"
            in_process += ")" if local else ""
            cpu = f"{row.get('worker_cpu_ms') or 0:.2f}"
            if row.get("db_cpu_ms") is not None:
                cpu += f" + {row['db_cpu_ms']:.2f}"
            label = row["label"]
            if name.startswith("days"):
                label += f" ({calc['year_samples']:,} samples)"
            lines.append(
                f"| {backend} | {label} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                f"{row['p50_ms'] / ceiling:.2f}x | {f'<= {CALC_TARGET_MS:g} ms' if goal else '-'} | "
                f"{_ok(row['p50_ms'] <= CALC_TARGET_MS) if goal else '-'} | "
                f"{cpu} | {in_process} |"
            )
    return lines


def export_report(results: list[dict[str, Any]]) -> list[str]:
    """The table of issue 16: the worker's memory while it streams a whole account's export."""
    exported = [r for r in results if r.get("export")]
    if not exported:
        return []
    lines = [
        "",
        "### Export of one account (issue 16; one sync worker, one download; VmRSS sampled every 0.1 s)",
        "",
        "| backend | samples | ZIP MB (uncompressed) | seconds | samples/s | idle RSS MiB | peak RSS MiB "
        "| peak / idle | target | met | ZIP checked |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for res in exported:
        ex = res["export"]
        checked = ex["checked"]
        ok = checked["crc_ok"] and checked["counts_match"] and checked["csv_rows"] == ex["samples"]
        lines.append(
            f"| {res['backend']} | {ex['samples']:,} over {ex['metrics']} metrics | {ex['bytes'] / 1e6:,.0f} "
            f"({checked['uncompressed_bytes'] / 1e6:,.0f}) | {ex['seconds']:.0f} | {ex['samples_per_s']:,.0f} | "
            f"{ex['baseline_rss_mb']:.1f} | {ex['peak_rss_mb']:.1f} | {ex['rss_ratio']:.2f}x | "
            f"<= {RSS_TARGET_MB:g} MiB | {_ok(ex['peak_rss_mb'] <= RSS_TARGET_MB)} | "
            f"{'CRCs and counts ok' if ok else '**NO**'} |"
        )
    return lines


def machine(results: list[dict[str, Any]]) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(
        next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1]
    )
    wrk = subprocess.run([loadgen.wrk_path(), "--version"], capture_output=True, text=True)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0].strip(),
        "databases": [r["database"] for r in results],
        # Other work on the machine skews the figures: note how busy it was.
        "load_average": os.getloadavg(),
    }


# --- main -----------------------------------------------------------------------------------------


def options(argv: list[str] | None) -> Options:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=env("BENCH_BACKENDS", "sqlite,postgresql"))
    parser.add_argument("--duration", type=float, default=float(env("BENCH_DURATION", "8")))
    parser.add_argument("--rounds", type=int, default=int(env("BENCH_ROUNDS", "2")))
    parser.add_argument("--threads", type=int, default=int(env("BENCH_THREADS", "2")))
    parser.add_argument("--connections", type=int, default=int(env("BENCH_CONNECTIONS", "16")))
    # gunicorn.conf.py's own default on this 2-core machine is min(4, 2 x cores) = 4; set it
    # explicitly so baseline and target surely run the same number of workers.
    parser.add_argument(
        "--workers", type=int, default=int(env("WEB_CONCURRENCY", str(min(4, (os.cpu_count() or 1) * 2))))
    )
    parser.add_argument("--scale-devices", type=int, default=int(env("BENCH_SCALE_DEVICES", "1000000")))
    parser.add_argument("--scale-duration", type=float, default=float(env("BENCH_SCALE_DURATION", "6")))
    parser.add_argument(
        "--scale-rounds",
        type=int,
        default=int(env("BENCH_SCALE_ROUNDS", "3")),
        help="single-connection runs per latency case, taking turns (each figure is their median)",
    )
    parser.add_argument("--pg-url", default=env("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/"))
    parser.add_argument("--pg-db", default=env("BENCH_PG_DB", "bioweb_bench"))
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--warmup", type=float, default=float(env("BENCH_WARMUP", "2")), help="0: none")
    parser.add_argument("--users", type=int, default=int(env("BENCH_USERS", "100")))
    parser.add_argument("--devices-per-user", type=int, default=int(env("BENCH_DEVICES_PER_USER", "100")))
    parser.add_argument("--out", default=env("BENCH_OUT", str(OUT)), help="results go to OUT/<timestamp>/")
    parser.add_argument(
        "--phases",
        default=env("BENCH_PHASES", ",".join(PHASES)),
        help=f"comma-separated, of {', '.join(PHASES)} (default: all)",
    )
    parser.add_argument("--ingest-clients", type=int, default=int(env("BENCH_INGEST_CLIENTS", "4")))
    parser.add_argument(
        "--ingest-batches",
        type=int,
        default=int(env("BENCH_INGEST_BATCHES", "240")),
        help="batches of 1,000 samples the ingest clients send in all",
    )
    parser.add_argument(
        "--influx",
        action=argparse.BooleanOptionalAction,
        default=env("BENCH_INFLUX", "1") not in ("0", "false", "no"),
        help="write the same batches to a throwaway InfluxDB (Debian package influxdb)",
    )
    parser.add_argument("--samples-scale", type=int, default=int(env("BENCH_SAMPLES_SCALE", "10000000")))
    parser.add_argument("--samples-metrics", type=int, default=int(env("BENCH_SAMPLES_METRICS", "1000")))
    parser.add_argument(
        "--insert-batches",
        type=int,
        default=int(env("BENCH_INSERT_BATCHES", "20")),
        help="batches of the single-client insert runs (empty and full table)",
    )
    parser.add_argument(
        "--calc-requests",
        type=int,
        default=int(env("BENCH_CALC_REQUESTS", "200")),
        help="requests of each calculations case (single connection, after a warm-up)",
    )
    parser.add_argument(
        "--export-samples",
        type=int,
        default=int(env("BENCH_EXPORT_SAMPLES", "10000000")),
        help="samples of the account whose export is downloaded (0: skip the phase)",
    )
    parser.add_argument("--export-metrics", type=int, default=int(env("BENCH_EXPORT_METRICS", "10")))
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        parser.error(f"unknown phases {', '.join(unknown)}; the phases are {', '.join(PHASES)}")
    return Options(
        backends=[b.strip() for b in args.backends.split(",") if b.strip()],
        duration=args.duration,
        rounds=args.rounds,
        threads=args.threads,
        connections=args.connections,
        workers=args.workers,
        scale_devices=args.scale_devices,
        scale_duration=args.scale_duration,
        scale_rounds=args.scale_rounds,
        pg_url=args.pg_url,
        pg_db=args.pg_db,
        keep=args.keep,
        warmup=args.warmup,
        users=args.users,
        devices_per_user=args.devices_per_user,
        out=args.out,
        phases=phases,
        ingest_clients=args.ingest_clients,
        ingest_batches=args.ingest_batches,
        influx=args.influx,
        samples_scale=args.samples_scale,
        samples_metrics=args.samples_metrics,
        insert_batches=args.insert_batches,
        calc_requests=args.calc_requests,
        export_samples=args.export_samples,
        export_metrics=args.export_metrics,
    )


def rerender(path: Path) -> int:
    """Print the tables of an earlier run from its results.json (e.g. after a report change)."""
    saved = json.loads(path.read_text())
    results = saved["results"]
    for res in results:
        for row, name in zip(res["load"], res["load_raw"], strict=True):
            raw = res["load_raw"][name]
            cpu = [statistics.fmean(r["worker_cpu_ms"] or 0 for r in raw[k]) for k in ("baseline", "target")]
            row.setdefault("cpu_ratio", cpu[0] / max(cpu[1], 1e-9))
    print(report(results, Options(**saved["options"])))
    return 0


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--report":
        return rerender(Path(sys.argv[2]))
    opts = options(argv)
    loadgen.wrk_path()
    started = time.perf_counter()
    work_dir = Path(opts.out) / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work_dir.mkdir(parents=True, exist_ok=True)
    results = [r for r in (bench_backend(b, opts, work_dir) for b in opts.backends) if r is not None]
    if not results:
        log("no backend was reachable")
        return 1
    elapsed = time.perf_counter() - started
    table = report(results, opts)
    info = machine(results)
    header = (
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB; Linux {info['kernel']}; "
        f"Python {info['python']}; {info['wrk']}; {', '.join(info['databases'])}. "
        f"Total time {elapsed / 60:.1f} min."
    )
    (work_dir / "results.md").write_text(header + "\n\n" + table + "\n")
    (work_dir / "results.json").write_text(
        json.dumps(
            {"machine": info, "options": asdict(opts), "seconds": elapsed, "results": results}, indent=2
        )
    )
    print(header)
    print()
    print(table)
    print(f"\nRaw figures: {os.path.relpath(work_dir / 'results.json', ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
