"""The authorization-code flow (RFC 6749 4.1, PKCE per RFC 7636, RFC 8252 for native apps):
/authorize and its consent screen, /appauth/code, the authorization_code and refresh grants at
/token, grants' tokens at /api/v1, and the ways a grant ends. Through HTTP (the Flask test
client: the person's browser and the app alike); tests/test_browser_oauth.py drives it in
Chromium with a real OAuth client library."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import AuthorizationCode, Grant, Token
from bioweb.services import applications, grants
from tests.helpers import (
    AUTHORIZE_FIELDS,
    approve_in_dashboard,
    basic,
    bearer,
    input_value,
    log_in,
    log_in_with_csrf,
    make_device,
    make_pat,
    make_user,
    pkce_pair,
)

BASE = "http://127.0.0.1:8000"
LANDING = f"{BASE}/appauth/code"
ALL = "devices:read devices:write samples:read samples:write"


@pytest.fixture
def device(user):
    return make_device(user, "Watch1,1")


@pytest.fixture
def native_app(user):
    """A public application (a native app) registered by Ada, with a loopback and a private-use redirect."""
    return applications.register(
        user, "Pulse Diary", "http://127.0.0.1/callback\ncom.example.pulse:/oauth", "public"
    ).application


@pytest.fixture
def web_app(user):
    """A confidential application registered by Ada, and its secret."""
    registered = applications.register(
        user, "Coach Online", "https://coach.example/cb", "confidential", "https://coach.example"
    )
    return registered.application, registered.client_secret


def authorize(web, **params):
    return web.get("/authorize", query_string={"response_type": "code", "state": "s1", **params})


def answer(response) -> dict[str, list[str]]:
    """The parameters of a redirect to the client."""
    assert response.status_code == 303, response.text
    return parse_qs(urlsplit(response.headers["Location"]).query)


def exchange(http, code, *, auth=None, **form):
    return http.post(
        "/token", data={"grant_type": "authorization_code", "code": code, **form}, headers=auth or {}
    )


def oauth_error(response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body = response.get_json()
    assert body["error"] == error, body
    return body["error_description"]


# --- the happy paths ----------------------------------------------------------------------------


def test_a_device_companion_app_signs_in_through_the_landing_page(client, user, device):
    """The published example client's flow: /authorize?...&scope=all -> /appauth/code -> /token with Basic."""
    log_in(client)
    page = authorize(client, client_id=device[0].client_id, scope="all")
    assert page.status_code == 200
    assert "Allow Watch (Watch1,1)" in page.text or "Allow Apple Watch" in page.text
    assert "Read your devices and their data" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    form = {name: input_value(page.text, name) for name in AUTHORIZE_FIELDS}
    redirect = client.post("/authorize", data={**form, "approve": "Allow"})
    location = redirect.headers["Location"]
    assert location.startswith(LANDING + "?code=bcc_")
    query = answer(redirect)
    assert query["state"] == ["s1"] and query["iss"] == [BASE]
    code = query["code"][0]

    landing = client.get(location.removeprefix(BASE))
    assert landing.status_code == 200 and code in landing.text and "10 minutes" in landing.text
    assert landing.headers["Cache-Control"] == "no-store"
    assert landing.headers["Referrer-Policy"] == "no-referrer"
    assert 'data-copy="auth-code"' in landing.text

    tokens = exchange(client, code, auth=basic(device[0].client_id, device[1]))
    assert tokens.status_code == 200, tokens.text
    body = tokens.get_json()
    assert body["scope"] == ALL and body["token_type"] == "Bearer"
    assert body["refresh_token"].startswith("bcr_") and body["device_id"] == device[0].id
    assert tokens.headers["Cache-Control"] == "no-store"
    # It acts for the person: their device list, which a device's own token may not read.
    devices = client.get("/api/v1/devices", headers=bearer(body["access_token"]))
    assert devices.status_code == 200 and devices.get_json()["count"] == 1
    assert "has been used" in client.get(location.removeprefix(BASE)).text


