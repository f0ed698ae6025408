"""Your data is yours (issue 16, parts 4 and 5): the export ZIP, deleting a disabled device with
its data, deleting an account; on SQLite and PostgreSQL.

"Nothing of theirs is left" is checked table by table from the models' metadata: every table
with a user_id, device_id, metric_id or application_id column, tables added later included."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import (
    Application,
    AuthorizationCode,
    DeletionRecord,
    Device,
    Metric,
    PendingDeletion,
    SourcePriority,
    Token,
    TokenKind,
    User,
    UserSession,
    utcnow,
)
from bioweb.models import Grant as GrantRow
from bioweb.security import digest
from bioweb.services import accounts, deletion
from bioweb.services import export as export_service
from tests.helpers import (
    PASSWORD,
    assert_error,
    assert_nothing_left,
    basic,
    bearer,
    log_in,
    make_device,
    make_pat,
    make_user,
)

T0 = datetime(2022, 1, 12, 6, 0, tzinfo=UTC)
FIELDS = list(export_service.SAMPLE_FIELDS)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def device_token(client, device: Device | str, secret: str):
    client_id = device if isinstance(device, str) else device.client_id
    return client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret))


def fill(client, pat: str, device_id: int, count: int = 12) -> int:
    """A heart-rate metric on the device with `count` samples of every shape (a null one, a
    fraction, contexts, client ids); returns the metric's id."""
    response = client.post(
        "/api/v1/metrics",
        json={"device_id": device_id, "sample_type": "heartRate", "quantity_type": "count/min"},
        headers=bearer(pat),
    )
    assert response.status_code == 201, response.text
    metric_id = response.get_json()["id"]
    items = []
    for i in range(count):
        start = T0 + timedelta(minutes=i, microseconds=i * 1001)
        items.append(
            {
                "metric_id": metric_id,
                "start_date": iso(start),
                "end_date": iso(start + timedelta(seconds=30)),
                "quantity": None if i == 3 else 60 + i * 0.25,
                "is_null": i == 3,
                "sample_motion_context": ("NotSet", "Sedentary", "Active")[i % 3],
                "sample_sensor_location": i % 7 if i % 2 else None,
                "sample_sensor_location_other": 'wrist, "left"' if i == 5 else "",
                "client_sample_id": f"HK-{i}" if i % 2 else None,
            }
        )
    stored = client.post("/api/v1/quantity-samples", json={"samples": items}, headers=bearer(pat))
    assert stored.status_code == 200 and stored.get_json()["accepted"] == count, stored.text
    return metric_id


def api_samples(client, pat: str, metric_id: int) -> list[dict]:
    results, cursor = [], None
    while True:
        query = f"metric_id={metric_id}&limit=5" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(f"/api/v1/quantity-samples?{query}", headers=bearer(pat)).get_json()
        results += body["results"]
        cursor = body["next_cursor"]
        if cursor is None:
            return results


def as_cells(result: dict) -> list[str]:
    """An API sample as the CSV's cells: the JSON value's text (strings as they are, null empty)."""
    return [
        "" if result[f] is None else result[f] if isinstance(result[f], str) else json.dumps(result[f])
        for f in FIELDS
    ]


def download(client, pat: str) -> zipfile.ZipFile:
    response = client.get("/api/v1/account/export", headers=bearer(pat))
    assert response.status_code == 200, response.text[:500]
    assert response.mimetype == "application/zip"
    assert re.fullmatch(
        r'attachment; filename="bioweb-export-\d{4}-\d{2}-\d{2}\.zip"',
        response.headers["Content-Disposition"],
    )
    assert response.headers["Cache-Control"] == "no-store"
    return zipfile.ZipFile(io.BytesIO(response.data))


