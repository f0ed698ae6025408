"""Device pages: list (keyset paging), register with the one-time credentials page, detail,
disable and re-authorize; ownership and CSRF."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import Device, DeviceState
from bioweb.security import digest
from bioweb.services import devices, tokens
from bioweb.views.helpers import relative_time
from tests.helpers import (
    basic,
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


def test_list_shows_each_devices_name_product_id_state_and_last_activity(client, web, user):
    watch, secret = make_device(user, "Watch6,1", is_test_mode=True)
    phone, _ = make_device(user, "iPhone14,2")
    devices.rename_device(user, phone.id, "Grace's phone")
    page = web.get("/devices").text
    rows = re.findall(r"<tr>.*?</tr>", page, re.S)[1:]
    assert len(rows) == 2
    newest, oldest = rows  # newest first
    assert f'href="/devices/{phone.id}">Grace&#39;s phone</a>' in newest
    assert "iPhone 13 Pro" in newest and "iPhone14,2" in newest and f">{phone.id}</td>" in newest
    assert ">Active<" in newest and ">Test<" not in newest
    assert 'class="unnamed">Unnamed<' in oldest and "Apple Watch Series 6 40mm case (GPS)" in oldest
    assert ">Test<" in oldest and f">{watch.id}</td>" in oldest
    # Neither ever got a token: "never connected", not its registration time.
    assert page.count("never connected") == 2
    assert count_line(page) == "1–2 of 2 devices"
    # The watch connects: its last activity shows as a relative time, exact in the <time>.
    assert (
        client.post(
            "/token", data={"grant_type": "client_credentials"}, headers=basic(watch.client_id, secret)
        ).status_code
        == 200
    )
    page = web.get("/devices").text
    assert page.count("never connected") == 1
    stored = all_devices()[0]
    assert f'<time datetime="{stored.last_active_time.isoformat()}"' in page and ">just now</time>" in page


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "just now"),
        (-5, "just now"),
        (59, "just now"),
        (60, "1 minute ago"),
        (180, "3 minutes ago"),
        (3600, "1 hour ago"),
        (5 * 3600 + 59, "5 hours ago"),
        (86400, "1 day ago"),
        (40 * 86400, "1 month ago"),
        (800 * 86400, "2 years ago"),
    ],
)
def test_relative_times(seconds, text):
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert relative_time(now - timedelta(seconds=seconds), now) == text
    assert relative_time(None) == "never"


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
        assert count_line(first) == "1–25 of 30 devices"
        older = re.search(r'href="(/devices\?[^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
        assert older == f"/devices?after={made[5]}&at=26"
        second = web.get(older).text
        assert [int(i) for i in re.findall(r'href="/devices/(\d+)"', second)] == made[4::-1]
        assert count_line(second) == "26–30 of 30 devices"
        assert 'rel="next"' not in second
        newer = re.search(r'href="(/devices\?[^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")
        assert newer == f"/devices?before={made[4]}&at=1"
        back = web.get(newer).text
        assert [int(i) for i in re.findall(r'href="/devices/(\d+)"', back)] == first_ids
        assert 'rel="prev"' not in back and count_line(back) == "1–25 of 30 devices"
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    # SQLite's dialect spells LIMIT as "LIMIT ? OFFSET ?" with an offset of 0; nothing skips rows.
    offsets = [params[-1] for sql, params in statements if "OFFSET" in sql.upper()]
    assert statements and all(offset == 0 for offset in offsets)


def count_line(html: str) -> str:
    """The list's "1–25 of 80 devices" line, as text."""
    match = re.search(r'<p class="muted list-count"[^>]*>(.*?)</p>', html, re.S)
    assert match, "no count line"
    return re.sub(r"<[^>]+>", "", match.group(1))


def listed(web, query: str = "") -> list[int]:
    """The ids of the devices the list shows for `query`, in order."""
    response = web.get(f"/devices?{query}")
    assert response.status_code == 200, response.text
    return [
        int(i)
        for i in re.findall(r'<th scope="row" data-label="Name"><a href="/devices/(\d+)"', response.text)
    ]


