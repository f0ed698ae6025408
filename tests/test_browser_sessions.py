"""Server-side sessions in real headless Chromium against a gunicorn process (issue 14): a
cookie copied into a second browser is signed out there when the first logs out; the account
page lists the sessions (this one marked) and logs another out with its button. No console
errors (a CSP refusal would be one). Screenshots at desktop and phone size land in
tests/screenshots/ beside test_browser.py's."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.helpers import PASSWORD, SCREENSHOTS, make_user

pytestmark = [pytest.mark.browser, pytest.mark.server]

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
PHONE_AGENT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)


class Watched:
    """A page and the problems it reports: console errors, page errors, failed subresources."""

    def __init__(self, page: Page):
        self.page = page
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on(
            "response",
            lambda r: (
                self.problems.append(f"{r.status} for {r.url}")
                if r.request.resource_type != "document" and r.status >= 400
                else None
            ),
        )

    def _console(self, message) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console: {message.text}")


def log_in(page: Page) -> None:
    page.goto("/login")
    page.get_by_label("Email address").fill("ada@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/devices$"))


def snap(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=SCREENSHOTS / f"{name}-phone.png", full_page=True)
    page.set_viewport_size(DESKTOP)


def test_sign_out_ends_a_copied_cookie_and_the_sessions_page(
    live_server: str, browser: Browser, database_url: str
) -> None:
    label = "sqlite" if database_url.startswith("sqlite") else "pg"
    make_user()
    contexts: list[BrowserContext] = []

    def context(**options) -> Watched:
        made = browser.new_context(viewport=DESKTOP, base_url=live_server, **options)
        contexts.append(made)
        return Watched(made.new_page())

    try:
        first = context()
        log_in(first.page)

        # A second browser with a copy of the first one's cookie is signed in as Ada...
        copy = context()
        copy.page.context.add_cookies(first.page.context.cookies())
        copy.page.goto("/devices")
        expect(copy.page).to_have_url(f"{live_server}/devices")

        # ...and a phone logs in on its own: two sessions.
        phone = context(user_agent=PHONE_AGENT)
        log_in(phone.page)

        first.page.goto("/account")
        sessions = first.page.get_by_role("list", name="Your sessions").get_by_role("listitem")
        expect(sessions).to_have_count(2)
        this = sessions.filter(has_text="This session")
        expect(this).to_have_count(1)
        expect(this).to_contain_text("Chrome on Linux")
        expect(sessions.filter(has_text="Safari on iPhone")).to_contain_text("127.0.0.1")
        expect(first.page.get_by_role("button", name="Log out everywhere else")).to_be_visible()
        first.page.locator("#sessions").scroll_into_view_if_needed()
        snap(first.page, f"sessions-{label}-01-account")

        # Log out in the first browser: the copy of its cookie is signed out too.
        first.page.get_by_role("banner").get_by_role("button", name="Log out").click()
        expect(first.page.locator(".flash")).to_contain_text("You are logged out.")
        copy.page.goto("/devices")
        expect(copy.page).to_have_url(f"{live_server}/login?next=%2Fdevices")
        expect(copy.page.get_by_role("heading", level=1)).to_have_text("Log in")
        copy.page.goto("/api-tokens")
        expect(copy.page).to_have_url(f"{live_server}/login?next=%2Fapi-tokens")
        snap(copy.page, f"sessions-{label}-02-copy-signed-out")

        # The phone is still in; from a new desktop session, log the phone out with its button.
        phone.page.goto("/devices")
        expect(phone.page).to_have_url(f"{live_server}/devices")
        desk = context()
        log_in(desk.page)
        desk.page.goto("/account")
        phone_item = (
            desk.page.get_by_role("list", name="Your sessions")
            .get_by_role("listitem")
            .filter(has_text="Safari on iPhone")
        )
        phone_item.get_by_role("button", name="Log out").click()
        expect(desk.page.locator(".flash")).to_contain_text("That session is logged out.")
        expect(desk.page.get_by_role("list", name="Your sessions").get_by_role("listitem")).to_have_count(1)
        expect(desk.page.get_by_text("You are not logged in anywhere else.")).to_be_visible()
        snap(desk.page, f"sessions-{label}-03-after-logging-out-the-phone")
        phone.page.reload()
        expect(phone.page).to_have_url(f"{live_server}/login?next=%2Fdevices")

        problems = [p for watched in (first, copy, phone, desk) for p in watched.problems]
        assert problems == []
    finally:
        for made in contexts:
            made.close()