def test_the_export_holds_everything_and_its_csv_is_the_apis_answer(app, client, user, pat, monkeypatch):
    monkeypatch.setattr(export_service, "PAGE", 5)  # several keyset pages of samples and events
    phone, phone_secret = make_device(user)
    watch, _ = make_device(user, "Watch1,1")
    metric_id = fill(client, pat, phone.id)
    empty_id = fill(client, pat, watch.id, count=0) if False else None
    assert device_token(client, phone, phone_secret).status_code == 200
    log_in(client)  # a dashboard session to list
    archive = download(client, pat)

    names = set(archive.namelist())
    assert names == {
        "README.txt", "account.json", "devices.json", "metrics.json", f"samples/{metric_id}.csv",
        f"samples/{metric_id}.ndjson", "events.ndjson", "account_events.ndjson", "grants.json",
        "applications.json", "source_priorities.json", "personal_access_tokens.json", "sessions.json",
        "manifest.json",
    }  # fmt: skip
    assert empty_id is None
    api = api_samples(client, pat, metric_id)
    assert len(api) == 12
    table = list(csv.reader(io.StringIO(archive.read(f"samples/{metric_id}.csv").decode())))
    assert table[0] == FIELDS
    assert table[1:] == [as_cells(result) for result in api]
    lines = archive.read(f"samples/{metric_id}.ndjson").decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {k: v for k, v in r.items() if k != "duplicate"} for r in api
    ]
    account = json.loads(archive.read("account.json"))
    assert account["email"] == "ada@example.com" and account["id"] == user.id
    exported_devices = json.loads(archive.read("devices.json"))
    assert [d["id"] for d in exported_devices] == [phone.id, watch.id]
    assert exported_devices[0] == client.get(f"/api/v1/device/{phone.id}", headers=bearer(pat)).get_json()
    assert [m["id"] for m in json.loads(archive.read("metrics.json"))] == [metric_id]
    events = [json.loads(line) for line in archive.read("events.ndjson").decode().splitlines()]
    assert {"device.created", "token.issued", "samples.accepted"} <= {e["kind"] for e in events}
    sessions = json.loads(archive.read("sessions.json"))
    assert len(sessions) == 1 and set(sessions[0]) == {
        "id",
        "created_time",
        "last_seen_time",
        "expires_time",
        "user_agent",
        "ip",
    }
    (token,) = json.loads(archive.read("personal_access_tokens.json"))
    assert token["scope"] == "devices:read devices:write samples:read samples:write" and "digest" not in token
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["files"][f"samples/{metric_id}.csv"] == 12 and manifest["files"]["devices.json"] == 2
    assert (
        b"manifest.json" in archive.read("README.txt")
        or "manifest.json" in archive.read("README.txt").decode()
    )

    # No secret, digest or session key anywhere, compressed or not.
    with db.engine.connect() as conn:
        secrets = [row[0] for row in conn.execute(sa.select(Token.digest))]
        secrets += [row[0] for row in conn.execute(sa.select(UserSession.key_digest))]
        secrets += [row[0] for row in conn.execute(sa.select(Device.client_secret_digest))]
        secrets += [row[0] for row in conn.execute(sa.select(User.password_hash))]
    secrets += [pat, phone_secret, digest(pat), digest(phone_secret)]
    contents = b"".join(archive.read(name) for name in names)
    for secret in secrets:
        assert secret and secret.encode() not in contents
    for word in (b"digest", b"password_hash", b"key_digest", b"bcp_", b"bcs_", b"bcw_"):
        assert word not in contents, word
    # The account's events say an export was made.
    kinds = [json.loads(line)["kind"] for line in archive.read("account_events.ndjson").decode().splitlines()]
    assert "export.made" in kinds


@pytest.mark.parametrize(
    ("scope", "status"),
    [("devices:read", 403), ("samples:read", 403), ("devices:read samples:read", 200)],
)
def test_the_export_needs_both_read_scopes(app, client, user, scope, status):
    response = client.get("/api/v1/account/export", headers=bearer(make_pat(user, scope)))
    if status == 403:
        body = assert_error(response, 403, "insufficient_scope")
        assert "devices:read and samples:read" in body["error_description"]
    else:
        assert response.status_code == 200 and zipfile.ZipFile(io.BytesIO(response.data)).testzip() is None
    assert_error(client.get("/api/v1/account/export"), 401, "invalid_token")