@pytest.fixture
def fleet(user):
    """Seven devices: names in every case (one beyond ASCII, two without), test and live,
    active and disabled. Returns their ids by a short label."""
    made = {}
    for label, code, name, test_mode in [
        ("anna", "Watch6,1", "Anna's watch", False),
        ("annex", "iPhone14,2", "ANNEX phone", True),
        ("angla", "Watch6,1", "Ängla", False),
        ("bob", "iPad13,1", "bob", False),
        ("plain_phone", "iPhone14,5", None, False),
        ("plain_tv", "AppleTV5,3", None, True),
        ("zed", "iPhone14,2", "Zed", False),
    ]:
        device, _ = make_device(user, code, is_test_mode=test_mode)
        if name:
            devices.rename_device(user, device.id, name)
        made[label] = device.id
    devices.disable_device(user, made["bob"])
    devices.disable_device(user, made["plain_tv"])
    return made


def test_search_is_a_prefix_of_name_code_or_product_in_any_case(web, fleet):
    f = fleet
    assert listed(web, "q=ann") == [f["annex"], f["anna"]]
    assert listed(web, "q=ANN") == listed(web, "q=ann") == listed(web, "q=%20Ann%20")
    assert listed(web, "q=%C3%A4ng") == [f["angla"]]  # "äng" finds "Ängla"
    assert listed(web, "q=%C3%84NG") == [f["angla"]]
    assert listed(web, "q=watch6") == [f["angla"], f["anna"]]  # the model identifier
    assert listed(web, "q=iphone%2013") == [f["zed"], f["plain_phone"], f["annex"]]  # the product
    assert listed(web, "q=apple") == [f["plain_tv"], f["angla"], f["anna"]]  # "Apple TV", "Apple Watch"
    assert listed(web, "q=watch%206") == []  # a prefix, not a substring: no product starts "watch 6"
    page = web.get("/devices?q=ann").text
    assert count_line(page) == "1–2 of 2 devices matching (7 in all)"
    assert 'value="ann"' in page  # the search field keeps what was typed
    none = web.get("/devices?q=nothing-like-it").text
    assert "No devices match." in none and count_line(none) == "0 of 0 devices matching (7 in all)"
    assert 'href="/devices">Show all your devices</a>' in none


def test_filters_by_state_and_test_mode_and_with_a_search(web, fleet):
    f = fleet
    assert listed(web, "state=disabled") == [f["plain_tv"], f["bob"]]
    assert len(listed(web, "state=active")) == 5
    assert listed(web, "mode=test") == [f["plain_tv"], f["annex"]]
    assert f["annex"] not in listed(web, "mode=live") and len(listed(web, "mode=live")) == 5
    assert listed(web, "mode=test&state=disabled") == [f["plain_tv"]]
    assert listed(web, "q=a&mode=live&state=active") == [f["angla"], f["anna"]]
    page = web.get("/devices?state=disabled").text
    assert count_line(page) == "1–2 of 2 devices matching (7 in all)"
    assert '<option selected value="disabled">Disabled</option>' in page


def test_sorts_by_name_product_and_activity(web, fleet):
    f = fleet
    # By name without regard to case; devices without one first (A-Z), last (Z-A).
    by_name = [f["plain_phone"], f["plain_tv"], f["anna"], f["annex"], f["bob"], f["zed"], f["angla"]]
    assert listed(web, "sort=name") == by_name
    assert listed(web, "sort=name_desc") == by_name[::-1]
    assert listed(web, "sort=oldest") == sorted(f.values())
    products = listed(web, "sort=product")
    assert products[0] == f["plain_tv"] and products[-1] == f["zed"]  # "Apple TV ..." to "iPhone 13 Pro"
    assert listed(web, "sort=name&q=an") == [f["anna"], f["annex"]]


def test_filtered_pages_keep_the_filter_and_sort(web, user):
    made = []
    for _ in range(28):
        device, _ = make_device(user, "Watch6,1")
        made.append(device.id)
    make_device(user, "iPhone14,2")
    first = web.get("/devices?q=watch&sort=oldest")
    assert count_line(first.text) == "1–25 of 28 devices matching (29 in all)"
    link = re.search(r'href="(/devices\?[^"]+)" rel="next"', first.text).group(1).replace("&amp;", "&")
    assert "q=watch" in link and "sort=oldest" in link and f"after={made[24]}" in link and "at=26" in link
    second = web.get(link).text
    assert listed(web, link.split("?", 1)[1]) == made[25:]
    assert count_line(second) == "26–28 of 28 devices matching (29 in all)"


