"""Start and stop gunicorn servers under the production configuration, and read their memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
GUNICORN_CONF = ROOT / "gunicorn.conf.py"


@dataclass
class Server:
    """A running gunicorn master started by the harness."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The master's children, i.e. the workers (from /proc/<pid>/task/<pid>/children)."""
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
        """SIGTERM the master (graceful shutdown), SIGKILL after 30 s."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


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


def start(
    name: str, wsgi_app: str, cwd: Path, env: dict[str, str], log_dir: Path, health_path: str, workers: int
) -> Server:
    """Serve `wsgi_app` from `cwd` with gunicorn.conf.py and the given environment.

    Only the documented knobs of gunicorn.conf.py are set (WEB_CONCURRENCY, BIOWEB_BIND);
    everything else is the production configuration. Waits until `health_path` answers 200
    and all workers are up. Raises RuntimeError if it does not come up in 60 s.
    """
    port = free_port()
    full_env = {
        **os.environ,
        **env,
        "WEB_CONCURRENCY": str(workers),
        "BIOWEB_BIND": f"127.0.0.1:{port}",
    }
    log = log_dir / f"{name}.log"
    with log.open("wb") as fh:
        process = subprocess.Popen(
            [str(GUNICORN), "--config", str(GUNICORN_CONF), wsgi_app],
            cwd=cwd,
            env=full_env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    server = Server(name, process, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(server.url + health_path, timeout=2) as response:
                if response.status == 200 and len(server.worker_pids()) == workers:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} did not come up within 60 s; see {log}")
