"""Accounts through the dashboard: sign up, log in, log out, change password; sessions, CSRF,
rate limits, security headers and the error pages."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import abort

from bioweb.extensions import db
from bioweb.models import User
from bioweb.security import check_password
from tests.helpers import (
    PASSWORD,
    app_with_database,
    input_value,
    log_in,
    log_in_with_csrf,
    mail_link,
    make_user,
)

GOOD = {
    "email": "Grace@Example.com ",
    "password": "a long and memorable passphrase",
    "first_name": "Grace",
    "last_name": "Hopper",
}


def users() -> list[User]:
    db.session.expire_all()  # see what the requests committed, not what this session cached
    return list(db.session.scalars(sa.select(User)))


# --- Pages anyone sees, headers -----------------------------------------------------------------


def test_landing_page_explains_and_offers_sign_up(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "biometrics cloud" in response.text
    assert 'href="/signup"' in response.text and 'href="/login"' in response.text


@pytest.mark.parametrize("path", ["/", "/login", "/static/css/bioweb.css", "/api/v1/devices", "/nope"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    response.close()  # a static file is streamed from an open file
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_carry_no_inline_script_or_style(client, app):
    make_user()
    log_in(client)
    for path in ["/", "/devices", "/devices/new", "/api-tokens", "/account/password", "/nope"]:
        html = client.get(path).text
        assert "<script>" not in html and " style=" not in html and "<style" not in html, path
        assert "onclick=" not in html and "onsubmit=" not in html, path


def test_error_pages_in_the_sites_look(app, client):
    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    @app.get("/forbidden")
    def forbidden():
        abort(403)

    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "Page not found" in missing.text and "bioweb" in missing.text
    denied = client.get("/forbidden")
    assert denied.status_code == 403 and "You cannot open this page" in denied.text
    broken = client.get("/boom")
    assert broken.status_code == 500 and "Something went wrong" in broken.text
    assert "kaboom" not in broken.text
    wrong_method = client.get("/logout")
    assert wrong_method.status_code == 405 and "not available here" in wrong_method.text


# --- Sign up -------------------------------------------------------------------------------------


def test_sign_up_creates_the_account_and_mails_a_confirmation_link(client, mailbox):
    response = client.post("/signup", data=GOOD)
    assert response.status_code == 303 and response.headers["Location"] == "/signup/check-your-email"
    (user,) = users()
    assert (user.email, user.first_name, user.last_name) == ("grace@example.com", "Grace", "Hopper")
    assert check_password(user.password_hash, GOOD["password"])
    assert user.email_confirmed_time is None
    # Not logged in: a taken address gets the same answer (tests/test_account_mail.py).
    assert client.get("/devices").status_code == 302
    (message,) = mailbox.to("grace@example.com")
    confirmed = client.post(urlsplit(mail_link(message, "/confirm-email/")).path)
    assert confirmed.status_code == 303 and confirmed.headers["Location"] == "/login"
    assert "Welcome to bioweb, Grace" in client.get("/login").text
    log_in(client, "grace@example.com", GOOD["password"])
    page = client.get("/devices")
    assert page.status_code == 200 and "Confirm your email address" not in page.text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "", "Enter your email address."),
        ("email", "not-an-email", "Enter an email address like name@example.com."),
        ("password", "", "Choose a password."),
        ("password", "Tr0ub4dor&3", "Use at least 12 characters."),
        ("password", "aaaaaaaaaaaaaaaa", "too repetitive"),
        ("password", "x" * 100 + "abcdefghijklmnopqrstuvwxyz1234", "Use at most 128 characters."),
        ("first_name", "  ", "Enter your first name."),
        ("last_name", "", "Enter your last name."),
        ("last_name", "L" * 101, "Use at most 100 characters."),
    ],
)
def test_sign_up_says_what_is_wrong_with_each_field(client, field, value, message):
    response = client.post("/signup", data={**GOOD, field: value})
    assert response.status_code == 400
    assert message in response.text
    # The message sits on the field (tied with aria-describedby) as well as in the summary.
    assert f'id="{field}-error"' in response.text and 'aria-invalid="true"' in response.text
    assert users() == []


def test_sign_up_with_a_taken_email_answers_as_for_a_new_one(client, mailbox):
    make_user(email="grace@example.com")
    response = client.post("/signup", data=GOOD)
    assert response.status_code == 303 and response.headers["Location"] == "/signup/check-your-email"
    assert "An account with this email already exists." not in client.get(response.headers["Location"]).text
    assert len(users()) == 1
    (note,) = mailbox.to("grace@example.com")
    assert note["Subject"] == "Someone tried to sign up to bioweb with your address"


def test_sign_up_page_does_not_echo_the_password(client):
    response = client.post("/signup", data={**GOOD, "first_name": ""})
    assert response.status_code == 400
    assert GOOD["password"] not in response.text


# --- Log in / log out ----------------------------------------------------------------------------


def test_log_in_and_out(client):
    make_user()
    response = log_in(client)
    assert response.headers["Location"] == "/devices"
    assert client.get("/devices").status_code == 200
    out = client.post("/logout")
    assert out.status_code == 303 and out.headers["Location"] == "/"
    again = client.get("/devices")
    assert again.status_code == 302 and again.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize(
    ("email", "password"),
    [("ada@example.com", "wrong password entirely"), ("nobody@example.com", PASSWORD)],
)
def test_failed_login_gives_one_message_for_both_cases(client, email, password):
    make_user()
    response = client.post("/login", data={"email": email, "password": password})
    assert response.status_code == 400
    assert "That email and password do not match an account." in response.text
    assert client.get("/devices").status_code == 302


def test_login_page_says_when_fields_are_empty(client):
    response = client.post("/login", data={"email": "", "password": ""})
    assert response.status_code == 400
    assert "Enter your email address." in response.text and "Enter your password." in response.text


def test_login_required_pages_send_people_to_log_in_and_back(client):
    make_user()
    response = client.get("/api-tokens")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=%2Fapi-tokens"
    login_page = client.get(response.headers["Location"])
    assert 'action="/login?next=/api-tokens"' in login_page.text
    back = client.post("/login?next=%2Fapi-tokens", data={"email": "ada@example.com", "password": PASSWORD})
    assert back.status_code == 303 and back.headers["Location"] == "/api-tokens"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/path",
        "/\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "devices",
        "/devices\r\nSet-Cookie: x=1",
    ],
)
def test_next_only_goes_to_local_paths(client, target):
    make_user()
    response = client.post(
        "/login", query_string={"next": target}, data={"email": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/devices"


def test_login_renews_the_session(client):
    make_user()
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
        session["_once"] = [["nonce-from-before", "device:new", None]]
    log_in(client)
    with client.session_transaction() as session:
        assert "planted" not in session and "_once" not in session
        # The cookie names a server-side session (tests/test_sessions.py), by id and key.
        assert session["_user_id"].startswith("1:bcw_")


def test_logged_in_people_skip_the_login_and_signup_forms(client):
    make_user()
    log_in(client)
    assert client.get("/login").headers["Location"] == "/devices"
    assert client.get("/signup").headers["Location"] == "/devices"


# --- CSRF (a real token check) -------------------------------------------------------------------


def test_forms_without_a_csrf_token_are_refused(csrf_app):
    client = csrf_app.test_client()
    make_user()
    refused = client.post("/login", data={"email": "ada@example.com", "password": PASSWORD})
    assert refused.status_code == 400
    assert "This form has expired or did not come from this site" in refused.text
    signup = client.post("/signup", data=GOOD)
    assert signup.status_code == 400 and len(users()) == 1
    forged = client.post(
        "/login", data={"email": "ada@example.com", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert forged.status_code == 400
    assert client.get("/devices").status_code == 302


def test_forms_with_the_pages_csrf_token_work_and_logout_needs_one(csrf_app):
    client = csrf_app.test_client()
    make_user()
    token = log_in_with_csrf(client)
    # The token of the pre-login session is not the one after: the session was renewed.
    page = client.get("/devices")
    assert input_value(page.text, "csrf_token") != token
    assert client.post("/logout").status_code == 400
    assert client.get("/devices").status_code == 200
    logout = client.post("/logout", data={"csrf_token": input_value(page.text, "csrf_token")})
    assert logout.status_code == 303
    assert client.get("/devices").status_code == 302


# --- Rate limit ----------------------------------------------------------------------------------


@pytest.fixture
def limited_app(database_url):
    limits = {"BIOWEB_PASSWORD_RATELIMIT_PER_ACCOUNT": "3/minute", "RATELIMIT_KEY_PREFIX": uuid.uuid4().hex}
    with app_with_database(database_url, RATELIMIT_ENABLED=True, **limits) as app:
        yield app


def test_failed_logins_are_rate_limited(limited_app):
    client = limited_app.test_client()
    make_user()
    bad = {"email": "ada@example.com", "password": "not the password at all"}
    assert [client.post("/login", data=bad).status_code for _ in range(3)] == [400, 400, 400]
    blocked = client.post("/login", data=bad)
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.text
    assert int(blocked.headers["Retry-After"]) > 0
    # Even the right password waits out the limit.
    assert client.post("/login", data={"email": "ada@example.com", "password": PASSWORD}).status_code == 429
    # Reading the form is never limited.
    assert client.get("/login").status_code == 200


def test_successful_logins_do_not_use_up_the_limit(limited_app):
    client = limited_app.test_client()
    make_user()
    for _ in range(5):
        assert (
            client.post("/login", data={"email": "ada@example.com", "password": PASSWORD}).status_code == 303
        )
        assert client.post("/logout").status_code == 303


# --- Change password -----------------------------------------------------------------------------


def test_change_password_ends_other_sessions_and_keeps_this_one(app):
    make_user()
    here, elsewhere = app.test_client(), app.test_client()
    log_in(here)
    log_in(elsewhere)
    new = "an entirely new long passphrase"
    response = here.post("/account/password", data={"current_password": PASSWORD, "new_password": new})
    assert response.status_code == 303 and response.headers["Location"] == "/devices"
    assert here.get("/devices").status_code == 200
    assert elsewhere.get("/devices").status_code == 302
    (user,) = users()
    assert user.session_version == 2 and check_password(user.password_hash, new)
    assert (
        elsewhere.post("/login", data={"email": "ada@example.com", "password": PASSWORD}).status_code == 400
    )
    log_in(elsewhere, password=new)


@pytest.mark.parametrize(
    ("current", "new", "message", "field"),
    [
        (
            "wrong current password",
            "an entirely new long passphrase",
            "That is not your current password.",
            "current_password",
        ),
        (PASSWORD, "too short", "Use at least 12 characters.", "new_password"),
        (PASSWORD, "", "Choose a new password.", "new_password"),
    ],
)
def test_change_password_explains_each_problem(client, current, new, message, field):
    make_user()
    log_in(client)
    response = client.post("/account/password", data={"current_password": current, "new_password": new})
    assert response.status_code == 400
    assert message in response.text and f'id="{field}-error"' in response.text
    (user,) = users()
    assert user.session_version == 1 and check_password(user.password_hash, PASSWORD)


# --- Cookies and headers -------------------------------------------------------------------------


def test_session_cookie_is_http_only_and_same_site(client, user):
    response = log_in(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert "Strict-Transport-Security" not in response.headers


def test_over_https_cookies_are_secure_and_hsts_is_sent(database_url):
    with app_with_database(database_url, BIOWEB_SECURE_COOKIES=True) as app:
        client = app.test_client()
        make_user()
        response = log_in(client)
        assert "Secure" in response.headers["Set-Cookie"]
        assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        api = client.get("/api/v1/devices")
        assert api.headers["Strict-Transport-Security"] and api.headers["X-Content-Type-Options"] == "nosniff"