def test_counts_stop_at_the_limit(web, user, monkeypatch):
    """Filtered counts are exact up to COUNT_LIMIT, then "N+"; pages still come, by both paths
    (cut from a few matches, or walked along the sort's index for many)."""
    monkeypatch.setattr(devices, "COUNT_LIMIT", 4)
    monkeypatch.setattr(devices, "FEW_MATCHES", 2)
    devices._ids_statement.cache_clear()
    devices._count_statement.cache_clear()
    try:
        ids = [make_device(user, "Watch6,1")[0].id for _ in range(6)]
        make_device(user, "iPhone14,2")
        page = web.get("/devices?q=watch").text
        assert count_line(page) == "1–6 of 4+ devices matching (7 in all)"
        assert listed(web, "q=watch") == ids[::-1]
        assert listed(web, "q=watch&sort=oldest") == ids
        devices.disable_device(user, ids[0])
        devices.disable_device(user, ids[1])
        devices.disable_device(user, ids[2])
        assert listed(web, "q=watch&state=disabled") == ids[2::-1]  # 3 matches: exact, walked
        assert (
            count_line(web.get("/devices?q=watch&state=disabled").text)
            == "1–3 of 3 devices matching (7 in all)"
        )
        assert listed(web, "q=watch&state=active") == ids[:2:-1]
    finally:
        devices._ids_statement.cache_clear()
        devices._count_statement.cache_clear()


@pytest.mark.parametrize(
    "query",
    ["state=gone", "mode=maybe", "sort=colour", "q=" + "x" * 101, "at=0", "at=%D9%A1", "after=99999999999"],
)
def test_list_refuses_values_it_does_not_know_with_a_400_page(web, user, query):
    make_device(user)
    response = web.get(f"/devices?{query}")
    assert response.status_code == 400 and "<html" in response.text


def test_list_cursor_of_another_users_device_under_a_sort_is_400(web, user):
    other = make_user(email="eve@example.com")
    theirs, _ = make_device(other)
    make_device(user)
    assert web.get(f"/devices?sort=name&after={theirs.id}").status_code == 400
    assert web.get(f"/devices?sort=name&after={theirs.id}&q=iphone").status_code == 400


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


# --- Name ----------------------------------------------------------------------------------------


def test_the_device_page_names_renames_and_unnames_the_device(web, user):
    device, _ = make_device(user, "Watch6,1")
    page = web.get(f"/devices/{device.id}").text
    assert f'action="/devices/{device.id}/name"' in page and 'name="name" value=""' in page
    response = web.post(f"/devices/{device.id}/name", data={"name": "  Anna's watch "})
    assert response.status_code == 303 and response.headers["Location"] == f"/devices/{device.id}"
    page = web.get(response.headers["Location"]).text
    assert "Named it “Anna&#39;s watch”." in page and 'value="Anna&#39;s watch"' in page
    assert re.search(r"<h1>Anna&#39;s watch <span", page)
    (stored,) = all_devices()
    assert (stored.name, stored.name_key) == ("Anna's watch", "anna's watch")
    assert ">Renamed<" in page  # in the history
    assert count_line(web.get("/devices?q=ANNA").text) == "1–1 of 1 device matching (1 in all)"
    web.post(f"/devices/{device.id}/name", data={"name": "   "})
    assert (all_devices()[0].name, all_devices()[0].name_key) == (None, "")
    assert "The device has no name now." in web.get(f"/devices/{device.id}").text


def test_a_name_over_100_characters_is_refused_and_changes_nothing(web, user):
    device, _ = make_device(user)
    devices.rename_device(user, device.id, "Kept")
    response = web.post(f"/devices/{device.id}/name", data={"name": "x" * 101})
    assert response.status_code == 303
    assert (
        "The name was not changed: Must be at most 100 characters." in web.get(f"/devices/{device.id}").text
    )
    assert all_devices()[0].name == "Kept"


def test_device_page_says_never_connected_until_a_token(client, web, user):
    device, secret = make_device(user)
    assert "never connected" in web.get(f"/devices/{device.id}").text
    client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(device.client_id, secret))
    page = web.get(f"/devices/{device.id}").text
    assert "never connected" not in page and "(just now)" in page