def test_a_native_app_uses_pkce_on_a_loopback_port_of_its_choice(client, user, native_app):
    log_in(client)
    verifier, challenge = pkce_pair()
    redirect_uri = "http://127.0.0.1:51234/callback"
    code = approve_in_dashboard(
        client, native_app.client_id, redirect_uri=redirect_uri, scope="samples:read", challenge=challenge
    )
    form = {"client_id": native_app.client_id, "redirect_uri": redirect_uri}
    description = oauth_error(exchange(client, code, **form), 400, "invalid_request")
    assert "code_verifier is missing" in description
    wrong = pkce_pair()[0]
    assert "does not match" in oauth_error(
        exchange(client, code, code_verifier=wrong, **form), 400, "invalid_grant"
    )
    tokens = exchange(client, code, code_verifier=verifier, **form)
    assert tokens.status_code == 200, tokens.text
    body = tokens.get_json()
    assert body["scope"] == "samples:read" and "device_id" not in body
    # samples:read only: the device list needs devices:read.
    refused = client.get("/api/v1/devices", headers=bearer(body["access_token"]))
    assert refused.status_code == 403 and refused.get_json()["error"] == "insufficient_scope"


def test_a_confidential_app_refreshes_with_rotation_and_reuse_detection(client, user, web_app, device):
    app_row, secret = web_app
    log_in(client)
    code = approve_in_dashboard(client, app_row.client_id, redirect_uri="https://coach.example/cb")
    auth = basic(app_row.client_id, secret)
    first = exchange(client, code, auth=auth, redirect_uri="https://coach.example/cb").get_json()
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = client.post("/token", data=refresh, headers=auth)
    assert second.status_code == 200, second.text
    second = second.get_json()
    assert second["refresh_token"] != first["refresh_token"] and second["scope"] == ALL
    narrowed = client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"], "scope": "all devices:read"},
        headers=auth,
    )  # fmt: skip
    assert narrowed.status_code == 200 and narrowed.get_json()["scope"] == ALL
    third = narrowed.get_json()
    widen = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": third["refresh_token"], "scope": "device"},
        headers=auth,
    )
    oauth_error(widen, 400, "invalid_scope")
    # The spent first token comes back: its family ends, and the grant's access tokens with it.
    oauth_error(client.post("/token", data=refresh, headers=auth), 400, "invalid_grant")
    assert client.get("/api/v1/devices", headers=bearer(third["access_token"])).status_code == 401
    oauth_error(
        client.post("/token", data={"grant_type": "refresh_token", "refresh_token": third["refresh_token"]}, headers=auth),
        400,
        "invalid_grant",
    )  # fmt: skip
    # Without its secret, a confidential app is not authenticated.
    oauth_error(exchange(client, code, client_id=app_row.client_id), 401, "invalid_client")


# --- the consent screen -------------------------------------------------------------------------


def test_signing_in_first_comes_back_to_the_consent_screen(client, user, native_app):
    _, challenge = pkce_pair()
    params = {
        "client_id": native_app.client_id,
        "redirect_uri": "com.example.pulse:/oauth",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    to_login = authorize(client, **params)
    assert to_login.status_code == 302 and "/login?next=" in to_login.headers["Location"]
    back = client.post(
        to_login.headers["Location"],
        data={"email": "ada@example.com", "password": "correct horse battery staple"},
    )
    assert back.status_code == 303 and back.headers["Location"].startswith("/authorize?")
    page = client.get(back.headers["Location"])
    assert page.status_code == 200 and "Pulse Diary" in page.text and "you registered" in page.text
    assert "form-action 'self' com.example.pulse:" in page.headers["Content-Security-Policy"]


def test_another_persons_app_names_its_owner_and_a_device_only_its_owner(client, user, native_app, device):
    make_user("bob@example.com")
    log_in(client, "bob@example.com")
    _, challenge = pkce_pair()
    page = authorize(
        client,
        client_id=native_app.client_id,
        redirect_uri="com.example.pulse:/oauth",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert page.status_code == 200 and "registered by" in page.text and "ada@example.com" in page.text
    refused = authorize(client, client_id=device[0].client_id)  # a page: its redirect URIs are Ada's
    assert refused.status_code == 400 and "Location" not in refused.headers and "owner" in refused.text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Grant)) == 0


def test_deny_sends_access_denied_with_the_state(client, user, device):
    log_in(client)
    page = authorize(client, client_id=device[0].client_id)
    form = {name: input_value(page.text, name) for name in AUTHORIZE_FIELDS}
    query = answer(client.post("/authorize", data={**form, "deny": "Deny"}))
    assert query["error"] == ["access_denied"] and query["state"] == ["s1"] and "code" not in query
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuthorizationCode)) == 0


