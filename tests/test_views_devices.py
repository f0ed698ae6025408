"""Device pages: list (keyset paging), register with the one-time credentials page, detail,
disable and re-authorize; ownership and CSRF."""

from __future__ import annotations

import logging
import re

import pytest
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import Device, DeviceState
from bioweb.security import digest
from bioweb.services import devices, tokens
from tests.helpers import (
    bearer,
    input_value,
    log_in_with_csrf,
    make_device,
    make_user,
)


def all_devices() -> list[Device]:
    db.session.expire_all()  # see what the requests committed
    return list(db.session.scalars(sa.select(Device).order_by(Device.id)))


def register(web, code: str = "Watch6,1", **extra: str):
    nonce = input_value(web.get("/devices/new").text, "nonce")
    data = {"manufacturer": "Apple", "device_code": code, "nonce": nonce, **extra}
    return web.post("/devices/new", data=data), data


def secret_in(html: str) -> str:
    match = re.search(r'id="client-secret"[^>]*>([^<]+)<', html)
    assert match, "no client secret on the page"
    return match.group(1).strip()


# --- List ----------------------------------------------------------------------------------------


def test_list_needs_a_login(client):
    response = client.get("/devices")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=%2Fdevices"


def test_empty_list_says_what_to_do_first(web):
    page = web.get("/devices")
    assert page.status_code == 200
    assert "No devices yet" in page.text and 'href="/devices/new"' in page.text


def test_list_shows_each_devices_facts(web, user):
    watch, _ = make_device(user, "Watch6,1", is_test_mode=True)
    phone, _ = make_device(user, "iPhone14,2")
    tokens.revoke_all_device_tokens(phone.id, phone.created_time)
    page = web.get("/devices").text
    assert "Apple Watch Series 6 40mm case (GPS)" in page and "Watch6,1" in page
    assert "iPhone 13 Pro" in page and "iPhone14,2" in page
    assert page.index("iPhone 13 Pro") < page.index("Apple Watch Series 6")  # newest first
    assert page.count(">Active<") == 2 and ">Yes<" in page and ">No<" in page
    assert watch.created_time.strftime("%Y-%m-%d %H:%M UTC") in page
    assert f'datetime="{watch.last_active_time.isoformat()}"' in page
    assert "2 devices" in page


def test_list_pages_with_an_id_cursor_never_offset(app, web, user):
    made = [make_device(user)[0].id for _ in range(30)]
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, *args):
        statements.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        first = web.get("/devices").text
        first_ids = [int(i) for i in re.findall(r'href="/devices/(\d+)"', first)]
        assert first_ids == made[::-1][:25]
        older = re.search(r'href="(/devices\?after=\d+)" rel="next"', first).group(1)
        assert older == f"/devices?after={made[5]}"
        second = web.get(older).text
        assert [int(i) for i in re.findall(r'href="/devices/(\d+)"', second)] == made[4::-1]
        assert 'rel="next"' not in second
        newer = re.search(r'href="(/devices\?before=\d+)" rel="prev"', second).group(1)
        back = web.get(newer).text
        assert [int(i) for i in re.findall(r'href="/devices/(\d+)"', back)] == first_ids
        assert 'rel="prev"' not in back
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    # SQLite's dialect spells LIMIT as "LIMIT ? OFFSET ?" with an offset of 0; nothing skips rows.
    offsets = [params[-1] for sql, params in statements if "OFFSET" in sql.upper()]
    assert statements and all(offset == 0 for offset in offsets)


def test_list_refuses_a_nonsense_cursor_with_a_page_naming_it(web, user):
    make_device(user)
    page = web.get("/devices?after=banana")
    assert page.status_code == 400 and "Invalid query parameter after" in page.text


# --- Register ------------------------------------------------------------------------------------


def test_register_shows_the_credentials_once(app, web, user, caplog):
    caplog.set_level(logging.DEBUG)
    response, _ = register(web, is_test_mode="y")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "will not be shown again" in response.text and "Re-authorize" in response.text
    (device,) = all_devices()
    secret = secret_in(response.text)
    assert secret.startswith("bcs_")
    assert (device.code, device.product_name, device.is_test_mode) == (
        "Watch6,1",
        "Apple Watch Series 6 40mm case (GPS)",
        True,
    )
    assert 'id="client-id"' in response.text and device.client_id in response.text
    assert app.config["BIOWEB_BASE_URL"] + "/appauth/code" in response.text
    # Only a digest rests; the secret is in neither the cookie nor a log line.
    assert device.client_secret_digest == digest(secret) and secret not in device.client_secret_digest
    assert all(secret not in value for value in response.headers.getlist("Set-Cookie"))
    assert secret not in caplog.text


def test_resubmitting_the_form_never_shows_the_secret_or_creates_a_second_device(web):
    response, data = register(web)
    secret = secret_in(response.text)
    (device,) = all_devices()
    again = web.post("/devices/new", data=data)
    assert again.status_code == 303 and again.headers["Location"] == f"/devices/{device.id}"
    page = web.get(again.headers["Location"])
    assert "already sent" in page.text and secret not in page.text
    assert len(all_devices()) == 1
    assert all_devices()[0].client_secret_digest == digest(secret)