# --- Two client secrets --------------------------------------------------------------------------------


def get_token(client, device, secret: str):
    return client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(device.client_id, secret)
    )


def add_secret(web, device_id: int, old_expires_in: str = ""):
    nonce = input_value(web.get(f"/devices/{device_id}/secrets/new").text, "nonce")
    data = {"nonce": nonce, "old_expires_in": old_expires_in}
    return web.post(f"/devices/{device_id}/secrets/new", data=data), data


def test_rotation_in_the_dashboard_keeps_the_device_connected(client, web, user):
    device, old = make_device(user, "Watch6,1")
    old_token = get_token(client, device, old).get_json()["access_token"]
    page = web.get(f"/devices/{device.id}").text
    assert 'id="secret-1"' in page and 'id="secret-2"' not in page
    assert f'href="/devices/{device.id}/secrets/new">Add a new secret</a>' in page
    assert "/secrets/1/remove" not in page  # the only secret cannot be removed
    confirm = web.get(f"/devices/{device.id}/secrets/new").text
    assert "keeps working" in confirm and '<option selected value="">Until I remove it</option>' in confirm

    response, data = add_secret(web, device.id)
    assert response.status_code == 200
    assert (
        response.headers["Cache-Control"] == "no-store"
        and response.headers["Referrer-Policy"] == "no-referrer"
    )
    new = secret_in(response.text)
    assert new.startswith("bcs_") and new != old
    assert "New secret 2" in response.text and "keeps working until you remove it" in response.text
    (stored,) = all_devices()
    assert stored.client_secret2_digest == digest(new) and stored.client_secret_digest == digest(old)
    # Both secrets get tokens; the old secret's token still works.
    new_token = get_token(client, device, new).get_json()["access_token"]
    for token in (old_token, new_token):
        assert web.get(f"/api/v1/device/{device.id}", headers=bearer(token)).status_code == 200
    # A resubmission shows nothing and adds nothing.
    again = web.post(f"/devices/{device.id}/secrets/new", data=data)
    assert again.status_code == 303 and new not in web.get(again.headers["Location"]).text
    page = web.get(f"/devices/{device.id}").text
    assert new not in page and 'id="secret-2"' in page
    assert "Add a new secret</a>" not in page and "Two is the most a device holds" in page
    assert page.count("Token requests, last 24 hours") == 2 and "(secret 2)" in page

    # Remove the old secret, after a confirmation naming what it does.
    confirm = web.get(f"/devices/{device.id}/secrets/1/remove").text
    assert "Yes, remove secret 1" in confirm and "1 token request" in confirm
    response = web.post(f"/devices/{device.id}/secrets/1/remove")
    assert response.status_code == 303
    assert "Secret 1 is removed" in web.get(response.headers["Location"]).text
    assert get_token(client, device, old).status_code == 401
    assert web.get(f"/api/v1/device/{device.id}", headers=bearer(old_token)).status_code == 401
    assert web.get(f"/api/v1/device/{device.id}", headers=bearer(new_token)).status_code == 200
    assert get_token(client, device, new).status_code == 200
    # The remaining one is the only one now: no remove button, and the POST is refused.
    page = web.get(f"/devices/{device.id}").text
    assert 'id="secret-1"' not in page and "/secrets/2/remove" not in page
    refused = web.post(f"/devices/{device.id}/secrets/2/remove")
    assert "a device keeps one" in web.get(refused.headers["Location"]).text
    assert all_devices()[0].client_secret2_digest == digest(new)


def test_the_old_secret_may_expire_by_itself(client, web, user):
    device, old = make_device(user)
    response, _ = add_secret(web, device.id, "86400")
    assert "stops working at" in response.text
    (stored,) = all_devices()
    assert stored.client_secret_expires_time is not None and stored.client_secret2_expires_time is None
    assert 'class="badge badge-test">expiring<' in web.get(f"/devices/{device.id}").text
    assert get_token(client, device, old).status_code == 200


