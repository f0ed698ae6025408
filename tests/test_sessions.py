"""Server-side dashboard sessions (issue 14, point 1), through HTTP on both databases: a cookie
saved before POST /logout is signed out afterwards; the account page lists the person's
sessions and logs out one of them or all but this one; a password change ends the others
and renews this one; sessions end after inactivity and at their absolute lifetime; a request
reads its session once and writes last_seen at most once a minute; `flask maintenance`
purges ended sessions; the session key never rests in plaintext or reaches a log."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import UserSession, utcnow
from bioweb.security import digest
from tests.helpers import PASSWORD, input_value, log_in, log_in_with_csrf, make_user

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)


def browser(app, user_agent: str = FIREFOX, address: str = "127.0.0.1"):
    """A test client that presents itself as `user_agent` from `address`."""
    client = app.test_client()
    client.environ_base.update({"HTTP_USER_AGENT": user_agent, "REMOTE_ADDR": address})
    return client


def session_rows() -> list[UserSession]:
    db.session.expire_all()  # what the requests committed, not what this session cached
    return list(db.session.scalars(sa.select(UserSession).order_by(UserSession.id)))


def cookie_of(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def handle_in(app, cookie: str) -> str:
    """The session handle ('<id>:bcw_<key>') inside a signed session cookie."""
    serializer = app.session_interface.get_signing_serializer(app)
    return serializer.loads(cookie)["_user_id"]


def signed_in(client) -> bool:
    response = client.get("/devices")
    if response.status_code == 200:
        return True
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
    return False


def age(session_id: int, **changes) -> None:
    """Move a session's times (last_seen_time, expires_time) as if time had passed."""
    db.session.execute(sa.update(UserSession).where(UserSession.id == session_id).values(**changes))
    db.session.commit()


# --- sign-in, sign-out, the replayed cookie ----------------------------------------------------


def test_a_cookie_saved_before_logout_is_signed_out_afterwards(app, user):
    """The reproduction: a copy of the session cookie taken before POST /logout still opened
    /devices and /api-tokens afterwards."""
    original = browser(app)
    log_in(original)
    saved = cookie_of(original)
    assert signed_in(original)
    assert original.post("/logout").status_code == 303
    assert session_rows() == []

    replay = browser(app)
    replay.set_cookie("session", saved)
    for path in ("/devices", "/api-tokens", "/account"):
        response = replay.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login?next="), path
    assert replay.get("/").status_code == 200  # signed out, not broken


def test_sign_in_records_the_session_with_only_a_digest_of_its_key(app, user):
    client = browser(app, "x" * 500, "192.0.2.7")
    before = utcnow()
    log_in(client)
    (row,) = session_rows()
    handle = handle_in(app, cookie_of(client))
    session_id, key = handle.split(":")
    assert int(session_id) == row.id and row.user_id == user.id
    assert re.fullmatch(r"bcw_[A-Za-z0-9_-]{43}", key)
    assert row.key_digest == digest(key) and key not in row.key_digest
    assert row.user_agent == "x" * 200 and row.ip == "192.0.2.7"
    assert before <= row.created_time == row.last_seen_time <= utcnow()
    assert row.expires_time == row.created_time + timedelta(days=app.config["BIOWEB_SESSION_MAX_DAYS"])


def test_each_sign_in_is_a_session_of_its_own(app, user):
    first, second = browser(app), browser(app, CHROME)
    log_in(first)
    log_in(second)
    rows = session_rows()
    assert len(rows) == 2 and len({row.key_digest for row in rows}) == 2
    first.post("/logout")
    assert not signed_in(first) and signed_in(second)
    assert [row.user_agent for row in session_rows()] == [CHROME]


@pytest.mark.parametrize(
    "planted",
    [
        "1:1",  # a cookie of the days before server-side sessions ("user id:session version")
        "1",
        "1:bcw_not-the-key",
        "99:bcw_" + "a" * 43,
        "0:bcw_" + "a" * 43,
        "99999999999999999999:bcw_" + "a" * 43,
        "١:bcw_" + "a" * 43,
        ":",
        "",
    ],
)
def test_a_cookie_naming_no_live_session_is_signed_out(app, user, planted):
    client = browser(app)
    log_in(client)
    with client.session_transaction() as session:
        session["_user_id"] = planted
    assert not signed_in(client)
    assert client.get("/account").status_code == 302


def test_a_session_belongs_to_its_user(app, user):
    make_user("grace@example.com")
    ada, grace = browser(app), browser(app)
    log_in(ada)
    log_in(grace, "grace@example.com")
    assert "ada@example.com" in ada.get("/account").text
    assert "grace@example.com" in grace.get("/account").text


# --- the account page: list, log out one, log out everywhere else ------------------------------


