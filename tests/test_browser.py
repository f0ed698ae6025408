"""The whole dashboard journey in real headless Chromium against a gunicorn process:
sign up (confirming the address by the mailed link), register an Apple Watch, use its secret
at /token, reload (no secret), re-authorize (old secret refused), send samples with the
device's token and read them on the device and metric pages, disable (the device's token
refused). Screenshots of every page, at
desktop and phone width, land in tests/screenshots/."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import requests
from playwright.sync_api import Browser, expect

from tests.helpers import DESKTOP, Journey, Mailbox, mail_link, token_for


def send_samples(base: str, device_token: str, device_id: int) -> int:
    """Register three metrics with the device's own token and send samples to them; returns
    the heart rate metric's id (60 samples, a minute apart, the newest "hr-59")."""
    auth = {"Authorization": f"Bearer {device_token}"}
    ids = {}
    for sample_type, unit, name in (
        ("heartRate", "bpm", "Resting heart"),
        ("stepCount", "count", ""),
        ("oxygenSaturation", "%", ""),
    ):
        created = requests.post(
            f"{base}/api/v1/metrics",
            json={"device_id": device_id, "sample_type": sample_type, "quantity_type": unit, "name": name},
            headers=auth,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        ids[sample_type] = created.json()["id"]
    now = datetime.now(UTC).replace(microsecond=0)
    heart = [
        {
            "metric_id": ids["heartRate"],
            "start_date": (now - timedelta(minutes=60 - i)).isoformat(),
            "end_date": (now - timedelta(minutes=60 - i)).isoformat(),
            "quantity": 58 + (i * 7) % 23,
            "sample_motion_context": "Sedentary",
            "sample_sensor_location": 2,
            "client_sample_id": f"hr-{i}",
        }
        for i in range(60)
    ]
    steps = [
        {
            "metric_id": ids["stepCount"],
            "start_date": (now - timedelta(hours=h + 1)).isoformat(),
            "end_date": (now - timedelta(hours=h)).isoformat(),
            "quantity": 1200 + 37 * h,
            "sample_motion_context": "Active",
        }
        for h in range(5)
    ]
    oxygen = [
        {
            "metric_id": ids["oxygenSaturation"],
            "start_date": now.isoformat(),
            "end_date": now.isoformat(),
            "quantity": 0.97,
        }
    ]
    sent = requests.post(
        f"{base}/api/v1/quantity-samples", json={"samples": heart + steps + oxygen}, headers=auth, timeout=10
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == 66 and sent.json()["rejected"] == []
    return ids["heartRate"]


def test_dashboard_journey(live_server: str, browser: Browser, database_url: str, mailbox: Mailbox) -> None:
    label = "sqlite" if database_url.startswith("sqlite") else "pg"
    context = browser.new_context(viewport=DESKTOP, base_url=live_server)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    journey = Journey(context.new_page(), label, screenshots=label == "sqlite")
    page = journey.page

    # Landing page, with the security headers.
    response = page.goto("/")
    assert response is not None and response.ok
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    expect(page.get_by_role("heading", level=1)).to_contain_text("biometrics cloud")
    journey.snap("01-landing")

    # Sign up, first with a too-short password (the field says why), then properly.
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Email address").fill("grace@example.com")
    page.get_by_label("First name").fill("Grace")
    page.get_by_label("Last name").fill("Hopper")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator(".error-summary")).to_contain_text("Use at least 12 characters")
    journey.snap("02-signup-error")
    page.get_by_label("Password").fill("a long and memorable passphrase")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    # The address is confirmed by the mailed link (tests/test_browser_lifecycle.py looks closer).
    (message,) = mailbox.wait_for("grace@example.com")
    page.goto(mail_link(message, "/confirm-email/"))
    page.get_by_role("button", name="Confirm my address").click()
    expect(page.locator(".flash").first).to_contain_text("Your email address is confirmed")
    page.get_by_label("Email address").fill("grace@example.com")
    page.get_by_label("Password", exact=True).fill("a long and memorable passphrase")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server}/devices")
    expect(page.get_by_role("heading", name="No devices yet")).to_be_visible()
    journey.snap("03-devices-empty")

    # Register an Apple Watch: typing "Watch" suggests watches from the identifier table.
    page.get_by_role("link", name="Register your first device").click()
    code = page.get_by_label("Device code")
    code.press_sequentially("Watch")
    options = page.locator("#device-codes option")
    expect(options.first).to_be_attached()
    values = options.evaluate_all("nodes => nodes.map(n => n.value)")
    assert values and all(v.startswith("Watch") for v in values), values
    code.fill("Watch6,1")
    expect(page.locator("#device-code-product")).to_contain_text("Apple Watch Series 6")
    journey.snap("04-register")
    with page.expect_response(
        lambda r: r.url.endswith("/devices/new") and r.request.method == "POST"
    ) as posted:
        page.get_by_role("button", name="Register device").click()
    headers = posted.value.headers
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer"
    expect(page.get_by_role("alert")).to_contain_text("will not be shown again")
    client_id = page.locator("#client-id").inner_text().strip()
    secret = page.locator("#client-secret").inner_text().strip()
    redirect_url = page.locator("#redirect-url").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{16}", client_id)
    assert secret.startswith("bcs_") and len(secret) >= 47
    assert redirect_url == f"{live_server}/appauth/code"
    for cookie in context.cookies():
        assert secret not in cookie["value"]
    # The copy button puts the secret on the clipboard.
    page.get_by_role("button", name="Copy client secret").click()
    expect(page.locator("[data-copy-status]")).to_contain_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    journey.snap("05-credentials")

    # The secret works at /token.
    first = token_for(live_server, client_id, secret)
    assert first.status_code == 200, first.text
    assert first.json()["token_type"] == "Bearer"

    # Reloading resubmits the form: it lands on the device page, with no secret and no second device.
    page.reload()
    expect(page).to_have_url(re.compile(r"/devices/\d+$"))
    expect(page.locator(".flash")).to_contain_text("already sent")
    assert secret not in page.content()
    device_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_text("Apple Watch Series 6")).not_to_have_count(0)
    journey.snap("06-device-after-reload")
    # Back to the credentials page: no secret comes back either.
    page.goto("/devices")
    expect(page.locator("table.devices tbody tr")).to_have_count(1)
    journey.snap("07-devices-list")
    page.go_back()
    assert secret not in page.content()

    # Re-authorize: a new secret; the old one is refused.
    page.goto(f"/devices/{device_id}")
    page.get_by_role("link", name="Re-authorize / new secret").click()
    journey.snap("08-reauthorize-confirm")
    page.get_by_role("button", name="Create a new secret").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("New secret for")
    assert page.locator("#client-id").inner_text().strip() == client_id
    new_secret = page.locator("#client-secret").inner_text().strip()
    assert new_secret.startswith("bcs_") and new_secret != secret
    journey.snap("09-reauthorized")
    refused = token_for(live_server, client_id, secret)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    fresh = token_for(live_server, client_id, new_secret)
    assert fresh.status_code == 200, fresh.text
    device_token = fresh.json()["access_token"]
    own = requests.get(
        f"{live_server}/api/v1/device/{device_id}",
        headers={"Authorization": f"Bearer {device_token}"},
        timeout=10,
    )
    assert own.status_code == 200 and own.json()["client_id"] == client_id

    # The watch registers its metrics and sends an hour of heart rate (a sample a minute),
    # today's steps and an oxygen reading; the device page lists them, the metric page pages them.
    heart_id = send_samples(live_server, device_token, device_id)
    page.get_by_role("link", name="I have saved it").click()
    metrics_table = page.get_by_role("table", name=re.compile("What this device measures"))
    expect(metrics_table.locator("tbody tr")).to_have_count(3)
    heart_row = metrics_table.locator("tbody tr").filter(has_text="Heart rate")
    expect(heart_row).to_contain_text("Resting heart")
    expect(heart_row).to_contain_text("count/min")
    expect(heart_row).to_contain_text("60 samples")
    expect(metrics_table.locator("tbody tr").filter(has_text="Oxygen")).to_contain_text("97")
    journey.snap("09a-device-metrics")
    heart_row.get_by_role("link").click()
    expect(page).to_have_url(f"{live_server}/metrics/{heart_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Resting heart")
    samples_table = page.get_by_role("table", name=re.compile("The latest samples"))
    expect(samples_table.locator("tbody tr")).to_have_count(50)
    expect(samples_table.locator("tbody tr").first).to_contain_text("hr-59")
    journey.snap("09b-metric")
    page.get_by_role("link", name="Older").click()
    older = page.get_by_role("table", name=re.compile("Older samples"))
    expect(older.locator("tbody tr")).to_have_count(10)
    expect(older.locator("tbody tr").last).to_contain_text("hr-0")
    journey.snap("09c-metric-older")
    page.get_by_role("link", name=re.compile("Resting heart|Apple Watch")).first.click()
    expect(page).to_have_url(f"{live_server}/devices/{device_id}")

    # Disable, with a confirmation: the device's token is refused from then on.
    page.get_by_role("link", name="Disable").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Disable")
    journey.snap("10-disable-confirm")
    page.get_by_role("button", name="Yes, disable it").click()
    expect(page.locator(".flash")).to_contain_text("is disabled")
    expect(page.locator("h1 .badge")).to_have_text("Disabled")
    journey.snap("11-device-disabled")
    page.emulate_media(color_scheme="dark")
    journey.snap("11-device-disabled-dark")
    page.emulate_media(color_scheme="light")
    cut_off = requests.get(
        f"{live_server}/api/v1/device/{device_id}",
        headers={"Authorization": f"Bearer {device_token}"},
        timeout=10,
    )
    assert cut_off.status_code == 401

    # The other pages people meet: API tokens, change password, a 404 in the site's look.
    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("nightly export")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("alert")).to_contain_text("will not be shown again")
    pat = page.locator("#token-value").inner_text().strip()
    assert pat.startswith("bcp_")
    journey.snap("12-token-created")
    listed = requests.get(
        f"{live_server}/api/v1/devices", headers={"Authorization": f"Bearer {pat}"}, timeout=10
    )
    assert listed.status_code == 200 and listed.json()["count"] == 1
    page.get_by_role("link", name="back to my tokens").click()
    expect(page.locator(".token-list li")).to_have_count(1)
    journey.snap("13-tokens")
    page.goto("/devices/999999")
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    journey.snap("14-not-found")
    page.get_by_role("button", name="Log out").click()
    expect(page.locator(".flash")).to_contain_text("logged out")
    journey.snap("15-logged-out")

    assert journey.problems == []
    context.close()
