"""API tokens page: create (shown once), list, revoke; validation, ownership and CSRF."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import Token, TokenKind, utcnow
from bioweb.security import digest
from tests.helpers import (
    bearer,
    input_value,
    log_in_with_csrf,
    make_pat,
    make_user,
)


def personal_tokens() -> list[Token]:
    db.session.expire_all()  # see what the requests committed
    return list(
        db.session.scalars(sa.select(Token).where(Token.kind == TokenKind.PERSONAL).order_by(Token.id))
    )


def create(web, **fields):
    nonce = input_value(web.get("/api-tokens").text, "nonce")
    data = {
        "name": "nightly export",
        "scopes": ["devices:read", "devices:write"],
        "expires_in_days": "30",
        "nonce": nonce,
        **fields,
    }
    return web.post("/api-tokens", data=data), data


def shown_token(html: str) -> str:
    match = re.search(r'id="token-value"[^>]*>([^<]+)<', html)
    assert match, "no token on the page"
    return match.group(1).strip()


def test_tokens_page_needs_a_login(client):
    assert client.get("/api-tokens").headers["Location"] == "/login?next=%2Fapi-tokens"


def test_empty_list_and_a_form_with_safe_defaults(web):
    page = web.get("/api-tokens").text
    assert "You have no tokens yet." in page
    assert page.count('type="checkbox"') == 4 and page.count("checked") == 4
    assert re.search(r'<option selected value="30">|<option value="30" selected>', page)


def test_create_shows_the_token_once_and_it_works(web, client, user):
    response, data = create(web)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "will not be shown again" in response.text
    plaintext = shown_token(response.text)
    (token,) = personal_tokens()
    assert token.digest == digest(plaintext) and token.user_id == user.id
    assert (token.name, token.scope) == ("nightly export", "devices:read devices:write")
    assert timedelta(days=29, hours=23) < token.expires_time - utcnow() <= timedelta(days=30)
    assert all(plaintext not in value for value in response.headers.getlist("Set-Cookie"))
    assert client.get("/api/v1/devices", headers=bearer(plaintext)).status_code == 200
    # Sending the same form again creates nothing and shows nothing.
    again = web.post("/api-tokens", data=data)
    assert again.status_code == 303 and again.headers["Location"] == "/api-tokens"
    listing = web.get("/api-tokens").text
    assert "already sent" in listing and plaintext not in listing
    assert len(personal_tokens()) == 1


def test_scopes_and_no_expiry(web, client):
    response, _ = create(web, scopes=["devices:read"], expires_in_days="")
    plaintext = shown_token(response.text)
    (token,) = personal_tokens()
    assert token.scope == "devices:read" and token.expires_time is None
    assert "It does not expire" in response.text
    assert client.get("/api/v1/devices", headers=bearer(plaintext)).status_code == 200
    write = client.post(
        "/api/v1/devices",
        json={"manufacturer": "Apple", "device_code": "Watch6,1"},
        headers=bearer(plaintext),
    )
    assert write.status_code == 403


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "  "}, "Give the token a name"),
        ({"name": "n" * 101}, "Use at most 100 characters."),
        ({"scopes": []}, "Choose at least one permission."),
        ({"scopes": ["devices:admin"]}, "not a valid choice"),
        ({"expires_in_days": "9999"}, "Not a valid choice"),
    ],
)
def test_create_explains_what_is_wrong(web, fields, message):
    response, _ = create(web, **fields)
    assert response.status_code == 400
    assert message.lower() in response.text.lower()
    assert personal_tokens() == []


def test_a_form_that_was_never_issued_creates_nothing(web):
    response = web.post(
        "/api-tokens", data={"name": "x", "scopes": ["devices:read"], "expires_in_days": "7", "nonce": "nope"}
    )
    assert response.status_code == 400 and "no token was created" in response.text
    assert personal_tokens() == []


def test_list_shows_created_last_used_and_expiry(web, user, client):
    plaintext = make_pat(user, expires_in_days=7)
    page = web.get("/api-tokens").text
    (token,) = personal_tokens()
    assert "Last used" in page and ">never<" in page.replace("\n", "")
    assert token.created_time.strftime("%Y-%m-%d %H:%M UTC") in page
    assert token.expires_time.strftime("%Y-%m-%d %H:%M UTC") in page
    client.get("/api/v1/devices", headers=bearer(plaintext))
    (used,) = personal_tokens()
    assert used.last_used_time is not None
    assert used.last_used_time.strftime("%Y-%m-%d %H:%M UTC") in web.get("/api-tokens").text


def test_revoke_cuts_the_token_off(web, user, client):
    plaintext = make_pat(user)
    (token,) = personal_tokens()
    response = web.post(f"/api-tokens/{token.id}/revoke")
    assert response.status_code == 303 and response.headers["Location"] == "/api-tokens"
    page = web.get("/api-tokens").text
    assert "is revoked" in page and ">Revoked<" in page
    assert personal_tokens()[0].revoked_time is not None
    assert client.get("/api/v1/devices", headers=bearer(plaintext)).status_code == 401


def test_another_users_token_cannot_be_revoked(web, client):
    other = make_user(email="eve@example.com")
    plaintext = make_pat(other)
    (theirs,) = personal_tokens()
    response = web.post(f"/api-tokens/{theirs.id}/revoke")
    assert response.status_code == 404 and "Page not found" in response.text
    assert personal_tokens()[0].revoked_time is None
    assert "You have no tokens yet." in web.get("/api-tokens").text
    assert client.get("/api/v1/devices", headers=bearer(plaintext)).status_code == 200


def test_token_forms_need_the_csrf_token(csrf_client):
    user = make_user(email="csrf@example.com")
    make_pat(user)
    log_in_with_csrf(csrf_client, "csrf@example.com")
    page = csrf_client.get("/api-tokens").text
    data = {
        "name": "x",
        "scopes": ["devices:read"],
        "expires_in_days": "7",
        "nonce": input_value(page, "nonce"),
    }
    assert csrf_client.post("/api-tokens", data=data).status_code == 400
    (existing,) = personal_tokens()
    assert csrf_client.post(f"/api-tokens/{existing.id}/revoke").status_code == 400
    assert personal_tokens()[0].revoked_time is None
    created = csrf_client.post("/api-tokens", data={**data, "csrf_token": input_value(page, "csrf_token")})
    assert created.status_code == 200 and len(personal_tokens()) == 2
