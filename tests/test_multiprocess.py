"""Many workers, many processes, one database: the production shape, proven over HTTP.

Two gunicorn instances (two worker processes each) serve one database whose schema came from
`flask db upgrade`, as on a deploy. Everything below goes through real sockets to real
processes: what one process writes, the others see on the very next request; concurrent
writers neither lose nor double anything; the one-shot refresh token is spent exactly once;
and with Redis as the limiter's storage a rate limit is one limit for the whole fleet.
Runs on PostgreSQL (the production database) and on SQLite (one host, WAL, busy timeout).
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from bioweb.config import normalize_database_url
from tests.conftest import PG_ADMIN_URL
from tests.helpers import (
    LiveServer,
    basic,
    bearer,
    create_pg_database,
    drop_pg_database,
    flask_cli,
    make_app,
    make_pat,
    make_user,
    start_servers,
)

# Child processes throughout: gunicorn instances (the stack, marked server by conftest), gunicorn --print-config.
pytestmark = pytest.mark.slow

TIMEOUT = 30  # seconds, per HTTP request
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/11")  # a database number of our own


@dataclass
class Stack:
    database_url: str
    servers: list[LiveServer]
    access_log: Path

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    """Two gunicorn instances x two workers on one freshly migrated database of this module's own."""
    tmp = tmp_path_factory.mktemp(f"multiprocess-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'bioweb.db'}"
    else:
        request.getfixturevalue("pg_database_url")  # skips, or fails under CI, without PostgreSQL
        url = create_pg_database(PG_ADMIN_URL, prefix="bioweb_multiprocess")
    try:
        result = flask_cli(url, "db", "upgrade")
        assert result.returncode == 0, result.stderr
        access_log = tmp / "access.log"
        servers = start_servers(url, count=2, workers=2, env={"BIOWEB_ACCESS_LOG": str(access_log)})
        try:
            yield Stack(url, servers, access_log)
        finally:
            for server in servers:
                server.stop()
    finally:
        if request.param == "postgresql":
            drop_pg_database(PG_ADMIN_URL, url)


def new_owner(database_url: str) -> tuple[int, str]:
    """A user of their own for one test (the module's database is shared): (user id, PAT)."""
    app = make_app(database_url)
    from bioweb.extensions import db

    with app.app_context():
        try:
            user = make_user(f"owner-{uuid.uuid4().hex[:12]}@example.com")
            return user.id, make_pat(user)
        finally:
            db.session.remove()
            db.engine.dispose()


def scalar(database_url: str, sql: str, **params: Any) -> Any:
    """One value straight from the database, bypassing the app."""
    engine = sa.create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


def create_device(base_url: str, pat: str, code: str = "iPhone1,1") -> requests.Response:
    return requests.post(
        base_url + "/api/v1/devices",
        json={"manufacturer": "Apple", "device_code": code},
        headers=bearer(pat),
        timeout=TIMEOUT,
    )


def token_request(base_url: str, client_id: str, secret: str, **form: str) -> requests.Response:
    return requests.post(base_url + "/token", data=form, auth=(client_id, secret), timeout=TIMEOUT)


def all_at_once(calls: list[Callable[[], requests.Response]], threads: int) -> list[requests.Response]:
    """Run `calls` on `threads` threads, released together by a barrier; results in call order."""
    barrier = threading.Barrier(min(threads, len(calls)))

    def run(call: Callable[[], requests.Response], index: int) -> requests.Response:
        if index < threads:
            barrier.wait(timeout=TIMEOUT)
        return call()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(run, call, index) for index, call in enumerate(calls)]
        return [future.result(timeout=120) for future in futures]


