"""The one gunicorn launcher: `make bench`, `make soak` and the test suite's live servers.

Every server runs under the production gunicorn.conf.py; only its documented knobs are set
(WEB_CONCURRENCY, BIOWEB_BIND), plus whatever environment the caller adds. It lives here, in
the bench package, because the harness is its heaviest user and the tests import the
project's packages anyway (tests/helpers.py builds LiveServer on it); bioweb itself never
starts servers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
GUNICORN_CONF = ROOT / "gunicorn.conf.py"


def rss_kb(pid: int) -> int:
    """VmRSS of a process in kB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A gunicorn master serving `wsgi_app` from `cwd`, on a free loopback port chosen up front
    (so `url` is known before `start`, e.g. for BIOWEB_BASE_URL).

    Its output (access and error logs) goes to `log_dir/<name>.log`, or to a temporary file
    removed by `stop` when no `log_dir` is given: never to a pipe nobody reads.
    """

    def __init__(
        self,
        name: str = "bioweb",
        wsgi_app: str = "app:app",
        *,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
        workers: int = 2,
        health_path: str = "/healthz",
        log_dir: Path | None = None,
        args: Sequence[str] = (),
    ):
        self.name = name
        self.wsgi_app = wsgi_app
        self.cwd = cwd
        self.env = dict(env or {})
        self.workers = workers
        self.health_path = health_path
        self.log_dir = log_dir
        self.args = list(args)
        self.port = free_port()
        self.log: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Server:
        """Start gunicorn; return once `health_path` answers 200 and all workers are up.

        Raises RuntimeError (with the end of the server's log) if it exits or does not come
        up within `timeout` seconds.
        """
        env = {
            **os.environ,
            **self.env,
            "WEB_CONCURRENCY": str(self.workers),
            "BIOWEB_BIND": f"127.0.0.1:{self.port}",
        }
        if self.log_dir is None:
            fd, path = tempfile.mkstemp(prefix=f"gunicorn-{self.name}-", suffix=".log")
            os.close(fd)
            self.log = Path(path)
        else:
            self.log = self.log_dir / f"{self.name}.log"
        with self.log.open("wb") as fh:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF), *self.args, self.wsgi_app],
                cwd=self.cwd,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} (gunicorn) exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + self.health_path, timeout=5) as response:
                    if response.status == 200 and len(self.worker_pids()) == self.workers:
                        return self
            # Not listening yet, or its workers are still importing the app.
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"{self.name} (gunicorn) did not come up within {timeout:g} s:\n{tail}")

    def log_tail(self, chars: int = 4000) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_bytes()[-chars:].decode(errors="replace")

    def worker_pids(self) -> list[int]:
        """The master's children, i.e. the workers (from /proc/<pid>/task/<pid>/children)."""
        assert self.process is not None, "not started"
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return sorted(int(pid) for pid in path.read_text().split())

    def worker_rss_mb(self) -> list[float]:
        """Resident memory (VmRSS) of each worker, in MB (MiB)."""
        return [rss_kb(pid) / 1024 for pid in self.worker_pids()]

    def cpu_seconds(self) -> float:
        """User + system CPU time the workers have used so far (from /proc/<pid>/stat).

        CPU per request is immune to other load on the machine, unlike requests per second.
        """
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.worker_pids():
            # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / ticks

    def stop(self) -> None:
        """SIGTERM the master (graceful shutdown), SIGKILL after 30 s; a temporary log goes too."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log_dir is None and self.log is not None:
            self.log.unlink(missing_ok=True)


def start(
    name: str,
    wsgi_app: str = "app:app",
    *,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    health_path: str = "/healthz",
    workers: int = 2,
) -> Server:
    """Start one server (see `Server`) and return it once it is healthy."""
    server = Server(
        name, wsgi_app, cwd=cwd, env=env, workers=workers, health_path=health_path, log_dir=log_dir
    )
    return server.start()


def start_many(servers: Sequence[Server]) -> list[Server]:
    """Start `servers` at the same time; if any fails, stop them all and raise its error."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(len(servers), 1)) as pool:
        futures = [pool.submit(server.start) for server in servers]
    failures = [f.exception() for f in futures if f.exception() is not None]
    if failures:
        for server in servers:
            server.stop()
        raise failures[0]
    return list(servers)