def test_the_consent_form_needs_its_csrf_token(csrf_app, database_url):
    user = make_user()
    device, _ = make_device(user)
    client = csrf_app.test_client()
    log_in_with_csrf(client)
    page = authorize(client, client_id=device.client_id)
    form = {name: input_value(page.text, name) for name in AUTHORIZE_FIELDS}
    forged = client.post("/authorize", data={**form, "approve": "Allow"})  # no csrf_token
    assert forged.status_code == 400 and "Location" not in forged.headers
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuthorizationCode)) == 0
    token = input_value(page.text, "csrf_token")
    assert answer(client.post("/authorize", data={**form, "csrf_token": token, "approve": "Allow"}))["code"]


# --- errors: on a page, or back to a registered redirect URI -------------------------------------


@pytest.mark.parametrize(
    ("redirect_uri", "says"),
    [
        ("https://evil.example/cb", "not registered"),
        ("https://coach.example/cb/../../evil", "not registered"),
        ("https://coach.example/cb?x=1", "not registered"),
        ("http://127.0.0.2:80/callback", "not registered"),
        ("javascript:alert(1)", "not registered"),
    ],
)
def test_an_unregistered_redirect_uri_gets_a_page_never_a_redirect(client, user, web_app, redirect_uri, says):
    log_in(client)
    page = authorize(client, client_id=web_app[0].client_id, redirect_uri=redirect_uri, response_type="token")
    assert page.status_code == 400 and "Location" not in page.headers
    assert says in page.text


def test_an_unknown_client_gets_a_page(client, user):
    log_in(client)
    page = authorize(client, client_id="app_nope", redirect_uri="https://evil.example/cb")
    assert page.status_code == 400 and "Location" not in page.headers and "Unknown app" in page.text


@pytest.mark.parametrize(
    ("params", "error", "says"),
    [
        ({"response_type": "token"}, "unsupported_response_type", "use code"),
        ({"scope": "device"}, "invalid_scope", "Unknown scope 'device'"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "invalid_request", "plain is not"),
        ({"code_challenge": "x" * 43}, "invalid_request", "S256"),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request", "43 characters"),
        ({"state": ""}, "invalid_request", "Send a state parameter"),
    ],
    ids=["response-type", "scope", "plain-pkce", "no-method", "bad-challenge", "no-state"],
)
def test_request_errors_go_back_to_the_registered_redirect(client, user, web_app, params, error, says):
    log_in(client)
    query = answer(authorize(client, client_id=web_app[0].client_id, **params))
    assert query["error"] == [error] and says in query["error_description"][0]
    assert query.get("state", [""]) == [params.get("state", "s1")] or "state" not in query
    assert query["iss"] == [BASE]


def test_a_public_client_must_use_pkce(client, user, native_app):
    log_in(client)
    query = answer(authorize(client, client_id=native_app.client_id, redirect_uri="com.example.pulse:/oauth"))
    assert query["error"] == ["invalid_request"] and "PKCE" in query["error_description"][0]


# --- the code at /token ------------------------------------------------------------------------


def test_a_code_works_once_and_its_reuse_revokes_what_it_gave(client, user, device):
    log_in(client)
    code = approve_in_dashboard(client, device[0].client_id)
    auth = basic(device[0].client_id, device[1])
    tokens = exchange(client, code, auth=auth).get_json()
    assert client.get("/api/v1/devices", headers=bearer(tokens["access_token"])).status_code == 200
    assert "already used" in oauth_error(exchange(client, code, auth=auth), 400, "invalid_grant")
    assert client.get("/api/v1/devices", headers=bearer(tokens["access_token"])).status_code == 401
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    oauth_error(client.post("/token", data=refresh, headers=auth), 400, "invalid_grant")


def test_a_code_belongs_to_its_client_and_redirect_uri(client, user, device, web_app):
    log_in(client)
    other = make_device(user)
    code = approve_in_dashboard(client, web_app[0].client_id, redirect_uri="https://coach.example/cb")
    said = oauth_error(exchange(client, code, auth=basic(other[0].client_id, other[1])), 400, "invalid_grant")
    assert "another client" in said
    auth = basic(web_app[0].client_id, web_app[1])
    oauth_error(exchange(client, code, auth=auth), 400, "invalid_request")  # redirect_uri was named: name it
    oauth_error(
        exchange(client, code, auth=auth, redirect_uri="https://coach.example/other"), 400, "invalid_grant"
    )
    # Still unspent after all that: the right client with the right URI gets its tokens.
    assert exchange(client, code, auth=auth, redirect_uri="https://coach.example/cb").status_code == 200