def test_a_device_token_cannot_export(app, client, user):
    device, secret = make_device(user)
    token = device_token(client, device, secret).get_json()["access_token"]
    assert_error(client.get("/api/v1/account/export", headers=bearer(token)), 403, "insufficient_scope")


def test_the_dashboard_downloads_the_same_zip(app, client, user, pat):
    device, _ = make_device(user)
    metric_id = fill(client, pat, device.id, count=3)
    log_in(client)
    assert 'action="/account/export"' in client.get("/account").text
    response = client.post("/account/export")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    rows = list(csv.reader(io.StringIO(archive.read(f"samples/{metric_id}.csv").decode())))
    assert rows[1:] == [as_cells(r) for r in api_samples(client, pat, metric_id)]


# --- deleting a device ------------------------------------------------------------------------------


def test_purging_a_device_deletes_it_with_its_data_and_ends_its_credentials(app, client, user, pat):
    device, secret = make_device(user)
    keep, _ = make_device(user, "Watch1,1")
    metric_id = fill(client, pat, device.id)
    kept_metric = fill(client, pat, keep.id, count=2)
    access = device_token(client, device, secret).get_json()["access_token"]
    client_id, device_id = device.client_id, device.id
    url = f"/api/v1/device/{device.id}"

    body = assert_error(client.delete(f"{url}?purge=true", headers=bearer(pat)), 409)
    assert "disable it first" in body["error_description"]
    for bad in ("maybe", "TRUE", "1", ""):
        assert_error(client.delete(f"{url}?purge={bad}", headers=bearer(pat)), 400)
    assert_error(client.delete(f"{url}?purge=true&purge=true", headers=bearer(pat)), 400)
    stranger = make_pat(make_user("bob@example.com"))
    assert_error(client.delete(f"{url}?purge=true", headers=bearer(stranger)), 404)
    assert client.get(url, headers=bearer(pat)).status_code == 200  # none of that changed anything

    assert client.delete(f"{url}?purge=false", headers=bearer(pat)).status_code == 204  # disable
    assert client.delete(f"{url}?purge=true", headers=bearer(pat)).status_code == 204
    assert_error(client.get(url, headers=bearer(pat)), 404)
    assert_error(client.delete(f"{url}?purge=true", headers=bearer(pat)), 404)
    assert_error(client.get(f"/api/v1/metric/{metric_id}", headers=bearer(pat)), 404)
    assert_error(client.get(f"/api/v1/device/{device_id}", headers=bearer(access)), 401)
    assert device_token(client, client_id, secret).status_code == 401
    listed = client.get("/api/v1/devices", headers=bearer(pat)).get_json()
    assert listed["count"] == 1 and [d["id"] for d in listed["results"]] == [keep.id]
    assert_nothing_left(user_ids=[], device_ids=[device_id], metric_ids=[metric_id])
    assert len(api_samples(client, pat, kept_metric)) == 2
    (record,) = db.session.scalars(sa.select(DeletionRecord)).all()
    assert (record.kind, record.devices, record.metrics, record.samples) == ("device", 1, 1, 12)
    assert record.finished_time is not None and record.other_rows > 0


def test_a_large_device_is_finished_by_maintenance(app, client, user, pat, runner, monkeypatch):
    device, _ = make_device(user)
    metric_id = fill(client, pat, device.id, count=12)
    device_id = device.id
    client.delete(f"/api/v1/device/{device.id}", headers=bearer(pat))
    monkeypatch.setattr(deletion, "DELETE_BUDGET_SECONDS", -1.0)
    response = client.delete(f"/api/v1/device/{device.id}?purge=true", headers=bearer(pat))
    assert response.status_code == 202 and response.get_json()["status"] == "deleting"
    # Gone for every reader at once, the dashboard's filtered list and its count included.
    assert_error(client.get(f"/api/v1/device/{device.id}", headers=bearer(pat)), 404)
    assert client.get("/api/v1/devices", headers=bearer(pat)).get_json()["count"] == 0
    log_in(client)
    page = client.get("/devices?state=disabled").text
    assert f"/devices/{device.id}" not in page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PendingDeletion)) == 1
    result = runner.invoke(args=["maintenance"])
    assert (
        result.exit_code == 0
        and "Deleted devices and accounts finished: 1; still pending: 0" in result.output
    )
    assert_nothing_left(user_ids=[], device_ids=[device_id], metric_ids=[metric_id])
    assert db.session.scalar(sa.select(DeletionRecord.finished_time)) is not None


