"""Faults: the database goes away under a live gunicorn server and comes back; a worker is killed
with SIGKILL in the middle of a write load.

The database outage uses a small TCP proxy between the server and PostgreSQL that the test can
cut and restore (the shared PostgreSQL server itself is never touched), so it runs on PostgreSQL
only. The SIGKILL test runs on both databases.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import Device
from tests.helpers import LiveServer, bearer, make_pat, make_user


class CuttableProxy:
    """A loopback TCP proxy to `target` that can drop every connection and refuse new ones (cut),
    then accept again on the same port (restore)."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.listener: socket.socket | None = None
        self.port = 0
        self.stopping = False
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                downstream, _ = listener.accept()
            except OSError:
                return  # the listener was closed: cut or stopped
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                downstream.close()
                continue
            with self.lock:
                self.pairs.append((downstream, upstream))
            threading.Thread(target=self._pump, args=(downstream, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (a, b):
                try:
                    sock.close()
                except OSError:
                    pass

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        if self.listener:
            # shutdown() wakes the thread blocked in accept(); close() alone would not, and the
            # kernel would go on accepting on the old socket.
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass

    def restore(self) -> None:
        self._listen()

    def close(self) -> None:
        self.cut()


def _error_shape(response: requests.Response) -> dict:
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error", "error_description"}, body
    return body


# PostgreSQL only: the outage is a cut TCP connection, and SQLite has no connection to cut.
@pytest.mark.server
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_database_outage_answers_503_and_recovers_without_restart(app, database_url):
    pat = make_pat(make_user())
    parts = urlsplit(database_url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    server = LiveServer(proxied, workers=2, env={"BIOWEB_DB_POOL_SIZE": "2"})
    server.start()
    session = requests.Session()
    auth = bearer(pat)
    create = {"manufacturer": "Apple", "device_code": "iPhone1,1"}
    try:
        assert session.get(f"{server.url}/api/v1/devices", headers=auth, timeout=10).status_code == 200
        assert (
            session.post(f"{server.url}/api/v1/devices", json=create, headers=auth, timeout=10).status_code
            == 200
        )

        proxy.cut()
        # Several requests, so that every worker meets the outage with its pooled connections.
        for _ in range(6):
            for method, path, kwargs in (
                ("GET", "/api/v1/devices", {}),
                ("GET", "/api/v1/device/1", {}),
                ("POST", "/api/v1/devices", {"json": create}),
            ):
                response = session.request(method, server.url + path, headers=auth, timeout=30, **kwargs)
                assert response.status_code == 503, (method, path, response.status_code, response.text)
                assert _error_shape(response)["error"] == "temporarily_unavailable"
                assert response.headers.get("Retry-After")
            health = session.get(f"{server.url}/healthz", timeout=30)
            assert health.status_code == 503
            assert "database" in _error_shape(health)["error_description"].lower()

        proxy.restore()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if session.get(f"{server.url}/healthz", timeout=10).status_code == 200:
                break
            time.sleep(0.2)
        else:
            pytest.fail("/healthz did not recover within 30 s of the database coming back")
        # Every worker serves again (same processes: no restart).
        for _ in range(6):
            assert session.get(f"{server.url}/api/v1/devices", headers=auth, timeout=10).status_code == 200
        created = session.post(f"{server.url}/api/v1/devices", json=create, headers=auth, timeout=10)
        assert created.status_code == 200
        assert server.process.poll() is None
    finally:
        session.close()
        server.stop()
        proxy.close()
    db.session.remove()
    # Nothing was written during the outage: the two creates before and after it, no more.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Device)) == 2


def _worker_pids(master: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


@pytest.mark.server
def test_sigkilled_worker_loses_no_acknowledged_write(app, database_url):
    pat = make_pat(make_user())
    server = LiveServer(database_url, workers=2)
    server.start()
    acknowledged: list[tuple[int, str]] = []
    failures: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()
    per_client, clients = 25, 6

    def client(number: int) -> None:
        with requests.Session() as session:
            for _ in range(per_client):
                try:
                    response = session.post(
                        f"{server.url}/api/v1/devices",
                        json={"manufacturer": "Apple", "device_code": "Watch1,1"},
                        headers=bearer(pat),
                        timeout=30,
                    )
                except requests.RequestException as exc:  # the killed worker's in-flight request
                    with lock:
                        failures.append(repr(exc))
                    continue
                if response.status_code == 200:
                    body = response.json()
                    with lock:
                        acknowledged.append((body["id"], body["oauth2_client_id"]))
                else:
                    with lock:
                        failures.append(f"{response.status_code} {response.text[:200]}")

    try:
        with ThreadPoolExecutor(max_workers=clients) as pool:
            futures = [pool.submit(client, n) for n in range(clients)]
            deadline = time.monotonic() + 60
            while len(acknowledged) < 30 and time.monotonic() < deadline:
                time.sleep(0.02)
            victim = _worker_pids(server.process.pid)[0]
            os.kill(victim, signal.SIGKILL)
            killed.set()
            acknowledged_at_kill = len(acknowledged)
            for future in futures:
                future.result(timeout=120)
        assert server.process.poll() is None, "the gunicorn master survives a worker's death"
        assert victim not in _worker_pids(server.process.pid)
    finally:
        server.stop()

    assert killed.is_set()
    assert len(acknowledged) > acknowledged_at_kill, "the service went on creating after the kill"
    # At most the requests in flight at the moment of the kill fail; nothing answers 5xx.
    assert all(not f.startswith("5") for f in failures), failures
    assert len(failures) <= clients, failures
    db.session.remove()
    stored = dict(db.session.execute(sa.select(Device.id, Device.client_id)).all())
    lost = [(i, c) for i, c in acknowledged if stored.get(i) != c]
    assert not lost, f"acknowledged creates missing from the database: {lost}"
    assert len(acknowledged) + len(failures) == per_client * clients