def test_a_form_that_was_never_issued_registers_nothing(web):
    response = web.post(
        "/devices/new", data={"manufacturer": "Apple", "device_code": "Watch6,1", "nonce": "made-up"}
    )
    assert response.status_code == 400
    assert "This form had expired, so nothing was registered." in response.text
    assert input_value(response.text, "nonce") != "made-up"
    assert input_value(response.text, "device_code") == "Watch6,1"
    assert all_devices() == []


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "This field is required."),
        ("Watch", "is not a known Apple model identifier"),
        ("Wacth6,1", "Did you mean Watch6,1"),
        ("x" * 41, "at most 40 characters"),
    ],
)
def test_register_explains_a_bad_device_code_and_keeps_the_form_usable(web, code, message):
    response, data = register(web, code)
    assert response.status_code == 400
    assert message in response.text and 'id="device_code-error"' in response.text
    assert all_devices() == []
    # The same form (same nonce), corrected, still goes through.
    fixed = web.post("/devices/new", data={**data, "device_code": "Watch6,1"})
    assert fixed.status_code == 200 and len(all_devices()) == 1


def test_register_refuses_another_manufacturer(web):
    response, _ = register(web, manufacturer="Samsung")
    assert response.status_code == 400 and "available options: Apple" in response.text
    assert all_devices() == []


def test_code_suggestions_come_from_the_identifier_table(web):
    watches = web.get("/devices/codes?q=Watch").get_json()
    assert watches and all(w["code"].startswith("Watch") for w in watches)
    assert {"code": "Watch6,1", "product_name": "Apple Watch Series 6 40mm case (GPS)"} in watches
    by_name = web.get("/devices/codes?q=iphone 13 pro").get_json()
    assert {"code": "iPhone14,2", "product_name": "iPhone 13 Pro"} in by_name
    assert web.get("/devices/codes?q=").get_json() == []


# --- Detail, ownership ---------------------------------------------------------------------------


def test_register_takes_an_optional_name_shown_in_the_list_and_on_the_page(web):
    form = web.get("/devices/new").text
    assert 'name="name"' in form and "Name (optional)" in form and "Anna’s watch" in form
    response, _ = register(web, "Watch6,1", name="  Anna's watch ")
    assert response.status_code == 200
    register(web, "iPhone14,2")
    named, unnamed = all_devices()
    assert (named.name, unnamed.name) == ("Anna's watch", None)
    listing = web.get("/devices").text
    assert "Anna&#39;s watch" in listing and "iPhone 13 Pro" in listing
    page = web.get(f"/devices/{named.id}").text
    assert re.search(r"<h1>Anna&#39;s watch <span[^>]*>Apple Watch Series 6 40mm case \(GPS\)</span>", page)
    assert "Anna&#39;s watch" not in web.get(f"/devices/{unnamed.id}").text


def test_register_refuses_a_name_over_100_characters(web):
    response, _ = register(web, "Watch6,1", name="x" * 101)
    assert response.status_code == 400 and "Must be at most 100 characters." in response.text
    assert all_devices() == []


def test_device_page_shows_the_retrieve_fields_in_words(web, user):
    device, secret = make_device(user, "Watch6,1")
    page = web.get(f"/devices/{device.id}").text
    for value in [
        device.uuid,
        device.client_id,
        "Watch6,1",
        "Apple Watch Series 6 40mm case (GPS)",
        "Apple",
        "Active (1)",
        "No, a live device",
        f"tenant {device.tenant_id}",
        f"user {device.user_id}",
    ]:
        assert value in page, value
    assert secret not in page
    assert f'href="/devices/{device.id}/disable"' in page and f'href="/devices/{device.id}/authorize"' in page


def test_another_users_device_is_not_found_everywhere(app, web):
    other = make_user(email="eve@example.com")
    theirs, _ = make_device(other)
    old_digest = theirs.client_secret_digest
    for path in [f"/devices/{theirs.id}", f"/devices/{theirs.id}/disable", f"/devices/{theirs.id}/authorize"]:
        response = web.get(path)
        assert response.status_code == 404 and "Page not found" in response.text, path
    assert web.post(f"/devices/{theirs.id}/disable").status_code == 404
    assert web.post(f"/devices/{theirs.id}/authorize", data={"nonce": "x"}).status_code == 404
    (device,) = all_devices()
    assert device.state == DeviceState.ACTIVE and device.client_secret_digest == old_digest
    assert web.get("/devices/999999").status_code == 404


# --- Disable -------------------------------------------------------------------------------------


