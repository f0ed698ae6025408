"""Two client secrets per device: rotation without downtime (issue 14, point 5), through HTTP.

POST /api/v1/device/<id>/secrets adds a second secret (shown once); either secret gets tokens at
/token, each token carrying which (`cs`); DELETE .../secrets/<slot> or the old secret's expiry
ends it and the tokens obtained with it, and nothing else; re-authorize ends everything. The
audit trail counts token requests per secret and hour."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import Device, Event, EventKind, utcnow
from bioweb.security import digest
from bioweb.services import devices as device_service
from bioweb.services import tokens as token_service
from tests.helpers import basic, bearer, make_device, make_pat, make_user


@pytest.fixture
def pat(user):
    return make_pat(user)


@pytest.fixture
def device(user):
    return make_device(user, "Watch6,1")


def get_token(client, device: Device, secret: str, method: str = "basic"):
    data = {"grant_type": "client_credentials"}
    if method == "basic":
        return client.post("/token", data=data, headers=basic(device.client_id, secret))
    return client.post("/token", data={**data, "client_id": device.client_id, "client_secret": secret})


def token_of(client, device: Device, secret: str) -> str:
    response = get_token(client, device, secret)
    assert response.status_code == 200, response.text
    return response.get_json()["access_token"]


def claims(token: str) -> dict:
    part = token.removeprefix("bcd_").split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def reads_itself(client, device: Device, token: str) -> int:
    return client.get(f"/api/v1/device/{device.id}", headers=bearer(token)).status_code


def add(client, pat: str, device_id: int, **body):
    if body:
        return client.post(f"/api/v1/device/{device_id}/secrets", json=body, headers=bearer(pat))
    return client.post(f"/api/v1/device/{device_id}/secrets", headers=bearer(pat))


def stored(device_id: int) -> Device:
    db.session.expire_all()
    return db.session.get(Device, device_id)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == code and body["error_description"]
    return body


# --- adding a second secret ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/device/{id}/secrets", "/api/v1/devices/{id}/secrets"])
def test_a_second_secret_is_shown_once_and_both_work(client, pat, device, path):
    row, old = device
    old_token = token_of(client, row, old)
    response = client.post(path.format(id=row.id), json={}, headers=bearer(pat))
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"id", "oauth2_client_id", "oauth2_client_secret", "slot", "secrets"}
    new = body["oauth2_client_secret"]
    assert body["id"] == row.id and body["oauth2_client_id"] == row.client_id and body["slot"] == 2
    assert new.startswith("bcs_") and len(new) >= 47 and new != old
    assert [s["slot"] for s in body["secrets"]] == [1, 2]
    assert all(s["expires_time"] is None for s in body["secrets"])
    # Only digests rest; the detail lists both slots and no secret.
    assert stored(row.id).client_secret2_digest == digest(new)
    detail = client.get(f"/api/v1/device/{row.id}", headers=bearer(pat))
    assert [s["slot"] for s in detail.get_json()["secrets"]] == [1, 2] and "bcs_" not in detail.text
    # Either secret, by either client authentication method, gets a token saying which it was.
    for method in ("basic", "post"):
        for secret, serial in ((old, 1), (new, 2)):
            answer = get_token(client, row, secret, method)
            assert answer.status_code == 200, answer.text
            assert claims(answer.get_json()["access_token"])["cs"] == serial
    assert reads_itself(client, row, old_token) == 200


def test_the_body_is_optional(client, pat, device):
    assert add(client, pat, device[0].id).status_code == 201  # no body, no content type


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ({"expires_in": 0}, None, 400),
        ({"expires_in": 2592001}, None, 400),
        ({"expires_in": -5}, None, 400),
        ({"expires_in": "3600"}, None, 400),
        ({"expires_in": True}, None, 400),
        ({"expires_in": 3600, "slot": 1}, None, 400),
        ("expires_in=3600", "application/x-www-form-urlencoded", 415),
        ("[1]", "application/json", 400),
    ],
)
def test_a_bad_body_adds_nothing(client, pat, device, body, content_type, status):
    row, _ = device
    if content_type:
        response = client.post(
            f"/api/v1/device/{row.id}/secrets", data=body, content_type=content_type, headers=bearer(pat)
        )
    else:
        response = client.post(f"/api/v1/device/{row.id}/secrets", json=body, headers=bearer(pat))
    assert response.status_code == status, response.text
    assert stored(row.id).client_secret2_digest == ""


def test_the_old_secret_may_expire_at_most_30_days_later(client, pat, device):
    row, old = device
    body = add(client, pat, row.id, expires_in=2592000).get_json()
    expires = stored(row.id).client_secret_expires_time
    assert timedelta(days=29, hours=23) < expires - utcnow() <= timedelta(days=30)
    assert body["secrets"][0]["slot"] == 1 and body["secrets"][0]["expires_time"] is not None
    assert body["secrets"][1]["expires_time"] is None
    assert get_token(client, row, old).status_code == 200  # until then it works


def test_an_expired_secret_and_its_tokens_stop_working_and_the_other_does_not(client, pat, device):
    row, old = device
    old_token = token_of(client, row, old)
    new = add(client, pat, row.id, expires_in=3600).get_json()["oauth2_client_secret"]
    new_token = token_of(client, row, new)
    db.session.execute(
        sa.update(Device)
        .where(Device.id == row.id)
        .values(client_secret_expires_time=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    refused = assert_error(get_token(client, row, old), 401, "invalid_client")
    assert "expired" in refused["error_description"]
    assert reads_itself(client, row, old_token) == 401
    assert reads_itself(client, row, new_token) == 200
    assert get_token(client, row, new).status_code == 200
    # Gone from the detail; its slot is free again (a new secret takes it).
    detail = client.get(f"/api/v1/device/{row.id}", headers=bearer(pat)).get_json()
    assert [s["slot"] for s in detail["secrets"]] == [2]
    assert add(client, pat, row.id).get_json()["slot"] == 1


def test_a_third_secret_is_refused(client, pat, device):
    row, old = device
    new = add(client, pat, row.id).get_json()["oauth2_client_secret"]
    before = stored(row.id)
    digests = (before.client_secret_digest, before.client_secret2_digest)
    error = assert_error(add(client, pat, row.id), 409, "conflict")
    assert "already holds two client secrets" in error["error_description"]
    assert f"DELETE /api/v1/device/{row.id}/secrets/" in error["error_description"]
    after = stored(row.id)
    assert (after.client_secret_digest, after.client_secret2_digest) == digests
    assert get_token(client, row, old).status_code == 200 and get_token(client, row, new).status_code == 200


def test_a_disabled_device_gets_no_second_secret(client, pat, device):
    row, _ = device
    client.delete(f"/api/v1/device/{row.id}", headers=bearer(pat))
    error = assert_error(add(client, pat, row.id), 409, "conflict")
    assert "re-authorize" in error["error_description"]


def test_adding_and_removing_need_write_scope_and_an_own_device(client, user, pat, device):
    row, secret = device
    read_only = make_pat(user, scope="devices:read")
    assert_error(add(client, read_only, row.id), 403, "insufficient_scope")
    device_token = token_of(client, row, secret)
    assert_error(add(client, device_token, row.id), 403, "insufficient_scope")
    assert_error(
        client.delete(f"/api/v1/device/{row.id}/secrets/1", headers=bearer(device_token)),
        403,
        "insufficient_scope",
    )
    other = make_user(email="eve@example.com")
    theirs, _ = make_device(other)
    assert_error(add(client, pat, theirs.id), 404, "not_found")
    assert_error(
        client.delete(f"/api/v1/device/{theirs.id}/secrets/1", headers=bearer(pat)), 404, "not_found"
    )
    assert stored(theirs.id).client_secret2_digest == ""


# --- removing one ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/device/{id}/secrets/1", "/api/v1/devices/{id}/secrets/1"])
def test_removing_the_old_secret_ends_its_tokens_at_their_next_use_and_no_others(client, pat, device, path):
    row, old = device
    old_token = token_of(client, row, old)
    new = add(client, pat, row.id).get_json()["oauth2_client_secret"]
    new_token = token_of(client, row, new)
    response = client.delete(path.format(id=row.id), headers=bearer(pat))
    assert response.status_code == 204 and response.data == b""
    assert reads_itself(client, row, old_token) == 401
    assert reads_itself(client, row, new_token) == 200
    assert_error(get_token(client, row, old), 401, "invalid_client")
    assert get_token(client, row, new).status_code == 200
    introspected = client.post(
        "/token/introspect", data={"token": old_token}, headers=basic(row.client_id, new)
    )
    assert introspected.get_json() == {"active": False}
    live = client.post("/token/introspect", data={"token": new_token}, headers=basic(row.client_id, new))
    assert live.get_json()["active"] is True
    assert stored(row.id).client_secret_digest == ""
    # Again: slot 1 is empty now.
    assert_error(client.delete(path.format(id=row.id), headers=bearer(pat)), 404, "not_found")


def test_removing_the_new_secret_keeps_the_old_one_for_good(client, pat, device):
    """Rolling a rotation back: the old secret stays, and no longer expires."""
    row, old = device
    old_token = token_of(client, row, old)
    new = add(client, pat, row.id, expires_in=3600).get_json()["oauth2_client_secret"]
    new_token = token_of(client, row, new)
    assert client.delete(f"/api/v1/device/{row.id}/secrets/2", headers=bearer(pat)).status_code == 204
    assert stored(row.id).client_secret_expires_time is None
    assert reads_itself(client, row, old_token) == 200 and reads_itself(client, row, new_token) == 401
    assert_error(get_token(client, row, new), 401, "invalid_client")


def test_the_only_secret_cannot_be_removed(client, pat, device):
    row, secret = device
    error = assert_error(
        client.delete(f"/api/v1/device/{row.id}/secrets/1", headers=bearer(pat)), 409, "conflict"
    )
    assert "only client secret" in error["error_description"]
    assert get_token(client, row, secret).status_code == 200


@pytest.mark.parametrize("slot", ["2", "3", "0", "99999999999"])
def test_an_empty_or_unknown_slot_is_not_found(client, pat, device, slot):
    row, _ = device
    assert_error(
        client.delete(f"/api/v1/device/{row.id}/secrets/{slot}", headers=bearer(pat)), 404, "not_found"
    )


def test_a_secret_taking_a_freed_slot_does_not_revive_the_old_secrets_tokens(client, pat, device):
    """Serials are never reused: the first secret's tokens stay dead when slot 1 is refilled."""
    row, first = device
    first_token = token_of(client, row, first)
    add(client, pat, row.id)
    client.delete(f"/api/v1/device/{row.id}/secrets/1", headers=bearer(pat))
    third = add(client, pat, row.id).get_json()
    assert third["slot"] == 1
    assert claims(token_of(client, row, third["oauth2_client_secret"]))["cs"] == 3
    assert reads_itself(client, row, first_token) == 401


