"""The OAuth 2.0 endpoints: /token (client credentials with signed access tokens, refresh with
rotation), revocation, introspection, metadata, errors to the letter, rate limits on failed
authentication, and the immediate cut-off of disabled and re-authorized devices."""

from __future__ import annotations

import base64
import hmac
import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import quote

import pytest
import requests
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import OctKey
from oauthlib.oauth2 import BackendApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from bioweb import config as config_module
from bioweb import security
from bioweb.extensions import db
from bioweb.models import Device, Event, EventKind, Token, TokenKind, utcnow
from bioweb.security import digest
from bioweb.services import devices as device_service
from bioweb.services import tokens as token_service
from bioweb.signing import KeyConfigError, TokenSigner, parse_keys
from tests.helpers import (
    TOKEN_KEYS,
    app_with_database,
    basic,
    bearer,
    grant_code,
    make_app,
    make_device,
    make_pat,
    make_user,
)


@pytest.fixture
def device(user):
    return make_device(user, "Watch1,1")


def get_token(client, device_and_secret, method: str = "basic", **extra):
    device, secret = device_and_secret
    data = {"grant_type": "client_credentials", **extra}
    if method == "basic":
        return client.post("/token", data=data, headers=basic(device.client_id, secret))
    return client.post("/token", data={**data, "client_id": device.client_id, "client_secret": secret})


def refresh(client, device_and_secret, refresh_token: str):
    device, secret = device_and_secret
    return client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=basic(device.client_id, secret),
    )


def refresh_family(client, device_and_secret) -> dict:
    """A refresh-token family: the device's owner approves its companion app (through the
    service) and the app trades the code at /token with the device's credentials."""
    device, secret = device_and_secret
    code = grant_code(device.user, device.client_id)
    response = client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code},
        headers=basic(device.client_id, secret),
    )
    assert response.status_code == 200, response.text
    return response.get_json()


def read_own(client, device: Device, access: str):
    return client.get(f"/api/v1/device/{device.id}", headers=bearer(access))


def jwt_parts(token: str) -> tuple[dict, dict]:
    """Header and claims of a signed token (read, not verified)."""
    header, claims, _ = token.removeprefix("bcd_").split(".")
    decode = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    return decode(header), decode(claims)