def test_a_third_secret_is_refused_with_the_reason(web, user):
    device, _ = make_device(user)
    add_secret(web, device.id)
    response, _ = add_secret(web, device.id)
    assert response.status_code == 303
    assert "already holds two client secrets" in web.get(response.headers["Location"]).text
    assert all_devices()[0].client_secret2_serial == 2  # nothing changed


def test_secret_pages_of_another_users_device_are_not_found(web, user):
    other = make_user(email="eve@example.com")
    theirs, _ = make_device(other)
    for path in [f"/devices/{theirs.id}/secrets/new", f"/devices/{theirs.id}/secrets/1/remove"]:
        assert web.get(path).status_code == 404, path
    assert web.post(f"/devices/{theirs.id}/secrets/1/remove").status_code == 404
    assert web.post(f"/devices/{theirs.id}/name", data={"name": "mine"}).status_code == 404
    mine, _ = make_device(user)
    assert web.get(f"/devices/{mine.id}/secrets/2/remove").status_code == 404  # an empty slot
    assert web.get(f"/devices/{mine.id}/secrets/3/remove").status_code == 404


def test_name_and_secret_forms_need_the_csrf_token(csrf_client):
    user = make_user(email="csrf@example.com")
    device, secret = make_device(user)
    log_in_with_csrf(csrf_client, "csrf@example.com")
    page = csrf_client.get(f"/devices/{device.id}").text
    token = input_value(page, "csrf_token")
    assert csrf_client.post(f"/devices/{device.id}/name", data={"name": "x"}).status_code == 400
    nonce = input_value(csrf_client.get(f"/devices/{device.id}/secrets/new").text, "nonce")
    assert csrf_client.post(f"/devices/{device.id}/secrets/new", data={"nonce": nonce}).status_code == 400
    (stored,) = all_devices()
    assert stored.name is None and stored.client_secret2_digest == ""
    ok = csrf_client.post(f"/devices/{device.id}/name", data={"name": "x", "csrf_token": token})
    assert ok.status_code == 303 and all_devices()[0].name == "x"
    added = csrf_client.post(f"/devices/{device.id}/secrets/new", data={"nonce": nonce, "csrf_token": token})
    assert added.status_code == 200 and all_devices()[0].client_secret2_digest != ""
    assert csrf_client.post(f"/devices/{device.id}/secrets/1/remove").status_code == 400
    assert all_devices()[0].client_secret_digest == digest(secret)


def test_the_filtered_lists_queries_read_through_indexes_without_statistics(tmp_path):
    """SQLite has no planner statistics unless someone runs ANALYZE: the statements of a filtered
    list are spelt so that the fast plan is the only sensible one (each condition from its own
    index, given ids by primary key), not a walk over every device of the user."""
    from tests.helpers import app_with_database

    with app_with_database(f"sqlite:///{tmp_path / 'plans.db'}"):
        user = make_user()
        make_device(user)

        def plan(statement, params) -> str:
            with db.engine.connect() as conn:
                compiled = statement.compile(dialect=conn.dialect)
                expanded = compiled.construct_expanded_state(params)
                args = [expanded.parameters[name] for name in expanded.positiontup]
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + expanded.statement, tuple(args)).all()
            return "\n".join(row[-1] for row in rows)

        search = devices.DeviceFilter("ann")
        params = {"user_id": user.id, **devices._filter_params(search)}
        searched = plan(devices._ids_statement((True, False, False)), params)
        for index in ("ix_devices_user_name_key", "ix_devices_user_code_key", "ix_devices_user_product_key"):
            assert f"COVERING INDEX {index} (user_id=? AND" in searched, searched
        state = plan(devices._ids_statement((False, True, False)), {"user_id": user.id, "state": 2})
        assert "COVERING INDEX ix_devices_user_state (user_id=? AND state=?)" in state, state
        test_mode = plan(
            devices._ids_statement((False, False, True)), {"user_id": user.id, "test_mode": True}
        )
        assert "COVERING INDEX ix_devices_user_test_mode" in test_mode, test_mode
        for statement in (
            devices._sort_values_statement("name"),
            devices._narrow_statement((True, False, False)),
            devices._ROWS_BY_ID,
        ):
            read = plan(statement, {**params, "ids": [1, 2, 3]})
            assert "INTEGER PRIMARY KEY (rowid=?)" in read and "SCAN" not in read, read
