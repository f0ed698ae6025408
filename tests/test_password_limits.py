"""Limits on every password check (issue 14, point 2), through HTTP on both databases: the
password page's current-password check and the login form count failed checks per (account,
client address) and per client address, share those counts, answer 429 with Retry-After and
a clear page once a limit is reached, never lock an account for other addresses, and answer
the same whether or not an account exists. With Redis storage, two gunicorn instances count
as one; with in-memory storage and several workers, gunicorn warns at start."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import User
from bioweb.security import check_password
from tests.helpers import PASSWORD, LiveServer, app_with_database, input_value, log_in, make_user

NEW = "an entirely new long passphrase"
WRONG = "not the password at all"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LIMITED = "Too many wrong passwords were tried from your network"


def limited_app(database_url: str, **limits: Any):
    """The app with rate limits on (in-memory storage unless given), counters of its own."""
    return app_with_database(
        database_url, RATELIMIT_ENABLED=True, RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}", **limits
    )


@pytest.fixture
def defaults_app(database_url: str) -> Iterator:
    """The production limits (bioweb/config.py's defaults)."""
    with limited_app(database_url) as app:
        yield app


@pytest.fixture
def small_app(database_url: str) -> Iterator:
    """3 failures per (account, address), 5 per address."""
    with limited_app(
        database_url,
        BIOWEB_PASSWORD_RATELIMIT_PER_ACCOUNT="3/minute",
        BIOWEB_PASSWORD_RATELIMIT_PER_IP="5/minute",
    ) as app:
        yield app


def from_address(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def login(client, email: str = "ada@example.com", password: str = WRONG):
    return client.post("/login", data={"email": email, "password": password})


def change_password(client, current: str = WRONG, new: str = NEW):
    return client.post("/account/password", data={"current_password": current, "new_password": new})


def stored_password_is(password: str, email: str = "ada@example.com") -> bool:
    db.session.expire_all()
    user = db.session.scalars(sa.select(User).where(User.email == email)).one()
    return check_password(user.password_hash, password)


def assert_limited(response) -> None:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= 3600
    assert response.mimetype == "text/html"
    assert "Too many attempts" in response.text  # the page's heading
    assert LIMITED in response.text and "Try again in" in response.text


# --- the password page ---------------------------------------------------------------------------


def test_forty_wrong_current_passwords_are_stopped_before_the_right_one_works(defaults_app):
    """The reproduction: 40 wrong guesses in a row from one signed-in session, then the right
    one succeeded. With the default limits the 11th wrong guess is already refused."""
    make_user()
    client = defaults_app.test_client()
    log_in(client)
    statuses = [change_password(client, f"guess number {i:02d}").status_code for i in range(40)]
    assert statuses == [400] * 10 + [429] * 30
    right = change_password(client, PASSWORD)
    assert_limited(right)
    assert stored_password_is(PASSWORD)
    # The page itself still opens, and the person is still signed in.
    assert client.get("/account/password").status_code == 200


def test_password_page_limit_per_address_covers_every_account(small_app):
    make_user()
    make_user("grace@example.com")
    ada, grace = from_address(small_app, "10.0.0.1"), from_address(small_app, "10.0.0.1")
    log_in(ada)
    log_in(grace, "grace@example.com")
    assert [change_password(ada).status_code for _ in range(3)] == [400] * 3
    assert [change_password(grace).status_code for _ in range(2)] == [400] * 2
    # Five failures from 10.0.0.1: every account's check from there waits, the right password too.
    assert_limited(change_password(grace, PASSWORD))
    assert_limited(login(from_address(small_app, "10.0.0.1"), "grace@example.com", PASSWORD))
    assert stored_password_is(PASSWORD, "grace@example.com")
    # Another address is not affected.
    elsewhere = from_address(small_app, "10.0.0.2")
    log_in(elsewhere, "grace@example.com")
    assert change_password(elsewhere, PASSWORD).status_code == 303
    assert stored_password_is(NEW, "grace@example.com")


def test_other_mistakes_on_the_password_page_are_not_counted(small_app):
    make_user()
    client = small_app.test_client()
    log_in(client)
    for _ in range(6):
        assert change_password(client, PASSWORD, "too short").status_code == 400
        assert change_password(client, "", NEW).status_code == 400
    assert change_password(client, PASSWORD).status_code == 303


def test_the_login_form_and_the_password_page_share_one_count(small_app):
    make_user()
    client = from_address(small_app, "10.0.0.1")
    log_in(client)
    assert login(from_address(small_app, "10.0.0.1")).status_code == 400
    assert login(from_address(small_app, "10.0.0.1"), "ADA@example.com ").status_code == 400
    assert change_password(client).status_code == 400
    assert_limited(change_password(client, PASSWORD))
    assert_limited(login(from_address(small_app, "10.0.0.1"), password=PASSWORD))


# --- the login form ------------------------------------------------------------------------------


def test_login_is_limited_per_account_and_address_without_locking_the_account(small_app):
    make_user()
    make_user("grace@example.com")
    attacker = from_address(small_app, "203.0.113.9")
    assert [login(attacker).status_code for _ in range(3)] == [400] * 3
    assert_limited(login(attacker))
    assert_limited(login(attacker, password=PASSWORD))  # the right password waits too
    # Ada, from her own address, logs in as usual: the attacker cannot lock her out.
    assert log_in(from_address(small_app, "198.51.100.1")).status_code == 303
    # From the attacker's address, another account is still open (until the address limit).
    assert log_in(from_address(small_app, "203.0.113.9"), "grace@example.com").status_code == 303


def test_login_is_limited_per_address_across_accounts(small_app):
    make_user()
    sprayer = from_address(small_app, "203.0.113.9")
    for i in range(5):
        assert login(sprayer, f"person{i}@example.com", "Summer2024!!").status_code == 400
    assert_limited(login(sprayer, "someone.else@example.com"))
    assert_limited(login(from_address(small_app, "203.0.113.9"), password=PASSWORD))
    assert log_in(from_address(small_app, "198.51.100.1")).status_code == 303


def test_successful_logins_and_empty_forms_are_not_counted(small_app):
    make_user()
    client = from_address(small_app, "10.0.0.1")
    for _ in range(6):
        assert login(client, password="").status_code == 400
        assert log_in(client).status_code == 303
        assert client.post("/logout").status_code == 303
    assert login(client).status_code == 400


def test_login_answers_do_not_tell_whether_an_account_exists(small_app):
    make_user()

    def answers(email: str, address: str) -> list[tuple[int, str]]:
        client = from_address(small_app, address)
        out = []
        for _ in range(4):
            response = login(client, email)
            text = re.sub(r'name="csrf_token"[^>]*>', "", response.text)
            text = re.sub(r"Try again in \d+ seconds?", "Try again in N seconds", text)
            out.append((response.status_code, text.replace(email, "EMAIL")))
        return out

    known = answers("ada@example.com", "10.1.0.1")
    unknown = answers("bob@example.com", "10.1.0.2")
    assert [status for status, _ in known] == [400, 400, 400, 429]
    assert known == unknown
    assert "That email and password do not match an account." in known[0][1]


def test_signup_keeps_its_own_limit(database_url):
    with limited_app(database_url, BIOWEB_SIGNUP_RATELIMIT="2/minute") as app:
        client = app.test_client()
        bad = {"email": "x@example.com", "password": "short", "first_name": "X", "last_name": "Y"}
        assert [client.post("/signup", data=bad).status_code for _ in range(2)] == [400, 400]
        blocked = client.post("/signup", data=bad)
        assert blocked.status_code == 429 and "Too many sign-ups from your network." in blocked.text
        assert int(blocked.headers["Retry-After"]) > 0


# --- shared storage across processes; the warning at start ----------------------------------------


def _redis():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL} (CI is set, so this is a failure)")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}; set TEST_REDIS_URL")
    return client


