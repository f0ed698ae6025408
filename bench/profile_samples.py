"""Where a batch of 1,000 samples spends its time, in process (Flask test client, no gunicorn).

    .venv/bin/python -m bench.profile_samples [--backend sqlite|postgresql] [--batches 30] [--rows 0]

A fresh database like bench/run.py's (schema by migrations, a few seeded devices), one
metric, optionally `--rows` samples seeded first (the full table); then `--batches` batches
of 1,000 new samples POSTed with the device's token, half plain, half under cProfile. Prints
the wall and CPU time per batch (median, no profiler) and the inclusive time per batch of each
stage of the path: body decode, the msgspec convert of each item, the metric lookup, the
existence check, the INSERT ... RETURNING, the rollups (issue 12: summarised in Python per
slot and per hour, then upserted), the audit upsert, the commit, the answer.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench import samples as bench_samples
from bench import seed
from bench.run import BenchDatabase, in_process, options
from bioweb.config import normalize_database_url

# (label, file suffix, function name) of the stages, in path order.
STAGES = [
    ("whole request (test client)", "flask/testing.py", "open"),
    ("body decode (msgspec.json.decode)", "api/samples.py", "_decode_body"),
    ("items: msgspec.convert x 1,000", "~", "<built-in method msgspec._core.convert>"),
    ("metric lookup (find_writable)", "services/metrics.py", "find_writable"),
    ("item checks (_check x 1,000)", "services/samples.py", "_check"),
    ("rows (_row x 1,000)", "services/samples.py", "_row"),
    ("existence check (_existing, both)", "services/samples.py", "_existing"),
    ("insert + existence (_store)", "services/samples.py", "_store"),
    ("  of which the rollups (add_samples)", "services/rollups.py", "add_samples"),
    ("    summarise (slots, in Python)", "services/rollups.py", "summarise"),
    ("    by_hour (hours, in Python)", "services/rollups.py", "by_hour"),
    ("    the two upserts (_upsert)", "services/rollups.py", "_upsert"),
    ("audit upsert (_audit)", "services/samples.py", "_audit"),
    ("commit (session.commit)", "orm/scoping.py", "commit"),
    ("answer (JSON)", "api/core.py", "answer"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--rows", type=int, default=0, help="samples seeded first, over 1,000 metrics")
    args = parser.parse_args()
    opts = options(["--backends", args.backend])
    with tempfile.TemporaryDirectory() as tmp:
        db = BenchDatabase(args.backend, opts, Path(tmp))
        db.create()
        engine = sa.create_engine(normalize_database_url(db.url))
        try:
            data = seed.seed_load_data(engine, 10, 10)
            (writer,) = bench_samples.create_metrics(engine, data, 1)
            start = datetime.now(UTC) - timedelta(days=60)
            if args.rows:
                others = bench_samples.create_metrics(engine, data, 1000, offset=1)
                seeded = bench_samples.seed_samples(
                    db.url, [w.metric_id for w in others], args.rows // 1000, start, timedelta(minutes=5)
                )
                print(f"seeded: {seeded}")
            timeline = bench_samples.Timeline(writer.metric_id, start)
            bodies = [bench_samples.json_body(timeline.items()) for _ in range(args.batches + 2)]
            app, _ = in_process(db.url)
            client = app.test_client()
            headers = {"Authorization": f"Bearer {writer.token}"}

            def post(body: bytes) -> None:
                response = client.post(
                    bench_samples.PATH, data=body, headers=headers, content_type="application/json"
                )
                assert response.status_code == 200 and response.json["accepted"] == 1000, response.data[:300]

            for body in bodies[:2]:  # warm-up
                post(body)
            half = args.batches // 2
            plain, cpu = [], []
            for body in bodies[2 : 2 + half]:
                started, cpu_started = time.perf_counter(), time.process_time()
                post(body)
                plain.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - cpu_started) * 1000)
            print(
                f"{args.backend}: {statistics.median(plain):.1f} ms per batch of 1,000 (median, no profiler; "
                f"CPU of this process {statistics.median(cpu):.1f} ms, SQLite's included)"
            )
            profiled = bodies[2 + half :]
            profile = cProfile.Profile()
            started = time.perf_counter()
            profile.enable()
            for body in profiled:
                post(body)
            profile.disable()
            wall = (time.perf_counter() - started) * 1000 / len(profiled)
            print(f"{args.backend}: {wall:.1f} ms per batch of 1,000 under cProfile (wall)")
            stats = pstats.Stats(profile)
            for label, suffix, name in STAGES:
                total = sum(
                    value[3]
                    for (file, _line, func), value in stats.stats.items()  # type: ignore[attr-defined]
                    if func == name and file.endswith(suffix)
                )
                print(f"  {label:40} {total * 1000 / len(profiled):7.1f} ms")
            print("\ntop functions by own time:")
            stats.sort_stats("tottime").print_stats(15)
            with app.app_context():
                from bioweb.extensions import db as app_db

                app_db.engine.dispose()
        finally:
            engine.dispose()
            db.drop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
