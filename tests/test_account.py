"""The person's account and time zone (issue 12): GET and PATCH /api/v1/account through HTTP
on both databases (zones matched without regard to case, bad ones answered with the closest,
scopes, a device's token refused), the dashboard's account page (CSRF, POST-redirect-GET),
and, in headless Chromium, the page proposing the browser's own zone."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, expect

from bioweb.errors import InvalidInput
from bioweb.extensions import db
from bioweb.models import User
from bioweb.services import accounts
from tests.helpers import (
    PASSWORD,
    SCREENSHOTS,
    assert_error,
    basic,
    bearer,
    input_value,
    log_in_with_csrf,
    make_device,
    make_pat,
    make_user,
)

ACCOUNT = "/api/v1/account"


def stored_zone(email: str = "ada@example.com") -> str:
    """The zone in the database (a connection of its own: what the requests committed)."""
    with db.engine.connect() as conn:
        return conn.execute(sa.select(User.time_zone).where(User.email == email)).scalar_one()


def device_token(client, user) -> str:
    device, secret = make_device(user, "Watch1,1")
    response = client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(device.client_id, secret)
    )
    assert response.status_code == 200, response.text
    return response.get_json()["access_token"]


# --- the service --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("europe/berlin", "Europe/Berlin"),
        ("  AMERICA/NEW_YORK ", "America/New_York"),
        ("utc", "UTC"),
        ("Etc/GMT+5", "Etc/GMT+5"),
    ],
)
def test_valid_time_zone_answers_the_iana_spelling(given, canonical):
    assert accounts.valid_time_zone(given) == canonical


@pytest.mark.parametrize(
    ("given", "suggested"),
    [("Europe/Berln", "Europe/Berlin"), ("Berlin", "Europe/Berlin"), ("new york", "America/New_York")],
)
def test_valid_time_zone_suggests_the_closest_names(given, suggested):
    with pytest.raises(InvalidInput) as caught:
        accounts.valid_time_zone(given, field="zone")
    assert set(caught.value.fields or {}) == {"zone"}
    message = (caught.value.fields or {})["zone"][0]
    assert "not an IANA time zone" in message and suggested in message


@pytest.mark.parametrize("name", ["localtime", "Factory", "", "Mars/Olympus_Mons", "Europe/Berlin\x00"])
def test_names_that_are_no_places_zone_are_refused(name):
    with pytest.raises(InvalidInput):
        accounts.valid_time_zone(name)


# --- the API ------------------------------------------------------------------------------------


def test_get_account_with_any_pat(client, user):
    for scope in ("devices:read", "samples:read", "devices:read devices:write samples:read samples:write"):
        response = client.get(ACCOUNT, headers=bearer(make_pat(user, scope=scope)))
        assert response.status_code == 200, response.text
        body = response.get_json()
        assert list(body) == [
            "id",
            "email",
            "first_name",
            "last_name",
            "tenant_id",
            "time_zone",
            "created_time",
        ]
        assert body["id"] == user.id and body["tenant_id"] == user.tenant_id
        assert (body["email"], body["first_name"], body["last_name"]) == (
            "ada@example.com",
            "Ada",
            "Lovelace",
        )
        assert body["time_zone"] == "UTC"
        assert body["created_time"].endswith("+00:00")


def test_patch_sets_the_zone_in_iana_spelling(client, user, pat):
    response = client.patch(ACCOUNT, json={"time_zone": "Europe/Berlin"}, headers=bearer(pat))
    assert response.status_code == 200, response.text
    assert response.get_json()["time_zone"] == "Europe/Berlin"
    assert stored_zone() == "Europe/Berlin"
    response = client.patch(ACCOUNT, json={"time_zone": " america/new_york "}, headers=bearer(pat))
    assert response.get_json()["time_zone"] == "America/New_York"
    assert client.get(ACCOUNT, headers=bearer(pat)).get_json()["time_zone"] == "America/New_York"
    assert stored_zone() == "America/New_York"


def test_a_bad_zone_is_400_naming_the_field_with_a_suggestion(client, user, pat):
    body = assert_error(
        client.patch(ACCOUNT, json={"time_zone": "Europe/Berln"}, headers=bearer(pat)), 400, "invalid_request"
    )
    assert list(body["fields"]) == ["time_zone"]
    assert "Did you mean Europe/Berlin" in body["fields"]["time_zone"][0]
    assert stored_zone() == "UTC"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"time_zone": "Europe/Berlin", "email": "eve@example.com"}, "email"),
        ({"timezone": "Europe/Berlin"}, "timezone"),
        ({}, "time_zone"),
        ({"time_zone": None}, "time_zone"),
        ({"time_zone": ""}, "time_zone"),
        ({"time_zone": 1}, "time_zone"),
        ({"time_zone": "x" * 65}, "time_zone"),
        ({"time_zone": "localtime"}, "time_zone"),
    ],
)
def test_patch_refuses_unknown_fields_and_bad_values(client, user, pat, body, field):
    response = assert_error(client.patch(ACCOUNT, json=body, headers=bearer(pat)), 400)
    assert field in response["fields"]
    assert stored_zone() == "UTC"


def test_patch_needs_a_json_object(client, user, pat):
    assert_error(client.patch(ACCOUNT, data="time_zone=UTC", headers=bearer(pat)), 415)
    assert_error(client.patch(ACCOUNT, data="[1]", content_type="application/json", headers=bearer(pat)), 400)


def test_scopes_and_a_device_token_are_refused(client, user):
    assert_error(client.get(ACCOUNT), 401, "invalid_token")
    assert_error(client.patch(ACCOUNT, json={"time_zone": "UTC"}), 401, "invalid_token")
    for scope in ("devices:read", "samples:read samples:write"):
        token = make_pat(user, scope=scope)
        body = assert_error(
            client.patch(ACCOUNT, json={"time_zone": "Asia/Tokyo"}, headers=bearer(token)),
            403,
            "insufficient_scope",
        )
        assert "devices:write" in body["error_description"]
    # A device acts for its own data only: the person's account is not its business.
    access = device_token(client, user)
    assert_error(client.get(ACCOUNT, headers=bearer(access)), 403, "insufficient_scope")
    assert_error(
        client.patch(ACCOUNT, json={"time_zone": "Asia/Tokyo"}, headers=bearer(access)),
        403,
        "insufficient_scope",
    )
    assert stored_zone() == "UTC"


def test_each_person_sees_and_sets_only_their_own_account(client, user, pat):
    grace = make_user("grace@example.com")
    grace_pat = make_pat(grace)
    client.patch(ACCOUNT, json={"time_zone": "Asia/Kolkata"}, headers=bearer(grace_pat))
    assert client.get(ACCOUNT, headers=bearer(pat)).get_json()["email"] == "ada@example.com"
    assert stored_zone() == "UTC" and stored_zone("grace@example.com") == "Asia/Kolkata"


# --- the dashboard ------------------------------------------------------------------------------


def test_account_page_needs_a_login(client, user):
    response = client.get("/account")
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]


def selected_zone(html: str) -> str:
    (selected,) = re.findall(r'<option value="([^"]+)" selected>', html)
    return selected


def test_account_page_shows_the_person_and_their_zone(web, user):
    accounts.set_time_zone(user, "Asia/Tokyo")
    html = web.get("/account").text
    assert "ada@example.com" in html and "Ada Lovelace" in html
    assert selected_zone(html) == "Asia/Tokyo"
    assert 'data-saved-zone="Asia/Tokyo"' in html
    assert (
        '<optgroup label="Europe">' in html and '<option value="Europe/Berlin">Europe/Berlin</option>' in html
    )
    assert '<option value="America/New_York">America/New York</option>' in html
    assert 'value="localtime"' not in html and 'value="Factory"' not in html
    # The nav's Account link is the current page; the password is changed from here.
    assert re.search(r'<a href="/account" aria-current="page">Account</a>', html)
    assert 'href="/account/password"' in html
    # Its script is a file of this site, loaded in the head; no inline script.
    assert '<script src="/static/js/account.js" defer></script>' in html
    assert "<script>" not in html and " style=" not in html
    script = web.get("/static/js/account.js")
    assert script.status_code == 200 and b"resolvedOptions().timeZone" in script.data
    script.close()


def test_change_the_zone_with_the_form_and_csrf(csrf_client, user):
    log_in_with_csrf(csrf_client)
    page = csrf_client.get("/account").text
    token = input_value(page, "csrf_token")
    # Without the form's token nothing changes.
    assert csrf_client.post("/account", data={"time_zone": "Europe/Paris"}).status_code == 400
    assert stored_zone() == "UTC"
    response = csrf_client.post("/account", data={"time_zone": "europe/paris", "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/account"
    assert stored_zone() == "Europe/Paris"
    html = csrf_client.get("/account").text
    assert "Your time zone is now Europe/Paris." in html
    assert selected_zone(html) == "Europe/Paris"


def test_a_bad_zone_from_the_form_is_shown_with_the_saved_one_kept(web, user):
    response = web.post("/account", data={"time_zone": "Europe/Pariss"})
    assert response.status_code == 400
    assert "Did you mean Europe/Paris" in response.text
    assert 'aria-invalid="true"' in response.text
    assert selected_zone(response.text) == "UTC"
    assert stored_zone() == "UTC"


# --- the browser's zone, in Chromium ----------------------------------------------------------------


@pytest.mark.browser
def test_the_page_proposes_the_browsers_zone(live_server: str, browser: Browser, database_url: str):
    label = "sqlite" if database_url.startswith("sqlite") else "pg"
    make_user()
    context = browser.new_context(
        viewport={"width": 1280, "height": 860}, base_url=live_server, timezone_id="Asia/Tokyo"
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto("/login")
    page.get_by_label("Email address").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    select = page.get_by_label("Time zone")
    expect(select).to_have_value("UTC")

    proposal = page.get_by_role("button", name="Use Asia/Tokyo (your browser's)")
    expect(proposal).to_be_visible()
    proposal.click()
    expect(select).to_have_value("Asia/Tokyo")
    expect(page.locator("[data-browser-zone-status]")).to_have_text(
        "Asia/Tokyo is selected. Save to keep it."
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{label}-account-browser-zone.png", full_page=True)

    page.get_by_role("button", name="Save time zone").click()
    expect(page.get_by_text("Your time zone is now Asia/Tokyo.")).to_be_visible()
    expect(select).to_have_value("Asia/Tokyo")
    # Saved: the browser's zone is the account's now, so nothing is proposed.
    expect(page.get_by_role("button", name=re.compile("your browser's"))).to_be_hidden()
    assert stored_zone() == "Asia/Tokyo"
    page.screenshot(path=SCREENSHOTS / f"{label}-account-saved.png", full_page=True)
    assert problems == []
    context.close()