def _failed_login(base: str, email: str, password: str = WRONG) -> requests.Response:
    """A login through the real form (CSRF token and cookie of its own) at `base`."""
    with requests.Session() as browser:
        token = input_value(browser.get(f"{base}/login", timeout=10).text, "csrf_token")
        return browser.post(
            f"{base}/login",
            data={"email": email, "password": password, "csrf_token": token},
            allow_redirects=False,
            timeout=10,
        )


def test_with_redis_two_instances_count_failed_logins_as_one(app, database_url):
    redis_client = _redis()
    make_user()
    prefix = f"test-{uuid.uuid4().hex}"
    env = {
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "RATELIMIT_KEY_PREFIX": prefix,
        "BIOWEB_PASSWORD_RATELIMIT_PER_ACCOUNT": "4/minute",
        "BIOWEB_PASSWORD_RATELIMIT_PER_IP": "1000/minute",
    }
    servers = [LiveServer(database_url, workers=2, env=env) for _ in range(2)]
    try:
        for server in servers:
            server.start()
        statuses = [_failed_login(servers[i % 2].url, "ada@example.com").status_code for i in range(8)]
        assert statuses == [400] * 4 + [429] * 4
        right = _failed_login(servers[1].url, "ada@example.com", PASSWORD)
        assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0
        # The counters live in Redis under the deployment's prefix, with no email in the keys.
        keys = [key.decode() for key in redis_client.scan_iter(match=f"*{prefix}*")]
        assert keys and not any("ada@" in key or "example.com" in key for key in keys)
        # Shared storage: no warning at start.
        assert not any("count rate limits in memory" in server.log_tail() for server in servers)
    finally:
        for server in servers:
            server.stop()
        keys = list(redis_client.scan_iter(match=f"*{prefix}*"))
        if keys:
            redis_client.delete(*keys)
        redis_client.close()


def test_gunicorn_warns_when_several_workers_count_in_memory(app, database_url):
    server = LiveServer(database_url, workers=2, env={"RATELIMIT_ENABLED": "true"})
    server.start()
    try:
        log = server.log_tail()
    finally:
        server.stop()
    assert "2 workers count rate limits in memory" in log
    assert "RATELIMIT_STORAGE_URI" in log
