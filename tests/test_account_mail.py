"""Issue 16, points 1, 2, 3 and 6, through HTTP on both databases: mail through a real SMTP
server (aiosmtpd on a local port, the `mailbox` fixture) or into the outbox; sign-up with
a confirmation link, and the same answer for an address that has an account; registering
devices waits for the confirmation (dashboard and API); password reset by a single-use link
valid for an hour, the same answer for unknown addresses, rate limits per (address, client
address); the account's events on its page, paged; no token in any log line."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.mail import parse_smtp_url
from bioweb.models import AccountEvent, AccountEventKind, User, UserSession
from bioweb.security import redact
from bioweb.services import account_events, account_mail
from bioweb.services.events import Origin
from tests.helpers import (
    PASSWORD,
    app_with_database,
    assert_error,
    bearer,
    free_port,
    log_in,
    mail_link,
    make_app,
    make_pat,
    make_user,
)

GRACE = {
    "email": "Grace@Example.com",
    "password": "a long and memorable passphrase",
    "first_name": "Grace",
    "last_name": "Hopper",
}
NEW = "an entirely new long passphrase"


def user_by_email(email: str) -> User:
    db.session.expire_all()
    return db.session.scalars(sa.select(User).where(User.email == email)).one()


def event_kinds(user_id: int) -> list[str]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            sa.select(AccountEvent.kind).where(AccountEvent.user_id == user_id).order_by(AccountEvent.id)
        )
    )


def path_of(link: str) -> str:
    return urlsplit(link).path


def signed_in(client) -> bool:
    return client.get("/devices").status_code == 200


# --- mail: the SMTP URL, the outbox ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://127.0.0.1:2525", ("127.0.0.1", 2525, False, False, None, None)),
        (
            "smtp://me%40example.com:p%3Ass@mail.example.com:587?starttls=1",
            ("mail.example.com", 587, False, True, "me@example.com", "p:ss"),
        ),
        ("smtp://mail.example.com?starttls=1", ("mail.example.com", 587, False, True, None, None)),
        ("smtps://u:p@mail.example.com", ("mail.example.com", 465, True, False, "u", "p")),
        ("smtp://relay", ("relay", 25, False, False, None, None)),
    ],
)
def test_smtp_urls(url, expected):
    s = parse_smtp_url(url)
    assert (s.host, s.port, s.tls, s.starttls, s.username, s.password) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mail.example.com", "must start with smtp:// or smtps://"),
        ("smtp://", "names no host"),
        ("smtp://host:99999", "port"),
        ("smtp://host?tls=1", "unknown parameter 'tls'"),
        ("smtps://host?starttls=1", "TLS already"),
    ],
)
def test_a_bad_smtp_url_stops_the_start(url, message, tmp_path):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_app(f"sqlite:///{tmp_path / 'x.db'}", BIOWEB_SMTP_URL=url)


def test_without_smtp_mail_goes_to_the_outbox_and_one_log_line(database_url, tmp_path, caplog):
    outbox = tmp_path / "outbox"
    caplog.set_level(logging.INFO)
    with app_with_database(database_url, BIOWEB_SMTP_URL="", BIOWEB_MAIL_OUTBOX=str(outbox)) as app:
        make_user()
        response = app.test_client().post("/forgot-password", data={"email": "ada@example.com"})
        assert response.status_code == 303
    (eml,) = outbox.glob("*.eml")
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}\.eml", eml.name)
    assert eml.stat().st_mode & 0o077 == 0  # the owner's only: it holds a credential
    text = eml.read_text()
    assert "To: ada@example.com" in text and "Subject: Reset your bioweb password" in text
    token = re.search(r"/reset-password/(bcm_\S+)", text).group(1)
    lines = [r.getMessage() for r in caplog.records if r.name == "bioweb.mail"]
    assert lines == [
        f"mail to ada@example.com (Reset your bioweb password) written to {eml} (BIOWEB_SMTP_URL is not set)"
    ]
    assert token not in caplog.text


def test_a_mail_server_that_does_not_answer_is_a_clear_503(database_url):
    with app_with_database(database_url, BIOWEB_SMTP_URL=f"smtp://127.0.0.1:{free_port()}") as app:
        make_user()
        client = app.test_client()
        forgot = client.post("/forgot-password", data={"email": "ada@example.com"})
        assert forgot.status_code == 503 and "We could not send you an email just now" in forgot.text
        signup = client.post("/signup", data=GRACE)
        assert signup.status_code == 503 and "We could not send you an email just now" in signup.text


# --- sign-up and confirmation ----------------------------------------------------------------------


def test_sign_up_mails_a_link_and_registering_devices_waits_for_it(client, mailbox):
    response = client.post("/signup", data=GRACE)
    assert response.status_code == 303 and response.headers["Location"] == "/signup/check-your-email"
    page = client.get("/signup/check-your-email")
    assert "Check your email" in page.text and "grace@example.com" in page.text
    assert not signed_in(client)  # the answer is the same as for a taken address: no session
    grace = user_by_email("grace@example.com")
    assert grace.email_confirmed_time is None

    (message,) = mailbox.to("grace@example.com")
    assert message["Subject"] == "Confirm your email address for bioweb"
    assert message["From"] == "bioweb <no-reply@localhost>"
    link = path_of(mail_link(message, "/confirm-email/"))

    # An unconfirmed account logs in, but registers no device: the page and the API say why.
    log_in(client, "grace@example.com", GRACE["password"])
    devices = client.get("/devices")
    assert "Confirm your email address</strong> to register devices" in devices.text
    refused = client.get("/devices/new")
    assert refused.status_code == 403 and "Confirm your email address first" in refused.text
    posted = client.post("/devices/new", data={"manufacturer": "Apple", "device_code": "Watch6,1"})
    assert posted.status_code == 403
    pat = make_pat(grace)
    api = client.post(
        "/api/v1/devices", json={"manufacturer": "Apple", "device_code": "Watch6,1"}, headers=bearer(pat)
    )
    body = assert_error(api, 403, "forbidden")
    assert "Confirm your email address before registering devices" in body["error_description"]

    # Opening the link changes nothing (mail scanners open links); its button confirms.
    opened = client.get(link)
    assert opened.status_code == 200 and "Confirm my address" in opened.text
    assert (
        opened.headers["Cache-Control"] == "no-store" and opened.headers["Referrer-Policy"] == "no-referrer"
    )
    assert user_by_email("grace@example.com").email_confirmed_time is None
    confirmed = client.post(link)
    assert confirmed.status_code == 303 and confirmed.headers["Location"] == "/devices"
    assert "Your email address is confirmed. Welcome to bioweb, Grace." in client.get("/devices").text
    assert user_by_email("grace@example.com").email_confirmed_time is not None
    assert event_kinds(grace.id) == ["signin", "email.confirmed"]
    # Again: nothing changes, and the page says so.
    again = client.post(link)
    assert again.status_code == 303
    assert "confirmed already" in client.get("/devices").text
    assert event_kinds(grace.id) == ["signin", "email.confirmed"]

    api = client.post(
        "/api/v1/devices", json={"manufacturer": "Apple", "device_code": "Watch6,1"}, headers=bearer(pat)
    )
    assert api.status_code == 200, api.text
    assert client.get("/devices/new").status_code == 200


def test_confirming_in_another_browser_sends_it_to_log_in(client, app, mailbox):
    client.post("/signup", data=GRACE)
    link = path_of(mail_link(mailbox.to("grace@example.com")[0], "/confirm-email/"))
    other = app.test_client()
    response = other.post(link)
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "Log in to register your first device." in other.get("/login").text


def test_sign_up_with_a_taken_address_answers_the_same_and_mails_the_account(app, mailbox):
    make_user(email="grace@example.com")

    def sign_up(data: dict[str, str]) -> tuple[Any, ...]:
        client = app.test_client()
        response = client.post("/signup", data=data)
        follow = client.get(response.headers["Location"])
        return (
            response.status_code,
            response.headers["Location"],
            follow.status_code,
            follow.text,
            signed_in(client),
        )

    taken = sign_up(GRACE)
    fresh = sign_up({**GRACE, "email": "Linus@Example.com"})
    assert taken[:3] == fresh[:3] == (303, "/signup/check-your-email", 200)
    assert taken[3].replace("grace@", "linus@") == fresh[3]
    assert taken[4] is fresh[4] is False
    # One account each; the existing one unchanged (its password too).
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 2
    assert log_in(app.test_client(), "grace@example.com", PASSWORD)

    (note,) = mailbox.to("grace@example.com")
    assert note["Subject"] == "Someone tried to sign up to bioweb with your address"
    assert "You already have an account, so no new one was made" in " ".join(note.get_content().split())
    assert "/confirm-email/" not in note.get_content() and "bcm_" not in note.get_content()
    (welcome,) = mailbox.to("linus@example.com")
    assert welcome["Subject"] == "Confirm your email address for bioweb"


def test_accounts_from_the_cli_and_the_service_count_as_confirmed(runner, app):
    result = runner.invoke(
        args=["users", "create", "cli@example.com", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert user_by_email("cli@example.com").email_confirmed_time is not None
    assert make_user().email_confirmed_time is not None


def test_a_new_confirmation_link_on_request(client, mailbox):
    client.post("/signup", data=GRACE)
    log_in(client, "grace@example.com", GRACE["password"])
    response = client.post("/account/confirmation", data={"next": "/api-tokens"})
    assert response.status_code == 303 and response.headers["Location"] == "/api-tokens"
    assert "We sent a new confirmation link to grace@example.com" in client.get("/api-tokens").text
    first, second = mailbox.to("grace@example.com")
    assert first["Subject"] == second["Subject"] == "Confirm your email address for bioweb"
    # Either link works (they differ only in when they were made).
    assert client.post(path_of(mail_link(first, "/confirm-email/"))).status_code == 303
    assert user_by_email("grace@example.com").email_confirmed_time is not None


# --- password reset -----------------------------------------------------------------------------------


def test_password_reset_ends_every_session_and_signs_in_fresh(app, mailbox):
    ada = make_user()
    version = ada.session_version
    elsewhere = app.test_client()
    log_in(elsewhere)
    assert signed_in(elsewhere)

    client = app.test_client()
    assert "Forgot your password?" in client.get("/login").text
    response = client.post("/forgot-password", data={"email": " ADA@example.com "})
    assert response.status_code == 303 and response.headers["Location"] == "/forgot-password/check-your-email"
    assert "ada@example.com" in client.get(response.headers["Location"]).text
    (message,) = mailbox.to("ada@example.com")
    assert message["Subject"] == "Reset your bioweb password"
    link = path_of(mail_link(message, "/reset-password/"))

    # Opening the link (twice, as a mail scanner and then the person) spends nothing.
    for _ in range(2):
        page = client.get(link)
        assert (
            page.status_code == 200
            and "Choose a new password" in page.text
            and "ada@example.com" in page.text
        )
        assert (
            page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
        )
    short = client.post(link, data={"password": "short"})
    assert short.status_code == 400 and "Use at least 12 characters." in short.text

    done = client.post(link, data={"password": NEW})
    assert done.status_code == 303 and done.headers["Location"] == "/devices"
    assert "Your password is changed, and you are logged in." in client.get("/devices").text
    assert not signed_in(elsewhere)
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(UserSession)) == 1  # this browser's, new
    assert user_by_email("ada@example.com").session_version == version + 1
    assert event_kinds(ada.id) == ["signin", "reset.requested", "reset.used"]
    bad = app.test_client().post("/login", data={"email": "ada@example.com", "password": PASSWORD})
    assert bad.status_code == 400
    log_in(app.test_client(), "ada@example.com", NEW)

    # The link is spent: it says so plainly, on opening and on posting.
    for used in (client.get(link), client.post(link, data={"password": "yet another long passphrase"})):
        assert used.status_code == 410
        assert "This link has been used" in used.text and "has already been used" in used.text
    log_in(app.test_client(), "ada@example.com", NEW)


def test_reset_answers_the_same_for_an_address_without_an_account(app, mailbox):
    make_user()

    def ask(email: str) -> tuple[Any, ...]:
        client = app.test_client()
        response = client.post("/forgot-password", data={"email": email})
        follow = client.get(response.headers["Location"])
        return response.status_code, response.headers["Location"], follow.status_code, follow.text

    known = ask("ada@example.com")
    unknown = ask("nobody@example.com")
    assert known[:3] == unknown[:3] == (303, "/forgot-password/check-your-email", 200)
    assert known[3].replace("ada@", "nobody@") == unknown[3]
    (note,) = mailbox.to("nobody@example.com")
    assert "There is no bioweb account with this address" in note.get_content()
    assert "bcm_" not in note.get_content()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AccountEvent)) == 1  # Ada's request


def test_a_reset_link_expires_after_an_hour(client, app):
    ada = make_user()
    token = account_mail.reset_token(ada, issued_at=int(time.time()) - 3601)
    page = client.get(f"/reset-password/{token}")
    assert (
        page.status_code == 410
        and "This link has expired" in page.text
        and "links work for one hour" in page.text
    )
    posted = client.post(f"/reset-password/{token}", data={"password": NEW})
    assert posted.status_code == 410
    fresh = account_mail.reset_token(ada, issued_at=int(time.time()) - 3500)
    assert client.get(f"/reset-password/{fresh}").status_code == 200


def test_a_password_change_spends_the_reset_links_sent_before(web, app):
    ada = user_by_email("ada@example.com")
    token = account_mail.reset_token(ada)
    changed = web.post("/account/password", data={"current_password": PASSWORD, "new_password": NEW})
    assert changed.status_code == 303
    assert app.test_client().get(f"/reset-password/{token}").status_code == 410


@pytest.mark.parametrize(
    "path",
    [
        "/reset-password/bcm_garbage",
        "/reset-password/nonsense",
        "/reset-password/bcm_" + "x" * 500,
        "/reset-password/",
        "/confirm-email/bcm_garbage",
        "/confirm-email/",
    ],
)
def test_a_garbled_link_says_so(client, app, path):
    make_user()
    for response in (client.get(path), client.post(path, data={"password": NEW})):
        assert response.status_code in (404, 405) if path.endswith("/") else response.status_code == 404
        if response.status_code == 404:
            assert "This link is not valid" in response.text


def test_a_link_of_one_kind_is_not_one_of_the_other(client, app):
    ada = make_user()
    ada.email_confirmed_time = None
    db.session.commit()
    confirm = account_mail.confirmation_token(ada)
    reset = account_mail.reset_token(ada)
    assert client.get(f"/reset-password/{confirm}").status_code == 404
    assert client.get(f"/confirm-email/{reset}").status_code == 404
    # Signed with another key: not valid either.
    with app_with_database(app.config["SQLALCHEMY_DATABASE_URI"], SECRET_KEY="another key") as other:
        forged = account_mail.reset_token(ada)
        del other
    assert client.get(f"/reset-password/{forged}").status_code == 404


def test_reset_requests_are_limited_per_address_and_client_address(database_url, smtp_server):
    with app_with_database(
        database_url,
        BIOWEB_SMTP_URL=smtp_server.url,
        RATELIMIT_ENABLED=True,
        RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}",
        BIOWEB_RESET_RATELIMIT_PER_ACCOUNT="2/hour",
        BIOWEB_RESET_RATELIMIT_PER_IP="4/hour",
    ) as app:
        make_user()

        def ask(email: str, address: str) -> int:
            client = app.test_client()
            client.environ_base["REMOTE_ADDR"] = address
            return client.post("/forgot-password", data={"email": email}).status_code

        assert [ask("ada@example.com", "10.0.0.1") for _ in range(3)] == [303, 303, 429]
        # Not per account alone: Ada can still reset from her own network.
        assert ask("ADA@example.com", "10.0.0.2") == 303
        # An unknown address counts the same as a known one.
        assert [ask("nobody@example.com", "10.0.0.3") for _ in range(3)] == [303, 303, 429]
        # Per client address: 4 from one, whatever the addresses.
        assert [ask(f"x{n}@example.com", "10.0.0.4") for n in range(5)] == [303] * 4 + [429]
        blocked = app.test_client()
        blocked.environ_base["REMOTE_ADDR"] = "10.0.0.1"
        page = blocked.post("/forgot-password", data={"email": "ada@example.com"})
        assert "Too many password reset emails" in page.text and int(page.headers["Retry-After"]) > 0


def test_notes_to_one_address_are_capped_from_any_network(database_url, smtp_server):
    """Notes without a link can be asked for by anyone: at most BIOWEB_MAIL_NOTE_RATELIMIT go to
    one address, whatever the client addresses; the pages answer the same past it."""
    smtp_server.clear()
    with app_with_database(
        database_url,
        BIOWEB_SMTP_URL=smtp_server.url,
        RATELIMIT_ENABLED=True,
        RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}",
        BIOWEB_MAIL_NOTE_RATELIMIT="2/hour",
    ) as app:
        make_user(email="grace@example.com")

        def post(path: str, data: dict[str, str], address: str) -> tuple[int, str]:
            client = app.test_client()
            client.environ_base["REMOTE_ADDR"] = address
            response = client.post(path, data=data)
            return response.status_code, response.headers.get("Location", "")

        resets = [post("/forgot-password", {"email": "nobody@example.com"}, f"10.1.0.{n}") for n in range(3)]
        signups = [post("/signup", GRACE, f"10.2.0.{n}") for n in range(3)]
        assert resets == [(303, "/forgot-password/check-your-email")] * 3
        assert signups == [(303, "/signup/check-your-email")] * 3
        assert len(smtp_server.to("nobody@example.com")) == 2
        assert len(smtp_server.to("grace@example.com")) == 2
        # Links are not notes: Grace's reset still arrives.
        assert post("/forgot-password", {"email": "grace@example.com"}, "10.3.0.1")[0] == 303
        assert smtp_server.to("grace@example.com")[-1]["Subject"] == "Reset your bioweb password"


@pytest.mark.parametrize("prefix", ["bcm_", "bcd_"])
def test_signed_tokens_are_redacted_whole(prefix):
    """A signed token's segments (a mailed link's, a device access token's JWT) all go, not only
    the first one before a dot; the sentence's own full stop stays."""
    token = prefix + "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXBhcnQ"
    assert (
        redact(f"GET /reset-password/{token} HTTP/1.1") == f"GET /reset-password/{prefix}[REDACTED] HTTP/1.1"
    )
    assert redact(f"got {token}. Done") == f"got {prefix}[REDACTED]. Done"


