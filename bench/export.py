"""The export benchmark of issue 16: one account with many samples downloads its ZIP while the
serving worker's resident memory is sampled.

- **Data**: `metrics` heart-rate metrics on the devices of one seeded user, `samples` samples
  between them, seeded in bulk with their rollups (bench/samples.py `seed_series`).
- **Server**: a gunicorn of its own with one sync worker (the production gunicorn.conf.py) and
  BIOWEB_TIMEOUT long enough for the download (a sync worker is silent to its master while it
  streams one response).
- **Baseline**: the worker's VmRSS after it served a small request of the same account (idle,
  warm), in the same run.
- **Export**: GET /api/v1/account/export with the user's PAT over one connection, the body
  written to a file as it arrives, while a thread reads the worker's VmRSS every
  SAMPLE_INTERVAL seconds; then the file is opened as a ZIP and its manifest's sample counts
  checked against what was seeded.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import samples as bench_samples
from bench import seed, servers

SAMPLE_INTERVAL = 0.1
READ_SIZE = 256 * 1024


def seed_account(
    engine: sa.Engine, url: str, data: seed.LoadData, user_index: int, samples: int, metrics: int, offset: int
) -> dict[str, Any]:
    """`samples` samples over `metrics` new metrics of one seeded user's devices, in bulk."""
    user = data.users[user_index]
    own = replace(data, devices=[d for d in data.devices if d.user_id == user.id])
    writers = bench_samples.create_metrics(engine, own, metrics, offset=offset % max(1, len(own.devices)))
    per_metric = max(1, samples // len(writers))
    step = timedelta(minutes=1)
    start = datetime.now(UTC).replace(microsecond=0) - step * per_metric - timedelta(days=1)
    seeded = bench_samples.seed_series(
        url, [bench_samples.Series([w.metric_id for w in writers], per_metric, start, step)]
    )
    return {
        "user_id": user.id,
        "pat": user.pat,
        "metric_ids": [w.metric_id for w in writers],
        "per_metric": per_metric,
        "samples": per_metric * len(writers),
        "seeded": seeded,
    }


class RssSampler:
    """Reads a process's VmRSS every `interval` seconds in a thread until stopped."""

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL):
        self.pid, self.interval = pid, interval
        self.values: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.values.append((time.perf_counter() - self._started, servers.rss_kb(self.pid) / 1024))
            except (OSError, RuntimeError):
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> float:
        return max(v for _, v in self.values)


def get(base_url: str, path: str, pat: str, out: Path | None = None) -> dict[str, Any]:
    """GET `path` with the PAT; the body counted (and written to `out`) as it arrives."""
    parts = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=3600)
    started = time.perf_counter()
    first_byte = None
    size = 0
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {pat}"})
        response = conn.getresponse()
        sink = out.open("wb") if out is not None else None
        try:
            while chunk := response.read(READ_SIZE):
                if first_byte is None:
                    first_byte = time.perf_counter() - started
                size += len(chunk)
                if sink is not None:
                    sink.write(chunk)
        finally:
            if sink is not None:
                sink.close()
        return {
            "status": response.status,
            "bytes": size,
            "seconds": time.perf_counter() - started,
            "first_byte_seconds": first_byte,
            "headers": dict(response.getheaders()),
        }
    finally:
        conn.close()


def check_zip(path: Path, account: dict[str, Any]) -> dict[str, Any]:
    """Open the downloaded ZIP: every member's CRC (zipfile.testzip) and the manifest's sample
    counts against what was seeded."""
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        members = len(archive.namelist())
        uncompressed = sum(info.file_size for info in archive.infolist())
        bad = archive.testzip()
    counts = {
        int(name.split("/")[1].split(".")[0]): n
        for name, n in manifest["files"].items()
        if name.endswith(".csv")
    }
    expected = {m: account["per_metric"] for m in account["metric_ids"]}
    return {
        "members": members,
        "uncompressed_bytes": uncompressed,
        "crc_ok": bad is None,
        "csv_rows": sum(counts.values()),
        "counts_match": counts == expected,
    }


def run(env: dict[str, str], log_dir: Path, work_dir: Path, account: dict[str, Any]) -> dict[str, Any]:
    """Serve with one worker, measure its idle RSS, download the export while sampling it."""
    server = servers.Server(
        "bioweb-export", env={**env, "BIOWEB_TIMEOUT": "7200"}, workers=1, log_dir=log_dir
    ).start()
    try:
        (pid,) = server.worker_pids()
        warm = get(server.url, "/api/v1/account", account["pat"])
        assert warm["status"] == 200, warm
        time.sleep(0.5)
        baseline = servers.rss_kb(pid) / 1024
        target = work_dir / "export.zip"
        cpu = server.cpu_seconds()
        with RssSampler(pid) as sampler:
            download = get(server.url, "/api/v1/account/export", account["pat"], target)
        cpu = server.cpu_seconds() - cpu
        if download["status"] != 200:
            raise RuntimeError(f"export answered {download['status']}: {server.log_tail()}")
        checked = check_zip(target, account)
        target.unlink()
        after = servers.rss_kb(pid) / 1024
    finally:
        server.stop()
    return {
        "samples": account["samples"],
        "metrics": len(account["metric_ids"]),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": sampler.peak,
        "after_rss_mb": after,
        "rss_ratio": sampler.peak / baseline,
        "rss_samples": len(sampler.values),
        # The RSS timeline, thinned to at most 200 points for the raw figures.
        "rss_timeline": sampler.values[:: max(1, len(sampler.values) // 200)],
        "bytes": download["bytes"],
        "seconds": download["seconds"],
        "first_byte_seconds": download["first_byte_seconds"],
        "worker_cpu_seconds": cpu,
        "samples_per_s": account["samples"] / download["seconds"],
        "mb_per_s": download["bytes"] / 1024 / 1024 / download["seconds"],
        "checked": checked,
        "content_disposition": download["headers"].get("Content-Disposition"),
    }
