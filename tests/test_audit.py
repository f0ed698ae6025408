"""The audit trail: append-only device events with time, actor, IP and request id."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import Event
from tests.helpers import basic, bearer, make_device, make_pat, make_user


def events_of(client, pat, device_id, query=""):
    response = client.get(f"/api/v1/device/{device_id}/events{query}", headers=bearer(pat))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_device_lifecycle_is_recorded_with_actor_ip_and_request_id(client, user, pat):
    created = client.post(
        "/api/v1/devices",
        json={"manufacturer": "Apple", "device_code": "iPhone1,1"},
        headers={**bearer(pat), "X-Request-ID": "req-create-0001"},
    )
    assert created.headers["X-Request-ID"] == "req-create-0001"
    device_id = created.get_json()["id"]
    client.delete(f"/api/v1/device/{device_id}", headers=bearer(pat))
    client.delete(f"/api/v1/device/{device_id}", headers=bearer(pat))  # idempotent: no second event
    reauth = client.post(
        "/api/v1/data-submission/device-authorize", json={"device_id": device_id}, headers=bearer(pat)
    )

    body = events_of(client, pat, device_id)
    kinds = [e["kind"] for e in body["results"]]
    assert kinds == [
        "device.created",
        "device.credentials_shown",
        "device.disabled",
        "device.reauthorized",
        "device.credentials_shown",
    ]
    assert body["count"] == 5 and body["next_id"] == body["results"][-1]["id"]
    first = body["results"][0]
    assert first["actor"] == f"user:{user.id}" and first["ip"] == "127.0.0.1"
    assert first["request_id"] == "req-create-0001" and first["time"].endswith("+00:00")
    assert body["results"][-1]["request_id"] == reauth.headers["X-Request-ID"]


def test_token_issues_and_failed_authentication_are_aggregated(client, user, pat):
    device, secret = make_device(user)
    for _ in range(3):
        assert (
            client.post(
                "/token", data={"grant_type": "client_credentials"}, headers=basic(device.client_id, secret)
            ).status_code
            == 200
        )
    for _ in range(4):
        assert (
            client.post(
                "/token",
                data={"grant_type": "client_credentials"},
                headers=basic(device.client_id, "bcs_guess"),
            ).status_code
            == 401
        )
    body = events_of(client, pat, device.id)
    by_kind = {e["kind"]: e for e in body["results"]}
    # token.issued: one row per device and hour in which it got tokens (/token writes once an hour).
    assert by_kind["token.issued"]["count"] == 1 and by_kind["token.issued"]["actor"] == f"device:{device.id}"
    assert by_kind["client_auth.failed"]["count"] == 4 and by_kind["client_auth.failed"]["ip"] == "127.0.0.1"
    assert by_kind["client_auth.failed"]["last_time"] >= by_kind["client_auth.failed"]["time"]
    assert (
        db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == 4
    )  # created, shown, issued, failed


def test_unknown_client_records_nothing(client, user):
    client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic("0000000000000000", "bcs_x")
    )
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == 0


def test_events_are_paged_like_the_device_list(client, user, pat):
    device, _ = make_device(user)
    client.delete(f"/api/v1/device/{device.id}", headers=bearer(pat))
    client.post(
        "/api/v1/data-submission/device-authorize", json={"device_id": device.id}, headers=bearer(pat)
    )
    all_ids = [e["id"] for e in events_of(client, pat, device.id)["results"]]
    assert len(all_ids) == 5
    page = events_of(client, pat, device.id, f"?limit=2&offset={all_ids[1]}")
    assert [e["id"] for e in page["results"]] == all_ids[2:4] and page["count"] == 5
    desc = events_of(client, pat, device.id, "?sort_order=desc&limit=2")
    assert [e["id"] for e in desc["results"]] == all_ids[::-1][:2]
    assert events_of(client, pat, device.id, f"?offset={all_ids[-1]}") == {
        "next_id": None,
        "count": 5,
        "results": [],
    }


@pytest.mark.parametrize("query", ["?limit=0", "?offset=-1", "?sort_order=sideways", "?limit=x"])
def test_events_reject_bad_parameters(client, user, pat, query):
    device, _ = make_device(user)
    response = client.get(f"/api/v1/device/{device.id}/events{query}", headers=bearer(pat))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


def test_events_of_another_users_device_are_404_and_device_tokens_cannot_read_them(client, user, pat):
    device, secret = make_device(user)
    other = make_pat(make_user("eve@example.com"))
    assert client.get(f"/api/v1/device/{device.id}/events", headers=bearer(other)).status_code == 404
    access = client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(device.client_id, secret)
    ).get_json()["access_token"]
    assert client.get(f"/api/v1/device/{device.id}/events", headers=bearer(access)).status_code == 403


@pytest.mark.parametrize("incoming", ["has spaces in it", "x" * 65, "short", "<script>"])
def test_unsafe_request_ids_are_replaced(client, incoming):
    response = client.get("/healthz", headers={"X-Request-ID": incoming})
    assert response.headers["X-Request-ID"] != incoming and len(response.headers["X-Request-ID"]) == 32