def test_no_token_reaches_a_log_line(app, mailbox, caplog):
    caplog.set_level(logging.DEBUG)
    make_user()
    client = app.test_client()
    client.post("/forgot-password", data={"email": "ada@example.com"})
    link = path_of(mail_link(mailbox.to("ada@example.com")[0], "/reset-password/"))
    token = link.rsplit("/", 1)[1]
    client.get(link)
    client.post(link, data={"password": NEW})
    logging.getLogger("werkzeug").info('127.0.0.1 - - "GET %s HTTP/1.1" 200 -', link)
    assert token not in caplog.text
    assert "/reset-password/bcm_[REDACTED]" in caplog.text


# --- account events -------------------------------------------------------------------------------------


def test_sign_in_out_and_password_change_are_account_events(app):
    ada = make_user()
    client = app.test_client()
    client.post(
        "/login",
        data={"email": "ada@example.com", "password": PASSWORD},
        headers={
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0",
            "X-Request-ID": "req-12345678",
        },
    )
    client.post("/account/password", data={"current_password": PASSWORD, "new_password": NEW})
    client.post("/logout")
    db.session.expire_all()
    rows = list(
        db.session.scalars(
            sa.select(AccountEvent).where(AccountEvent.user_id == ada.id).order_by(AccountEvent.id)
        )
    )
    assert [r.kind for r in rows] == ["signin", "password.changed", "signout"]
    assert rows[0].ip == "127.0.0.1" and rows[0].request_id == "req-12345678"
    assert rows[0].user_agent.startswith("Mozilla/5.0 (X11; Linux")


