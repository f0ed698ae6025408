"""Drive a server with wrk (a separate process) and parse its results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"
# Environment variables are limited to 128 KiB each (MAX_ARG_STRLEN); stay well below.
MAX_ITEMS_BYTES = 100_000


@dataclass(frozen=True)
class LoadSpec:
    """One kind of request: method, body, and the (path, Authorization) items to cycle through."""

    name: str
    label: str
    method: str
    items: list[tuple[str, str]]
    body: str = ""
    content_type: str = ""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    socket_errors: int
    non_2xx: int
    # Filled in by the harness: CPU time the server's workers spent per request.
    worker_cpu_ms: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("bench: wrk is not installed (Debian: apt-get install wrk)")
    return path


def _env(spec: LoadSpec) -> dict[str, str]:
    lines: list[str] = []
    size = 0
    for path, auth in spec.items:
        line = f"{path}\t{auth}"
        size += len(line) + 1
        if size > MAX_ITEMS_BYTES:
            break
        lines.append(line)
    return {
        **os.environ,
        "BENCH_METHOD": spec.method,
        "BENCH_BODY": spec.body,
        "BENCH_CONTENT_TYPE": spec.content_type,
        "BENCH_REQUESTS": "\n".join(lines),
    }


def run_wrk(base_url: str, spec: LoadSpec, threads: int, connections: int, seconds: float) -> WrkResult:
    """Run wrk for `seconds` against `base_url` with `spec`. Raises RuntimeError if wrk fails."""
    command = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        base_url + "/",
    ]
    done = subprocess.run(command, env=_env(spec), capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        socket_errors=data["connect_errors"] + data["read_errors"] + data["write_errors"] + data["timeouts"],
        non_2xx=data["status_errors"],
    )


def check(base_url: str, spec: LoadSpec) -> tuple[int, bytes]:
    """Send the spec's first request once (outside wrk) and return its status and body.

    Catches a wrong token or path before a whole load run measures error responses.
    """
    path, auth = spec.items[0]
    headers = {"Authorization": auth} if auth else {}
    if spec.content_type:
        headers["Content-Type"] = spec.content_type
    data = spec.body.encode() if spec.method == "POST" else None
    request = urllib.request.Request(base_url + path, data=data, headers=headers, method=spec.method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