def test_reauthorize_kills_both_secrets_and_every_token(client, pat, device):
    row, old = device
    old_token = token_of(client, row, old)
    new = add(client, pat, row.id).get_json()["oauth2_client_secret"]
    new_token = token_of(client, row, new)
    fresh = client.post(
        "/api/v1/data-submission/device-authorize", json={"device_id": row.id}, headers=bearer(pat)
    ).get_json()["oauth2_client_secret"]
    for secret in (old, new):
        assert_error(get_token(client, row, secret), 401, "invalid_client")
    for token in (old_token, new_token):
        assert reads_itself(client, row, token) == 401
    assert claims(token_of(client, row, fresh))["cs"] == 3  # slot 1's next serial
    detail = client.get(f"/api/v1/device/{row.id}", headers=bearer(pat)).get_json()
    assert [s["slot"] for s in detail["secrets"]] == [1]


def test_tokens_from_before_two_secrets_keep_working(client, device, app):
    """A token signed before this change carries cs 1, the serial every existing secret has."""
    row, _ = device
    signed = token_service.signer().sign(
        client_id=row.client_id,
        scope="device",
        device_id=row.id,
        user_id=row.user_id,
        tenant_id=row.tenant_id,
        generation=1,
        secret_slot=1,
        expires_in=60,
    )
    assert reads_itself(client, row, signed) == 200


