"""The API reference (/api/docs, Swagger UI from static/vendor/swagger-ui) in real headless
Chromium against a gunicorn process: it renders every operation of the OpenAPI document with
examples under the site's CSP without one console error or CSP violation; "Authorize" with a
personal access token and "Try it out" list the account's devices, with a curl line; at phone
width (390 px) nothing is wider than the screen. The home page and the dashboard's top bar
link to it. Screenshots at desktop and phone size land in tests/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.helpers import PASSWORD, SCREENSHOTS, make_device, make_pat, make_user

pytestmark = [pytest.mark.browser, pytest.mark.server]

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
METHODS = {"get", "post", "put", "patch", "delete"}
# CSP violations as the page sees them (securitypolicyviolation events), besides the console.
RECORD_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline")));
"""


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the page does not depend on the database, so one backend is enough."""
    return f"sqlite:///{tmp_path / 'bioweb.db'}"


class Watched:
    """A page and the problems it reports: console errors, page errors, failed requests."""

    def __init__(self, page: Page):
        self.page = page
        self.problems: list[str] = []
        page.add_init_script(RECORD_CSP)
        page.on(
            "console", lambda m: self.problems.append(f"console: {m.text}") if m.type == "error" else None
        )
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on(
            "response",
            lambda r: self.problems.append(f"{r.status} for {r.url}") if r.status >= 400 else None,
        )

    def csp_violations(self) -> list[str]:
        return self.page.evaluate("window.__csp")

    def snap(self, name: str) -> None:
        """The viewport at desktop size and the whole page at phone width."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"docs-{name}.png")
        self.page.set_viewport_size(PHONE)
        self.page.screenshot(path=SCREENSHOTS / f"docs-{name}-phone.png", full_page=True)
        self.page.set_viewport_size(DESKTOP)


def operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method, path) for path, item in spec["paths"].items() for method in item if method in METHODS]


def opblock(page: Page, method: str, path: str):
    """The operation's block: Swagger UI gives it the id operations-<tag>-<operationId>."""
    return page.locator(f".opblock-{method}").filter(
        has=page.locator(".opblock-summary-path", has_text=re.compile(f"^{re.escape(path)}$"))
    )


def test_reference_page_renders_tries_and_fits_a_phone(live_server: str, browser: Browser) -> None:
    user = make_user()
    pat = make_pat(user)
    make_device(user, "Watch6,1")
    spec = requests.get(f"{live_server}/api/v1/openapi.json", timeout=10).json()

    context = browser.new_context(viewport=DESKTOP, base_url=live_server)
    watched = Watched(context.new_page())
    page = watched.page
    response = page.goto("/api/docs")
    assert response is not None and response.ok
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp

    # Every operation of the document is on the page, each under its tag, and the loading note is gone.
    expect(page.locator(".opblock")).to_have_count(len(operations(spec)))
    expect(page.locator("#docs-status")).to_be_hidden()
    expect(page.locator(".info .title")).to_contain_text("bioweb")
    watched.snap("01-reference")

    # An operation opens on its description, parameters and an example answer (the document's,
    # not one made up from types); the list's items are devices (the old page showed them as []).
    listing = opblock(page, "get", "/api/v1/devices")
    listing.locator(".opblock-summary").first.click()
    expect(listing.locator(".parameters")).to_contain_text("sort_field")
    success = listing.locator(".responses-table tr.response").first
    expect(success.locator(".response-col_status")).to_have_text("200")
    expect(success.locator(".example")).to_contain_text('"product_name": "Apple Watch Series 6"')
    success.get_by_role("tab", name="Schema").click()
    expect(success.locator(".model-box")).to_contain_text("DeviceList")
    expect(success.locator(".model-box")).to_contain_text("array<object>")
    success.locator(".model-box").get_by_role("button", name="Items").first.click()
    expect(success.locator(".model-box")).to_contain_text("product_name")

    # Authorize with a personal access token, then try the call: 200 and the account's device.
    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".dialog-ux")
    bearer_box = dialog.locator(".auth-container").filter(has_text="bearer")
    bearer_box.locator("input").fill(pat)
    bearer_box.get_by_role("button", name="Apply credentials").click()
    expect(bearer_box).to_contain_text("Authorized")
    bearer_box.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    listing.get_by_role("button", name="Try it out").click()
    listing.get_by_role("button", name="Execute").click()
    live = listing.locator(".live-responses-table")
    expect(live.locator("tr.response .response-col_status")).to_have_text("200")
    expect(live).to_contain_text('"code": "Watch6,1"')
    curl = listing.locator(".curl-command pre.curl")
    expect(curl).to_contain_text("curl -X 'GET'")
    expect(curl).to_contain_text(f"'{live_server}/api/v1/devices?")
    expect(curl).to_contain_text("Authorization: Bearer bcp_")
    live.scroll_into_view_if_needed()
    watched.snap("02-tried")

    # At phone width nothing is wider than the screen (the old page overflowed it).
    page.set_viewport_size(PHONE)
    page.goto("/api/docs")
    expect(page.locator(".opblock")).to_have_count(len(operations(spec)))
    creating = opblock(page, "post", "/api/v1/devices")
    creating.locator(".opblock-summary").first.click()
    expect(creating.locator(".opblock-body")).to_contain_text('"device_code": "Watch6,1"')
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide at {PHONE['width']} px"
    page.screenshot(path=SCREENSHOTS / "docs-03-operation-phone.png", full_page=True)
    page.emulate_media(color_scheme="dark")
    expect(page.locator("html")).to_have_class(re.compile("dark-mode"))  # docs.js follows the scheme
    page.wait_for_timeout(400)  # Swagger UI's colour transitions
    page.screenshot(path=SCREENSHOTS / "docs-04-dark-phone.png")
    page.emulate_media(color_scheme="light")

    assert watched.csp_violations() == []
    assert watched.problems == []
    context.close()


def test_home_page_and_top_bar_link_to_the_reference(live_server: str, browser: Browser) -> None:
    make_user()
    context = browser.new_context(viewport=PHONE, base_url=live_server)
    watched = Watched(context.new_page())
    page = watched.page
    page.goto("/")
    page.locator(".hero").get_by_role("link", name="API reference").click()
    expect(page).to_have_url(f"{live_server}/api/docs")
    page.goto("/login")
    header = page.locator(".site-header")
    expect(header.get_by_role("link", name="API docs", exact=True)).to_be_visible()
    page.get_by_label("Email address").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).not_to_have_url(f"{live_server}/login")
    # Signed in, at 390 px: the dashboard's four links keep their one row under the brand; the
    # developers' two (Applications, the reference), last, may wrap below them; nothing is wider
    # than the screen.
    links = header.locator(".site-nav > a")
    expect(links).to_have_text(["Figures", "Devices", "API tokens", "Account", "Applications", "API docs"])
    tops = {round(box["y"]) for box in (links.nth(i).bounding_box() for i in range(4)) if box}
    assert len(tops) == 1, f"the nav's first four links wrap at {PHONE['width']} px: rows at {sorted(tops)}"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    header.screenshot(path=SCREENSHOTS / "docs-05-top-bar-phone.png")
    header.get_by_role("link", name="API docs", exact=True).click()
    expect(page).to_have_url(f"{live_server}/api/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    assert watched.csp_violations() == []
    assert watched.problems == []
    context.close()
