"""The OAuth 2.0 endpoints: /token (client credentials, refresh with rotation), revocation,
introspection, metadata, and the immediate cut-off of disabled devices."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa
from oauthlib.oauth2 import BackendApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from bioweb import security
from bioweb.extensions import db
from bioweb.models import Device, Token, TokenKind, utcnow
from bioweb.security import digest
from tests.helpers import app_with_database, bearer, make_device, make_pat, make_user


@pytest.fixture
def device(user):
    return make_device(user, "Watch1,1")


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def get_token(client, device_and_secret, method: str = "basic"):
    device, secret = device_and_secret
    if method == "basic":
        return client.post(
            "/token", data={"grant_type": "client_credentials"}, headers=basic(device.client_id, secret)
        )
    return client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": device.client_id, "client_secret": secret},
    )


def refresh(client, device_and_secret, refresh_token: str):
    device, secret = device_and_secret
    return client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=basic(device.client_id, secret),
    )


def assert_oauth_error(response, status: int, error: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.get_json()
    assert body["error"] == error
    return body


# --- client credentials ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["basic", "post"])
def test_client_credentials_with_both_auth_methods(client, user, device, method):
    response = get_token(client, device, method)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.get_json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
        "device_id",
        "user_id",
        "tenant_id",
    }
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "device"
    assert (body["device_id"], body["user_id"], body["tenant_id"]) == (device[0].id, user.id, user.tenant_id)
    assert body["access_token"].startswith("bcd_") and body["refresh_token"].startswith("bcr_")
    stored = {t.kind: t for t in db.session.scalars(sa.select(Token).where(Token.device_id == device[0].id))}
    assert stored[TokenKind.ACCESS].digest == digest(body["access_token"])
    assert stored[TokenKind.REFRESH].digest == digest(body["refresh_token"])


def test_expires_in_is_configurable(app, client, device):
    app.config["BIOWEB_TOKEN_EXPIRES_IN"] = 120
    assert get_token(client, device).get_json()["expires_in"] == 120


def test_device_token_reads_only_its_own_record(client, user, pat, device):
    access = get_token(client, device).get_json()["access_token"]
    other, _ = make_device(user)
    own = client.get(f"/api/v1/device/{device[0].id}", headers=bearer(access))
    assert own.status_code == 200 and own.get_json()["client_id"] == device[0].client_id
    assert client.get(f"/api/v1/devices/{device[0].id}", headers=bearer(access)).status_code == 200
    assert client.get(f"/api/v1/device/{other.id}", headers=bearer(access)).status_code == 404
    for response in (
        client.get("/api/v1/devices", headers=bearer(access)),
        client.post(
            "/api/v1/devices",
            json={"manufacturer": "Apple", "device_code": "iPhone1,1"},
            headers=bearer(access),
        ),
        client.delete(f"/api/v1/device/{device[0].id}", headers=bearer(access)),
        client.delete(
            f"/api/v1/data-submission/device-authorize?device_id={device[0].id}", headers=bearer(access)
        ),
        client.post(
            "/api/v1/data-submission/device-authorize",
            json={"device_id": device[0].id},
            headers=bearer(access),
        ),
    ):
        assert response.status_code == 403
        assert response.get_json()["error"] == "insufficient_scope"
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    # Personal access tokens keep working beside device tokens.
    assert client.get("/api/v1/devices", headers=bearer(pat)).status_code == 200


# --- errors (RFC 6749 section 5.2) ------------------------------------------------------------


def test_wrong_secret_is_invalid_client_401_with_challenge(client, device):
    response = get_token(client, (device[0], "bcs_wrong"))
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize("method", ["basic", "post"])
def test_unknown_client_is_invalid_client(client, device, method):
    ghost = Device(client_id="0000000000000000")
    assert_oauth_error(get_token(client, (ghost, "bcs_whatever"), method), 401, "invalid_client")


def test_unknown_client_costs_the_same_as_a_known_one(client, device, monkeypatch):
    """Both paths run exactly one digest comparison (against a dummy digest for an unknown client)."""
    calls = []
    real = security.digest_matches

    def counting(secret, expected):
        calls.append(expected)
        return real(secret, expected)

    monkeypatch.setattr("bioweb.oauth.digest_matches", counting)
    get_token(client, (device[0], "bcs_wrong"))
    get_token(client, (Device(client_id="0000000000000000"), "bcs_wrong"))
    assert calls == [device[0].client_secret_digest, security.DUMMY_DIGEST]


def test_no_client_authentication_is_invalid_client(client, device):
    assert_oauth_error(
        client.post("/token", data={"grant_type": "client_credentials"}), 401, "invalid_client"
    )


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        ({}, 400, "unsupported_grant_type"),
        ({"grant_type": "password", "username": "a", "password": "b"}, 400, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "x"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "scope": "devices:write"}, 400, "invalid_scope"),
        ({"grant_type": "refresh_token"}, 400, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "bcr_nope"}, 400, "invalid_grant"),
    ],
)
def test_token_request_errors(client, device, data, status, error):
    response = client.post("/token", data=data, headers=basic(device[0].client_id, device[1]))
    assert_oauth_error(response, status, error)


def test_token_endpoint_refuses_get_and_json(client, device):
    assert client.get("/token").status_code == 405
    assert client.get("/token").get_json()["error"] == "method_not_allowed"
    response = client.post(
        "/token", json={"grant_type": "client_credentials"}, headers=basic(device[0].client_id, device[1])
    )
    assert response.status_code == 400 and response.get_json()["error"] == "unsupported_grant_type"


# --- refresh with rotation ------------------------------------------------------------------


def test_refresh_rotates_and_the_used_token_dies(client, device):
    first = get_token(client, device).get_json()
    second = refresh(client, device, first["refresh_token"])
    assert second.status_code == 200
    second = second.get_json()
    assert (
        second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    )
    assert second["scope"] == "device" and second["device_id"] == device[0].id
    assert (
        client.get(f"/api/v1/device/{device[0].id}", headers=bearer(second["access_token"])).status_code
        == 200
    )
    third = refresh(client, device, second["refresh_token"])
    assert third.status_code == 200


def test_reusing_a_refresh_token_revokes_the_family(client, device):
    first = get_token(client, device).get_json()
    unrelated = get_token(client, device).get_json()
    second = refresh(client, device, first["refresh_token"]).get_json()
    assert_oauth_error(refresh(client, device, first["refresh_token"]), 400, "invalid_grant")
    # The whole family is dead: the rotated pair too.
    assert (
        client.get(f"/api/v1/device/{device[0].id}", headers=bearer(second["access_token"])).status_code
        == 401
    )
    assert_oauth_error(refresh(client, device, second["refresh_token"]), 400, "invalid_grant")
    # Another family of the same device is untouched.
    assert (
        client.get(f"/api/v1/device/{device[0].id}", headers=bearer(unrelated["access_token"])).status_code
        == 200
    )
    assert refresh(client, device, unrelated["refresh_token"]).status_code == 200


def test_refresh_token_of_another_device_is_invalid_grant(client, user, device):
    other = make_device(user)
    theirs = get_token(client, other).get_json()["refresh_token"]
    assert_oauth_error(refresh(client, device, theirs), 400, "invalid_grant")
    assert refresh(client, other, theirs).status_code == 200


def test_access_token_is_not_a_refresh_token(client, device):
    access = get_token(client, device).get_json()["access_token"]
    assert_oauth_error(refresh(client, device, access), 400, "invalid_grant")


def test_expired_refresh_token_is_invalid_grant(client, device):
    body = get_token(client, device).get_json()
    row = db.session.scalar(sa.select(Token).where(Token.digest == digest(body["refresh_token"])))
    row.expires_time = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert_oauth_error(refresh(client, device, body["refresh_token"]), 400, "invalid_grant")


def test_a_device_keeps_a_bounded_number_of_live_refresh_tokens(client, device):
    from bioweb.services.tokens import MAX_REFRESH_FAMILIES

    bodies = [get_token(client, device).get_json() for _ in range(MAX_REFRESH_FAMILIES + 3)]
    live = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Token)
        .where(Token.device_id == device[0].id, Token.kind == TokenKind.REFRESH, Token.revoked_time.is_(None))
    )
    assert live == MAX_REFRESH_FAMILIES
    assert refresh(client, device, bodies[-1]["refresh_token"]).status_code == 200
    assert_oauth_error(refresh(client, device, bodies[0]["refresh_token"]), 400, "invalid_grant")


# --- disable and re-authorize: immediate and total ------------------------------------------


@pytest.mark.parametrize(
    "disable",
    [
        lambda c, pat, i: c.delete(f"/api/v1/device/{i}", headers=bearer(pat)),
        lambda c, pat, i: c.delete(
            f"/api/v1/data-submission/device-authorize?device_id={i}", headers=bearer(pat)
        ),
    ],
    ids=["delete-device", "delete-device-authorize"],
)
def test_disable_cuts_the_device_off_on_its_next_request(client, pat, device, disable):
    tokens = get_token(client, device).get_json()
    assert (
        client.get(f"/api/v1/device/{device[0].id}", headers=bearer(tokens["access_token"])).status_code
        == 200
    )
    assert disable(client, pat, device[0].id).status_code == 204
    response = client.get(f"/api/v1/device/{device[0].id}", headers=bearer(tokens["access_token"]))
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
    assert_oauth_error(get_token(client, device), 401, "invalid_client")
    assert_oauth_error(get_token(client, device, "post"), 401, "invalid_client")
    assert_oauth_error(refresh(client, device, tokens["refresh_token"]), 401, "invalid_client")


def test_reauthorize_issues_new_secret_and_old_credentials_stay_dead(client, pat, device):
    old = get_token(client, device).get_json()
    assert client.delete(f"/api/v1/device/{device[0].id}", headers=bearer(pat)).status_code == 204
    response = client.post(
        "/api/v1/data-submission/device-authorize", json={"device_id": device[0].id}, headers=bearer(pat)
    )
    new_secret = response.get_json()["oauth2_client_secret"]
    assert_oauth_error(get_token(client, device), 401, "invalid_client")
    assert (
        client.get(f"/api/v1/device/{device[0].id}", headers=bearer(old["access_token"])).status_code == 401
    )
    fresh = (device[0], new_secret)
    assert_oauth_error(refresh(client, fresh, old["refresh_token"]), 400, "invalid_grant")
    new = get_token(client, fresh).get_json()
    assert (
        client.get(f"/api/v1/device/{device[0].id}", headers=bearer(new["access_token"])).status_code == 200
    )


def test_reauthorizing_an_active_device_also_ends_its_old_tokens(client, pat, device):
    old = get_token(client, device).get_json()
    client.post(
        "/api/v1/data-submission/device-authorize", json={"device_id": device[0].id}, headers=bearer(pat)
    )
    assert (
        client.get(f"/api/v1/device/{device[0].id}", headers=bearer(old["access_token"])).status_code == 401
    )


# --- last_active_time ------------------------------------------------------------------------


def _last_active(device_id: int):
    db.session.expire_all()
    return db.session.get(Device, device_id).last_active_time


def test_last_active_time_moves_on_token_and_use_but_writes_are_throttled(client, device):
    device_id = device[0].id
    db.session.execute(
        sa.update(Device).where(Device.id == device_id).values(last_active_time=utcnow() - timedelta(hours=1))
    )
    db.session.commit()
    before = _last_active(device_id)
    access = get_token(client, device).get_json()["access_token"]
    issued = _last_active(device_id)
    assert issued > before

    # Used within the minute: no new write.
    assert client.get(f"/api/v1/device/{device_id}", headers=bearer(access)).status_code == 200
    assert _last_active(device_id) == issued

    # A minute later, a use moves it.
    db.session.execute(
        sa.update(Device).where(Device.id == device_id).values(last_active_time=issued - timedelta(minutes=2))
    )
    db.session.commit()
    assert client.get(f"/api/v1/device/{device_id}", headers=bearer(access)).status_code == 200
    assert _last_active(device_id) > issued - timedelta(minutes=1)


def test_pat_last_used_time_is_recorded(client, user, pat):
    row = db.session.scalar(sa.select(Token).where(Token.digest == digest(pat)))
    assert row.last_used_time is None
    client.get("/api/v1/devices", headers=bearer(pat))
    db.session.expire_all()
    assert db.session.get(Token, row.id).last_used_time is not None


# --- revocation (RFC 7009) --------------------------------------------------------------------


def test_revoking_an_access_token(client, device):
    tokens = get_token(client, device).get_json()
    response = client.post(
        "/token/revoke", data={"token": tokens["access_token"]}, headers=basic(device[0].client_id, device[1])
    )
    assert response.status_code == 200
    assert (
        client.get(f"/api/v1/device/{device[0].id}", headers=bearer(tokens["access_token"])).status_code
        == 401
    )
    assert refresh(client, device, tokens["refresh_token"]).status_code == 200


def test_revoking_a_refresh_token_ends_its_family(client, device):
    tokens = get_token(client, device).get_json()
    response = client.post(
        "/token/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        headers=basic(device[0].client_id, device[1]),
    )
    assert response.status_code == 200
    assert_oauth_error(refresh(client, device, tokens["refresh_token"]), 400, "invalid_grant")
    assert (
        client.get(f"/api/v1/device/{device[0].id}", headers=bearer(tokens["access_token"])).status_code
        == 401
    )


def test_revoking_unknown_token_is_200_and_another_clients_token_is_refused(client, user, device):
    auth = basic(device[0].client_id, device[1])
    assert client.post("/token/revoke", data={"token": "bcd_unknown"}, headers=auth).status_code == 200
    other = make_device(user)
    theirs = get_token(client, other).get_json()["access_token"]
    response = client.post("/token/revoke", data={"token": theirs}, headers=auth)
    assert_oauth_error(response, 400, "invalid_grant")
    assert client.get(f"/api/v1/device/{other[0].id}", headers=bearer(theirs)).status_code == 200


def test_revocation_needs_client_authentication_and_a_token(client, device):
    tokens = get_token(client, device).get_json()
    assert_oauth_error(
        client.post("/token/revoke", data={"token": tokens["access_token"]}), 401, "invalid_client"
    )
    assert_oauth_error(
        client.post("/token/revoke", data={}, headers=basic(device[0].client_id, device[1])),
        400,
        "invalid_request",
    )
    assert (
        client.get(f"/api/v1/device/{device[0].id}", headers=bearer(tokens["access_token"])).status_code
        == 200
    )


# --- introspection (RFC 7662) ----------------------------------------------------------------


def test_introspection_of_own_tokens(client, user, device):
    tokens = get_token(client, device).get_json()
    auth = basic(device[0].client_id, device[1])
    body = client.post("/token/introspect", data={"token": tokens["access_token"]}, headers=auth).get_json()
    assert body["active"] is True
    assert body["scope"] == "device" and body["client_id"] == device[0].client_id
    assert body["device_id"] == device[0].id and body["user_id"] == user.id and body["sub"] == str(user.id)
    assert body["exp"] - body["iat"] == 3600
    assert (
        client.post("/token/introspect", data={"token": tokens["refresh_token"]}, headers=auth).get_json()[
            "active"
        ]
        is True
    )


def test_introspection_says_inactive_for_others_unknown_revoked_and_personal_tokens(
    client, user, pat, device
):
    auth = basic(device[0].client_id, device[1])
    other = make_device(user)
    theirs = get_token(client, other).get_json()["access_token"]
    mine = get_token(client, device).get_json()["access_token"]
    client.post("/token/revoke", data={"token": mine}, headers=auth)
    for token in (theirs, mine, "bcd_unknown", pat):
        response = client.post("/token/introspect", data={"token": token}, headers=auth)
        assert response.status_code == 200 and response.get_json() == {"active": False}


def test_metadata_document(client):
    body = client.get("/.well-known/oauth-authorization-server").get_json()
    assert body["issuer"] == "http://127.0.0.1:8000"
    assert body["token_endpoint"] == "http://127.0.0.1:8000/token"
    assert body["revocation_endpoint"] == "http://127.0.0.1:8000/token/revoke"
    assert body["introspection_endpoint"] == "http://127.0.0.1:8000/token/introspect"
    assert body["grant_types_supported"] == ["client_credentials", "refresh_token"]
    assert body["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
    assert body["scopes_supported"] == ["device"]


# --- rate limits -------------------------------------------------------------------------------


def test_token_endpoint_is_rate_limited_per_client(database_url):
    with app_with_database(
        database_url, RATELIMIT_ENABLED=True, BIOWEB_TOKEN_RATELIMIT_PER_CLIENT="3/minute"
    ) as app:
        creds = make_device(make_user("rl@example.com"))
        other = make_device(make_user("rl2@example.com"))
        client = app.test_client()
        assert [get_token(client, creds).status_code for _ in range(3)] == [200, 200, 200]
        response = get_token(client, creds)
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) > 0
        body = response.get_json()
        assert body["error"] == "too_many_requests" and body["error_description"]
        # Wrong secrets count against the same client; another client is unaffected.
        assert get_token(client, (creds[0], "bcs_guess")).status_code == 429
        assert get_token(client, other).status_code == 200


def test_token_endpoint_is_rate_limited_per_ip(database_url):
    limits = {"BIOWEB_TOKEN_RATELIMIT_PER_CLIENT": "100/minute", "BIOWEB_TOKEN_RATELIMIT_PER_IP": "4/minute"}
    with app_with_database(database_url, RATELIMIT_ENABLED=True, **limits) as app:
        client = app.test_client()
        devices = [make_device(make_user(f"ip{i}@example.com")) for i in range(5)]
        statuses = [get_token(client, d).status_code for d in devices]
        assert statuses == [200, 200, 200, 200, 429]


# --- purge ---------------------------------------------------------------------------------------


def test_purge_removes_expired_and_long_revoked_tokens_only(client, runner, user, device):
    live = get_token(client, device).get_json()
    dead = get_token(client, device).get_json()
    old_pat = make_pat(user)
    now = utcnow()
    db.session.execute(
        sa.update(Token)
        .where(Token.digest == digest(dead["access_token"]))
        .values(expires_time=now - timedelta(seconds=1))
    )
    db.session.execute(
        sa.update(Token).where(Token.digest == digest(old_pat)).values(revoked_time=now - timedelta(days=8))
    )
    db.session.commit()
    result = runner.invoke(args=["tokens", "purge"])
    assert result.exit_code == 0 and "Purged 2 tokens." in result.output
    remaining = set(db.session.scalars(sa.select(Token.digest)))
    assert digest(live["access_token"]) in remaining and digest(dead["refresh_token"]) in remaining
    assert digest(dead["access_token"]) not in remaining and digest(old_pat) not in remaining


# --- against a real server, with an independent OAuth client library ------------------------------


def test_off_the_shelf_oauth_client_against_a_live_server(live_server, user, pat, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP on loopback, in tests only
    created = requests.post(
        f"{live_server}/api/v1/devices",
        json={"manufacturer": "Apple", "device_code": "Watch1,1"},
        headers=bearer(pat),
        timeout=10,
    ).json()
    client_id, secret = created["oauth2_client_id"], created["oauth2_client_secret"]
    token_url = f"{live_server}/token"

    # client_secret_basic
    session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
    token = session.fetch_token(token_url=token_url, auth=HTTPBasicAuth(client_id, secret))
    assert token["token_type"] == "Bearer" and token["scope"] == ["device"]
    own = session.get(f"{live_server}/api/v1/device/{created['id']}", timeout=10)
    assert own.status_code == 200 and own.json()["client_id"] == client_id
    assert session.get(f"{live_server}/api/v1/devices", timeout=10).status_code == 403

    # client_secret_post
    session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
    token = session.fetch_token(
        token_url=token_url, client_id=client_id, client_secret=secret, include_client_id=True
    )
    assert session.get(f"{live_server}/api/v1/device/{created['id']}", timeout=10).status_code == 200

    # refresh through the library, then disable: the next request is refused
    refreshed = session.refresh_token(
        token_url, refresh_token=token["refresh_token"], auth=HTTPBasicAuth(client_id, secret)
    )
    assert refreshed["access_token"] != token["access_token"]
    assert (
        requests.delete(
            f"{live_server}/api/v1/device/{created['id']}", headers=bearer(pat), timeout=10
        ).status_code
        == 204
    )
    assert session.get(f"{live_server}/api/v1/device/{created['id']}", timeout=10).status_code == 401


def test_concurrent_refreshes_exactly_one_wins(live_server, user):
    device, secret = make_device(user)
    auth = (device.client_id, secret)
    first = requests.post(
        f"{live_server}/token", data={"grant_type": "client_credentials"}, auth=auth, timeout=10
    ).json()

    def spend(_):
        return requests.post(
            f"{live_server}/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            auth=auth,
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(spend, range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 7, [r.text for r in responses]
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
