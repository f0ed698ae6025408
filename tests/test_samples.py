"""Metrics and quantity samples (docs/samples.md, issue 11), through HTTP, on both
databases: registering metrics, writing samples (one, batches, idempotency, races within a
batch, refusals that store nothing), reading them back exactly, scopes, and the PostgreSQL
storage (hash partitions, real unique keys, 64-bit ids)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import Metric, Sample
from tests.helpers import (
    app_with_database,
    assert_error,
    basic,
    bearer,
    isolate_requests,
    make_device,
    make_pat,
    make_user,
)

HR = {"sample_type": "heartRate", "quantity_type": "count/min"}
T0 = datetime(2022, 1, 12, 6, 0, tzinfo=UTC)
SAMPLES = "/api/v1/quantity-samples"


# --- helpers -------------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def item(metric_id: int, minute: float = 0, quantity: float | None = 61, **fields) -> dict:
    """A sample starting `minute` minutes after T0, one minute long."""
    start = T0 + timedelta(minutes=minute)
    body = {
        "metric_id": metric_id,
        "start_date": iso(start),
        "end_date": iso(start + timedelta(minutes=1)),
        "quantity": quantity,
    }
    body.update(fields)
    return body


def rows(metric_id: int | None = None) -> int:
    """Samples stored (read on a connection of its own: what other transactions committed)."""
    query = sa.select(sa.func.count()).select_from(Sample)
    if metric_id is not None:
        query = query.where(Sample.metric_id == metric_id)
    with db.engine.connect() as conn:
        return conn.execute(query).scalar_one()


def stored(metric_id: int) -> list[dict]:
    with db.engine.connect() as conn:
        result = conn.execute(
            sa.select(Sample.__table__).where(Sample.metric_id == metric_id).order_by(Sample.id)
        )
        return [dict(row._mapping) for row in result]


def device_token(client, device, secret: str) -> str:
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "all"},
        headers=basic(device.client_id, secret),
    )
    assert response.status_code == 200, response.text
    return response.get_json()["access_token"]


def new_metric(client, token: str, device_id: int, **fields) -> dict:
    response = client.post(
        "/api/v1/metrics", json={"device_id": device_id, **HR, **fields}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    return response.get_json()


def post(client, token: str, body) -> object:
    return client.post(SAMPLES, json=body, headers=bearer(token))


def batch(client, token: str, items: list) -> dict:
    response = post(client, token, {"samples": items})
    assert response.status_code == 200, response.text
    return response.get_json()


@pytest.fixture
def device(user):
    return make_device(user, "Watch1,1")


@pytest.fixture
def metric(client, pat, device) -> dict:
    return new_metric(client, pat, device[0].id, name="Resting heart")


# --- metrics -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample_type", "unit", "stored_type", "stored_unit"),
    [
        ("heartRate", "count/min", "heartRate", "count/min"),
        ("HKQuantityTypeIdentifierHeartRate", "bpm", "heartRate", "count/min"),
        ("HKQuantityTypeIdentifierStepCount", "count", "stepCount", "count"),
        ("bodyMass", "lb", "bodyMass", "lb"),
    ],
)
def test_create_metric_stores_short_type_and_canonical_unit(
    client, pat, user, device, sample_type, unit, stored_type, stored_unit
):
    response = client.post(
        "/api/v1/metrics",
        json={
            "device_id": device[0].id,
            "sample_type": sample_type,
            "quantity_type": unit,
            "name": " Pulse ",
        },
        headers=bearer(pat),
    )
    assert response.status_code == 201, response.text
    body = response.get_json()
    assert (body["sample_type"], body["quantity_type"]) == (stored_type, stored_unit)
    assert (
        body["device_id"] == device[0].id
        and body["user_id"] == user.id
        and body["tenant_id"] == user.tenant_id
    )
    assert body["name"] == "Pulse" and uuid.UUID(body["uuid"])
    assert body["latest_value"] is None and body["latest_timestamp"] is None
    assert body["created_time"].endswith("+00:00")
    assert body["aggregation"] == ("cumulative" if stored_type == "stepCount" else "discrete")
    row = db.session.get(Metric, body["id"])
    assert (row.sample_type, row.quantity_type, row.device_id) == (stored_type, stored_unit, device[0].id)


def test_create_metric_refuses_a_unit_that_does_not_fit_naming_those_that_do(client, pat, device):
    response = client.post(
        "/api/v1/metrics",
        json={"device_id": device[0].id, "sample_type": "heartRate", "quantity_type": "kg"},
        headers=bearer(pat),
    )
    body = assert_error(response, 400, "invalid_request")
    message = body["fields"]["quantity_type"][0]
    assert "count/min" in message and "bpm" in message
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Metric)) == 0


def test_create_metric_suggests_types_for_an_unknown_one(client, pat, device):
    response = client.post(
        "/api/v1/metrics",
        json={"device_id": device[0].id, "sample_type": "hartRate", "quantity_type": "count/min"},
        headers=bearer(pat),
    )
    body = assert_error(response, 400, "invalid_request")
    assert "heartRate" in body["fields"]["sample_type"][0]


def test_other_type_needs_its_description(client, pat, device):
    base = {"device_id": device[0].id, "sample_type": "other", "quantity_type": "other"}
    body = assert_error(client.post("/api/v1/metrics", json=base, headers=bearer(pat)), 400)
    assert set(body["fields"]) == {"sample_type_other", "quantity_type_other"}
    response = client.post(
        "/api/v1/metrics",
        json={
            **base,
            "sample_type_other": "Soil moisture",
            "quantity_type_other": "percent of field capacity",
        },
        headers=bearer(pat),
    )
    assert response.status_code == 201, response.text
    created = response.get_json()
    assert created["sample_type"] == "other" and created["sample_type_other"] == "Soil moisture"
    assert created["quantity_type"] == "other" and created["aggregation"] is None


def test_create_metric_on_another_users_or_a_disabled_device(client, pat, user, device):
    other_device, _ = make_device(make_user("bob@example.com"))
    response = client.post("/api/v1/metrics", json={"device_id": other_device.id, **HR}, headers=bearer(pat))
    assert_error(response, 404, "not_found")
    response = client.post("/api/v1/metrics", json={"device_id": 424242, **HR}, headers=bearer(pat))
    assert_error(response, 404, "not_found")
    assert client.delete(f"/api/v1/device/{device[0].id}", headers=bearer(pat)).status_code == 204
    response = client.post("/api/v1/metrics", json={"device_id": device[0].id, **HR}, headers=bearer(pat))
    assert_error(response, 409, "conflict")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Metric)) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"sample_type": "heartRate", "quantity_type": "count/min"},
        {"device_id": "one", **HR},
        {"device_id": 0, **HR},
        {"device_id": 1, "quantity_type": "count/min"},
        {"device_id": 1, **HR, "colour": "red"},
    ],
)
def test_create_metric_validates_its_body(client, pat, device, body):
    assert "fields" in assert_error(client.post("/api/v1/metrics", json=body, headers=bearer(pat)), 400)


def test_device_token_creates_metrics_for_its_own_device_only(client, user, device):
    own, secret = device
    other, _ = make_device(user, "iPhone1,1")
    access = device_token(client, own, secret)
    assert new_metric(client, access, own.id)["device_id"] == own.id
    response = client.post("/api/v1/metrics", json={"device_id": other.id, **HR}, headers=bearer(access))
    assert_error(response, 404, "not_found")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Metric)) == 1


def test_list_metrics_is_paged_by_id_and_filtered_by_device(client, pat, user, device):
    second, _ = make_device(user, "iPhone1,1")
    ids = [new_metric(client, pat, device[0].id)["id"] for _ in range(3)]
    ids.append(new_metric(client, pat, second.id, sample_type="stepCount", quantity_type="count")["id"])
    make_device(make_user("bob@example.com"))
    auth = bearer(pat)
    body = client.get("/api/v1/metrics?limit=2", headers=auth).get_json()
    assert [m["id"] for m in body["results"]] == ids[:2]
    assert body["next_id"] == ids[1] and body["count"] == 4
    body = client.get(f"/api/v1/metrics?limit=2&offset={ids[1]}", headers=auth).get_json()
    assert [m["id"] for m in body["results"]] == ids[2:]
    body = client.get(f"/api/v1/metrics?offset={ids[-1]}", headers=auth).get_json()
    assert body == {"next_id": None, "count": 4, "results": []}
    body = client.get(f"/api/v1/metrics?device_id={second.id}", headers=auth).get_json()
    assert [m["id"] for m in body["results"]] == ids[3:] and body["count"] == 1
    body = client.get("/api/v1/metrics?sort_order=desc", headers=auth).get_json()
    assert [m["id"] for m in body["results"]] == ids[::-1]
    assert_error(client.get("/api/v1/metrics?limit=0", headers=auth), 400)


def test_get_metric_shows_the_newest_non_null_sample(client, pat, metric):
    mid = metric["id"]
    result = batch(
        client,
        pat,
        [
            item(mid, 0, 60),
            item(mid, 10, 72),
            item(mid, 5, 65),
            item(mid, 20, None, is_null=True),
        ],
    )
    assert result["accepted"] == 4
    for path in (f"/api/v1/metric/{mid}", f"/api/v1/metrics/{mid}"):
        body = client.get(path, headers=bearer(pat)).get_json()
        assert body["latest_value"] == 72
        assert body["latest_timestamp"] == (T0 + timedelta(minutes=10)).isoformat()
    listed = client.get("/api/v1/metrics", headers=bearer(pat)).get_json()["results"][0]
    assert listed["latest_value"] == 72
    assert_error(client.get("/api/v1/metric/424242", headers=bearer(pat)), 404, "not_found")
    assert_error(client.get("/api/v1/metric/0", headers=bearer(pat)), 404, "not_found")


def test_delete_metric_deletes_its_samples(client, pat, metric):
    mid = metric["id"]
    batch(client, pat, [item(mid, m) for m in range(5)])
    assert rows(mid) == 5
    response = client.delete(f"/api/v1/metric/{mid}", headers=bearer(pat))
    assert response.status_code == 204 and response.data == b""
    assert rows(mid) == 0
    assert db.session.get(Metric, mid) is None
    assert_error(client.get(f"/api/v1/metric/{mid}", headers=bearer(pat)), 404)
    assert_error(client.delete(f"/api/v1/metrics/{mid}", headers=bearer(pat)), 404)
    assert_error(client.get(f"{SAMPLES}?metric_id={mid}", headers=bearer(pat)), 404)
    assert_error(post(client, pat, item(mid, 9)), 404)


def test_device_token_deletes_its_own_devices_metrics_only(client, pat, user, device):
    own, secret = device
    other, _ = make_device(user, "iPhone1,1")
    mine = new_metric(client, pat, own.id)["id"]
    theirs = new_metric(client, pat, other.id)["id"]
    access = device_token(client, own, secret)
    assert_error(client.delete(f"/api/v1/metric/{theirs}", headers=bearer(access)), 404)
    assert_error(client.get(f"/api/v1/metric/{theirs}", headers=bearer(access)), 404)
    assert [m["id"] for m in client.get("/api/v1/metrics", headers=bearer(access)).get_json()["results"]] == [
        mine
    ]
    assert client.delete(f"/api/v1/metric/{mine}", headers=bearer(access)).status_code == 204
    assert db.session.scalar(sa.select(Metric.id)) == theirs


# --- writing -------------------------------------------------------------------------------------


def test_one_sample_is_201_with_the_stored_sample_and_again_a_duplicate(client, pat, metric, device):
    mid = metric["id"]
    sent = item(
        mid,
        0,
        61,
        sample_motion_context="Active",
        sample_sensor_location=2,
        client_sample_id="2F1C-HK-1",
        client_sample_version=1,
    )
    before = datetime.now(UTC)
    response = post(client, pat, sent)
    assert response.status_code == 201, response.text
    body = response.get_json()
    assert uuid.UUID(body["uuid"])
    assert body["duplicate"] is False
    assert body["metric_id"] == mid and body["device_id"] == device[0].id
    assert (body["sample_type"], body["quantity_type"], body["quantity"]) == ("heartRate", "count/min", 61)
    assert (
        body["start_date"] == T0.isoformat() and body["end_date"] == (T0 + timedelta(minutes=1)).isoformat()
    )
    assert (body["sample_motion_context"], body["sample_sensor_location"]) == ("Active", 2)
    assert (body["client_sample_id"], body["client_sample_version"], body["is_null"]) == (
        "2F1C-HK-1",
        1,
        False,
    )
    [row] = stored(mid)
    assert row["uuid"] == body["uuid"] and row["quantity"] == 61
    assert before - timedelta(seconds=1) <= row["received_time"] <= datetime.now(UTC)
    assert datetime.fromisoformat(body["received_time"]) == row["received_time"]

    again = post(client, pat, sent)
    assert again.status_code == 201
    assert again.get_json() == {**body, "duplicate": True}
    assert rows(mid) == 1


def test_alias_path_and_device_token_write(client, metric, device):
    access = device_token(client, *device)
    response = client.post("/api/v1/samples", json=item(metric["id"]), headers=bearer(access))
    assert response.status_code == 201, response.text
    assert rows(metric["id"]) == 1


def test_a_higher_version_replaces_a_lower_or_equal_one_does_not(client, pat, metric):
    mid = metric["id"]
    first = post(client, pat, item(mid, 0, 60, client_sample_id="a", client_sample_version=2)).get_json()
    assert batch(client, pat, [item(mid, 0, 70, client_sample_id="a", client_sample_version=3)]) == {
        "accepted": 0,
        "duplicates": 0,
        "replaced": 1,
        "rejected": [],
    }
    [row] = stored(mid)
    assert (row["quantity"], row["client_sample_version"], row["uuid"]) == (70, 3, first["uuid"])
    for version in (3, 1):
        again = post(client, pat, item(mid, 0, 99, client_sample_id="a", client_sample_version=version))
        assert again.status_code == 201 and again.get_json()["duplicate"] is True
        assert again.get_json()["quantity"] == 70
    [row] = stored(mid)
    assert (row["quantity"], row["client_sample_version"]) == (70, 3)


def test_idempotency_keys_are_the_client_id_else_the_dates(client, pat, metric):
    mid = metric["id"]
    # With a client id: the same id at other dates is the same sample; other ids at the same dates are not.
    assert (
        batch(client, pat, [item(mid, 0, client_sample_id="x"), item(mid, 0, client_sample_id="y")])[
            "accepted"
        ]
        == 2
    )
    assert batch(client, pat, [item(mid, 5, client_sample_id="x")])["duplicates"] == 1
    # Without one: (start_date, end_date), whatever the offset it is written with.
    assert batch(client, pat, [item(mid, 0), item(mid, 1)])["accepted"] == 2
    shifted = item(mid, 0, 99)
    shifted["start_date"] = T0.astimezone(timezone(timedelta(hours=2))).isoformat()
    shifted["end_date"] = (T0 + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert batch(client, pat, [shifted]) == {"accepted": 0, "duplicates": 1, "replaced": 0, "rejected": []}
    longer = item(mid, 0)
    longer["end_date"] = iso(T0 + timedelta(minutes=2))
    assert batch(client, pat, [longer])["accepted"] == 1
    assert rows(mid) == 5
    # The key is per metric: the same client id on another metric is another sample.
    other = new_metric(client, pat, metric["device_id"])["id"]
    assert batch(client, pat, [item(other, 0, client_sample_id="x"), item(other, 0)])["accepted"] == 2


def test_in_batch_duplicates_and_versions_are_applied_in_order(client, pat, metric):
    mid = metric["id"]
    result = batch(
        client,
        pat,
        [
            item(mid, 0, 60, client_sample_id="k"),
            item(mid, 0, 61, client_sample_id="k"),  # same version: a duplicate
            item(mid, 0, 62, client_sample_id="k", client_sample_version=2),  # higher: replaces
            item(mid, 3, 50),
            item(mid, 3, 51),  # same dates, no id: a duplicate
        ],
    )
    assert result == {"accepted": 2, "duplicates": 2, "replaced": 1, "rejected": []}
    by_id = {row["client_sample_id"]: row for row in stored(mid)}
    assert by_id["k"]["quantity"] == 62 and by_id["k"]["client_sample_version"] == 2
    assert by_id[None]["quantity"] == 50
    assert rows(mid) == 2


def test_resending_a_whole_batch_changes_nothing(client, pat, metric):
    mid = metric["id"]
    items = [item(mid, m, 60 + m, client_sample_id=f"s{m}") for m in range(20)] + [
        item(mid, 30 + m) for m in range(5)
    ]
    assert batch(client, pat, items) == {"accepted": 25, "duplicates": 0, "replaced": 0, "rejected": []}
    before = stored(mid)
    assert batch(client, pat, items) == {"accepted": 0, "duplicates": 25, "replaced": 0, "rejected": []}
    assert stored(mid) == before


def test_a_batch_of_1000_is_accepted_and_1001_refused(client, pat, metric):
    mid = metric["id"]
    items = [item(mid, m / 10, client_sample_id=str(m)) for m in range(1000)]
    assert batch(client, pat, items)["accepted"] == 1000
    response = post(client, pat, {"samples": [*items, item(mid, 200, client_sample_id="one more")]})
    body = assert_error(response, 400, "invalid_request")
    assert "1000" in body["error_description"] and "1001" in body["error_description"]
    assert rows(mid) == 1000


def test_a_body_over_one_mib_is_413_and_stores_nothing(client, pat, metric):
    items = [item(metric["id"], m, sample_sensor_location_other="x" * 100) for m in range(5)]
    body = json.dumps({"samples": items}) + " " * (1024 * 1024)
    response = client.post(SAMPLES, data=body, content_type="application/json", headers=bearer(pat))
    assert_error(response, 413)
    assert rows() == 0


def test_bad_items_are_rejected_by_index_and_store_nothing(client, pat, user, metric, device):
    mid = metric["id"]
    bob = make_user("bob@example.com")
    bobs_device, _ = make_device(bob)
    bobs_metric = new_metric(client, make_pat(bob), bobs_device.id)["id"]
    fraction = new_metric(client, pat, device[0].id, sample_type="oxygenSaturation", quantity_type="%")["id"]
    future = datetime.now(UTC) + timedelta(minutes=15)
    good = [item(mid, 0), item(fraction, 0, 0.97)]
    bad = [
        ({**item(mid, 1), "start_date": "yesterday"}, {"start_date"}),
        ({**item(mid, 2), "end_date": "2022-01-12T06:00:00"}, {"end_date"}),  # no offset
        (item(mid, 3, 1e400), {"quantity"}),
        ({k: v for k, v in item(mid, 4).items() if k != "quantity"}, {"quantity"}),
        ({**item(mid, 5), "end_date": iso(T0)}, {"end_date"}),  # before its start
        (
            {"metric_id": mid, "start_date": iso(future), "end_date": iso(future), "quantity": 1},
            {"start_date"},
        ),
        ({**item(mid, 6), "colour": "red"}, {"colour"}),
        ({**item(mid, 7), "quantity": "61"}, {"quantity"}),
        ({**item(mid, 8), "is_null": "no"}, {"is_null"}),
        ({**item(mid, 9), "sample_sensor_location": 7}, {"sample_sensor_location"}),
        ({**item(mid, 10), "sample_motion_context": "Running"}, {"sample_motion_context"}),
        ({**item(mid, 11), "metric_id": "1"}, {"metric_id"}),
        (item(bobs_metric, 12), {"metric_id"}),
        (item(424242, 13), {"metric_id"}),
        (item(fraction, 14, 1.5), {"quantity"}),
        ([1, 2], None),
        ("sample", None),
        ({**item(mid, 15), "client_sample_id": ""}, {"client_sample_id"}),
        ({**item(mid, 16), "client_sample_version": 0}, {"client_sample_version"}),
        ({**item(mid, 17), "start_date": "0001-01-01T00:00:00+01:00"}, {"start_date"}),
        ({**item(mid, 18), "end_date": "9999-12-31T23:59:59-01:00"}, {"end_date"}),
        ({**item(mid, 19), "quantity": True}, {"quantity"}),
    ]
    items = [good[0], *(b for b, _ in bad), good[1]]
    result = batch(client, pat, items)
    assert (result["accepted"], result["duplicates"], result["replaced"]) == (2, 0, 0)
    assert [r["index"] for r in result["rejected"]] == list(range(1, len(bad) + 1))
    for rejected, (_, fields) in zip(result["rejected"], bad, strict=True):
        assert rejected["fields"], rejected
        if fields is not None:
            assert set(rejected["fields"]) == fields, rejected
        assert all(isinstance(m, str) and m for ms_ in rejected["fields"].values() for m in ms_)
    assert rows(mid) == 1 and rows(fraction) == 1 and rows(bobs_metric) == 0 and rows() == 2


def test_a_bad_single_sample_is_an_error_naming_its_fields(client, pat, metric):
    mid = metric["id"]
    body = assert_error(post(client, pat, {**item(mid), "end_date": iso(T0 - timedelta(seconds=1))}), 400)
    assert set(body["fields"]) == {"end_date"}
    body = assert_error(post(client, pat, {**item(mid), "unknown": 1}), 400)
    assert set(body["fields"]) == {"unknown"}
    assert_error(post(client, pat, item(424242)), 404, "not_found")
    body = assert_error(post(client, pat, {**item(mid), "start_date": "0001-01-01T00:00:00+01:00"}), 400)
    assert set(body["fields"]) == {"start_date"}
    assert_error(post(client, pat, [item(mid)]), 400)
    assert_error(post(client, pat, {"samples": []}), 400)
    assert_error(post(client, pat, {"samples": item(mid)}), 400)
    assert_error(post(client, pat, {"samples": [item(mid)], "more": 1}), 400)
    response = client.post(
        SAMPLES, data='{"quantity": NaN}', content_type="application/json", headers=bearer(pat)
    )
    assert_error(response, 400)
    response = client.post(
        SAMPLES, data=json.dumps(item(mid)), content_type="text/plain", headers=bearer(pat)
    )
    assert_error(response, 415)
    assert rows() == 0


def test_scopes_and_disabled_devices(client, pat, user, metric, device):
    mid = metric["id"]
    devices_only = make_pat(user, scope="devices:read devices:write")
    assert_error(post(client, devices_only, item(mid)), 403, "insufficient_scope")
    assert_error(client.get(f"{SAMPLES}?metric_id={mid}", headers=bearer(devices_only)), 403)
    assert_error(client.get("/api/v1/metrics", headers=bearer(devices_only)), 403)
    assert_error(
        client.post("/api/v1/metrics", json={"device_id": device[0].id, **HR}, headers=bearer(devices_only)),
        403,
    )
    read_only = make_pat(user, scope="samples:read")
    assert_error(post(client, read_only, item(mid)), 403)
    assert client.get(f"{SAMPLES}?metric_id={mid}", headers=bearer(read_only)).status_code == 200

    access = device_token(client, *device)
    assert client.delete(f"/api/v1/device/{device[0].id}", headers=bearer(pat)).status_code == 204
    assert_error(post(client, access, item(mid)), 401, "invalid_token")
    assert_error(post(client, access, {"samples": [item(mid)]}), 401, "invalid_token")
    body = assert_error(post(client, pat, item(mid)), 409, "conflict")
    assert "disabled" in body["error_description"]
    result = batch(client, pat, [item(mid)])
    assert result["accepted"] == 0 and result["rejected"][0]["index"] == 0
    assert "disabled" in result["rejected"][0]["fields"]["metric_id"][0]
    assert rows() == 0


def test_submissions_are_counted_in_the_devices_hourly_events(client, pat, metric, device):
    mid = metric["id"]
    access = device_token(client, *device)
    batch(client, access, [item(mid, 0), item(mid, 1), {"metric_id": mid}])
    batch(client, access, [item(mid, 0), item(mid, 2)])
    post(client, pat, item(mid, 3))
    post(client, pat, item(mid, 3))
    events = client.get(f"/api/v1/device/{device[0].id}/events", headers=bearer(pat)).get_json()["results"]
    counts = {e["kind"]: e["count"] for e in events if e["kind"].startswith("samples.")}
    assert counts == {"samples.accepted": 4, "samples.duplicate": 2, "samples.rejected": 1}
    accepted = next(e for e in events if e["kind"] == "samples.accepted")
    assert accepted["actor"] == f"device:{device[0].id}"


def test_a_batch_over_two_devices_is_counted_per_device(client, pat, user, metric, device):
    other, _ = make_device(user, "iPhone1,1")
    steps = new_metric(client, pat, other.id, sample_type="stepCount", quantity_type="count")["id"]
    items = [item(metric["id"], 0), item(metric["id"], 1), item(steps, 0)]
    batch(client, pat, items)
    assert batch(client, pat, items)["duplicates"] == 3

    def counts(device_id: int) -> dict[str, int]:
        events = client.get(f"/api/v1/device/{device_id}/events", headers=bearer(pat)).get_json()["results"]
        return {e["kind"]: e["count"] for e in events if e["kind"].startswith("samples.")}

    assert counts(device[0].id) == {"samples.accepted": 2, "samples.duplicate": 2}
    assert counts(other.id) == {"samples.accepted": 1, "samples.duplicate": 1}


def test_the_write_limit_is_per_device_with_retry_after(database_url):
    with app_with_database(database_url, RATELIMIT_ENABLED=True, BIOWEB_SAMPLE_RATELIMIT="3/minute") as app:
        isolate_requests(app)
        client = app.test_client()
        user = make_user()
        pat = make_pat(user)
        (one, one_secret), (two, two_secret) = make_device(user), make_device(user, "Watch1,1")
        first = new_metric(client, pat, one.id)["id"]
        second = new_metric(client, pat, two.id)["id"]
        one_token, two_token = device_token(client, one, one_secret), device_token(client, two, two_secret)
        for minute in range(3):
            assert post(client, one_token, item(first, minute)).status_code == 201
        response = post(client, one_token, item(first, 9))
        assert_error(response, 429)
        assert int(response.headers["Retry-After"]) > 0
        assert post(client, two_token, item(second, 0)).status_code == 201  # another device: its own limit
        assert rows(first) == 3


# --- reading -------------------------------------------------------------------------------------


def _read(client, token, query: str) -> dict:
    response = client.get(f"{SAMPLES}?{query}", headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.get_json()


def test_read_filters_order_and_fields(client, pat, metric, device):
    mid = metric["id"]
    batch(client, pat, [item(mid, m, 60 + m, client_sample_id=f"c{m}") for m in range(10)])
    body = _read(client, pat, f"metric_id={mid}")
    assert body["count"] == 10 and body["next_cursor"] is None
    assert [s["quantity"] for s in body["results"]] == [60 + m for m in range(10)]
    assert body["next_timestamp"] == ms(T0 + timedelta(minutes=9))
    first = body["results"][0]
    assert set(first) == {
        "uuid", "metric_id", "device_id", "sample_type", "quantity", "quantity_type", "start_date",
        "end_date", "sample_motion_context", "sample_sensor_location", "sample_sensor_location_other",
        "is_null", "client_sample_id", "client_sample_version", "received_time", "duplicate",
    }  # fmt: skip
    assert first["device_id"] == device[0].id and first["sample_type"] == "heartRate"

    at3, at7 = T0 + timedelta(minutes=3), T0 + timedelta(minutes=7)
    for query, expected in [
        (f"start_date_gte={ms(at3)}", range(3, 10)),
        (f"start_date_gt={ms(at3)}", range(4, 10)),
        (f"start_date_gte={iso(at3)}", range(3, 10)),
        (
            f"start_date_gt={at3.astimezone(timezone(timedelta(hours=1))).isoformat().replace('+', '%2B')}",
            range(4, 10),
        ),
        (f"end_date_lte={ms(at7)}", range(0, 7)),  # a sample ends a minute after it starts
        (f"end_date_lt={iso(at7)}", range(0, 6)),
        (f"start_date_gte={ms(at3)}&end_date_lte={iso(at7)}", range(3, 7)),
        (f"start_date_gte={ms(at3)}&sort_order=desc&limit=2", [9, 8]),
    ]:
        body = _read(client, pat, f"metric_id={mid}&{query}")
        assert [s["quantity"] - 60 for s in body["results"]] == list(expected), query
        assert body["count"] == (7 if "limit=2" in query else len(expected)), query


def test_cursor_pages_through_samples_sharing_an_instant_without_skips_or_repeats(client, pat, metric):
    mid = metric["id"]
    items = [item(mid, 0, n, client_sample_id=f"same-{n}") for n in range(200)]  # 200 at one instant
    items += [item(mid, 1 + n % 10, 1000 + n, client_sample_id=f"near-{n}") for n in range(50)]
    assert batch(client, pat, items)["accepted"] == 250
    with db.engine.connect() as conn:
        expected = [
            u
            for (u,) in conn.execute(
                sa.select(Sample.uuid).where(Sample.metric_id == mid).order_by(Sample.start_date, Sample.id)
            )
        ]
    for order, want in (("asc", expected), ("desc", expected[::-1])):
        seen, cursor, pages = [], None, 0
        while True:
            query = f"metric_id={mid}&limit=30&sort_order={order}" + (f"&cursor={cursor}" if cursor else "")
            body = _read(client, pat, query)
            pages += 1
            assert body["count"] == 250
            seen += [s["uuid"] for s in body["results"]]
            last = body["results"][-1]
            assert body["next_timestamp"] == ms(datetime.fromisoformat(last["start_date"]))
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == want and len(set(seen)) == 250 and pages == 9, order
    # next_timestamp as start_date_gt (the published way) skips what shares that instant.
    body = _read(client, pat, f"metric_id={mid}&limit=30")
    after = _read(client, pat, f"metric_id={mid}&start_date_gt={body['next_timestamp']}")
    assert after["count"] == 50


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "bm90IGpzb24",  # "not json"
        base64.urlsafe_b64encode(b'["2022-01-12T06:00:00", 5]').decode(),  # no offset
        base64.urlsafe_b64encode(b'["2022-01-12T06:00:00+00:00", -5]').decode(),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b'["2022-01-12T06:00:00+00:00", 5, 6]').decode(),
        base64.urlsafe_b64encode(b"[1, 5]").decode(),
        base64.urlsafe_b64encode(b'["2022-01-12T06:00:00+00:00", 1e400]').decode(),
        base64.urlsafe_b64encode(b'["2022-01-12T06:00:00+00:00", 99999999999999999999999]').decode(),
        base64.urlsafe_b64encode(b'["2022-01-12T06:00:00+00:00", true]').decode(),
        base64.urlsafe_b64encode(b'["2022-01-12T06:00:00+00:00", 5.7]').decode(),
        base64.urlsafe_b64encode(b'["0001-01-01T00:00:00+01:00", 5]').decode(),
        base64.urlsafe_b64encode(b"[null, 5]").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_tampered_cursor_is_400(client, pat, metric, cursor):
    batch(client, pat, [item(metric["id"], m) for m in range(3)])
    body = assert_error(
        client.get(f"{SAMPLES}?metric_id={metric['id']}&cursor={cursor}", headers=bearer(pat)), 400
    )
    assert "cursor" in body["fields"]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "metric_id=x",
        "metric_id=0",
        "metric_id={mid}&limit=0",
        "metric_id={mid}&limit=1001",
        "metric_id={mid}&sort_order=up",
        "metric_id={mid}&start_date_gt=yesterday",
        "metric_id={mid}&end_date_lte=2022-01-12T06:00:00",
        "metric_id={mid}&start_date_gte=99999999999999999999",
        "metric_id={mid}&start_date_gte=0001-01-01T00:00:00%2B01:00",
        "metric_id={mid}&end_date_lt=9999-12-31T23:59:59-01:00",
        "metric_id={mid}&colour=red",
        "metric_id={mid}&offset=5",
    ],
)
def test_bad_read_parameters_are_400(client, pat, metric, query):
    response = client.get(f"{SAMPLES}?{query.format(mid=metric['id'])}", headers=bearer(pat))
    assert "fields" in assert_error(response, 400, "invalid_request")


def test_reading_another_users_metric_is_404(client, pat, metric):
    bob = make_user("bob@example.com")
    bob_pat = make_pat(bob)
    batch(client, pat, [item(metric["id"])])
    assert_error(client.get(f"{SAMPLES}?metric_id={metric['id']}", headers=bearer(bob_pat)), 404, "not_found")
    assert_error(client.get(f"{SAMPLES}?metric_id=424242", headers=bearer(pat)), 404, "not_found")
    assert_error(client.get(f"/api/v1/metric/{metric['id']}", headers=bearer(bob_pat)), 404)
    assert_error(client.delete(f"/api/v1/metric/{metric['id']}", headers=bearer(bob_pat)), 404)
    result = batch(client, bob_pat, [item(metric["id"], 5)])
    assert result["rejected"][0]["fields"] == {"metric_id": [f"You have no metric with id {metric['id']}."]}
    assert rows() == 1


def test_delete_sample(client, pat, metric):
    mid = metric["id"]
    kept = post(client, pat, item(mid, 0)).get_json()["uuid"]
    gone = post(client, pat, item(mid, 1)).get_json()["uuid"]
    bob_pat = make_pat(make_user("bob@example.com"))
    assert_error(client.delete(f"/api/v1/quantity-sample/{gone}", headers=bearer(bob_pat)), 404)
    response = client.delete(f"/api/v1/quantity-sample/{gone}", headers=bearer(pat))
    assert response.status_code == 204 and response.data == b""
    assert_error(client.delete(f"/api/v1/quantity-sample/{gone}", headers=bearer(pat)), 404, "not_found")
    assert_error(client.delete(f"/api/v1/quantity-samples/{'x' * 100}", headers=bearer(pat)), 404)
    assert [s["uuid"] for s in _read(client, pat, f"metric_id={mid}")["results"]] == [kept]
    assert client.delete(f"/api/v1/quantity-samples/{kept}", headers=bearer(pat)).status_code == 204
    assert rows() == 0


# --- storage -------------------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite has no partitions
def test_postgresql_samples_are_hash_partitioned_with_real_unique_keys(
    app, client, pat, metric, database_url
):
    mid = metric["id"]
    batch(client, pat, [item(mid, 0, client_sample_id="dup"), item(mid, 1)])
    with db.engine.connect() as conn:
        partitions = conn.execute(
            sa.text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'quantity_samples'::regclass")
        ).scalar_one()
        assert partitions == 16
        strategy = conn.execute(
            sa.text(
                "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'quantity_samples'::regclass"
            )
        ).scalar_one()
        assert strategy == "h"
        assert (
            conn.execute(
                sa.text(
                    "SELECT data_type FROM information_schema.columns"
                    " WHERE table_name = 'quantity_samples' AND column_name = 'id'"
                )
            ).scalar_one()
            == "bigint"
        )
    columns = (
        "uuid, metric_id, start_date, end_date, quantity, sample_motion_context,"
        " sample_sensor_location_other, is_null, client_sample_id, client_sample_version, received_time"
    )
    for key, start in (("'dup'", "'2023-01-01T00:00:00Z'"), ("NULL", "'2022-01-12T06:01:00Z'")):
        end = "'2023-01-01T00:00:00Z'" if key != "NULL" else "'2022-01-12T06:02:00Z'"
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"INSERT INTO quantity_samples ({columns}) VALUES"
                    f" (:uuid, :mid, {start}, {end}, 1, 'NotSet', '', false, {key}, 1, now())"
                ),
                {"uuid": str(uuid.uuid4()), "mid": mid},
            )
    assert rows(mid) == 2


def test_sample_ids_are_64_bit(app, client, pat, metric):
    """An id past 2**31 is stored and read back (SQLite's rowid is 64-bit; PostgreSQL's BIGINT)."""
    mid = metric["id"]
    big = 2**40
    with db.engine.begin() as conn:
        conn.execute(
            sa.insert(Sample.__table__).values(
                id=big,
                uuid=str(uuid.uuid4()),
                metric_id=mid,
                start_date=T0,
                end_date=T0,
                quantity=1.0,
                sample_motion_context="NotSet",
                sample_sensor_location_other="",
                is_null=False,
                client_sample_version=1,
                received_time=T0,
            )
        )
    assert post(client, pat, item(mid, 5)).status_code == 201
    body = _read(client, pat, f"metric_id={mid}&limit=1")
    assert body["next_cursor"] is not None
    second = _read(client, pat, f"metric_id={mid}&cursor={body['next_cursor']}")
    assert second["results"][0]["quantity"] == 61 and second["next_cursor"] is None
    assert max(row["id"] for row in stored(mid)) >= big


def test_a_sample_stored_while_its_metric_is_deleted_is_purged_later(app, client, pat, metric):
    """A writer that found the metric before the delete marked it may commit a sample after the
    last batch: the request still answers 204 and `flask maintenance` finishes the metric."""
    from bioweb.services import metrics

    mid = metric["id"]
    batch(client, pat, [item(mid, 0)])
    late = {
        "uuid": str(uuid.uuid4()), "metric_id": mid, "start_date": T0, "end_date": T0, "quantity": 1.0,
        "sample_motion_context": "NotSet", "sample_sensor_location_other": "", "is_null": False,
        "client_sample_version": 1, "received_time": T0,
    }  # fmt: skip
    fired = []

    def write_first(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("DELETE FROM metrics") and not fired:
            fired.append(statement)
            with db.engine.begin() as other:
                other.execute(sa.insert(Sample.__table__).values(**late))

    sa.event.listen(db.engine, "before_cursor_execute", write_first)
    try:
        assert client.delete(f"/api/v1/metric/{mid}", headers=bearer(pat)).status_code == 204
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", write_first)
    assert fired and rows(mid) == 1
    assert_error(client.get(f"/api/v1/metric/{mid}", headers=bearer(pat)), 404)
    assert metrics.purge_deleted_metrics() == (1, 0)
    assert rows(mid) == 0 and db.session.get(Metric, mid) is None
