"""An account's life in real headless Chromium against a gunicorn process (issue 16): sign up,
the confirmation mail arrives on a real SMTP server (aiosmtpd on a local port), confirm, log
out, "Forgot your password?", the reset mail, the new password works and the session of a
second browser signed in before is gone; then (parts 4 and 5) the data: the export downloads
a ZIP whose CSV is the API's answer, a device is deleted, then the account, and nothing of it
is left in the database, table by table. One journey in one function, step by step. The access log never holds
a mailed link's token. Screenshots (desktop and phone width) land in tests/screenshots/
as lifecycle-<database>-*.png."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, expect

from bioweb.extensions import db
from bioweb.services import accounts
from tests.helpers import (
    DESKTOP,
    Journey,
    LiveServer,
    Mailbox,
    assert_nothing_left,
    flask_cli,
    mail_link,
    make_device,
    make_pat,
)

pytestmark = [pytest.mark.browser, pytest.mark.server]

EMAIL = "grace@example.com"
PASSWORD = "a long and memorable passphrase"
NEW_PASSWORD = "another long memorable passphrase"


def test_account_lifecycle(
    app, database_url: str, browser: Browser, mailbox: Mailbox, tmp_path: Path
) -> None:
    label = "lifecycle-" + ("sqlite" if database_url.startswith("sqlite") else "pg")
    access_log = tmp_path / "access.log"
    server = LiveServer(
        database_url, env={"BIOWEB_SMTP_URL": mailbox.url, "BIOWEB_ACCESS_LOG": str(access_log)}
    )
    server.start()
    base = server.url
    contexts: list[BrowserContext] = []

    def new_journey() -> Journey:
        context = browser.new_context(viewport=DESKTOP, base_url=base)
        contexts.append(context)
        return Journey(context.new_page(), label, screenshots=label.endswith("sqlite"))

    def log_in(journey: Journey, password: str) -> None:
        journey.page.goto("/login")
        journey.page.get_by_label("Email address").fill(EMAIL)
        journey.page.get_by_label("Password", exact=True).fill(password)
        journey.page.get_by_role("button", name="Log in").click()

    tokens: list[str] = []
    try:
        journey = new_journey()
        page = journey.page

        # 1. Sign up: "check your email", and no session yet.
        page.goto("/signup")
        page.get_by_label("Email address").fill(EMAIL)
        page.get_by_label("First name").fill("Grace")
        page.get_by_label("Last name").fill("Hopper")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page).to_have_url(f"{base}/signup/check-your-email")
        expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
        expect(page.locator("main")).to_contain_text(EMAIL)
        journey.snap("01-check-your-email")

        # 2. The confirmation mail arrives on the SMTP server.
        (confirmation,) = mailbox.wait_for(EMAIL)
        assert confirmation["Subject"] == "Confirm your email address for bioweb"
        confirm_link = mail_link(confirmation, "/confirm-email/")
        assert confirm_link.startswith(f"{base}/confirm-email/bcm_")
        tokens.append(confirm_link.rsplit("/", 1)[1])

        # 3. Logged in before confirming: the banner says why devices wait, and offers a new link.
        log_in(journey, PASSWORD)
        expect(page).to_have_url(f"{base}/devices")
        banner = page.get_by_role("region", name="Confirm your email address")
        expect(banner).to_contain_text("to register devices")
        expect(banner.get_by_role("button", name="Send the link again")).to_be_visible()
        journey.snap("02-unconfirmed-banner")
        page.goto("/devices/new")
        expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your email address first")
        journey.snap("03-register-waits")

        # 4. Open the link (it changes nothing by itself), then confirm.
        page.goto(confirm_link)
        expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your email address")
        journey.snap("04-confirm")
        page.get_by_role("button", name="Confirm my address").click()
        expect(page).to_have_url(f"{base}/devices")
        expect(page.locator(".flash")).to_contain_text(
            "Your email address is confirmed. Welcome to bioweb, Grace."
        )
        expect(page.get_by_role("region", name="Confirm your email address")).to_have_count(0)
        journey.snap("05-confirmed")

        # 5. A second browser signs in with the old password: the session that the reset must end.
        other = new_journey()
        log_in(other, PASSWORD)
        expect(other.page).to_have_url(f"{base}/devices")

        # 6. Log out, and "Forgot your password?" on the login page.
        page.get_by_role("banner").get_by_role("button", name="Log out").click()
        expect(page.locator(".flash")).to_contain_text("You are logged out.")
        page.goto("/login")
        page.get_by_role("link", name="Forgot your password?").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Reset your password")
        journey.snap("06-forgot-password")
        page.get_by_label("Email address").fill(EMAIL)
        page.get_by_role("button", name="Email me a link").click()
        expect(page).to_have_url(f"{base}/forgot-password/check-your-email")
        expect(page.locator("main")).to_contain_text("It works for 1 hour, once.")
        journey.snap("07-reset-sent")

        # 7. The reset mail; its link shows the form, and the new password is saved.
        _, reset = mailbox.wait_for(EMAIL, count=2)
        assert reset["Subject"] == "Reset your bioweb password"
        reset_link = mail_link(reset, "/reset-password/")
        tokens.append(reset_link.rsplit("/", 1)[1])
        page.goto(reset_link)
        expect(page.get_by_role("heading", level=1)).to_have_text("Choose a new password")
        expect(page.locator("main")).to_contain_text(EMAIL)
        journey.snap("08-choose-a-new-password")
        page.get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Save the new password").click()
        expect(page).to_have_url(f"{base}/devices")
        expect(page.locator(".flash")).to_contain_text("Your password is changed, and you are logged in.")

        # 8. The second browser's session is gone; the old password no longer works, the new one does.
        other.page.goto("/devices")
        expect(other.page).to_have_url(f"{base}/login?next=%2Fdevices")
        log_in(other, PASSWORD)
        expect(other.page.locator(".error-summary")).to_contain_text("do not match an account")
        log_in(other, NEW_PASSWORD)
        expect(other.page).to_have_url(f"{base}/devices")

        # 9. The spent link says so.
        page.goto(reset_link)
        expect(page.get_by_role("heading", level=1)).to_have_text("This link has been used")
        journey.snap("09-used-link")

        # 10. The account page lists what happened, newest first.
        page.goto("/account#activity")
        activity = page.locator("table.account-events tbody tr")
        expect(activity.nth(1)).to_contain_text("Password reset by email link")
        kinds = [row.locator("td").nth(1).inner_text() for row in activity.all()]
        # Newest first: the second browser's new login, the reset, this browser's logout, ...
        assert kinds == [
            "Logged in",
            "Password reset by email link",
            "Password reset email asked for",
            "Logged out",
            "Logged in",
            "Email address confirmed",
            "Logged in",
        ], kinds
        assert "Email address confirmed" in kinds
        page.locator("#activity").scroll_into_view_if_needed()
        journey.snap("10-account-activity")

        # 11. Grace's data: two devices (one with a metric of samples) and a PAT, made in process
        # on the same database; the samples go in over HTTP, as a script would send them.
        grace = accounts.get_user_by_email(EMAIL)
        assert grace is not None
        phone, _ = make_device(grace)
        watch, _ = make_device(grace, "Watch1,1")
        pat = make_pat(grace)
        grace_id, device_ids = grace.id, [phone.id, watch.id]
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {pat}"
        created = api.post(
            f"{base}/api/v1/metrics",
            json={"device_id": phone.id, "sample_type": "heartRate", "quantity_type": "count/min"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        metric_id = created.json()["id"]
        sent = api.post(
            f"{base}/api/v1/quantity-samples",
            json={
                "samples": [
                    {
                        "metric_id": metric_id,
                        "start_date": f"2025-03-01T08:{m:02d}:00.{m * 1001:06d}Z",
                        "end_date": f"2025-03-01T08:{m:02d}:30Z",
                        "quantity": 58 + m * 0.5,
                        "sample_motion_context": "Active" if m % 2 else "NotSet",
                        "client_sample_id": f"HK-{m}" if m % 3 else None,
                    }
                    for m in range(30)
                ]
            },
            timeout=10,
        )
        assert sent.status_code == 200 and sent.json()["accepted"] == 30, sent.text

        # 12. Export: the account page's button downloads one ZIP; its CSV is the API's answer.
        page.goto("/account#your-data")
        page.locator("#your-data").scroll_into_view_if_needed()
        journey.snap("11-your-data")
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download all my data (ZIP)").click()
        download = download_info.value
        assert re.fullmatch(r"bioweb-export-\d{4}-\d{2}-\d{2}\.zip", download.suggested_filename)
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        with zipfile.ZipFile(saved) as archive:
            assert archive.testzip() is None
            assert {"README.txt", "manifest.json", f"samples/{metric_id}.csv"} <= set(archive.namelist())
            table = list(csv.reader(io.StringIO(archive.read(f"samples/{metric_id}.csv").decode())))
        answer = api.get(
            f"{base}/api/v1/quantity-samples?metric_id={metric_id}&limit=1000", timeout=10
        ).json()
        fields = table[0]
        assert fields[0] == "uuid" and "duplicate" not in fields and len(answer["results"]) == 30
        expected = [
            ["" if r[f] is None else r[f] if isinstance(r[f], str) else json.dumps(r[f]) for f in fields]
            for r in answer["results"]
        ]
        assert table[1:] == expected

        # 13. Delete a device: disable it, then "Delete" on its page asks for its code.
        page.goto(f"/devices/{phone.id}")
        page.get_by_role("link", name="Disable", exact=True).click()
        page.get_by_role("button", name="Yes, disable it").click()
        page.get_by_role("link", name="Delete", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("and its data?")
        page.get_by_label("Type the device's name to confirm").fill("iPhone")
        page.get_by_role("button", name="Delete the device and its data").click()
        expect(page.locator(".error-summary")).to_contain_text("type it exactly as shown")
        journey.snap("12-delete-device")
        page.get_by_label("Type the device's name to confirm").fill("iPhone1,1")
        page.get_by_role("button", name="Delete the device and its data").click()
        expect(page).to_have_url(f"{base}/devices")
        expect(page.locator(".flash")).to_contain_text("is deleted with its metrics, samples and history")
        journey.snap("13-device-deleted")
        assert api.get(f"{base}/api/v1/device/{phone.id}", timeout=10).status_code == 404

        # 14. Delete the account: the password again (a wrong one is refused), and the box ticked.
        page.goto("/account")
        page.get_by_role("link", name="Delete your account").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Delete your account")
        page.get_by_label("Your password").fill(PASSWORD)
        page.get_by_label("I understand").check()
        page.get_by_role("button", name="Delete my account").click()
        expect(page.locator(".error-summary")).to_contain_text("That is not your password.")
        journey.snap("14-delete-account")
        page.get_by_label("Your password").fill(NEW_PASSWORD)
        page.get_by_label("I understand").check()
        page.get_by_role("button", name="Delete my account").click()
        expect(page).to_have_url(f"{base}/")
        expect(page.locator(".flash")).to_contain_text("Your account is deleted")
        journey.snap("15-account-deleted")
        other.page.goto("/devices")
        expect(other.page).to_have_url(f"{base}/login?next=%2Fdevices")
        assert api.get(f"{base}/api/v1/devices", timeout=10).status_code == 401
        log_in(other, NEW_PASSWORD)
        expect(other.page.locator(".error-summary")).to_contain_text("do not match an account")

        problems = [p for j in (journey, other) for p in j.problems]
        assert problems == []
    finally:
        for context in contexts:
            context.close()
        server.stop()

    # 15. Nothing of Grace's is left, table by table (finished by maintenance if the requests
    # left anything), and her address can sign up again.
    result = flask_cli(database_url, "maintenance")
    assert result.returncode == 0, result.stderr
    db.session.expire_all()
    assert_nothing_left([grace_id], device_ids, [metric_id])
    assert accounts.get_user_by_email(EMAIL) is None
    assert accounts.create_user(EMAIL, PASSWORD).email == EMAIL

    # No mailed link's token reached the access log; the paths were logged, redacted.
    log = access_log.read_text()
    assert "/reset-password/bcm_[REDACTED]" in log and "/confirm-email/bcm_[REDACTED]" in log
    for token in tokens:
        assert token not in log and token.split(".")[-1] not in log
    assert not re.search(r"bcm_(?!\[REDACTED\])", log)