def test_what_one_instance_writes_the_other_honours_on_the_next_request(stack: Stack):
    a, b = stack.urls
    _, pat = new_owner(stack.database_url)
    created = create_device(a, pat)
    assert created.status_code == 200, created.text
    device_id = created.json()["id"]
    client_id, secret = created.json()["oauth2_client_id"], created.json()["oauth2_client_secret"]

    # Credentials registered through A work at B; B's token works at A (and at every worker).
    issued = token_request(b, client_id, secret, grant_type="client_credentials")
    assert issued.status_code == 200, issued.text
    access = issued.json()["access_token"]
    for url in (a, b, a, b, a, b):
        response = requests.get(f"{url}/api/v1/device/{device_id}", headers=bearer(access), timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        assert response.json()["id"] == device_id
        assert response.json()["state"] == 1

    # Disabled through B: refused by A on the very next request, and by every worker after it.
    disabled = requests.delete(f"{b}/api/v1/device/{device_id}", headers=bearer(pat), timeout=TIMEOUT)
    assert disabled.status_code == 204
    for url in (a, a, b, a, b, b):
        response = requests.get(f"{url}/api/v1/device/{device_id}", headers=bearer(access), timeout=TIMEOUT)
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_token"
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    for url in (a, b):
        refused = token_request(url, client_id, secret, grant_type="client_credentials")
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_client"
    detail = requests.get(f"{a}/api/v1/device/{device_id}", headers=bearer(pat), timeout=TIMEOUT)
    assert detail.status_code == 200 and detail.json()["state"] == 2


def test_200_concurrent_creations_over_both_instances_lose_and_double_nothing(stack: Stack):
    user_id, pat = new_owner(stack.database_url)
    urls = stack.urls
    calls = [partial(create_device, urls[i % 2], pat) for i in range(200)]
    responses = all_at_once(calls, threads=16)

    bad = [(r.status_code, r.text[:200]) for r in responses if r.status_code != 200]
    assert bad == []
    bodies = [r.json() for r in responses]
    for key in ("id", "uuid", "oauth2_client_id", "oauth2_client_secret"):
        assert len({body[key] for body in bodies}) == 200, key
    ids = {body["id"] for body in bodies}

    # Both instances agree on the list and on the count, and so does the database itself.
    for url in urls:
        listed = requests.get(
            url + "/api/v1/devices", params={"limit": 1000}, headers=bearer(pat), timeout=TIMEOUT
        )
        assert listed.status_code == 200
        assert listed.json()["count"] == 200
        assert {d["id"] for d in listed.json()["results"]} == ids
    assert scalar(stack.database_url, "SELECT count(*) FROM devices WHERE user_id = :u", u=user_id) == 200
    assert scalar(stack.database_url, "SELECT device_count FROM users WHERE id = :u", u=user_id) == 200


def test_the_same_batch_sent_by_8_writers_at_once_is_stored_exactly_once(stack: Stack):
    """Retries racing each other over both instances: every sample once, the others duplicates
    (half the batch keyed by client_sample_id, half by its dates)."""
    a, _ = stack.urls
    _, pat = new_owner(stack.database_url)
    created = create_device(a, pat, "Watch1,1")
    assert created.status_code == 200, created.text
    device = created.json()
    metric = requests.post(
        a + "/api/v1/metrics",
        json={"device_id": device["id"], "sample_type": "stepCount", "quantity_type": "count"},
        headers=bearer(pat),
        timeout=TIMEOUT,
    )
    assert metric.status_code == 201, metric.text
    metric_id = metric.json()["id"]
    issued = token_request(
        a, device["oauth2_client_id"], device["oauth2_client_secret"], grant_type="client_credentials"
    )
    access = issued.json()["access_token"]
    samples = [
        {
            "metric_id": metric_id,
            "start_date": f"2022-01-12T{n // 60:02d}:{n % 60:02d}:00Z",
            "end_date": f"2022-01-12T{n // 60:02d}:{n % 60:02d}:30Z",
            "quantity": n,
            **({"client_sample_id": f"step-{n}"} if n % 2 else {}),
        }
        for n in range(200)
    ]

    def send(url: str) -> requests.Response:
        return requests.post(
            url + "/api/v1/quantity-samples",
            json={"samples": samples},
            headers=bearer(access),
            timeout=TIMEOUT,
        )

    responses = all_at_once([partial(send, stack.urls[i % 2]) for i in range(8)], threads=8)
    assert [(r.status_code, r.text[:200]) for r in responses if r.status_code != 200] == []
    bodies = [r.json() for r in responses]
    assert sum(b["accepted"] for b in bodies) == 200
    assert sum(b["duplicates"] for b in bodies) == 7 * 200
    assert all(b["replaced"] == 0 and b["rejected"] == [] for b in bodies)
    database = stack.database_url
    assert scalar(database, "SELECT count(*) FROM quantity_samples WHERE metric_id = :m", m=metric_id) == 200
    assert (
        scalar(
            database,
            "SELECT count(DISTINCT quantity) FROM quantity_samples WHERE metric_id = :m",
            m=metric_id,
        )
        == 200
    )
    listed = requests.get(
        a + "/api/v1/quantity-samples",
        params={"metric_id": metric_id, "limit": 1000},
        headers=bearer(access),
        timeout=TIMEOUT,
    ).json()
    assert listed["count"] == 200 and [s["quantity"] for s in listed["results"]] == list(range(200))


def service_refresh_token(database_url: str, client_id: str, secret: str) -> str:
    """A refresh token of the device's companion-app grant: its owner's approval made through
    the service, the code traded at /token in process."""
    from bioweb.extensions import db
    from bioweb.models import Device
    from tests.helpers import grant_code

    app = make_app(database_url)
    with app.app_context():
        try:
            device = db.session.scalar(sa.select(Device).where(Device.client_id == client_id))
            code = grant_code(device.user, client_id)
            form = {"grant_type": "authorization_code", "code": code}
            answer = app.test_client().post("/token", data=form, headers=basic(client_id, secret))
            return str(answer.get_json()["refresh_token"])
        finally:
            db.session.remove()
            db.engine.dispose()


def test_concurrent_refreshes_of_one_refresh_token_exactly_one_wins(stack: Stack):
    a, b = stack.urls
    _, pat = new_owner(stack.database_url)
    created = create_device(a, pat).json()
    client_id, secret = created["oauth2_client_id"], created["oauth2_client_secret"]
    refresh = service_refresh_token(stack.database_url, client_id, secret)

    form = {"grant_type": "refresh_token", "refresh_token": refresh}
    calls = [partial(token_request, (a, b)[i % 2], client_id, secret, **form) for i in range(12)]
    responses = all_at_once(calls, threads=12)

    winners = [r for r in responses if r.status_code == 200]
    losers = [r for r in responses if r.status_code != 200]
    assert len(winners) == 1, [(r.status_code, r.text[:200]) for r in responses]
    assert {(r.status_code, r.json()["error"]) for r in losers} == {(400, "invalid_grant")}
    won = winners[0].json()
    assert won["refresh_token"] != refresh and won["access_token"]

    # Each loser presented a spent refresh token: reuse, so the family (the winner's new pair
    # included) is revoked, on every instance.
    for url in (a, b):
        response = requests.get(
            f"{url}/api/v1/device/{created['id']}", headers=bearer(won["access_token"]), timeout=TIMEOUT
        )
        assert response.status_code == 401
    form["refresh_token"] = won["refresh_token"]
    again = token_request(a, client_id, secret, **form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def ask_for_tokens_until(stop: threading.Event, url: str, auth: tuple[str, str], obtained: list[str]) -> None:
    """Client credentials at /token, one request after another, until `stop`; collect the tokens."""
    with requests.Session() as session:
        while not stop.is_set():
            answer = session.post(
                url + "/token", data={"grant_type": "client_credentials"}, auth=auth, timeout=TIMEOUT
            )
            if answer.status_code == 200:
                obtained.append(answer.json()["access_token"])


@pytest.mark.parametrize("change", ["reauthorize", "disable"])
def test_token_requests_racing_a_change_leave_no_old_token_alive(stack: Stack, change: str):
    """Six clients ask /token with the device's secret, over both instances, while its owner
    re-authorizes it (or disables it, then re-authorizes it once the clients stop). Afterwards
    not one token obtained with the old secret works, and the old secret itself is refused."""
    a, b = stack.urls
    _, pat = new_owner(stack.database_url)
    for _trial in range(2):
        created = create_device(a, pat).json()
        device_id, client_id, secret = (
            created["id"],
            created["oauth2_client_id"],
            created["oauth2_client_secret"],
        )
        stop = threading.Event()
        obtained: list[str] = []

        authorize = f"{b}/api/v1/data-submission/device-authorize"
        with ThreadPoolExecutor(max_workers=6) as pool:
            clients = [
                pool.submit(ask_for_tokens_until, stop, (a, b)[i % 2], (client_id, secret), obtained)
                for i in range(6)
            ]
            time.sleep(0.4)
            if change == "reauthorize":
                changed = requests.post(
                    authorize, json={"device_id": device_id}, headers=bearer(pat), timeout=TIMEOUT
                )
                assert changed.status_code == 200
            else:
                changed = requests.delete(
                    f"{b}/api/v1/device/{device_id}", headers=bearer(pat), timeout=TIMEOUT
                )
                assert changed.status_code == 204
            time.sleep(0.3)
            stop.set()
            for future in clients:
                future.result(timeout=TIMEOUT)
        if change == "disable":  # re-enabling must not revive anything from before
            assert (
                requests.post(
                    authorize, json={"device_id": device_id}, headers=bearer(pat), timeout=TIMEOUT
                ).status_code
                == 200
            )
        assert len(obtained) > 6, "the clients got no tokens before the change: the race was not run"
        with requests.Session() as session:
            alive = [
                token
                for i, token in enumerate(obtained)
                if session.get(
                    f"{(a, b)[i % 2]}/api/v1/device/{device_id}", headers=bearer(token), timeout=TIMEOUT
                ).status_code
                != 401
            ]
        assert alive == [], f"{len(alive)} of {len(obtained)} tokens obtained with the old secret still work"
        assert token_request(a, client_id, secret, grant_type="client_credentials").status_code == 401


def test_access_log_records_paths_but_no_secrets(stack: Stack):
    a, _ = stack.urls
    _, pat = new_owner(stack.database_url)
    created = create_device(a, pat).json()
    secret = created["oauth2_client_secret"]
    token_request(a, created["oauth2_client_id"], secret, grant_type="client_credentials")
    missing = 10**9 + uuid.uuid4().int % 10**9  # a path of this test's own
    response = requests.get(
        f"{a}/api/v1/device/{missing}", params={"access_token": pat}, headers=bearer(pat), timeout=TIMEOUT
    )
    assert response.status_code == 404
    # gunicorn writes the line just after sending the response: give it a moment.
    marker = re.compile(rf'"GET /api/v1/device/{missing}" 404 \d+ \d+ms')
    deadline = time.monotonic() + 10
    while not marker.search(log := stack.access_log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.search(log)
    assert re.search(r'"POST /api/v1/devices" 200 \d+ \d+ms', log)
    assert pat not in log and secret not in log
    assert "access_token=" not in log and "Bearer" not in log


# --- Rate limits across processes --------------------------------------------------------

LIMIT = 5


def _redis():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        message = f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__})"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, so this is a failure)")
        pytest.skip(message)
    return client