def test_account_page_lists_the_sessions(app, user):
    here = browser(app, FIREFOX, "127.0.0.1")
    log_in(browser(app, CHROME, "198.51.100.4"))
    log_in(browser(app, SAFARI_PHONE, "2001:db8::1"))
    log_in(here)
    page = here.get("/account")
    assert page.status_code == 200
    html = page.text
    assert "Where you are logged in" in html
    for text in ("Firefox on Linux", "Chrome on Windows", "Safari on iPhone"):
        assert text in html
    for address in ("127.0.0.1", "198.51.100.4", "2001:db8::1"):
        assert address in html
    assert html.count("This session") == 1
    # This session is the one marked, and it comes first (the most recently active).
    items = re.findall(r'<li class="card token"( aria-current="true")?>(.*?)</li>', html, flags=re.S)
    assert len(items) == 3
    assert items[0][0] and "Firefox on Linux" in items[0][1] and "This session" in items[0][1]
    assert "Log out everywhere else" in html
    assert "after 7 days without use" in html and "30 days after logging in" in html


def test_log_out_another_session_from_the_list(app, user):
    here, elsewhere = browser(app), browser(app, CHROME)
    log_in(elsewhere)
    log_in(here)
    other = next(row.id for row in session_rows() if row.user_agent == CHROME)
    response = here.post(f"/account/sessions/{other}/end")
    assert response.status_code == 303 and response.headers["Location"] == "/account#sessions"
    assert "That session is logged out" in here.get("/account").text
    assert not signed_in(elsewhere) and signed_in(here)
    assert [row.user_agent for row in session_rows()] == [FIREFOX]
    again = here.post(f"/account/sessions/{other}/end")
    assert again.status_code == 303 and "had already ended" in here.get("/account").text


def test_another_persons_session_cannot_be_ended(app, user):
    make_user("grace@example.com")
    ada, grace = browser(app), browser(app)
    log_in(grace, "grace@example.com")
    log_in(ada)
    grace_session = next(row for row in session_rows() if row.user_id != user.id)
    ada.post(f"/account/sessions/{grace_session.id}/end")
    assert "had already ended" in ada.get("/account").text  # the same answer as for a gone one
    assert signed_in(grace)


def test_log_out_this_session_from_the_list(app, user):
    client = browser(app)
    log_in(client)
    (row,) = session_rows()
    response = client.post(f"/account/sessions/{row.id}/end")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert not signed_in(client) and session_rows() == []


def test_log_out_everywhere_else(app, user):
    here = browser(app)
    others = [browser(app, CHROME), browser(app, SAFARI_PHONE)]
    for client in others:
        log_in(client)
    log_in(here)
    make_user("grace@example.com")
    grace = browser(app)
    log_in(grace, "grace@example.com")
    response = here.post("/account/sessions/end-others")
    assert response.status_code == 303
    page = here.get("/account").text
    assert "Logged out 2 other sessions. This one stays logged in." in page
    assert "You are not logged in anywhere else." in page
    assert signed_in(here) and signed_in(grace)
    assert not any(signed_in(client) for client in others)
    here.post("/account/sessions/end-others")
    assert "You were not logged in anywhere else." in here.get("/account").text


def test_the_session_forms_need_a_csrf_token(csrf_app):
    make_user()
    here, elsewhere = csrf_app.test_client(), csrf_app.test_client()
    log_in_with_csrf(elsewhere)
    log_in_with_csrf(here)
    other = min(row.id for row in session_rows())  # elsewhere's: it logged in first
    assert here.post("/account/sessions/end-others").status_code == 400
    assert here.post(f"/account/sessions/{other}/end").status_code == 400
    assert signed_in(elsewhere)
    token = input_value(here.get("/account").text, "csrf_token")
    assert here.post("/account/sessions/end-others", data={"csrf_token": token}).status_code == 303
    assert not signed_in(elsewhere) and signed_in(here)


