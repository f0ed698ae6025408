"""`make soak`: 32 clients hold a mixed workload against bioweb for 10 minutes.

A gunicorn server under the production gunicorn.conf.py (RATELIMIT_ENABLED=false) serves a fresh
SQLite database in a temporary directory, migrated with `flask db upgrade`; the accounts and
their personal access tokens come from the CLI, as an operator would make them. Each client
thread owns a few devices and loops over a weighted mix of the published calls:

    list (a page, sometimes the next one)   read (PAT, or the device's own token)
    create                                  /token (client credentials)
    revoke (the device's access tokens)     disable, then re-authorize (new secret)

Every answer must be the one the contract promises (an error is any other status, or a
transport failure). Worker memory (VmRSS) is sampled every minute. At the end it prints the
figures: requests, throughput, latency per kind, errors, memory per minute; exits 1 when there
was any error or the workers' memory grew by more than --max-growth-mb after the first minute.

    .venv/bin/python bench/soak.py                 # 10 minutes, 32 clients
    .venv/bin/python bench/soak.py --minutes 0.5   # a quick try
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench import seed
from bench.servers import ROOT, Server, start

PASSWORD = "soak horse battery staple"
# Weights of the mix (they need not add up to anything).
MIX = {
    "list": 30,
    "read": 20,
    "read_own": 10,
    "create": 8,
    "token": 14,
    "revoke": 10,
    "reauthorize": 8,
}


def flask(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """Run `flask --app app ...` as an operator would; returns stdout. Raises on failure."""
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "flask"), "--app", "app", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed: {result.stderr}")
    return result.stdout


@dataclass
class OwnDevice:
    id: int
    client_id: str
    secret: str
    access_token: str | None = None


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def record(self, kind: str, seconds: float, ok: bool, detail: str) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            if not ok:
                self.errors[kind] += 1
                if len(self.examples) < 20:
                    self.examples.append(f"{kind}: {detail}")


class Client(threading.Thread):
    """One simulated user script plus the devices it owns."""

    def __init__(self, number: int, base: str, pat: str, stats: Stats, deadline: float, seed: int):
        super().__init__(name=f"soak-client-{number}", daemon=True)
        self.base = base
        self.stats = stats
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.session = requests.Session()
        self.auth = {"Authorization": f"Bearer {pat}"}
        self.devices: list[OwnDevice] = []
        self.next_offset = 0
        self.kinds = list(MIX)
        self.weights = [MIX[k] for k in self.kinds]

    def call(self, kind: str, method: str, path: str, expect: int, **kwargs) -> requests.Response | None:
        started = time.perf_counter()
        try:
            response = self.session.request(method, self.base + path, timeout=30, **kwargs)
        except requests.RequestException as exc:
            self.stats.record(kind, time.perf_counter() - started, False, f"{method} {path}: {exc!r}")
            return None
        elapsed = time.perf_counter() - started
        ok = response.status_code == expect
        self.stats.record(
            kind, elapsed, ok, f"{method} {path} -> {response.status_code} {response.text[:200]}"
        )
        return response if ok else None

    def create(self) -> None:
        code = self.rng.choice(["iPhone1,1", "Watch1,1", "iPad1,1", "iPhone14,2"])
        response = self.call(
            "create",
            "POST",
            "/api/v1/devices",
            200,
            json={"manufacturer": "Apple", "device_code": code},
            headers=self.auth,
        )
        if response is not None:
            body = response.json()
            self.devices.append(OwnDevice(body["id"], body["oauth2_client_id"], body["oauth2_client_secret"]))

    def token(self, device: OwnDevice) -> None:
        response = self.call(
            "token",
            "POST",
            "/token",
            200,
            data={"grant_type": "client_credentials"},
            auth=(device.client_id, device.secret),
        )
        if response is not None:
            body = response.json()
            device.access_token = body["access_token"]

    def step(self) -> None:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        device = self.rng.choice(self.devices) if self.devices else None
        if kind == "create" or device is None:
            self.create()
        elif kind == "list":
            response = self.call(
                "list", "GET", f"/api/v1/devices?limit=20&offset={self.next_offset}", 200, headers=self.auth
            )
            next_id = response.json()["next_id"] if response is not None else None
            # Walk on through the pages now and then; back to the start at the end.
            self.next_offset = next_id if next_id and self.rng.random() < 0.5 else 0
        elif kind == "read":
            self.call("read", "GET", f"/api/v1/device/{device.id}", 200, headers=self.auth)
        elif kind == "read_own":
            if device.access_token is None:
                self.token(device)
            elif device.access_token:
                self.call(
                    "read_own",
                    "GET",
                    f"/api/v1/device/{device.id}",
                    200,
                    headers={"Authorization": f"Bearer {device.access_token}"},
                )
        elif kind == "token":
            self.token(device)
        elif kind == "revoke":
            if device.access_token is None:
                self.token(device)
                return
            if self.call(
                "revoke",
                "POST",
                "/token/revoke",
                200,
                data={"token": device.access_token},
                auth=(device.client_id, device.secret),
            ):
                # Revocation ends every access token of the device: the next read must be refused.
                self.call(
                    "read_own_revoked",
                    "GET",
                    f"/api/v1/device/{device.id}",
                    401,
                    headers={"Authorization": f"Bearer {device.access_token}"},
                )
                device.access_token = None
        elif kind == "reauthorize":
            if self.call("disable", "DELETE", f"/api/v1/device/{device.id}", 204, headers=self.auth) is None:
                return
            if device.access_token:  # a disabled device is cut off at once
                self.call(
                    "read_own_disabled",
                    "GET",
                    f"/api/v1/device/{device.id}",
                    401,
                    headers={"Authorization": f"Bearer {device.access_token}"},
                )
            response = self.call(
                "reauthorize",
                "POST",
                "/api/v1/data-submission/device-authorize",
                200,
                json={"device_id": device.id},
                headers=self.auth,
            )
            if response is not None:
                device.secret = response.json()["oauth2_client_secret"]
                device.access_token = None

    def run(self) -> None:
        for _ in range(2):
            self.create()
        while time.monotonic() < self.deadline:
            self.step()
        self.session.close()


def rss_sample(server: Server) -> list[float]:
    try:
        return server.worker_rss_mb()
    except (FileNotFoundError, ProcessLookupError, RuntimeError):
        return []


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to hold the load (default 10)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--users", type=int, default=4, help="accounts the clients share (default 4)")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: production's)")
    parser.add_argument(
        "--max-growth-mb",
        type=float,
        default=15.0,
        help="largest acceptable growth of any worker's RSS after the first minute (default 15)",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    workers = args.workers or min(4, (os.cpu_count() or 1) * 2)

    with tempfile.TemporaryDirectory(prefix="bioweb-soak-") as tmp:
        tmpdir = Path(tmp)
        database = tmpdir / "bioweb.db"
        env = {
            **os.environ,
            **seed.server_env(f"sqlite:///{database}"),
            "BIOWEB_ACCESS_LOG": str(tmpdir / "access.log"),
        }
        flask(env, "db", "upgrade")
        pats = []
        for n in range(args.users):
            email = f"soak{n}@example.com"
            flask(env, "users", "create", email, "--password-stdin", stdin=PASSWORD + "\n")
            pats.append(flask(env, "tokens", "create", email).strip().splitlines()[-1])

        server = start("bioweb", env=env, log_dir=tmpdir, workers=workers)
        print(f"soak: {args.clients} clients, {args.minutes:g} min, {workers} workers, SQLite at {database}")
        stats = Stats()
        started = time.monotonic()
        deadline = started + args.minutes * 60
        clients = [
            Client(i, server.url, pats[i % len(pats)], stats, deadline, args.seed * 1000 + i)
            for i in range(args.clients)
        ]
        rss: list[tuple[float, list[float]]] = [(0.0, rss_sample(server))]
        try:
            for client in clients:
                client.start()
            next_sample = started + 60
            while any(c.is_alive() for c in clients):
                time.sleep(0.5)
                now = time.monotonic()
                if now >= next_sample and now < deadline:
                    rss.append(((now - started) / 60, rss_sample(server)))
                    total = sum(len(v) for v in stats.latencies.values())
                    errors = sum(stats.errors.values())
                    print(
                        f"  {(now - started) / 60:4.1f} min: {total} requests, {errors} errors, "
                        f"worker RSS MB {', '.join(f'{m:.1f}' for m in rss[-1][1])}",
                        flush=True,
                    )
                    next_sample += 60
                if now > deadline + 120:
                    print("soak: clients did not stop within 2 minutes of the deadline")
                    break
            elapsed = time.monotonic() - started
            rss.append((elapsed / 60, rss_sample(server)))
            workers_alive = len(server.worker_pids())
        finally:
            server.stop()
        db_mb = sum(p.stat().st_size for p in tmpdir.glob("bioweb.db*")) / 2**20

    total = sum(len(v) for v in stats.latencies.values())
    errors = sum(stats.errors.values())
    print(
        f"\nsoak finished: {elapsed / 60:.1f} min, {total} requests, {total / elapsed:.0f} req/s, "
        f"{errors} errors, {workers_alive}/{workers} workers alive, database {db_mb:.1f} MB"
    )
    print(f"\n{'kind':<20}{'count':>9}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for kind in sorted(stats.latencies):
        values = stats.latencies[kind]
        print(
            f"{kind:<20}{len(values):>9}{stats.errors[kind]:>8}"
            f"{statistics.median(values) * 1000:>9.1f}{percentile(values, 0.95) * 1000:>9.1f}"
            f"{percentile(values, 0.99) * 1000:>9.1f}{max(values) * 1000:>9.1f}"
        )
    print("\nworker RSS (MB) by minute:")
    for minute, sample in rss:
        print(f"  {minute:5.1f}  " + "  ".join(f"{m:6.1f}" for m in sample) + f"   total {sum(sample):6.1f}")
    for example in stats.examples:
        print("error:", example)

    # Growth after warm-up: each worker slot's last sample against its sample at minute 1.
    growth = 0.0
    baseline = rss[1][1] if len(rss) > 2 else rss[0][1]
    final = rss[-1][1]
    if baseline and final and len(baseline) == len(final):
        growth = max(b - a for a, b in zip(baseline, final, strict=True))
        print(f"\nlargest worker RSS growth after warm-up: {growth:+.1f} MB (limit {args.max_growth_mb} MB)")
    else:
        print("\nworker set changed during the run (a worker restarted): memory not comparable")
        growth = float("inf")
    failed = errors > 0 or growth > args.max_growth_mb or workers_alive != workers
    print("soak:", "FAILED" if failed else "passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