def test_the_dashboard_deletes_a_disabled_device_once_its_name_is_typed(app, client, user, pat):
    device, _ = make_device(user)
    device_id = device.id
    log_in(client)
    page = client.get(f"/devices/{device.id}/delete").text
    assert "Disable it first" in page or "Disable it" in page
    assert client.post(f"/devices/{device.id}/delete", data={"confirm": "iPhone1,1"}).status_code == 409
    client.post(f"/devices/{device.id}/disable")
    assert f"/devices/{device.id}/delete" in client.get(f"/devices/{device.id}").text
    wrong = client.post(f"/devices/{device.id}/delete", data={"confirm": "iPhone"})
    assert wrong.status_code == 400 and "type it exactly" in wrong.text
    done = client.post(f"/devices/{device.id}/delete", data={"confirm": "iPhone1,1"})
    assert done.status_code == 303 and done.headers["Location"].endswith("/devices")
    assert client.get(f"/devices/{device_id}").status_code == 404
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(Device.id).where(Device.id == device_id)).first() is None


# --- deleting an account -----------------------------------------------------------------------------


def _apps_and_grants(ada: User, bob: User, ada_device: Device) -> int:
    """Ada registered an app that Bob authorized (a grant, a code, a refresh token of his);
    Ada authorized her own device. Returns the app's id."""
    now = utcnow()
    app_row = Application(
        user_id=ada.id, name="Ada's app", client_id="app_adas", client_type="confidential",
        client_secret_digest=digest("bcs_app"), redirect_uris="https://example.com/cb",
    )  # fmt: skip
    db.session.add(app_row)
    db.session.flush()
    bobs = GrantRow(user_id=bob.id, application_id=app_row.id, scope="samples:read")
    adas = GrantRow(user_id=ada.id, device_id=ada_device.id, scope="samples:read")
    db.session.add_all([bobs, adas])
    db.session.flush()
    db.session.add(
        AuthorizationCode(
            digest=digest("code"), grant_id=bobs.id, user_id=bob.id, scope="samples:read",
            redirect_uri="https://example.com/cb", expires_time=now + timedelta(minutes=5),
        )
    )  # fmt: skip
    db.session.add(
        Token(
            kind=TokenKind.REFRESH,
            digest=digest("bcr_bob"),
            scope="samples:read",
            user_id=bob.id,
            grant_id=bobs.id,
        )
    )
    db.session.add(
        SourcePriority(user_id=ada.id, sample_type="heartRate", device_id=ada_device.id, position=1)
    )
    db.session.commit()
    return app_row.id