def assert_oauth_error(response, status: int, error: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.get_json()
    assert body["error"] == error
    description = body["error_description"]
    assert description and description[-1] == "." and "[" not in description, description
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="bioweb"')
    return body


@contextmanager
def statements(app):
    """Collect the SQL statements the app runs inside the block."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement.lstrip().split()[0].upper())

    engines = {db.engine, app.extensions["bioweb.reads"]}  # the app's, and bioweb/reads.py's
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", record)


WRITES = {"INSERT", "UPDATE", "DELETE"}


# --- client credentials -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["basic", "post"])
def test_client_credentials_gives_a_signed_access_token_and_no_refresh_token(client, user, device, method):
    response = get_token(client, device, method)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert "Retry-After" not in response.headers
    body = response.get_json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "scope",
        "device_id",
        "user_id",
        "tenant_id",
    }
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "device"
    assert (body["device_id"], body["user_id"], body["tenant_id"]) == (device[0].id, user.id, user.tenant_id)
    header, claims = jwt_parts(body["access_token"])
    assert body["access_token"].startswith("bcd_")
    assert header == {"typ": "at+jwt", "alg": "HS256", "kid": "test-key"}
    assert claims["iss"] == "http://127.0.0.1:8000" and claims["aud"] == "http://127.0.0.1:8000/api/v1"
    assert claims["sub"] == claims["client_id"] == device[0].client_id
    assert claims["exp"] - claims["iat"] == 3600 and len(claims["jti"]) >= 16
    assert (claims["device_id"], claims["user_id"], claims["tenant_id"]) == (
        device[0].id,
        user.id,
        user.tenant_id,
    )
    assert claims["gen"] == 1 and claims["cs"] == 1 and claims["scope"] == "device"
    # A signed token keeps no copy anywhere.
    assert (
        db.session.scalar(
            sa.select(sa.func.count()).select_from(Token).where(Token.device_id == device[0].id)
        )
        == 0
    )


@pytest.mark.parametrize("scope", ["all", "device", "device all", ""])
def test_scope_all_is_the_alias_of_device(client, device, scope):
    response = get_token(client, device, scope=scope)
    assert response.status_code == 200 and response.get_json()["scope"] == "device"
    assert read_own(client, device[0], response.get_json()["access_token"]).status_code == 200


def test_expires_in_is_configurable(app, client, device):
    app.config["BIOWEB_TOKEN_EXPIRES_IN"] = 120
    body = get_token(client, device).get_json()
    assert body["expires_in"] == 120
    claims = jwt_parts(body["access_token"])[1]
    assert claims["exp"] - claims["iat"] == 120


def test_device_token_reads_only_its_own_record(client, user, pat, device):
    access = get_token(client, device).get_json()["access_token"]
    other, _ = make_device(user)
    own = read_own(client, device[0], access)
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
        client.get(f"/api/v1/device/{device[0].id}/events", headers=bearer(access)),
    ):
        assert response.status_code == 403
        assert response.get_json()["error"] == "insufficient_scope"
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    # Personal access tokens keep working beside device tokens.
    assert client.get("/api/v1/devices", headers=bearer(pat)).status_code == 200


def test_a_device_reading_itself_costs_one_query(app, client, device):
    access = get_token(client, device).get_json()["access_token"]
    read_own(client, device[0], access)  # the once-a-minute activity write, out of the way
    with statements(app) as seen:
        assert read_own(client, device[0], access).status_code == 200
    assert seen == ["SELECT"]


# --- what is not a device access token --------------------------------------------------------------


def _resign(token: str, **changes) -> str:
    """The same claims with some changed, signed with the test key (a forgery that knows the key)."""
    header, claims = jwt_parts(token)
    claims.update(changes)
    return "bcd_" + jwt.encode(header, claims, OctKey.import_key(TOKEN_KEYS.partition(":")[2].encode()))


def test_a_refresh_token_is_not_a_bearer_token(client, device):
    family = refresh_family(client, device)
    response = read_own(client, device[0], family["refresh_token"])
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="bioweb"')
    assert read_own(client, device[0], family["access_token"]).status_code == 200


def test_tampered_foreign_and_expired_tokens_are_refused(client, device):
    access = get_token(client, device).get_json()["access_token"]
    header, claims = jwt_parts(access)
    head, body, signature = access.removeprefix("bcd_").split(".")
    other_claims = (
        base64.urlsafe_b64encode(json.dumps({**claims, "device_id": 999}).encode()).decode().rstrip("=")
    )
    foreign = TokenSigner("other:" + "o" * 40, claims["iss"], claims["aud"]).sign(
        client_id=device[0].client_id, scope="device", device_id=device[0].id, user_id=claims["user_id"],
        tenant_id=claims["tenant_id"], generation=1, secret_slot=1, expires_in=60,
    )  # fmt: skip
    for token in (
        f"bcd_{head}.{other_claims}.{signature}",  # claims changed under the signature
        f"bcd_{head}.{body}.{signature[:-2]}AA",  # signature changed
        access.removeprefix("bcd_"),  # no prefix
        foreign,  # signed by a key we do not hold
        _resign(access, exp=claims["iat"] - 1),  # expired
        _resign(access, iss="https://elsewhere.example"),  # another issuer
        _resign(access, aud="https://elsewhere.example/api"),  # another audience
        _resign(access, gen=0),  # an older generation
        "bcd_not-a-jwt",
    ):
        response = read_own(client, device[0], token)
        assert response.status_code == 401, token
        assert response.get_json()["error"] == "invalid_token"


def test_verified_tokens_are_remembered_but_still_expire(app, client, device):
    access = get_token(client, device).get_json()["access_token"]
    signer = app.extensions["bioweb.signer"]
    claims = signer.verify(access)
    assert claims is not None and signer.verify(access) == claims  # the second time from memory
    assert signer.verify(access, now=claims.expires_at) is None  # expiry is checked every time
    forged = access[:-4] + ("AAAA" if not access.endswith("AAAA") else "BBBB")
    assert signer.verify(forged) is None and signer.verify(forged) is None
    assert len(signer._verified) == 1  # only the genuine token was kept, and only by its digest
    assert access not in signer._verified and all(isinstance(k, bytes) for k in signer._verified)


def test_a_rotated_out_key_verifies_until_it_is_removed(database_url, device):
    old_keys = "k2025:" + "a" * 40
    new_keys = "k2026:" + "b" * 40 + ",\n" + old_keys
    old_app, rotated_app, pruned_app = (
        make_app(database_url, BIOWEB_TOKEN_KEYS=keys) for keys in (old_keys, new_keys, "k2026:" + "b" * 40)
    )
    old_token = get_token(old_app.test_client(), device).get_json()["access_token"]
    assert jwt_parts(old_token)[0]["kid"] == "k2025"
    rotated = rotated_app.test_client()
    assert read_own(rotated, device[0], old_token).status_code == 200
    new_token = get_token(rotated, device).get_json()["access_token"]
    assert jwt_parts(new_token)[0]["kid"] == "k2026"
    pruned = pruned_app.test_client()
    assert read_own(pruned, device[0], new_token).status_code == 200
    assert read_own(pruned, device[0], old_token).status_code == 401
    for app in (old_app, rotated_app, pruned_app):
        with app.app_context():
            db.engine.dispose()


def test_signing_keys_are_generated_once_and_kept(tmp_path):
    first, second = {}, {}
    config_module.fill_generated(first, str(tmp_path))
    config_module.fill_generated(second, str(tmp_path))
    assert first["BIOWEB_TOKEN_KEYS"] == second["BIOWEB_TOKEN_KEYS"]
    assert first["SECRET_KEY"] == second["SECRET_KEY"]
    keys = parse_keys(first["BIOWEB_TOKEN_KEYS"])
    assert len(keys) == 1 and len(keys[0][1]) >= 32
    assert (tmp_path / "token_keys").stat().st_mode & 0o777 == 0o600
    given = {"BIOWEB_TOKEN_KEYS": "mine:" + "m" * 40, "SECRET_KEY": "s" * 40}
    config_module.fill_generated(given, str(tmp_path / "elsewhere"))
    assert given["BIOWEB_TOKEN_KEYS"] == "mine:" + "m" * 40 and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(
    "keys", ["", "nokid", "k:short", "k:" + "x" * 40 + ",k:" + "y" * 40, "bad kid:" + "x" * 40]
)
def test_unusable_signing_keys_are_refused_at_start(keys):
    with pytest.raises(KeyConfigError):
        parse_keys(keys)


# --- errors (RFC 6749 section 5.2) ---------------------------------------------------------------


def test_wrong_secret_and_unknown_client_get_one_answer(client, device):
    wrong = assert_oauth_error(get_token(client, (device[0], "bcs_wrong")), 401, "invalid_client")
    ghost = Device(client_id="0000000000000000")
    for method in ("basic", "post"):
        unknown = assert_oauth_error(
            get_token(client, (ghost, "bcs_whatever"), method), 401, "invalid_client"
        )
        assert unknown == wrong
    assert wrong["error_description"] == "The client id or client secret is wrong."


def test_a_disabled_device_is_told_so_once_its_secret_checks_out(client, pat, device):
    client.delete(f"/api/v1/device/{device[0].id}", headers=bearer(pat))
    body = assert_oauth_error(get_token(client, device), 401, "invalid_client")
    assert "disabled" in body["error_description"] and "re-authorize" in body["error_description"]
    wrong = assert_oauth_error(get_token(client, (device[0], "bcs_wrong")), 401, "invalid_client")
    assert "disabled" not in wrong["error_description"]


def test_unknown_client_costs_the_same_as_a_known_one(client, device, monkeypatch):
    """Every path runs exactly two digest comparisons, one per secret slot (against a dummy
    digest for an empty slot and for an unknown client)."""
    calls = []

    class Counting:
        @staticmethod
        def compare_digest(presented, expected):
            calls.append(expected)
            return hmac.compare_digest(presented, expected)

    monkeypatch.setattr(token_service, "hmac", Counting)
    get_token(client, (device[0], "bcs_wrong"))
    get_token(client, (Device(client_id="0000000000000000"), "bcs_wrong"))
    assert calls == [device[0].client_secret_digest, security.DUMMY_DIGEST] + [security.DUMMY_DIGEST] * 2


def test_no_client_authentication_is_invalid_client(client, device):
    body = assert_oauth_error(
        client.post("/token", data={"grant_type": "client_credentials"}), 401, "invalid_client"
    )
    assert "client_secret_basic" in body["error_description"]


def test_two_authentication_methods_at_once_are_refused(client, device):
    both = client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": device[0].client_id,
            "client_secret": device[1],
        },
        headers=basic(device[0].client_id, "bcs_decoy"),
    )
    assert "one method" in assert_oauth_error(both, 400, "invalid_request")["error_description"]
    other_id = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": "0000000000000000"},
        headers=basic(device[0].client_id, device[1]),
    )
    assert_oauth_error(other_id, 400, "invalid_request")
    # Basic with the same client_id repeated in the form (some libraries send it) is one method.
    same_id = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": device[0].client_id},
        headers=basic(device[0].client_id, device[1]),
    )
    assert same_id.status_code == 200


def test_basic_credentials_are_percent_decoded(client, device):
    encoded_id = "".join(f"%{ord(c):02X}" for c in device[0].client_id)
    assert get_token(client, (Device(client_id=encoded_id), device[1])).status_code == 200
    assert get_token(client, (device[0], quote(device[1], safe=""))).status_code == 200


@pytest.mark.parametrize(
    ("request_kwargs", "status", "error", "says"),
    [
        ({"data": {}}, 400, "invalid_request", "grant_type is missing"),
        ({"data": {"grant_type": "password", "username": "a", "password": "b"}}, 400, "unsupported_grant_type", "'password'"),
        ({"data": {"grant_type": "authorization_code", "code": "x"}}, 400, "invalid_grant", "code is unknown"),
        ({"data": {"grant_type": "authorization_code"}}, 400, "invalid_request", "parameter code is missing"),
        ({"data": {"grant_type": "client_credentials", "scope": "devices:write"}}, 400, "invalid_scope", "'devices:write'"),
        ({"data": {"grant_type": "refresh_token"}}, 400, "invalid_request", "refresh_token"),
        ({"data": {"grant_type": "refresh_token", "refresh_token": "bcr_nope"}}, 400, "invalid_grant", "refresh token"),
        ({"json": {"grant_type": "client_credentials"}}, 400, "invalid_request", "form fields"),
        ({"data": "grant_type=client_credentials&grant_type=client_credentials", "content_type": "application/x-www-form-urlencoded"}, 400, "invalid_request", "repeated: grant_type"),
        ({"data": {"grant_type": "client_credentials"}, "query_string": {"scope": "all"}}, 400, "invalid_request", "not in the URL"),
    ],
    ids=["missing", "password", "code", "no-code", "scope", "no-refresh", "bad-refresh", "json", "repeated", "query"],
)  # fmt: skip
def test_token_request_errors_say_what_to_do(client, device, request_kwargs, status, error, says):
    response = client.post("/token", headers=basic(device[0].client_id, device[1]), **request_kwargs)
    body = assert_oauth_error(response, status, error)
    assert says in body["error_description"]


def test_no_content_answers_carry_no_content_type(client, pat, device):
    for response in (
        client.delete(f"/api/v1/device/{device[0].id}", headers=bearer(pat)),
        client.delete(
            f"/api/v1/data-submission/device-authorize?device_id={device[0].id}", headers=bearer(pat)
        ),
    ):
        assert response.status_code == 204 and response.data == b""
        assert "Content-Type" not in response.headers


def test_token_endpoint_refuses_get(client):
    assert client.get("/token").status_code == 405
    assert client.get("/token").get_json()["error"] == "method_not_allowed"


# --- refresh tokens (grants for a person): rotation and reuse detection -------------------------------


def test_refresh_rotates_and_the_used_token_dies(client, device):
    first = refresh_family(client, device)
    second = refresh(client, device, first["refresh_token"])
    assert second.status_code == 200
    second = second.get_json()
    assert second["refresh_token"].startswith("bcr_") and second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == "devices:read devices:write samples:read samples:write"
    assert second["device_id"] == device[0].id
    assert read_own(client, device[0], second["access_token"]).status_code == 200
    assert_oauth_error(refresh(client, device, first["refresh_token"]), 400, "invalid_grant")


def test_reusing_a_refresh_token_revokes_the_family(client, device):
    first = refresh_family(client, device)
    unrelated = refresh_family(client, device)
    second = refresh(client, device, first["refresh_token"]).get_json()
    assert_oauth_error(refresh(client, device, first["refresh_token"]), 400, "invalid_grant")
    # The family is dead, rotated pair included; access tokens based on it end too.
    assert read_own(client, device[0], second["access_token"]).status_code == 401
    assert_oauth_error(refresh(client, device, second["refresh_token"]), 400, "invalid_grant")
    # Another family's refresh token still works.
    assert refresh(client, device, unrelated["refresh_token"]).status_code == 200


def test_refresh_token_of_another_device_is_invalid_grant(client, user, device):
    other = make_device(user)
    theirs = refresh_family(client, other)["refresh_token"]
    assert_oauth_error(refresh(client, device, theirs), 400, "invalid_grant")
    assert refresh(client, other, theirs).status_code == 200


def test_access_token_is_not_a_refresh_token(client, device):
    access = get_token(client, device).get_json()["access_token"]
    assert_oauth_error(refresh(client, device, access), 400, "invalid_grant")


def test_expired_refresh_token_is_invalid_grant(client, device):
    family = refresh_family(client, device)
    row = db.session.scalar(sa.select(Token).where(Token.digest == digest(family["refresh_token"])))
    row.expires_time = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert_oauth_error(refresh(client, device, family["refresh_token"]), 400, "invalid_grant")


# --- disable and re-authorize: immediate and total ---------------------------------------------------


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
    access = get_token(client, device).get_json()["access_token"]
    family = refresh_family(client, device)
    assert read_own(client, device[0], access).status_code == 200
    assert disable(client, pat, device[0].id).status_code == 204
    for token in (access, family["access_token"]):
        response = read_own(client, device[0], token)
        assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
    assert_oauth_error(get_token(client, device), 401, "invalid_client")
    assert_oauth_error(get_token(client, device, "post"), 401, "invalid_client")
    assert_oauth_error(refresh(client, device, family["refresh_token"]), 401, "invalid_client")


def test_reauthorize_issues_new_secret_and_old_credentials_stay_dead(client, pat, device):
    old = get_token(client, device).get_json()["access_token"]
    family = refresh_family(client, device)
    assert client.delete(f"/api/v1/device/{device[0].id}", headers=bearer(pat)).status_code == 204
    response = client.post(
        "/api/v1/data-submission/device-authorize", json={"device_id": device[0].id}, headers=bearer(pat)
    )
    new_secret = response.get_json()["oauth2_client_secret"]
    assert_oauth_error(get_token(client, device), 401, "invalid_client")
    assert read_own(client, device[0], old).status_code == 401
    fresh = (device[0], new_secret)
    assert_oauth_error(refresh(client, fresh, family["refresh_token"]), 400, "invalid_grant")
    new = get_token(client, fresh).get_json()
    assert jwt_parts(new["access_token"])[1]["gen"] == 3  # created 1, disabled 2, re-authorized 3
    assert read_own(client, device[0], new["access_token"]).status_code == 200


def test_reauthorizing_an_active_device_also_ends_its_old_tokens(client, pat, device):
    old = get_token(client, device).get_json()["access_token"]
    client.post(
        "/api/v1/data-submission/device-authorize", json={"device_id": device[0].id}, headers=bearer(pat)
    )
    assert read_own(client, device[0], old).status_code == 401


def test_a_token_minted_before_a_disable_committed_is_dead(client, pat, device):
    """The race, slowed down: /token read the device row (and its generation) before the owner's
    disable and re-authorize committed; the token it then signs is dead at its first use."""
    row_before = device_service.find_client(device[0].client_id)
    client.delete(f"/api/v1/device/{device[0].id}", headers=bearer(pat))
    client.post(
        "/api/v1/data-submission/device-authorize", json={"device_id": device[0].id}, headers=bearer(pat)
    )
    late = token_service.issue_device_token(row_before)
    assert read_own(client, device[0], late.access_token).status_code == 401


# --- /token writes at most once an hour per device ------------------------------------------------------


def _device_row(device_id: int) -> Device:
    db.session.expire_all()
    return db.session.get(Device, device_id)


def test_token_requests_write_once_an_hour(app, client, device):
    device_id = device[0].id
    with statements(app) as seen:
        assert all(get_token(client, device).status_code == 200 for _ in range(20))
    writes = [s for s in seen if s in WRITES]
    assert writes == ["UPDATE", "INSERT"], seen  # the first of the hour: activity, then the audit row
    first = _device_row(device_id)
    assert first.last_token_time is not None and first.last_active_time == first.last_token_time
    issued = db.session.scalars(
        sa.select(Event).where(Event.device_id == device_id, Event.kind == EventKind.TOKEN_ISSUED)
    ).all()
    assert len(issued) == 1
    # An hour later, the next request writes again.
    db.session.execute(
        sa.update(Device)
        .where(Device.id == device_id)
        .values(last_token_time=first.last_token_time - timedelta(hours=1))
    )
    db.session.commit()
    with statements(app) as seen:
        assert all(get_token(client, device).status_code == 200 for _ in range(5))
    assert [s for s in seen if s in WRITES] == ["UPDATE", "INSERT"]
    assert _device_row(device_id).last_token_time > first.last_token_time - timedelta(hours=1)


def test_last_active_time_moves_on_use_at_most_once_a_minute(client, device):
    device_id = device[0].id
    access = get_token(client, device).get_json()["access_token"]
    issued = _device_row(device_id).last_active_time
    assert read_own(client, device[0], access).status_code == 200
    assert _device_row(device_id).last_active_time == issued  # within the minute: no write
    db.session.execute(
        sa.update(Device).where(Device.id == device_id).values(last_active_time=issued - timedelta(minutes=2))
    )
    db.session.commit()
    assert read_own(client, device[0], access).status_code == 200
    assert _device_row(device_id).last_active_time > issued - timedelta(minutes=1)


def test_pat_last_used_time_is_recorded(client, user, pat):
    row = db.session.scalar(sa.select(Token).where(Token.digest == digest(pat)))
    assert row.last_used_time is None
    client.get("/api/v1/devices", headers=bearer(pat))
    db.session.expire_all()
    assert db.session.get(Token, row.id).last_used_time is not None


# --- revocation (RFC 7009) -------------------------------------------------------------------------------


def revoke(client, device_and_secret, token: str, **extra):
    device, secret = device_and_secret
    return client.post(
        "/token/revoke", data={"token": token, **extra}, headers=basic(device.client_id, secret)
    )


def test_revoking_an_access_token_ends_the_devices_access_tokens_not_its_secret(client, device):
    first = get_token(client, device).get_json()["access_token"]
    second = get_token(client, device).get_json()["access_token"]
    response = revoke(client, device, first)
    assert response.status_code == 200 and response.get_json() == {}
    assert "Retry-After" not in response.headers
    for token in (first, second):  # related tokens (RFC 7009 2.1): every access token of the device
        assert read_own(client, device[0], token).status_code == 401
    fresh = get_token(client, device).get_json()["access_token"]
    assert read_own(client, device[0], fresh).status_code == 200
    # Revoking an already dead token again does not end the fresh one.
    assert revoke(client, device, first).status_code == 200
    assert read_own(client, device[0], fresh).status_code == 200


@pytest.mark.parametrize("hint", ["refresh_token", "access_token", "weird_kind", None])
def test_revoking_a_refresh_token_ends_its_family_whatever_the_hint(client, device, hint):
    family = refresh_family(client, device)
    extra = {"token_type_hint": hint} if hint else {}
    assert revoke(client, device, family["refresh_token"], **extra).status_code == 200
    assert_oauth_error(refresh(client, device, family["refresh_token"]), 400, "invalid_grant")
    assert read_own(client, device[0], family["access_token"]).status_code == 401


def test_revoking_unknown_or_another_clients_token_is_200_and_changes_nothing(client, user, device):
    other = make_device(user)
    theirs = get_token(client, other).get_json()["access_token"]
    their_family = refresh_family(client, other)
    answers = [
        revoke(client, device, token)
        for token in ("bcd_unknown", "bcr_unknown", theirs, their_family["refresh_token"])
    ]
    assert {(r.status_code, r.get_data(as_text=True).strip()) for r in answers} == {(200, "{}")}
    assert read_own(client, other[0], theirs).status_code == 200
    assert refresh(client, other, their_family["refresh_token"]).status_code == 200


def test_revocation_needs_client_authentication_and_a_token(client, device):
    access = get_token(client, device).get_json()["access_token"]
    assert_oauth_error(client.post("/token/revoke", data={"token": access}), 401, "invalid_client")
    body = assert_oauth_error(
        client.post("/token/revoke", data={}, headers=basic(device[0].client_id, device[1])),
        400,
        "invalid_request",
    )
    assert "token" in body["error_description"]
    assert read_own(client, device[0], access).status_code == 200


# --- introspection (RFC 7662) ---------------------------------------------------------------------------


def test_introspection_of_own_tokens(client, user, device):
    access = get_token(client, device).get_json()["access_token"]
    auth = basic(device[0].client_id, device[1])
    body = client.post("/token/introspect", data={"token": access}, headers=auth).get_json()
    assert body["active"] is True and body["token_type"] == "Bearer"
    assert body["scope"] == "device" and body["client_id"] == body["sub"] == device[0].client_id
    assert (
        body["device_id"] == device[0].id
        and body["user_id"] == user.id
        and body["tenant_id"] == user.tenant_id
    )
    assert body["exp"] - body["iat"] == 3600 and body["iss"] == "http://127.0.0.1:8000"
    family = refresh_family(client, device)
    body = client.post(
        "/token/introspect",
        data={"token": family["refresh_token"], "token_type_hint": "nonsense"},
        headers=auth,
    ).get_json()
    assert body["active"] is True and body["token_type"] == "refresh_token"


def test_introspection_says_inactive_for_others_unknown_revoked_and_personal_tokens(
    client, user, pat, device
):
    auth = basic(device[0].client_id, device[1])
    other = make_device(user)
    theirs = get_token(client, other).get_json()["access_token"]
    mine = get_token(client, device).get_json()["access_token"]
    revoke(client, device, mine)
    for token in (theirs, mine, "bcd_unknown", pat, refresh_family(client, other)["refresh_token"]):
        response = client.post("/token/introspect", data={"token": token}, headers=auth)
        assert response.status_code == 200 and response.get_json() == {"active": False}


def test_metadata_document(client):
    body = client.get("/.well-known/oauth-authorization-server").get_json()
    assert body["issuer"] == "http://127.0.0.1:8000"
    assert body["token_endpoint"] == "http://127.0.0.1:8000/token"
    assert body["revocation_endpoint"] == "http://127.0.0.1:8000/token/revoke"
    assert body["introspection_endpoint"] == "http://127.0.0.1:8000/token/introspect"
    assert body["authorization_endpoint"] == "http://127.0.0.1:8000/authorize"
    assert body["grant_types_supported"] == ["client_credentials", "authorization_code", "refresh_token"]
    assert body["response_types_supported"] == ["code"]
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]
    assert body["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert body["scopes_supported"] == [
        "device", "devices:read", "devices:write", "samples:read", "samples:write", "all"
    ]  # fmt: skip
    assert body["authorization_response_iss_parameter_supported"] is True


# --- rate limits: failed authentications only ----------------------------------------------------------


def test_successful_requests_never_spend_the_failure_allowance(database_url):
    with app_with_database(
        database_url, RATELIMIT_ENABLED=True, BIOWEB_TOKEN_RATELIMIT_PER_CLIENT="3/minute"
    ) as app:
        creds = make_device(make_user("rl@example.com"))
        client = app.test_client()
        answers = [get_token(client, creds) for _ in range(10)]
        assert {a.status_code for a in answers} == {200}
        # Successful answers carry no rate-limit noise.
        assert not any(
            h.lower().startswith(("retry-after", "x-ratelimit")) for a in answers for h in a.headers.keys()
        )
        assert [get_token(client, (creds[0], "bcs_guess")).status_code for _ in range(4)] == [
            401,
            401,
            401,
            429,
        ]
        response = get_token(client, creds)  # the same client from the same address: limited now
        assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
        body = response.get_json()
        assert body["error"] == "too_many_requests" and body["error_description"]


def test_failures_from_one_address_never_lock_the_device_out_at_another(database_url):
    limits = {"BIOWEB_TOKEN_RATELIMIT_PER_CLIENT": "3/minute", "BIOWEB_PROXY_COUNT": 1}
    with app_with_database(database_url, RATELIMIT_ENABLED=True, **limits) as app:
        creds = make_device(make_user("victim@example.com"))
        client = app.test_client()

        def from_address(address: str, secret: str, client_id: str | None = None):
            headers = {**basic(client_id or creds[0].client_id, secret), "X-Forwarded-For": address}
            return client.post("/token", data={"grant_type": "client_credentials"}, headers=headers)

        attacker, device_address = "203.0.113.7", "198.51.100.20"
        assert [from_address(attacker, "bcs_guess").status_code for _ in range(4)] == [401, 401, 401, 429]
        # A percent-encoded client id is the same client to the limiter.
        encoded = "".join(f"%{ord(c):02X}" for c in creds[0].client_id)
        assert from_address(attacker, "bcs_guess", encoded).status_code == 429
        assert from_address(device_address, creds[1]).status_code == 200


def test_failures_are_limited_per_address_across_clients(database_url):
    limits = {"BIOWEB_TOKEN_RATELIMIT_PER_CLIENT": "100/minute", "BIOWEB_TOKEN_RATELIMIT_PER_IP": "4/minute"}
    with app_with_database(database_url, RATELIMIT_ENABLED=True, **limits) as app:
        client = app.test_client()
        devices = [make_device(make_user(f"ip{i}@example.com")) for i in range(5)]
        assert [get_token(client, (d[0], "bcs_guess")).status_code for d in devices] == [
            401,
            401,
            401,
            401,
            429,
        ]


# --- purge ---------------------------------------------------------------------------------------------


def test_purge_removes_expired_and_long_revoked_tokens_only(client, runner, user, device):
    live = refresh_family(client, device)
    dead = refresh_family(client, device)
    old_pat = make_pat(user)
    now = utcnow()
    db.session.execute(
        sa.update(Token)
        .where(Token.digest == digest(dead["refresh_token"]))
        .values(expires_time=now - timedelta(seconds=1))
    )
    db.session.execute(
        sa.update(Token).where(Token.digest == digest(old_pat)).values(revoked_time=now - timedelta(days=8))
    )
    db.session.commit()
    result = runner.invoke(args=["tokens", "purge"])
    assert result.exit_code == 0 and "Purged 2 tokens." in result.output
    remaining = set(db.session.scalars(sa.select(Token.digest)))
    assert digest(live["refresh_token"]) in remaining
    assert digest(dead["refresh_token"]) not in remaining and digest(old_pat) not in remaining
    assert set(db.session.scalars(sa.select(Token.kind))) <= {TokenKind.PERSONAL, TokenKind.REFRESH}


# --- against real servers, with independent OAuth client libraries -------------------------------------


def _create_device(base_url: str, pat: str) -> dict:
    return requests.post(
        f"{base_url}/api/v1/devices",
        json={"manufacturer": "Apple", "device_code": "Watch1,1"},
        headers=bearer(pat),
        timeout=10,
    ).json()


def test_off_the_shelf_oauth_clients_against_a_live_server(live_server, user, pat, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP on loopback, in tests only
    created = _create_device(live_server, pat)
    client_id, secret = created["oauth2_client_id"], created["oauth2_client_secret"]
    token_url = f"{live_server}/token"
    own_url = f"{live_server}/api/v1/device/{created['id']}"

    # requests-oauthlib, client_secret_basic (it refuses an answer whose scope differs from the
    # one asked for, so it asks for none; "all" is shown with Authlib below)
    session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
    token = session.fetch_token(token_url=token_url, auth=HTTPBasicAuth(client_id, secret))
    assert token["token_type"] == "Bearer" and token["scope"] == ["device"] and "refresh_token" not in token
    own = session.get(own_url, timeout=10)
    assert own.status_code == 200 and own.json()["client_id"] == client_id
    assert session.get(f"{live_server}/api/v1/devices", timeout=10).status_code == 403

    # requests-oauthlib, client_secret_post
    session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
    session.fetch_token(
        token_url=token_url, client_id=client_id, client_secret=secret, include_client_id=True
    )
    assert session.get(own_url, timeout=10).status_code == 200

    # Authlib's own client, discovering the token endpoint from the RFC 8414 metadata
    from authlib.integrations.requests_client import OAuth2Session as AuthlibSession

    metadata = requests.get(f"{live_server}/.well-known/oauth-authorization-server", timeout=10).json()
    authlib_session = AuthlibSession(
        client_id, secret, scope="all", token_endpoint_auth_method="client_secret_post"
    )
    authlib_token = authlib_session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert authlib_session.get(own_url, timeout=10).status_code == 200
    assert authlib_token["scope"] == "device"

    # disable: the next request with any of those tokens is refused
    assert requests.delete(own_url, headers=bearer(pat), timeout=10).status_code == 204
    assert session.get(own_url, timeout=10).status_code == 401
    assert authlib_session.get(own_url, timeout=10).status_code == 401


@pytest.mark.workers(2)
def test_concurrent_refreshes_exactly_one_wins(live_server, user):
    device, secret = make_device(user)
    code = grant_code(user, device.client_id)
    family = requests.post(
        f"{live_server}/token",
        data={"grant_type": "authorization_code", "code": code},
        auth=(device.client_id, secret),
        timeout=10,
    ).json()
    auth = (device.client_id, secret)

    def spend(_):
        return requests.post(
            f"{live_server}/token",
            data={"grant_type": "refresh_token", "refresh_token": family["refresh_token"]},
            auth=auth,
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(spend, range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 7, [r.text for r in responses]
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