def test_the_account_page_shows_the_events_newest_first_paged(web, app):
    ada = user_by_email("ada@example.com")
    origin = Origin(ip="192.0.2.7", request_id="r" * 70, user_agent="curl/8.0 " + "x" * 300)
    for _ in range(23):
        account_events.record(ada.id, AccountEventKind.EXPORT_MADE, origin)
    account_events.record(ada.id, AccountEventKind.DEVICE_DELETED, origin)
    db.session.commit()
    stored = db.session.scalars(sa.select(AccountEvent).order_by(AccountEvent.id.desc())).first()
    assert len(stored.user_agent) == 200 and len(stored.request_id) == 64

    page = web.get("/account")
    table = page.text[page.text.index('id="activity"') :]
    assert table.count("<tr>") == 21  # the head and 20 events
    assert table.index("Device deleted") < table.index("Data exported")
    assert "192.0.2.7" in table and "curl" in table
    older = re.search(r'href="(/account\?before=(\d+)#activity)"', table)
    assert older
    second = web.get(older.group(1))
    rest = second.text[second.text.index('id="activity"') :]
    assert rest.count("<tr>") == 1 + 5  # 3 exports, the earlier ones; and the sign-in
    assert "Logged in" in rest and "Older" not in rest and "Newest" in rest
    # Another person's events are not here.
    other = make_user(email="other@example.com")
    account_events.record(other.id, AccountEventKind.ACCOUNT_DELETED, origin)
    db.session.commit()
    assert "Account deleted" not in web.get("/account").text
    assert web.get("/account?before=abc").status_code == 400
    assert web.get("/account?before=0").status_code == 400