def test_deleting_the_account_leaves_nothing_of_it(app, client, user, pat, runner, monkeypatch):
    bob = make_user("bob@example.com")
    bob_pat = make_pat(bob)
    bob_device, _ = make_device(bob)
    bob_metric = fill(client, bob_pat, bob_device.id, count=3)
    phone, phone_secret = make_device(user)
    watch, _ = make_device(user, "Watch1,1")
    metrics = [fill(client, pat, phone.id), fill(client, pat, watch.id, count=4)]
    access = device_token(client, phone, phone_secret).get_json()["access_token"]
    app_id = _apps_and_grants(user, bob, phone)
    user_id, device_ids, phone_client = user.id, [phone.id, watch.id], phone.client_id
    log_in(client)
    other = app.test_client()
    log_in(other)  # a second session of Ada's

    page = client.get("/account/delete")
    assert page.status_code == 200 and 'name="current_password"' in page.text
    wrong = client.post("/account/delete", data={"current_password": "not the password", "understood": "y"})
    assert wrong.status_code == 400 and "That is not your password." in wrong.text
    unticked = client.post("/account/delete", data={"current_password": PASSWORD})
    assert unticked.status_code == 400 and "Tick the box" in unticked.text
    assert client.get("/account").status_code == 200  # nothing happened

    monkeypatch.setattr(deletion, "DELETE_BUDGET_SECONDS", -1.0)  # leave the rows to maintenance
    done = client.post("/account/delete", data={"current_password": PASSWORD, "understood": "y"})
    assert done.status_code == 303 and done.headers["Location"] in ("/", "http://localhost/")
    # At once: every session, token and grant ends; the email is free; nothing is readable.
    assert client.get("/account").status_code == 302 and other.get("/account").status_code == 302
    assert_error(client.get("/api/v1/devices", headers=bearer(pat)), 401)
    assert_error(client.get(f"/api/v1/device/{phone.id}", headers=bearer(access)), 401)
    assert device_token(client, phone_client, phone_secret).status_code == 401
    assert client.post("/login", data={"email": "ada@example.com", "password": PASSWORD}).status_code != 303
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(GrantRow)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(AuthorizationCode)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(Application)).scalar() == 0
        assert (
            conn.execute(
                sa.select(sa.func.count()).select_from(UserSession).where(UserSession.user_id == user_id)
            ).scalar()
            == 0
        )
    again = accounts.create_user("Ada@Example.com", PASSWORD)
    assert again.email == "ada@example.com"

    result = runner.invoke(args=["maintenance"])
    assert (
        result.exit_code == 0
        and "Deleted devices and accounts finished: 1; still pending: 0" in result.output
    ), result.output
    assert_nothing_left([user_id], device_ids, metrics, [app_id])
    # Bob's own data is untouched.
    assert client.get(f"/api/v1/device/{bob_device.id}", headers=bearer(bob_pat)).status_code == 200
    assert len(api_samples(client, bob_pat, bob_metric)) == 3
    # The anonymous record: counts and times, nothing that says whose.
    (record,) = db.session.scalars(sa.select(DeletionRecord)).all()
    assert (record.kind, record.devices, record.metrics, record.samples) == ("account", 2, 2, 16)
    assert record.finished_time is not None and record.other_rows > 0
    assert set(DeletionRecord.__table__.c.keys()) == {
        "id",
        "kind",
        "requested_time",
        "finished_time",
        "devices",
        "metrics",
        "samples",
        "other_rows",
    }
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PendingDeletion)) == 0


def test_a_small_account_is_deleted_within_the_request(app, client, user, pat):
    device, _ = make_device(user)
    metric_id = fill(client, pat, device.id, count=2)
    user_id, device_id = user.id, device.id
    log_in(client)
    assert (
        client.post("/account/delete", data={"current_password": PASSWORD, "understood": "y"}).status_code
        == 303
    )
    assert_nothing_left([user_id], [device_id], [metric_id])
    assert db.session.scalar(sa.select(DeletionRecord.finished_time)) is not None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Metric)) == 0


def test_a_device_registered_after_a_deletion_refuses_the_old_devices_tokens(app, client, user, pat):
    """SQLite gives the highest id again once its row is gone: the new device may carry the deleted
    one's id, user and generation, but not its client id, which the token names."""
    device, secret = make_device(user)
    old_token = device_token(client, device, secret).get_json()["access_token"]
    device_id = device.id
    client.delete(f"/api/v1/device/{device_id}", headers=bearer(pat))
    assert client.delete(f"/api/v1/device/{device_id}?purge=true", headers=bearer(pat)).status_code == 204
    db.session.expire_all()
    new, _ = make_device(user)
    if new.id == device_id:
        with db.engine.begin() as conn:  # as the old token was minted: generation 1, slot 1
            conn.execute(sa.update(Device).where(Device.id == device_id).values(credential_generation=1))
    assert_error(client.get(f"/api/v1/device/{new.id}", headers=bearer(old_token)), 401)