# --- the audit trail: per secret and hour -----------------------------------------------------------


def _issued() -> dict[int, int]:
    db.session.expire_all()
    rows = db.session.scalars(sa.select(Event).where(Event.kind == EventKind.TOKEN_ISSUED)).all()
    counts: dict[int, int] = {}
    for event in rows:
        counts[event.secret_slot] = counts.get(event.secret_slot, 0) + event.count
    return counts


def test_token_requests_are_counted_per_secret_and_hour(client, pat, device, app):
    row, old = device
    new = add(client, pat, row.id).get_json()["oauth2_client_secret"]
    for _ in range(3):
        token_of(client, row, old)
    for _ in range(2):
        token_of(client, row, new)
    # The hour's first token wrote its row; the others wait in this worker's memory.
    assert _issued() == {1: 1}
    assert len(app.extensions["bioweb.token_counts"]) == 2  # (device, slot, hour): slots 1 and 2
    # The device's next hourly write takes them along, into the hours they belong to.
    db.session.execute(
        sa.update(Device).where(Device.id == row.id).values(last_token_time=utcnow() - timedelta(hours=1))
    )
    db.session.commit()
    token_of(client, row, new)
    assert _issued() == {1: 3, 2: 3}
    assert len(app.extensions["bioweb.token_counts"]) == 0
    events = client.get(f"/api/v1/device/{row.id}/events", headers=bearer(pat)).get_json()["results"]
    issued = [e for e in events if e["kind"] == "token.issued"]
    assert {e["secret_slot"] for e in issued} == {1, 2}
    assert all(e["actor"] == f"device:{row.id}" for e in issued)
    kinds = [(e["kind"], e["secret_slot"]) for e in events if e["kind"].startswith("secret.")]
    assert kinds == [("secret.added", 2)]