def test_a_verifier_is_refused_for_a_code_requested_without_a_challenge(client, user, device):
    log_in(client)
    code = approve_in_dashboard(client, device[0].client_id)
    sent = exchange(client, code, auth=basic(device[0].client_id, device[1]), code_verifier=pkce_pair()[0])
    assert "without a code_challenge" in oauth_error(sent, 400, "invalid_grant")


def test_an_expired_code_is_refused(client, user, device):
    log_in(client)
    code = approve_in_dashboard(client, device[0].client_id)
    db.session.execute(sa.update(AuthorizationCode).values(expires_time=sa.func.current_timestamp()))
    db.session.commit()
    sent = exchange(client, code, auth=basic(device[0].client_id, device[1]))
    assert "expired" in oauth_error(sent, 400, "invalid_grant")


def test_token_parameters_in_the_url_are_refused(client, user, device):
    log_in(client)
    code = approve_in_dashboard(client, device[0].client_id)
    sent = client.post(
        "/token",
        query_string={"grant_type": "authorization_code", "code": code},
        headers=basic(device[0].client_id, device[1]),
    )
    assert "not in the URL" in oauth_error(sent, 400, "invalid_request")


# --- grants end alone: revocation, the person's revoke, disable ----------------------------------


def test_one_persons_revocation_never_touches_another_persons_grant(client, user, web_app):
    app_row, secret = web_app
    auth = basic(app_row.client_id, secret)
    uri = "https://coach.example/cb"
    make_user("bob@example.com")
    people = {}
    for email in ("ada@example.com", "bob@example.com"):
        browser = client.application.test_client()
        log_in(browser, email)
        people[email] = exchange(client, approve_in_dashboard(browser, app_row.client_id, redirect_uri=uri), auth=auth, redirect_uri=uri).get_json()  # fmt: skip
    ada, bob = people["ada@example.com"], people["bob@example.com"]
    assert client.post("/token/revoke", data={"token": ada["access_token"]}, headers=auth).status_code == 200
    assert client.get("/api/v1/devices", headers=bearer(ada["access_token"])).status_code == 401
    assert client.get("/api/v1/devices", headers=bearer(bob["access_token"])).status_code == 200
    # Ada revokes the app altogether: Bob's grant stands.
    grant = db.session.scalar(sa.select(Grant).where(Grant.user_id == user.id))
    grants.revoke_grant(user, grant.id)
    assert client.get("/api/v1/devices", headers=bearer(bob["access_token"])).status_code == 200
    refresh = {"grant_type": "refresh_token", "refresh_token": ada["refresh_token"]}
    oauth_error(client.post("/token", data=refresh, headers=auth), 400, "invalid_grant")
    # Many sign-ins of one person cap that person's families, nobody else's.
    for _ in range(grants.MAX_FAMILIES + 2):
        code = grants.approve(user, grants.find_client(app_row.client_id), ALL, uri, True, None)
        exchange(client, code, auth=auth, redirect_uri=uri)
    bob_refresh = {"grant_type": "refresh_token", "refresh_token": bob["refresh_token"]}
    assert client.post("/token", data=bob_refresh, headers=auth).status_code == 200
    live = sa.select(sa.func.count(sa.distinct(Token.family))).where(
        Token.revoked_time.is_(None), Token.grant_id.is_not(None)
    )
    assert db.session.scalar(live) == grants.MAX_FAMILIES + 1  # Ada's capped ten, Bob's one


def test_disabling_the_device_ends_its_grants(client, user, device):
    pat = make_pat(user)
    log_in(client)
    tokens = exchange(client, approve_in_dashboard(client, device[0].client_id), auth=basic(device[0].client_id, device[1])).get_json()  # fmt: skip
    assert client.delete(f"/api/v1/device/{device[0].id}", headers=bearer(pat)).status_code == 204
    assert client.get("/api/v1/devices", headers=bearer(tokens["access_token"])).status_code == 401
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Grant)) == 0