def test_disable_asks_first_then_cuts_the_device_off(web, user):
    device, _ = make_device(user)
    issued = tokens.issue_device_token(devices.find_client(device.client_id))
    assert web.get(f"/api/v1/device/{device.id}", headers=bearer(issued.access_token)).status_code == 200
    confirm = web.get(f"/devices/{device.id}/disable")
    assert confirm.status_code == 200 and "Yes, disable it" in confirm.text
    assert all_devices()[0].state == DeviceState.ACTIVE
    response = web.post(f"/devices/{device.id}/disable")
    assert response.status_code == 303 and response.headers["Location"] == f"/devices/{device.id}"
    page = web.get(response.headers["Location"]).text
    assert "is disabled" in page and "Disabled (2)" in page
    assert all_devices()[0].state == DeviceState.DISABLED
    assert web.get(f"/api/v1/device/{device.id}", headers=bearer(issued.access_token)).status_code == 401
    # Idempotent.
    assert web.post(f"/devices/{device.id}/disable").status_code == 303


# --- Re-authorize --------------------------------------------------------------------------------


def test_reauthorize_shows_a_new_secret_once(web, user):
    device, old_secret = make_device(user)
    web.post(f"/devices/{device.id}/disable")
    nonce = input_value(web.get(f"/devices/{device.id}/authorize").text, "nonce")
    response = web.post(f"/devices/{device.id}/authorize", data={"nonce": nonce})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    new_secret = secret_in(response.text)
    (stored,) = all_devices()
    assert new_secret != old_secret and stored.client_secret_digest == digest(new_secret)
    assert stored.client_id == device.client_id and stored.state == DeviceState.ACTIVE
    # A resubmission changes nothing and shows nothing.
    again = web.post(f"/devices/{device.id}/authorize", data={"nonce": nonce})
    assert again.status_code == 303 and again.headers["Location"] == f"/devices/{device.id}"
    assert all_devices()[0].client_secret_digest == digest(new_secret)
    assert new_secret not in web.get(f"/devices/{device.id}").text


def test_reauthorize_without_a_fresh_form_changes_nothing(web, user):
    device, secret = make_device(user)
    response = web.post(f"/devices/{device.id}/authorize", data={"nonce": "never-issued"})
    assert response.status_code == 303 and response.headers["Location"] == f"/devices/{device.id}/authorize"
    assert all_devices()[0].client_secret_digest == digest(secret)


def test_a_nonce_is_good_for_its_own_purpose_only(web, user):
    device, secret = make_device(user)
    register_nonce = input_value(web.get("/devices/new").text, "nonce")
    response = web.post(f"/devices/{device.id}/authorize", data={"nonce": register_nonce})
    assert response.status_code == 303
    assert all_devices()[0].client_secret_digest == digest(secret)


# --- CSRF ----------------------------------------------------------------------------------------


def test_device_forms_need_the_csrf_token(csrf_client):
    user = make_user(email="csrf@example.com")
    device, secret = make_device(user)
    log_in_with_csrf(csrf_client, "csrf@example.com")
    form = csrf_client.get("/devices/new").text
    data = {"manufacturer": "Apple", "device_code": "Watch6,1", "nonce": input_value(form, "nonce")}
    assert csrf_client.post("/devices/new", data=data).status_code == 400
    assert csrf_client.post(f"/devices/{device.id}/disable").status_code == 400
    nonce = input_value(csrf_client.get(f"/devices/{device.id}/authorize").text, "nonce")
    assert csrf_client.post(f"/devices/{device.id}/authorize", data={"nonce": nonce}).status_code == 400
    (stored,) = all_devices()
    assert stored.state == DeviceState.ACTIVE and stored.client_secret_digest == digest(secret)
    created = csrf_client.post("/devices/new", data={**data, "csrf_token": input_value(form, "csrf_token")})
    assert created.status_code == 200 and len(all_devices()) == 2


# --- History (audit trail) -----------------------------------------------------------------------


def test_device_page_shows_the_history_with_who_and_from_where(web, user):
    response, _ = register(web, "Watch6,1")
    device = all_devices()[0]
    web.post(f"/devices/{device.id}/disable")
    page = web.get(f"/devices/{device.id}").text
    history = page[page.index('id="history-title"') :]
    assert "3 events in all" in history
    # Newest first: disabled, then the secret shown, then registered; all by "you" from the test client.
    assert (
        history.index(">Disabled<")
        < history.index(">Client secret shown (once)<")
        < history.index(">Registered<")
    )
    assert history.count(">you<") == 3 and history.count(">127.0.0.1<") == 3
    assert response.headers["X-Request-ID"] in history


def test_device_history_pages_back_in_time(web, user):
    device, secret = make_device(user)
    for _ in range(12):  # 24 events: disabled + reauthorized + shown, roughly
        web.post(f"/devices/{device.id}/disable")
        nonce = input_value(web.get(f"/devices/{device.id}/authorize").text, "nonce")
        web.post(f"/devices/{device.id}/authorize", data={"nonce": nonce})
    first = web.get(f"/devices/{device.id}").text
    older = re.search(r'href="([^"]*events_before=\d+)"', first)
    assert older, "no link to older events"
    second = web.get(older.group(1).replace("&amp;", "&")).text
    registered = '<td data-label="What">Registered</td>'
    assert registered in second and registered not in first