def _get_tokens(url: str, device: dict[str, Any]) -> requests.Response:
    return token_request(
        url, device["oauth2_client_id"], device["oauth2_client_secret"], grant_type="client_credentials"
    )


def _guess(servers: list[LiveServer], device: dict[str, Any], total: int) -> list[requests.Response]:
    """`total` token requests for one device with a wrong secret (failed authentications are
    what the limit counts), one after another, alternating over `servers`."""
    client_id = device["oauth2_client_id"]
    return [
        token_request(servers[i % len(servers)].url, client_id, "bcs_guess", grant_type="client_credentials")
        for i in range(total)
    ]


@pytest.mark.parametrize("stack", ["postgresql"], indirect=True)
def test_token_rate_limit_is_one_limit_across_processes_with_redis(stack: Stack):
    """Rate limits do not depend on the database; the PostgreSQL stack stands for production."""
    redis_client = _redis()
    _, pat = new_owner(stack.database_url)
    devices = [create_device(stack.urls[0], pat).json() for _ in range(2)]
    limited = start_servers(
        stack.database_url,
        count=2,
        workers=2,
        env={
            "RATELIMIT_ENABLED": "true",
            "RATELIMIT_STORAGE_URI": REDIS_URL,
            "BIOWEB_TOKEN_RATELIMIT_PER_CLIENT": f"{LIMIT}/minute",
            "BIOWEB_TOKEN_RATELIMIT_PER_IP": "10000/minute",
        },
    )
    try:
        first, second = devices
        responses = _guess(limited, first, 30)
        statuses = [r.status_code for r in responses]
        assert statuses == [401] * LIMIT + [429] * (30 - LIMIT), statuses
        for response in responses:
            if response.status_code != 429:
                continue
            assert 0 < int(response.headers["Retry-After"]) <= 60
            body = response.json()
            assert re.fullmatch(r"[a-z_]+", body["error"])
            assert body["error_description"]
        # Limited now, the guessed client with its right secret too (same address)...
        assert {_get_tokens(server.url, first).status_code for server in limited} == {429}
        # ...but the limit is per client: another device is served at once, by either instance.
        for server in limited:
            other = _get_tokens(server.url, second)
            assert other.status_code == 200, other.text
        # The counters live in Redis, shared by all four workers.
        assert any(redis_client.scan_iter(match=f"*{first['oauth2_client_id']}*"))
    finally:
        for server in limited:
            server.stop()
        for device in devices:
            keys = list(redis_client.scan_iter(match=f"*{device['oauth2_client_id']}*"))
            if keys:
                redis_client.delete(*keys)
        keys = list(redis_client.scan_iter(match="*127.0.0.1*"))
        if keys:
            redis_client.delete(*keys)
        redis_client.close()


