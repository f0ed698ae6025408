"""The device endpoints of the published document, through HTTP."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import Device, DeviceState
from bioweb.security import digest
from bioweb.services import devices as device_service
from tests.helpers import basic, bearer, make_device, make_pat, make_user

CREATE = {"manufacturer": "Apple", "device_code": "iPhone1,1"}


@pytest.fixture
def token(user):
    return make_pat(user)


def create(client, token, body=None, **kwargs):
    return client.post(
        "/api/v1/devices", json=body if body is not None else CREATE, headers=bearer(token), **kwargs
    )


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == code
    assert isinstance(body["error_description"], str) and body["error_description"]
    return body


# --- create -------------------------------------------------------------------------------


def test_create_returns_credentials_once_and_stores_only_a_digest(client, token, user):
    response = create(client, token)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"id", "uuid", "oauth2_client_id", "oauth2_client_secret", "oauth2_redirect_url"}
    assert uuid.UUID(body["uuid"])
    assert len(body["oauth2_client_id"]) == 16
    secret = body["oauth2_client_secret"]
    assert secret.startswith("bcs_") and len(secret) >= 4 + 43  # 256 bits, URL-safe base64
    assert body["oauth2_redirect_url"] == "http://127.0.0.1:8000/appauth/code"

    device = db.session.get(Device, body["id"])
    assert device.client_secret_digest == digest(secret)
    assert device.user_id == user.id and device.tenant_id == user.tenant_id
    assert (device.manufacturer, device.code, device.product_name) == ("Apple", "iPhone1,1", "iPhone")
    assert device.state == DeviceState.ACTIVE and device.is_test_mode is False


def test_create_normalises_case_and_takes_test_mode(client, token):
    response = create(
        client, token, {"manufacturer": "APPLE", "device_code": "watch1,2", "is_test_mode": True}
    )
    assert response.status_code == 200
    detail = client.get(f"/api/v1/device/{response.get_json()['id']}", headers=bearer(token)).get_json()
    assert detail["manufacturer"] == "Apple"
    assert detail["code"] == "Watch1,2"
    assert detail["product_name"] == "Apple Watch 42mm case"
    assert detail["is_test_mode"] is True


def test_create_takes_an_optional_name_shown_in_the_list_and_the_device(client, token):
    named = create(client, token, {**CREATE, "name": "  Anna's watch  "}).get_json()["id"]
    unnamed = create(client, token).get_json()["id"]
    blank = create(client, token, {**CREATE, "name": " ", "is_test_mode": None}).get_json()["id"]
    null = create(client, token, {**CREATE, "name": None}).get_json()["id"]
    assert client.get(f"/api/v1/device/{named}", headers=bearer(token)).get_json()["name"] == "Anna's watch"
    listed = client.get("/api/v1/devices", headers=bearer(token)).get_json()["results"]
    assert {d["id"]: d["name"] for d in listed} == {
        named: "Anna's watch",
        unnamed: None,
        blank: None,
        null: None,
    }


@pytest.mark.parametrize("name", ["x" * 101, 7, True, ["a"]])
def test_create_refuses_a_bad_name(client, token, name):
    body = assert_error(create(client, token, {**CREATE, "name": name}), 400, "invalid_request")
    assert list(body["fields"]) == ["name"]


def test_redirect_url_follows_configured_base_url(app, client, token):
    app.config["BIOWEB_BASE_URL"] = "https://biometricscloud.net"
    body = create(client, token).get_json()
    assert body["oauth2_redirect_url"] == "https://biometricscloud.net/appauth/code"


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"device_code": "iPhone1,1"}, "manufacturer", "required"),
        ({"manufacturer": "Apple"}, "device_code", "required"),
        ({"manufacturer": "Samsung", "device_code": "iPhone1,1"}, "manufacturer", "available options: Apple"),
        ({"manufacturer": "", "device_code": "iPhone1,1"}, "manufacturer", "required"),
        ({"manufacturer": "Apple", "device_code": "iPhone1,9"}, "device_code", "Did you mean"),
        (
            {"manufacturer": "Apple", "device_code": "Pixel 7"},
            "device_code",
            "not a known Apple model identifier",
        ),
        ({"manufacturer": "Apple", "device_code": 11}, "device_code", "JSON string"),
        ({"manufacturer": ["Apple"], "device_code": "iPhone1,1"}, "manufacturer", "JSON string"),
        ({**CREATE, "is_test_mode": "false"}, "is_test_mode", "JSON boolean"),
        ({**CREATE, "is_test_mode": 1}, "is_test_mode", "JSON boolean"),
        ({**CREATE, "colour": "red"}, "colour", "Unknown field"),
        ({**CREATE, "device_code": "x" * 500}, "device_code", "at most"),
    ],
)
def test_create_rejects_bad_fields_by_name(client, token, body, field, fragment):
    response = create(client, token, body)
    error = assert_error(response, 400, "invalid_request")
    assert field in error["fields"]
    assert any(fragment in message for message in error["fields"][field]), error
    assert field in error["error_description"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Device)) == 0


def test_unknown_code_suggests_close_matches(client, token):
    error = create(client, token, {"manufacturer": "Apple", "device_code": "Watch1,9"}).get_json()
    assert "Watch1,1" in error["fields"]["device_code"][0]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        ('{"manufacturer": "Apple"', "application/json", 400, "invalid_request"),
        ("[1, 2]", "application/json", 400, "invalid_request"),
        ('"Apple"', "application/json", 400, "invalid_request"),
        ("null", "application/json", 400, "invalid_request"),
        ("", "application/json", 400, "invalid_request"),
        (
            "manufacturer=Apple&device_code=iPhone1,1",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        ('{"manufacturer":"Apple","device_code":"iPhone1,1"}', "text/plain", 415, "unsupported_media_type"),
        ("[" * 50000 + "]" * 50000, "application/json", 413, "request_too_large"),
        ("[" * 20000 + "]" * 20000, "application/json", 400, "invalid_request"),
        (b'{"manufacturer": "\xff"}', "application/json", 400, "invalid_request"),
    ],
)
def test_create_rejects_bodies_that_are_not_json_objects(client, token, data, content_type, status, code):
    response = client.post("/api/v1/devices", data=data, content_type=content_type, headers=bearer(token))
    assert_error(response, status, code)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Device)) == 0


def test_create_needs_write_scope(client, user):
    read_only = make_pat(user, scope="devices:read")
    response = create(client, read_only)
    assert_error(response, 403, "insufficient_scope")
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


# --- bearer authentication ----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer bcp_not-a-real-token-at-all"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer " + "x" * 5000},
        {"Authorization": "bearer"},
    ],
)
def test_missing_or_unknown_token_is_401_invalid_token(client, headers):
    response = client.get("/api/v1/devices", headers=headers)
    assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_expired_and_revoked_tokens_are_refused(client, user, runner):
    from bioweb.models import Token, utcnow

    expired = make_pat(user)
    row = db.session.scalar(sa.select(Token).where(Token.digest == digest(expired)))
    row.expires_time = utcnow()
    db.session.commit()
    assert_error(client.get("/api/v1/devices", headers=bearer(expired)), 401, "invalid_token")

    revoked = make_pat(user)
    row = db.session.scalar(sa.select(Token).where(Token.digest == digest(revoked)))
    assert client.get("/api/v1/devices", headers=bearer(revoked)).status_code == 200
    assert runner.invoke(args=["tokens", "revoke", str(row.id)]).exit_code == 0
    assert_error(client.get("/api/v1/devices", headers=bearer(revoked)), 401, "invalid_token")


def test_read_only_token_can_read_but_not_write(client, user):
    device, _ = make_device(user)
    read_only = make_pat(user, scope="devices:read")
    assert client.get("/api/v1/devices", headers=bearer(read_only)).status_code == 200
    assert client.get(f"/api/v1/device/{device.id}", headers=bearer(read_only)).status_code == 200
    assert_error(
        client.delete(f"/api/v1/device/{device.id}", headers=bearer(read_only)), 403, "insufficient_scope"
    )
    write_only = make_pat(user, scope="devices:write")
    assert_error(client.get("/api/v1/devices", headers=bearer(write_only)), 403, "insufficient_scope")


# --- retrieve -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/device/{id}", "/api/v1/devices/{id}"])
def test_retrieve_has_every_published_field(client, token, user, path):
    device, _ = make_device(user, "Watch1,1")
    response = client.get(path.format(id=device.id), headers=bearer(token))
    assert response.status_code == 200
    body = response.get_json()
    assert body == {
        "id": device.id,
        "uuid": device.uuid,
        "tenant_id": user.tenant_id,
        "manufacturer": "Apple",
        "code": "Watch1,1",
        "product_name": "Apple Watch 38mm case",
        "is_test_mode": False,
        "state": 1,
        "user_id": user.id,
        "client_id": device.client_id,
        "created_time": body["created_time"],
        "modified_time": body["modified_time"],
        "last_active_time": body["last_active_time"],
        "name": None,
        "last_token_time": None,
        "secrets": [{"slot": 1, "created_time": body["secrets"][0]["created_time"], "expires_time": None}],
    }
    for key in ("created_time", "modified_time", "last_active_time"):
        assert body[key].endswith("+00:00")
        assert datetime.fromisoformat(body[key]).utcoffset().total_seconds() == 0
    text = response.get_data(as_text=True)
    assert "bcs_" not in text and device.client_secret_digest not in text and "digest" not in text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/device/999",
        "/api/v1/device/0",
        "/api/v1/device/-1",
        "/api/v1/device/abc",
        "/api/v1/device/2147483648",
        "/api/v1/device/99999999999999999999999",
        "/api/v1//device/1",
    ],
)
def test_retrieve_unknown_device_is_404(client, token, path):
    assert_error(client.get(path, headers=bearer(token)), 404, "not_found")


# --- isolation between users ----------------------------------------------------------------


def test_another_users_device_is_invisible_and_untouchable(client, user, token):
    device, _ = make_device(user)
    mallory = make_user("mallory@example.com", tenant="evil")
    other = make_pat(mallory)
    assert client.get("/api/v1/devices", headers=bearer(other)).get_json() == {
        "next_id": None,
        "count": 0,
        "results": [],
    }
    for response in (
        client.get(f"/api/v1/device/{device.id}", headers=bearer(other)),
        client.get(f"/api/v1/devices/{device.id}", headers=bearer(other)),
        client.delete(f"/api/v1/device/{device.id}", headers=bearer(other)),
        client.delete(
            f"/api/v1/data-submission/device-authorize?device_id={device.id}", headers=bearer(other)
        ),
        client.post(
            "/api/v1/data-submission/device-authorize", json={"device_id": device.id}, headers=bearer(other)
        ),
    ):
        body = assert_error(response, 404, "not_found")
        assert body["error_description"] == f"You have no device with id {device.id}."
    db.session.refresh(device)
    assert device.state == DeviceState.ACTIVE
    assert client.get(f"/api/v1/device/{device.id}", headers=bearer(token)).status_code == 200


# --- disable and re-authorize ---------------------------------------------------------------


@pytest.mark.parametrize(
    "disable",
    [
        lambda c, t, i: c.delete(f"/api/v1/device/{i}", headers=bearer(t)),
        lambda c, t, i: c.delete(f"/api/v1/devices/{i}", headers=bearer(t)),
        lambda c, t, i: c.delete(
            f"/api/v1/data-submission/device-authorize?device_id={i}", headers=bearer(t)
        ),
    ],
    ids=["device", "devices", "device-authorize"],
)
def test_disable_is_204_and_idempotent(client, token, user, disable):
    device, _ = make_device(user)
    for _ in range(2):
        response = disable(client, token, device.id)
        assert response.status_code == 204
        assert response.get_data() == b""
    detail = client.get(f"/api/v1/device/{device.id}", headers=bearer(token)).get_json()
    assert detail["state"] == DeviceState.DISABLED
    assert detail["modified_time"] >= detail["created_time"]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("", "required"),
        ("?device_id=abc", "whole number from 1 to 2147483647, in the digits 0-9"),
        ("?device_id=0", "device id"),
        ("?device_id=-4", "whole number from 1 to 2147483647"),  # digits only: no sign
        ("?device_id=%D9%A1", "in the digits 0-9"),  # "١", which int() reads as 1
    ],
)
def test_disable_by_query_validates_device_id(client, token, query, fragment):
    response = client.delete(f"/api/v1/data-submission/device-authorize{query}", headers=bearer(token))
    error = assert_error(response, 400, "invalid_request")
    assert any(fragment in m for m in error["fields"]["device_id"]), error


def test_reauthorize_gives_new_secret_and_keeps_client_id(client, token, user):
    device, old_secret = make_device(user)
    assert client.delete(f"/api/v1/device/{device.id}", headers=bearer(token)).status_code == 204
    response = client.post(
        "/api/v1/data-submission/device-authorize", json={"device_id": device.id}, headers=bearer(token)
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["id"] == device.id and body["uuid"] == device.uuid
    assert body["oauth2_client_id"] == device.client_id
    assert body["oauth2_client_secret"] != old_secret and body["oauth2_client_secret"].startswith("bcs_")
    db.session.refresh(device)
    assert device.state == DeviceState.ACTIVE
    assert device.client_secret_digest == digest(body["oauth2_client_secret"])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"device_id": "1"}, 400),
        ({"device_id": True}, 400),
        ({"device_id": 1.5}, 400),
        ({"device_id": 424242}, 404),
    ],
)
def test_reauthorize_validates_body(client, token, user, body, status):
    make_device(user)
    response = client.post("/api/v1/data-submission/device-authorize", json=body, headers=bearer(token))
    assert_error(response, status, "invalid_request" if status == 400 else "not_found")


# --- list and pagination --------------------------------------------------------------------


def test_list_shape_matches_published_document(client, token, user):
    make_device(user, "iPhone1,1")
    make_device(user, "Watch1,1")
    body = client.get("/api/v1/devices", headers=bearer(token), content_type="application/json").get_json()
    assert body["next_id"] == 2 and body["count"] == 2
    assert [
        {k: r[k] for k in ("id", "manufacturer", "code", "product_name", "state")} for r in body["results"]
    ] == [
        {"id": 1, "manufacturer": "Apple", "code": "iPhone1,1", "product_name": "iPhone", "state": 1},
        {
            "id": 2,
            "manufacturer": "Apple",
            "code": "Watch1,1",
            "product_name": "Apple Watch 38mm case",
            "state": 1,
        },
    ]


# The published API's time format: RFC 3339 with microseconds and +00:00 (never "Z").
RFC3339_UTC = re.compile(r'"(\w+_time|time)":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"')
ANY_TIME = re.compile(r'"(\w+_time|time)":"[^"]*"')


def test_every_time_in_the_answers_is_rfc3339_with_plus_00_00(client, token, user):
    device, secret = make_device(user)
    device_token = client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(device.client_id, secret)
    ).get_json()["access_token"]
    answers = [
        client.get("/api/v1/devices", headers=bearer(token)),
        client.get(f"/api/v1/device/{device.id}", headers=bearer(token)),
        client.get(f"/api/v1/device/{device.id}", headers=bearer(device_token)),
        client.get(f"/api/v1/device/{device.id}/events", headers=bearer(token)),
    ]
    for response in answers:
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        times = ANY_TIME.findall(text)
        assert len(times) >= 3, text
        assert RFC3339_UTC.findall(text) == times, text
        assert 'Z"' not in text


def test_empty_list_has_null_next_id(client, token):
    assert client.get("/api/v1/devices", headers=bearer(token)).get_json() == {
        "next_id": None,
        "count": 0,
        "results": [],
    }


def test_offset_is_an_id_cursor(client, token, user):
    ids = [make_device(user)[0].id for _ in range(5)]
    body = client.get(f"/api/v1/devices?offset={ids[1]}&limit=2", headers=bearer(token)).get_json()
    assert [r["id"] for r in body["results"]] == ids[2:4]
    assert body["next_id"] == ids[3] and body["count"] == 5
    desc = client.get(f"/api/v1/devices?offset={ids[3]}&sort_order=desc", headers=bearer(token)).get_json()
    assert [r["id"] for r in desc["results"]] == [ids[2], ids[1], ids[0]]


CODES = ["Watch1,1", "iPhone1,1", "iPad1,1", "Watch1,1", "iPhone1,1", "AppleTV2,1", "Watch1,1"]
# Ties in any case, no name at all, a name beyond ASCII.
NAMES = ["anna", "Anna", None, "bob", "Ängla", None, "ANNA"]


def _sort_value(row: dict, sort_field: str):
    if sort_field == "id":
        return 0
    if sort_field in ("code", "name", "product_name"):
        return (row[sort_field] or "").casefold()
    return row[sort_field]


@pytest.mark.parametrize(
    "sort_field",
    [
        "id",
        "created_time",
        "modified_time",
        "last_active_time",
        "manufacturer",
        "code",
        "state",
        "name",
        "product_name",
    ],
)
@pytest.mark.parametrize("sort_order", ["asc", "desc"])
def test_paging_by_every_field_never_skips_or_repeats(client, token, user, sort_field, sort_order):
    devices = [make_device(user, code)[0] for code in CODES]
    # Ties on every field: same timestamps for pairs, same states, repeated codes.
    now = devices[0].created_time
    for index, device in enumerate(devices):
        device.created_time = device.modified_time = device.last_active_time = now.replace(
            microsecond=index // 2
        )
        device.state = DeviceState.DISABLED if index % 3 == 0 else DeviceState.ACTIVE
    db.session.commit()
    for device, name in zip(devices, NAMES, strict=True):
        device_service.rename_device(user, device.id, name)

    seen, offset = [], 0
    for _ in range(10):
        page = client.get(
            f"/api/v1/devices?limit=2&sort_field={sort_field}&sort_order={sort_order}&offset={offset}",
            headers=bearer(token),
        ).get_json()
        assert page["count"] == len(CODES)
        if not page["results"]:
            assert page["next_id"] is None
            break
        seen.extend(page["results"])
        offset = page["next_id"]
    # Codes (and names, products) sort without regard to case: "iPad" between "AppleTV" and "Watch".
    keys = [(_sort_value(r, sort_field), r["id"]) for r in seen]
    expected = sorted(keys, reverse=sort_order == "desc")
    assert keys == expected
    assert sorted(r["id"] for r in seen) == sorted(d.id for d in devices)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("offset=-1", "offset"),
        ("offset=1.5", "offset"),
        ("offset=2147483648", "offset"),
        ("limit=" + "9" * 400, "limit"),
        ("sort_order=up", "sort_order"),
        ("sort_order=ASC", "sort_order"),
        ("sort_field=client_secret_digest", "sort_field"),
        ("sort_field=", "sort_field"),
        ("sort_field=code&offset=999", "offset"),
    ],
)
def test_list_rejects_bad_parameters_by_name(client, token, user, query, param):
    make_device(user)
    error = assert_error(
        client.get(f"/api/v1/devices?{query}", headers=bearer(token)), 400, "invalid_request"
    )
    assert param in error["fields"] and param in error["error_description"]


def test_limit_bounds_are_accepted(client, token, user):
    make_device(user)
    assert len(client.get("/api/v1/devices?limit=1", headers=bearer(token)).get_json()["results"]) == 1
    assert client.get("/api/v1/devices?limit=1000", headers=bearer(token)).status_code == 200


# --- the JSON error shape everywhere under /api/v1 ------------------------------------------


def test_unknown_paths_and_methods_are_json(client, token):
    assert_error(client.get("/api/v1/nothing-here", headers=bearer(token)), 404, "not_found")
    response = client.put("/api/v1/devices", headers=bearer(token))
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    assert_error(client.put("/api/v1/device/1", headers=bearer(token)), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("path", "json_expected"),
    [
        ("/token/nothing", True),
        ("/api/v2/devices", True),
        ("/.well-known/nothing", True),
        ("/tokenish", False),
        ("/nothing", False),
    ],
)
def test_error_pages_are_json_exactly_in_the_json_url_space(client, path, json_expected):
    response = client.get(path)
    assert response.status_code == 404
    assert (response.mimetype == "application/json") is json_expected


def test_unexpected_exception_is_json_500_and_logged_without_secrets(client, token, monkeypatch, caplog):
    from bioweb.services import devices as device_service

    def explode(*args, **kwargs):
        raise RuntimeError(f"boom while holding {token}")

    monkeypatch.setattr(device_service, "list_devices", explode)
    body = assert_error(client.get("/api/v1/devices", headers=bearer(token)), 500, "server_error")
    assert "boom" not in body["error_description"]
    assert token not in caplog.text


# --- concurrency through a real server ------------------------------------------------------


@pytest.mark.workers(2)
def test_concurrent_creates_lose_nothing_and_share_no_client_id(live_server, user, token):
    def create_one(_):
        return requests.post(f"{live_server}/api/v1/devices", json=CREATE, headers=bearer(token), timeout=30)

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(create_one, range(60)))
    assert [r.status_code for r in responses] == [200] * 60
    bodies = [r.json() for r in responses]
    assert len({b["id"] for b in bodies}) == 60
    assert len({b["oauth2_client_id"] for b in bodies}) == 60
    listing = requests.get(
        f"{live_server}/api/v1/devices?limit=1000", headers=bearer(token), timeout=30
    ).json()
    assert listing["count"] == 60
    assert sorted(r["id"] for r in listing["results"]) == sorted(b["id"] for b in bodies)


def test_database_holds_no_secret_or_token_in_plaintext(client, token, user):
    device, secret = make_device(user)
    created = create(client, token).get_json()
    db.session.commit()
    dump = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                dump.extend(str(value) for value in row)
    text = "\n".join(dump)
    for plaintext in (token, secret, created["oauth2_client_secret"]):
        assert plaintext not in text
        assert digest(plaintext) in text


# --- names: PATCH, sort ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/device/{id}", "/api/v1/devices/{id}"])
def test_patch_names_renames_and_unnames_a_device(client, token, user, path):
    device, _ = make_device(user)
    url = path.format(id=device.id)
    response = client.patch(url, json={"name": "  Anna's watch "}, headers=bearer(token))
    assert response.status_code == 200
    body = response.get_json()
    assert (
        body["name"] == "Anna's watch" and body["id"] == device.id and body["client_id"] == device.client_id
    )
    assert body["modified_time"] > body["created_time"]
    assert client.get(url, headers=bearer(token)).get_json()["name"] == "Anna's watch"
    listed = client.get("/api/v1/devices", headers=bearer(token)).get_json()["results"]
    assert listed[0]["name"] == "Anna's watch"
    for cleared in (None, "", "   "):
        client.patch(url, json={"name": "again"}, headers=bearer(token))
        assert client.patch(url, json={"name": cleared}, headers=bearer(token)).get_json()["name"] is None
    events = client.get(f"/api/v1/device/{device.id}/events", headers=bearer(token)).get_json()["results"]
    assert [e["kind"] for e in events].count("device.renamed") == 7


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 7}, "name"),
        ({"name": "ok", "code": "iPhone1,1"}, "code"),
        ({"state": 2}, "state"),
    ],
)
def test_patch_refuses_what_it_cannot_change(client, token, user, body, field):
    device, _ = make_device(user)
    error = assert_error(
        client.patch(f"/api/v1/device/{device.id}", json=body, headers=bearer(token)), 400, "invalid_request"
    )
    assert field in error["fields"]
    assert db.session.get(Device, device.id).name is None


def test_patch_needs_write_scope_json_and_an_own_device(client, user, token):
    device, secret = make_device(user)
    read_only = make_pat(user, scope="devices:read")
    url = f"/api/v1/device/{device.id}"
    assert_error(client.patch(url, json={"name": "x"}, headers=bearer(read_only)), 403, "insufficient_scope")
    assert_error(client.patch(url, data="name=x", headers=bearer(token)), 415, "unsupported_media_type")
    other = make_user(email="eve@example.com")
    theirs, _ = make_device(other)
    assert_error(
        client.patch(f"/api/v1/device/{theirs.id}", json={"name": "x"}, headers=bearer(token)),
        404,
        "not_found",
    )
    # A device's own token may read itself, not rename itself.
    own = client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(device.client_id, secret)
    ).get_json()["access_token"]
    assert_error(client.patch(url, json={"name": "x"}, headers=bearer(own)), 403, "insufficient_scope")


def test_sort_by_code_ignores_case(client, token, user):
    for code in ("iPhone1,1", "Watch1,1", "AppleTV2,1", "iPad1,1", "AirPods1,1"):
        make_device(user, code)
    codes = [
        r["code"]
        for r in client.get("/api/v1/devices?sort_field=code", headers=bearer(token)).get_json()["results"]
    ]
    assert codes == ["AirPods1,1", "AppleTV2,1", "iPad1,1", "iPhone1,1", "Watch1,1"]
    desc = client.get("/api/v1/devices?sort_field=code&sort_order=desc", headers=bearer(token)).get_json()
    assert [r["code"] for r in desc["results"]] == codes[::-1]


def test_sort_by_name_and_product(client, token, user):
    made = {}
    for name, code in (
        ("bob", "Watch1,1"),
        ("Alice", "iPhone1,1"),
        (None, "iPad1,1"),
        ("ÉMILE", "AppleTV2,1"),
    ):
        device, _ = make_device(user, code)
        if name:
            device_service.rename_device(user, device.id, name)
        made[name] = device.id
    by_name = client.get("/api/v1/devices?sort_field=name", headers=bearer(token)).get_json()["results"]
    assert [r["name"] for r in by_name] == [None, "Alice", "bob", "ÉMILE"]
    by_product = client.get("/api/v1/devices?sort_field=product_name", headers=bearer(token)).get_json()
    assert [r["product_name"] for r in by_product["results"]] == [
        "Apple TV (2nd generation)",
        "Apple Watch 38mm case",
        "iPad",
        "iPhone",
    ]


@pytest.mark.parametrize(
    "query",
    ["sort_feild=code", "q=anna", "page=2", "offset=0&limit=5&colour=red", "LIMIT=5", "csrf_token=x"],
)
def test_list_names_unknown_parameters_and_the_known_ones(client, token, user, query):
    make_device(user)
    error = assert_error(
        client.get(f"/api/v1/devices?{query}", headers=bearer(token)), 400, "invalid_request"
    )
    unknown = [
        pair.split("=")[0] for pair in query.split("&") if pair.split("=")[0] not in ("offset", "limit")
    ]
    assert list(error["fields"]) == unknown
    for message in error["fields"].values():
        assert message == ["Unknown parameter; the parameters are: offset, limit, sort_order, sort_field."]
    assert "offset, limit, sort_order, sort_field" in error["error_description"]


def test_other_query_forms_refuse_unknown_parameters_too(client, token, user):
    device, _ = make_device(user)
    error = assert_error(
        client.get(f"/api/v1/device/{device.id}/events?limt=5", headers=bearer(token)), 400, "invalid_request"
    )
    assert list(error["fields"]) == ["limt"]
    error = assert_error(
        client.delete(
            f"/api/v1/data-submission/device-authorize?device_id={device.id}&force=1", headers=bearer(token)
        ),
        400,
        "invalid_request",
    )
    assert list(error["fields"]) == ["force"]
    assert db.session.get(Device, device.id).state == DeviceState.ACTIVE


def test_list_answers_name_and_last_token_time(client, token, user):
    device, secret = make_device(user)
    (row,) = client.get("/api/v1/devices", headers=bearer(token)).get_json()["results"]
    assert row["name"] is None and row["last_token_time"] is None
    client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(device.client_id, secret))
    (row,) = client.get("/api/v1/devices", headers=bearer(token)).get_json()["results"]
    assert row["last_token_time"] is not None and row["last_active_time"] == row["last_token_time"]