def test_counts_held_in_memory_are_written_all_at_once(client, device, app):
    row, secret = device
    for _ in range(4):
        token_of(client, row, secret)
    assert _issued() == {1: 1}
    assert token_service.write_token_counts() == 1
    assert _issued() == {1: 4}
    token_service._write_at_exit(lambda: app)  # nothing left: nothing written, no error
    assert _issued() == {1: 4}


def test_a_worker_holding_too_many_counts_writes_them(client, device, app, monkeypatch):
    row, secret = device
    monkeypatch.setattr(token_service, "MAX_PENDING_COUNTS", 2)
    other, other_secret = make_device(db.session.get(Device, row.id).user, "iPhone1,1")
    token_of(client, row, secret)
    token_of(client, other, other_secret)
    token_of(client, row, secret)  # one count held
    assert len(app.extensions["bioweb.token_counts"]) == 1
    token_of(client, other, other_secret)  # two: written
    assert len(app.extensions["bioweb.token_counts"]) == 0
    assert _issued() == {1: 4}


def test_the_audit_names_added_and_removed_secrets(client, pat, device):
    row, _ = device
    add(client, pat, row.id)
    client.delete(f"/api/v1/device/{row.id}/secrets/1", headers=bearer(pat))
    events = client.get(f"/api/v1/device/{row.id}/events", headers=bearer(pat)).get_json()["results"]
    assert [(e["kind"], e["secret_slot"]) for e in events][-3:] == [
        ("secret.added", 2),
        ("device.credentials_shown", 2),
        ("secret.removed", 1),
    ]


def test_secret_use_sums_the_last_day_per_slot(client, pat, device):
    row, old = device
    new = add(client, pat, row.id).get_json()["oauth2_client_secret"]
    token_of(client, row, new)
    token_service.write_token_counts()
    use = device_service.secret_use(row.id)
    assert set(use) == {2} and use[2].tokens_24h == 1


@pytest.mark.server
def test_a_gunicorn_worker_writes_the_counts_it_holds_when_it_stops(app, database_url, device):
    """The counts a worker holds in memory are written at its graceful exit (a deploy, a
    restart), not lost: five token requests in one hour, one row counting 1, then 5."""
    import requests

    from tests.helpers import LiveServer

    row, secret = device
    server = LiveServer(database_url, workers=1)
    server.start()
    try:
        for _ in range(5):
            answer = requests.post(
                f"{server.url}/token",
                auth=(row.client_id, secret),
                data={"grant_type": "client_credentials"},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
        assert _issued() == {1: 1}
    finally:
        server.stop()
    assert _issued() == {1: 5}
