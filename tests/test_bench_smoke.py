"""`make bench` in miniature: every phase of bench/run.py (seed, gunicorn pair, wrk load, memory,
scale, samples ingest and samples scale, calculations, export) runs in seconds on SQLite and writes its results, so
the harness cannot rot unseen. The figures themselves mean nothing at this size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.server]

TINY = [
    "--backends=sqlite",
    "--warmup=0",
    "--duration=1",
    "--rounds=1",
    "--threads=1",
    "--connections=2",
    "--workers=1",
    "--users=4",
    "--devices-per-user=10",
    "--scale-devices=200",
    "--scale-duration=1",
    "--scale-rounds=1",  # wrk runs whole seconds: one round of one second per latency case
    "--ingest-clients=2",
    "--ingest-batches=4",
    "--no-influx",
    "--samples-scale=20000",
    "--samples-metrics=10",
    "--insert-batches=2",
    "--calc-requests=5",
    "--export-samples=20000",
    "--export-metrics=2",
]


def test_a_seconds_long_bench_writes_its_results(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        message = "wrk is not installed (Debian: apt-get install wrk)"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, so this is a failure)")
        pytest.skip(message)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", *TINY, f"--out={tmp_path}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    saved = json.loads((run_dir / "results.json").read_text())
    (result,) = saved["results"]
    assert result["backend"] == "sqlite"
    assert {row["endpoint"] for row in result["load"]} >= {
        "GET /api/v1/device/<id> (PAT)",
        "POST /token (client credentials, Basic)",
    }
    assert all(row["rps"] > 0 for row in result["load"])
    assert result["scale"]["devices"] == 200 and result["scale"]["api_count"] == 200
    assert result["memory_mb"]["bioweb"]
    assert result["ingest"]["http"]["samples"] == 4000 and result["ingest"]["ceiling"]["samples"] == 4000
    assert result["samples_scale"]["seeded"]["samples"] == 20000
    assert result["samples_scale"]["returned"] == 1000
    export = result["export"]
    assert export["samples"] == 20000 and export["checked"]["counts_match"] and export["checked"]["crc_ok"]
    assert export["peak_rss_mb"] >= export["baseline_rss_mb"] > 0
    text = (run_dir / "results.md").read_text()
    assert "### Throughput" in text and "### Samples ingest" in text and "### Samples at scale" in text
    assert "### Export of one account" in text