def test_rotating_an_application_secret_ends_its_grants(client, user, web_app):
    app_row, secret = web_app
    uri = "https://coach.example/cb"
    log_in(client)
    code = approve_in_dashboard(client, app_row.client_id, redirect_uri=uri)
    tokens = exchange(client, code, auth=basic(app_row.client_id, secret), redirect_uri=uri).get_json()
    new_secret = applications.rotate_secret(user, app_row.id).client_secret
    assert client.get("/api/v1/devices", headers=bearer(tokens["access_token"])).status_code == 401
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    oauth_error(
        client.post("/token", data=refresh, headers=basic(app_row.client_id, secret)), 401, "invalid_client"
    )
    oauth_error(
        client.post("/token", data=refresh, headers=basic(app_row.client_id, new_secret)),
        400,
        "invalid_grant",
    )


def test_introspection_and_revocation_by_the_app(client, user, native_app):
    log_in(client)
    verifier, challenge = pkce_pair()
    uri = "com.example.pulse:/oauth"
    code = approve_in_dashboard(client, native_app.client_id, redirect_uri=uri, challenge=challenge)
    tokens = exchange(
        client, code, client_id=native_app.client_id, redirect_uri=uri, code_verifier=verifier
    ).get_json()
    # A public client revokes its own refresh token with its client_id alone (RFC 7009 2.1).
    sent = client.post(
        "/token/revoke", data={"client_id": native_app.client_id, "token": tokens["refresh_token"]}
    )
    assert sent.status_code == 200
    assert client.get("/api/v1/devices", headers=bearer(tokens["access_token"])).status_code == 401
    # Introspection is for confidential clients.
    oauth_error(client.post("/token/introspect", data={"client_id": native_app.client_id, "token": tokens["access_token"]}), 401, "invalid_client")  # fmt: skip


def test_grant_tokens_act_for_the_person_never_as_the_device(client, user, device):
    log_in(client)
    tokens = exchange(client, approve_in_dashboard(client, device[0].client_id, scope="devices:read"), auth=basic(device[0].client_id, device[1])).get_json()  # fmt: skip
    access = tokens["access_token"]
    assert client.get(f"/api/v1/device/{device[0].id}", headers=bearer(access)).status_code == 200
    sent = client.post(f"/api/v1/device/{device[0].id}/metrics", json={}, headers=bearer(access))
    assert sent.status_code in (403, 404) and sent.status_code != 201
    assert client.post("/api/v1/devices", json={"manufacturer": "Apple", "device_code": "iPhone1,1"}, headers=bearer(access)).status_code == 403  # fmt: skip


def test_a_revoked_grants_tokens_never_come_back_under_a_new_grant(client, user, device, web_app):
    """Grant ids are in signed tokens: a new grant must never get a revoked one's id (SQLite
    reuses the highest rowid of a table without AUTOINCREMENT)."""
    app_row, secret = web_app
    uri = "https://coach.example/cb"
    log_in(client)
    code = approve_in_dashboard(client, app_row.client_id, redirect_uri=uri)
    old = exchange(client, code, auth=basic(app_row.client_id, secret), redirect_uri=uri).get_json()
    revoked = db.session.scalar(sa.select(Grant.id))
    grants.revoke_grant(user, revoked)
    approve_in_dashboard(client, device[0].client_id)  # a new grant, generation 1 again
    assert db.session.scalar(sa.select(Grant.id)) != revoked
    assert client.get("/api/v1/devices", headers=bearer(old["access_token"])).status_code == 401


def test_an_apps_token_cannot_export_the_account(client, user, device):
    """The export holds the person's sessions, activity and applications: a personal access
    token takes it, an app's token with both read scopes does not."""
    log_in(client)
    code = approve_in_dashboard(client, device[0].client_id, scope="devices:read samples:read")
    access = exchange(client, code, auth=basic(device[0].client_id, device[1])).get_json()["access_token"]
    refused = client.get("/api/v1/account/export", headers=bearer(access))
    assert refused.status_code == 403 and refused.get_json()["error"] == "insufficient_scope"
    assert "personal access token" in refused.get_json()["error_description"]
    assert client.get("/api/v1/account/export", headers=bearer(make_pat(user))).status_code == 200
