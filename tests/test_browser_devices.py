"""The device list, names and two-secret rotation in real headless Chromium against a gunicorn
process (issue 14, points 4 and 5): a list of 30 devices paged "1–25 of 30"; naming a device on
its page; searching by name, model identifier and product in any case, filtering by state and
test mode, sorting by name; adding a second secret while the device stays connected (old and
new secret, and the tokens of both, work), then removing the old one (its secret and its token
refused, the new one's still served). No console errors (a CSP refusal would be one).
Screenshots at desktop and phone width land in tests/screenshots/ (devices-*.png)."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from bioweb.services import devices
from tests.helpers import DESKTOP, PASSWORD, Journey, make_device, make_user, token_for

pytestmark = pytest.mark.browser


def reads_itself(base: str, device_id: int, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.get(f"{base}/api/v1/device/{device_id}", headers=headers, timeout=10).status_code


def rows(page: Page):
    return page.locator("table.device-list tbody tr")


def count_line(page: Page) -> str:
    return " ".join(page.locator(".list-count").inner_text().split())


def show(page: Page, **query: str) -> None:
    """Press Show and wait for the list it asked for, so nothing is read from the page before."""
    page.get_by_role("button", name="Show").click()
    for key, value in query.items():
        expect(page).to_have_url(re.compile(rf"[?&]{key}={re.escape(value)}(&|$)"))
    page.wait_for_load_state()


def test_device_list_names_and_two_secret_rotation(
    live_server: str, browser: Browser, database_url: str
) -> None:
    label = "sqlite" if database_url.startswith("sqlite") else "pg"
    user = make_user(email="ada@example.com")
    # Thirty devices: five "iPhone 13" and their kin, watches, a test iPad, two disabled.
    fleet = (
        ["iPhone14,5"] * 5 + ["Watch6,1"] * 10 + ["iPhone14,2"] * 10 + ["iPad13,1"] * 3 + ["AppleTV5,3"] * 2
    )
    made = [make_device(user, code, is_test_mode=code == "iPad13,1")[0] for code in fleet]
    for device in made[-2:]:
        devices.disable_device(user, device.id)
    devices.rename_device(user, made[1].id, "Kitchen iPad")
    devices.rename_device(user, made[2].id, "Ängla's phone")
    watch, old_secret = make_device(user, "Watch7,1")  # the 31st: the one we name and rotate
    old_token = token_for(live_server, watch.client_id, old_secret).json()["access_token"]

    context = browser.new_context(viewport=DESKTOP, base_url=live_server)
    watched = Journey(context.new_page(), f"devices-{label}", screenshots=label == "sqlite")
    page = watched.page
    page.goto("/login")
    page.get_by_label("Email address").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server}/devices")

    # The list: name, product, id, state, last active; the watch connected, the others never did.
    expect(rows(page)).to_have_count(25)
    assert count_line(page) == "1–25 of 31 devices"
    first = rows(page).first
    expect(first).to_contain_text("Apple Watch Series 9")
    expect(first).to_contain_text("just now")
    expect(rows(page).nth(1)).to_contain_text("never connected")
    watched.snap("01-list")
    page.get_by_role("link", name="Next →").click()
    expect(rows(page)).to_have_count(6)
    assert count_line(page) == "26–31 of 31 devices"
    page.get_by_role("link", name="← Previous").click()
    expect(rows(page)).to_have_count(25)
    assert count_line(page) == "1–25 of 31 devices"

    # Name the watch on its page.
    rows(page).first.get_by_role("link").click()
    expect(page).to_have_url(f"{live_server}/devices/{watch.id}")
    page.get_by_label("Name").fill("Anna's watch")
    page.get_by_role("button", name="Save name").click()
    expect(page.locator(".flash")).to_contain_text("Named it “Anna's watch”")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Anna's watch")
    watched.snap("02-named")

    # Search by name, model identifier and product, in any case; filter; sort.
    page.goto("/devices")
    search = page.get_by_role("searchbox", name="Search")
    search.fill("ANNA")
    search.press("Enter")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Anna's watch")
    assert count_line(page) == "1–1 of 1 device matching (31 in all)"
    watched.snap("03-search-name")
    search = page.get_by_role("searchbox", name="Search")
    search.fill("äng")
    search.press("Enter")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Ängla's phone")
    search = page.get_by_role("searchbox", name="Search")
    search.fill("iphone 13")
    page.get_by_role("button", name="Show").click()
    expect(rows(page)).to_have_count(15)  # "iPhone 13" and "iPhone 13 Pro"
    search = page.get_by_role("searchbox", name="Search")
    search.fill("watch6")
    page.get_by_label("Sort").select_option("oldest")
    show(page, sort="oldest")
    expect(rows(page)).to_have_count(10)
    assert [int(t) for t in rows(page).locator("td.num").all_inner_texts()] == [d.id for d in made[5:15]]
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("State").select_option("disabled")
    page.get_by_role("button", name="Show").click()
    expect(rows(page)).to_have_count(2)
    expect(rows(page).first).to_contain_text("Disabled")
    assert count_line(page) == "1–2 of 2 devices matching (31 in all)"
    page.get_by_label("State").select_option("")
    page.get_by_label("Test mode").select_option("test")
    page.get_by_label("Sort").select_option("name")
    page.get_by_role("button", name="Show").click()
    expect(rows(page)).to_have_count(3)
    expect(rows(page).locator(".badge-test")).to_have_count(3)
    watched.snap("04-filter-test-by-name")
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Sort").select_option("name")
    show(page, sort="name")
    # A-Z: the 28 devices without a name first, so the first page is theirs.
    assert all(n.strip().startswith("Unnamed") for n in rows(page).locator("th").all_inner_texts())
    page.get_by_label("Sort").select_option("name_desc")
    show(page, sort="name_desc")
    assert [n.strip() for n in rows(page).locator("th").all_inner_texts()[:3]] == [
        "Ängla's phone",
        "Kitchen iPad",
        "Anna's watch",
    ]
    watched.snap("05-sorted-by-name")

    # Two-secret rotation: add a new secret; the old one and its token keep working.
    page.goto(f"/devices/{watch.id}")
    expect(page.locator(".secret-slot")).to_have_count(1)
    page.get_by_role("link", name="Add a new secret").click()
    page.get_by_label("The current secret keeps working").select_option("604800")
    watched.snap("06-add-secret")
    with page.expect_response(
        lambda r: r.url.endswith("/secrets/new") and r.request.method == "POST"
    ) as posted:
        page.get_by_role("button", name="Add a new secret").click()
    assert posted.value.headers["cache-control"] == "no-store"
    expect(page.get_by_role("alert")).to_contain_text("will not be shown again")
    new_secret = page.locator("#client-secret").inner_text().strip()
    assert new_secret.startswith("bcs_") and new_secret != old_secret
    assert page.locator("#client-id").inner_text().strip() == watch.client_id
    expect(page.locator("main")).to_contain_text("stops working at")
    watched.snap("07-new-secret")
    new_token_answer = token_for(live_server, watch.client_id, new_secret)
    assert new_token_answer.status_code == 200, new_token_answer.text
    new_token = new_token_answer.json()["access_token"]
    again = token_for(live_server, watch.client_id, old_secret)
    assert again.status_code == 200, again.text
    assert reads_itself(live_server, watch.id, old_token) == 200
    assert reads_itself(live_server, watch.id, new_token) == 200
    page.get_by_role("link", name=re.compile("I have saved it")).click()
    expect(page.locator(".secret-slot")).to_have_count(2)
    expect(page.locator("#secret-1")).to_contain_text("expiring")
    expect(page.locator("main")).not_to_contain_text(new_secret)
    expect(page.get_by_role("link", name="Add a new secret")).to_have_count(0)
    watched.snap("08-two-secrets")

    # Remove the old secret: it and its token are refused; the new ones are not.
    page.get_by_role("link", name="Remove secret 1…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Remove secret 1?")
    watched.snap("09-remove-confirm")
    page.get_by_role("button", name="Yes, remove secret 1").click()
    expect(page.locator(".flash")).to_contain_text("Secret 1 is removed")
    expect(page.locator(".secret-slot")).to_have_count(1)
    expect(page.locator("#secret-2")).to_be_visible()
    watched.snap("10-old-secret-removed")
    refused = token_for(live_server, watch.client_id, old_secret)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert reads_itself(live_server, watch.id, old_token) == 401
    assert reads_itself(live_server, watch.id, new_token) == 200
    assert token_for(live_server, watch.client_id, new_secret).status_code == 200
    page.emulate_media(color_scheme="dark")
    watched.snap("11-device-dark")
    page.emulate_media(color_scheme="light")

    assert watched.problems == []
    context.close()