@pytest.mark.parametrize("stack", ["postgresql"], indirect=True)
def test_without_shared_storage_each_process_counts_alone(stack: Stack):
    """Why Redis: with the default in-memory storage every worker keeps its own counters, so two
    instances let through at least twice the limit of failed authentications."""
    _, pat = new_owner(stack.database_url)
    device = create_device(stack.urls[0], pat).json()
    limited = start_servers(
        stack.database_url,
        count=2,
        workers=2,
        env={
            "RATELIMIT_ENABLED": "true",
            "RATELIMIT_STORAGE_URI": "memory://",
            "BIOWEB_TOKEN_RATELIMIT_PER_CLIENT": f"{LIMIT}/minute",
            "BIOWEB_TOKEN_RATELIMIT_PER_IP": "10000/minute",
        },
    )
    try:
        responses = _guess(limited, device, 40)
    finally:
        for server in limited:
            server.stop()
    counted = [r.status_code for r in responses].count(401)
    assert 2 * LIMIT <= counted <= 4 * LIMIT


# --- gunicorn.conf.py ----------------------------------------------------------------------


def _gunicorn_settings(env: dict[str, str]) -> dict[str, str]:
    """gunicorn's effective settings for app:app under `env`, as gunicorn itself prints them."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--print-config", "app:app"],
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY": "test-secret-key-not-for-production", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    settings = {}
    for line in result.stdout.splitlines():
        name, sep, value = line.partition(" = ")
        if sep:
            settings[name.strip()] = value.strip()
    return settings


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"WEB_CONCURRENCY": "3", "BIOWEB_THREADS": "4", "BIOWEB_GRACEFUL_TIMEOUT": "7"},
            {"workers": "3", "threads": "4", "worker_class": "gthread", "graceful_timeout": "7"},
        ),
        (
            {"WEB_CONCURRENCY": "2", "BIOWEB_THREADS": "", "BIOWEB_BIND": "0.0.0.0:9000"},
            {"workers": "2", "threads": "1", "worker_class": "sync", "bind": "['0.0.0.0:9000']"},
        ),
    ],
)
def test_gunicorn_config_comes_from_the_environment(env: dict[str, str], expected: dict[str, str]):
    settings = _gunicorn_settings(env)
    assert {name: settings[name] for name in expected} == expected
    # Several instances on one host must not fight over gunicorn's default control socket.
    assert settings["control_socket_disable"] == "True"
    assert "%(U)s" in settings["access_log_format"] and "%(r)s" not in settings["access_log_format"]


def test_concurrent_writes_into_the_same_slots_keep_the_rollups_exact(stack: Stack):
    """Batches, replacements and deletes of one metric's samples, all into the same few slots,
    from 4 workers at once: the rollups equal a recomputation from the samples afterwards (the
    recomputing writer locks the rollup rows, so a concurrent insert adds to its result)."""
    from tests.test_calculations import assert_rollups_exact

    _, pat = new_owner(stack.database_url)
    a, b = stack.urls
    device = create_device(a, pat, "Watch6,1").json()
    metric = requests.post(
        a + "/api/v1/metrics",
        json={"device_id": device["id"], "sample_type": "heartRate", "quantity_type": "count/min"},
        headers=bearer(pat),
        timeout=TIMEOUT,
    ).json()
    base = "2024-05-01T06:{:02d}:{:02d}Z"

    def items(writer: int, version: int, count: int = 40) -> list[dict[str, Any]]:
        return [
            {
                "metric_id": metric["id"],
                "start_date": base.format((i * 7 + writer * 11 + version) % 45, i % 60),
                "end_date": base.format((i * 7 + writer * 11 + version) % 45, i % 60),
                "quantity": float(60 + writer * 10 + version + i % 7),
                "client_sample_id": f"w{writer}-{i}",
                "client_sample_version": version,
            }
            for i in range(count)
        ]

    def post(url: str, body: list[dict[str, Any]]) -> requests.Response:
        return requests.post(
            url + "/api/v1/quantity-samples", json={"samples": body}, headers=bearer(pat), timeout=TIMEOUT
        )

    first = all_at_once([partial(post, (a, b)[w % 2], items(w, 1)) for w in range(8)], threads=8)
    assert all(r.status_code == 200 and r.json()["accepted"] == 40 for r in first), [r.text for r in first]
    # Replacements (moving samples between slots) racing new samples into the same slots.
    second = all_at_once(
        [partial(post, (a, b)[w % 2], items(w, 2) if w < 4 else items(w + 8, 1)) for w in range(8)], threads=8
    )
    assert all(r.status_code == 200 for r in second), [r.text for r in second]
    listed = requests.get(
        a + f"/api/v1/quantity-samples?metric_id={metric['id']}&limit=1000",
        headers=bearer(pat),
        timeout=TIMEOUT,
    ).json()["results"]
    deletes = [
        partial(
            requests.delete,
            (a, b)[i % 2] + f"/api/v1/quantity-sample/{s['uuid']}",
            headers=bearer(pat),
            timeout=TIMEOUT,
        )
        for i, s in enumerate(listed[::5])
    ]
    racing = [partial(post, (a, b)[w % 2], items(w + 20, 1)) for w in range(4)]
    done = all_at_once(deletes + racing, threads=8)
    assert all(r.status_code in (200, 204) for r in done), [r.text for r in done]

    app = make_app(stack.database_url)
    from bioweb.extensions import db

    with app.app_context():
        try:
            assert_rollups_exact([metric["id"]])
        finally:
            db.session.remove()
            db.engine.dispose()