def test_the_session_routes_need_a_signed_in_person(client, user):
    for path in ("/account/sessions/1/end", "/account/sessions/end-others"):
        response = client.post(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")


# --- password change ---------------------------------------------------------------------------


def test_password_change_ends_the_other_sessions_and_renews_this_one(app, user):
    here, elsewhere = browser(app), browser(app, CHROME)
    log_in(elsewhere)
    log_in(here)
    old_cookie = cookie_of(here)
    new = "an entirely new long passphrase"
    response = here.post("/account/password", data={"current_password": PASSWORD, "new_password": new})
    assert response.status_code == 303
    assert signed_in(here) and not signed_in(elsewhere)
    # This browser stays logged in on a fresh session: a copy of its old cookie is signed out.
    replay = browser(app)
    replay.set_cookie("session", old_cookie)
    assert not signed_in(replay)
    (row,) = session_rows()
    assert row.user_agent == FIREFOX and "This session" in here.get("/account").text


def test_a_wrong_current_password_ends_nothing(app, user):
    here, elsewhere = browser(app), browser(app, CHROME)
    log_in(elsewhere)
    log_in(here)
    response = here.post(
        "/account/password", data={"current_password": "not it at all", "new_password": "a" + PASSWORD}
    )
    assert response.status_code == 400
    assert signed_in(here) and signed_in(elsewhere) and len(session_rows()) == 2


# --- expiry, activity, purge -------------------------------------------------------------------


def test_a_session_ends_after_inactivity(app, user):
    client = browser(app)
    log_in(client)
    (row,) = session_rows()
    idle = timedelta(minutes=app.config["BIOWEB_SESSION_IDLE_MINUTES"])
    age(row.id, last_seen_time=utcnow() - idle + timedelta(minutes=5))
    assert signed_in(client)  # still within the idle time: and the request renews it
    (row,) = session_rows()
    assert utcnow() - row.last_seen_time < timedelta(minutes=1)
    age(row.id, last_seen_time=utcnow() - idle - timedelta(seconds=1))
    assert not signed_in(client)
    assert "Where you are logged in" not in client.get("/account").text


def test_the_idle_time_is_configurable(database_url):
    from tests.helpers import app_with_database

    with app_with_database(database_url, BIOWEB_SESSION_IDLE_MINUTES=30) as app:
        make_user()
        client = browser(app)
        log_in(client)
        (row,) = session_rows()
        age(row.id, last_seen_time=utcnow() - timedelta(minutes=29))
        assert signed_in(client)
        assert "after 30 minutes without use" in client.get("/account").text
        (row,) = session_rows()
        age(row.id, last_seen_time=utcnow() - timedelta(minutes=31))
        assert not signed_in(client)


def test_a_session_ends_at_its_absolute_lifetime_however_active(app, user):
    client = browser(app)
    log_in(client)
    (row,) = session_rows()
    age(row.id, expires_time=utcnow() + timedelta(minutes=1))
    assert signed_in(client)
    age(row.id, expires_time=utcnow() - timedelta(seconds=1))
    assert not signed_in(client)
    assert app.permanent_session_lifetime == timedelta(days=app.config["BIOWEB_SESSION_MAX_DAYS"])


@contextmanager
def statements_on(table: str) -> Iterator[list[str]]:
    """The SQL statements that mention `table`, run on the app's engine meanwhile."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if table in statement:
            seen.append(statement.split()[0].upper())

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)


def test_a_request_reads_its_session_once_and_writes_last_seen_at_most_once_a_minute(app, user):
    client = browser(app)
    log_in(client)
    (row,) = session_rows()
    with statements_on("user_sessions") as seen:
        for _ in range(3):
            assert client.get("/devices").status_code == 200
    assert seen == ["SELECT"] * 3  # one read by primary key each, no write
    assert session_rows()[0].last_seen_time == row.last_seen_time
    age(row.id, last_seen_time=row.last_seen_time - timedelta(seconds=61))
    with statements_on("user_sessions") as seen:
        for _ in range(3):
            assert client.get("/devices").status_code == 200
    assert seen == ["SELECT", "UPDATE", "SELECT", "SELECT"]
    assert utcnow() - session_rows()[0].last_seen_time < timedelta(seconds=5)


def test_maintenance_purges_ended_sessions(app, user, runner):
    clients = [browser(app) for _ in range(4)]
    for client in clients:
        log_in(client)
    idle, stale, old, live = session_rows()
    now = utcnow()
    age(idle.id, last_seen_time=now - timedelta(days=8))
    age(stale.id, expires_time=now - timedelta(seconds=1))
    age(old.id, last_seen_time=now - timedelta(days=6))  # idle, but not long enough
    result = runner.invoke(args=["maintenance"])
    assert result.exit_code == 0, result.output
    assert "and 2 ended sessions." in result.output
    assert [row.id for row in session_rows()] == [old.id, live.id]
    assert signed_in(clients[3]) and signed_in(clients[2])


# --- secrets -----------------------------------------------------------------------------------


def test_no_session_key_reaches_a_log(app, user, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # every statement and its parameters
    client = browser(app)
    log_in(client)
    cookie = cookie_of(client)
    key = handle_in(app, cookie).split(":")[1]
    client.get("/devices")
    client.get("/account")
    client.post("/account/password", data={"current_password": "wrong wrong wrong", "new_password": ""})
    (row,) = session_rows()
    age(row.id, last_seen_time=utcnow() - timedelta(minutes=2))
    client.get("/devices")  # the activity write
    # The key is nowhere in the database.
    with db.engine.connect() as conn:
        values = conn.execute(sa.select(UserSession.__table__)).all()
    assert len(values) == 1 and all(key[4:] not in str(value) for row in values for value in row)
    client.post("/logout")
    # The statements and their parameters were logged, the key was not.
    assert "user_sessions" in caplog.text and digest(key) in caplog.text
    assert key[4:] not in caplog.text and cookie not in caplog.text
    # Were a key ever put in a log line, the redaction would hide it.
    logging.getLogger("bioweb.test").warning("session %s", key)
    assert key[4:] not in caplog.text and "bcw_[REDACTED]" in caplog.text
