"""Figures and charts in real headless Chromium against a gunicorn process: a week of hourly
heart rate (one local day left empty) on a watch in Europe/Berlin; the metric page's tiles
equal the API's figures, its chart draws 24 hourly and 7 daily points (the empty day a gap),
resizes to a phone, and has its text alternative; the device page's small charts, the home
page's figures and the type page's data sources, reordered with its buttons. No console
errors (a CSP refusal would be one). Screenshots at desktop and phone size land in
tests/screenshots/ beside test_browser.py's."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, time, timedelta

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from bioweb.extensions import db
from bioweb.services import metrics, samples, sources
from tests.helpers import PASSWORD, SCREENSHOTS, bearer, make_device, make_pat, make_user

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ZONE = "Europe/Berlin"
EMPTY_DAY = 3  # days before today without a sample


class Watched:
    """A page and the problems it reports: console errors (CSP refusals among them), page
    errors, failed requests."""

    def __init__(self, page: Page, label: str):
        self.page = page
        self.label = label
        self.problems: list[str] = []
        page.on(
            "console", lambda m: self.problems.append(f"console: {m.text}") if m.type == "error" else None
        )
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on(
            "response",
            lambda r: self.problems.append(f"{r.status} for {r.url}") if r.status >= 400 else None,
        )

    def shot(self, path: str) -> None:
        """The page from its top, at most 2,000 px of it (the samples below the charts run on)."""
        size = self.page.viewport_size or DESKTOP
        height = min(self.page.evaluate("document.documentElement.scrollHeight"), 2000)
        clip = {"x": 0, "y": 0, "width": size["width"], "height": height}
        self.page.screenshot(path=SCREENSHOTS / path, full_page=True, clip=clip)

    def snap(self, name: str, wait_for: str | None = None) -> None:
        """Screenshots at desktop and phone size (charts redrawn at each width)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.shot(f"charts-{self.label}-{name}.png")
        self.page.set_viewport_size(PHONE)
        if wait_for:
            self.page.wait_for_function(wait_for)
        self.shot(f"charts-{self.label}-{name}-phone.png")
        self.page.set_viewport_size(DESKTOP)
        if wait_for:
            self.page.wait_for_function(wait_for.replace("<= 390", "> 600"))


def seed_week(user, metric_id: int, now: datetime) -> int:
    """Hourly samples at every local hour of the last 7 local days up to now, but for the day
    EMPTY_DAY days ago. Returns how many."""
    zone = zoneinfo.ZoneInfo(ZONE)
    today = now.astimezone(zone).date()
    items = []
    for back in range(7):
        if back == EMPTY_DAY:
            continue
        day = today - timedelta(days=back)
        moment = datetime.combine(day, time(), zone).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
        while moment < end and moment <= now:
            items.append(
                {
                    "metric_id": metric_id,
                    "start_date": moment,
                    "end_date": moment,
                    "quantity": 55.0 + (moment.hour * 7 + back * 3) % 40,
                }
            )
            moment += timedelta(hours=1)
    result = samples.submit_batch(user, items)
    assert result.rejected == [] and result.accepted == len(items)
    return len(items)


def chart_state(page: Page) -> dict:
    return page.evaluate(
        """() => {
            const figure = document.querySelector('[data-chart]');
            const u = figure.uplot;
            return {
                state: figure.dataset.state,
                period: figure.dataset.period,
                points: Number(figure.dataset.points),
                values: Number(figure.dataset.values),
                xs: u.data[0].length,
                nulls: u.data[1].filter(v => v === null).length,
                width: u.width,
                rows: figure.querySelectorAll('.chart-table tbody tr').length,
            };
        }"""
    )


def choose(page: Page, period: str) -> dict:
    button = page.locator(".chart-controls").get_by_role("button", name=period.capitalize(), exact=True)
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")
    page.wait_for_function(
        f"() => {{ const f = document.querySelector('[data-chart]');"
        f" return f.dataset.state === 'drawn' && f.dataset.period === '{period}'; }}"
    )
    return chart_state(page)


def test_metric_charts_and_figures(live_server: str, browser: Browser, database_url: str) -> None:
    label = "sqlite" if database_url.startswith("sqlite") else "pg"
    user = make_user("grace@example.com")
    user.time_zone = ZONE
    db.session.commit()
    watch, _ = make_device(user, "Watch6,1")
    phone, _ = make_device(user, "iPhone14,2")
    tester, _ = make_device(user, "iPhone12,1", is_test_mode=True)
    heart = metrics.create_metric(user, watch.id, "heartRate", "count/min", name="Resting heart")
    metrics.create_metric(user, phone.id, "heartRate", "count/min")
    trial = metrics.create_metric(user, tester.id, "heartRate", "count/min")
    steps = metrics.create_metric(user, watch.id, "stepCount", "count")
    now = datetime.now(UTC)
    seed_week(user, heart.id, now)
    samples.submit_batch(
        user,
        [
            {
                "metric_id": steps.id,
                "start_date": now - timedelta(hours=h + 1),
                "end_date": now - timedelta(hours=h),
                "quantity": 400.0 + 50 * h,
            }
            for h in range(0, 24 * 6, 5)
        ],
    )
    samples.submit_batch(
        user,
        [
            {
                "metric_id": trial.id,
                "start_date": now - timedelta(hours=h),
                "end_date": now - timedelta(hours=h),
                "quantity": 80.0 + h % 40,
            }
            for h in range(0, 24 * 7, 3)
        ],
    )
    pat = make_pat(user)

    context = browser.new_context(viewport=DESKTOP, base_url=live_server)
    watched = Watched(context.new_page(), label)
    page = watched.page
    page.goto("/login")
    page.get_by_label("Email address").fill("grace@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).not_to_have_url(f"{live_server}/login")

    # The metric page: tiles equal the API's figures.
    response = page.goto(f"/metrics/{heart.id}")
    assert response is not None and response.ok
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    api = requests.get(f"{live_server}/api/v1/metric/{heart.id}", headers=bearer(pat), timeout=10).json()
    tiles = page.locator("#figures [data-figure]")
    expect(tiles).to_have_count(9)
    for index in range(9):
        tile = tiles.nth(index)
        name = tile.get_attribute("data-figure")
        exact = tile.locator("data")
        shown = float(exact.get_attribute("value")) if exact.count() else None
        assert shown == api[name], (name, shown, api[name])
    assert api["avg_today"] is not None and api["time_zone"] == ZONE
    expect(page.locator(".figures-section")).to_contain_text(ZONE)

    # The chart: week at first; day draws 24 hourly points, week 7 daily ones with one gap.
    page.wait_for_function("() => document.querySelector('[data-chart]').dataset.state === 'drawn'")
    first = chart_state(page)
    assert first["period"] == "week" and first["points"] == 7
    day = choose(page, "day")
    assert day["points"] == day["xs"] == day["rows"] == 24, day
    assert day["values"] == 24 and day["nulls"] == 0, day
    week = choose(page, "week")
    assert week["points"] == week["xs"] == week["rows"] == 7, week
    assert week["values"] == 6 and week["nulls"] == 1, week
    expect(page.locator(".chart-caption")).to_contain_text("6 of 7 days with samples")
    pressed = page.locator(".chart-controls button[aria-pressed='true']")
    expect(pressed).to_have_count(1)
    expect(pressed).to_have_text("Week")
    # The text alternative names the empty day.
    empty_row = page.locator(".chart-table tbody tr").nth(6 - EMPTY_DAY)
    expect(empty_row.locator("td").first).to_have_text("no data")
    expect(empty_row.locator("td").nth(1)).to_have_text("0")
    month = choose(page, "month")
    assert month["points"] == 30 and month["values"] == 6, month
    year = choose(page, "year")
    assert year["points"] == 12 and year["values"] in (1, 2), year
    choose(page, "week")
    watched.snap("01-metric-week", wait_for="() => document.querySelector('[data-chart]').uplot.width <= 390")

    # On a phone the chart fits the screen.
    page.set_viewport_size(PHONE)
    page.wait_for_function("() => document.querySelector('[data-chart]').uplot.width <= 390")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size(DESKTOP)
    choose(page, "month")
    watched.snap(
        "02-metric-month", wait_for="() => document.querySelector('[data-chart]').uplot.width <= 390"
    )
    choose(page, "day")
    watched.snap("02-metric-day", wait_for="() => document.querySelector('[data-chart]').uplot.width <= 390")

    # Steps: bars of daily totals.
    page.goto(f"/metrics/{steps.id}")
    page.wait_for_function("() => document.querySelector('[data-chart]').dataset.state === 'drawn'")
    expect(page.locator("#figures")).to_contain_text("total")
    watched.snap("03-steps-week", wait_for="() => document.querySelector('[data-chart]').uplot.width <= 390")

    # A test-mode device's metric: its data badged as test data.
    page.goto(f"/metrics/{trial.id}")
    page.wait_for_function("() => document.querySelector('[data-chart]').dataset.state === 'drawn'")
    expect(page.locator(".chart-controls .badge-test")).to_have_text("Test data")
    expect(page.locator(".figures-section .badge-test")).to_have_text("Test data")
    watched.snap("03-test-device", wait_for="() => document.querySelector('[data-chart]').uplot.width <= 390")

    # The device page: a small chart of the last 7 days per metric.
    page.goto(f"/devices/{watch.id}")
    sparks = page.locator("[data-sparkline]")
    expect(sparks).to_have_count(2)
    for index in range(2):
        expect(sparks.nth(index)).to_have_attribute("data-state", "drawn")
        expect(sparks.nth(index)).to_have_attribute("data-points", "7")
    expect(sparks.first).to_have_attribute("data-values", "6")
    assert "no samples" not in (sparks.first.get_attribute("aria-label") or "")
    watched.snap("04-device")

    # Home: the person's figures per type; the heart rate page with its data sources.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Figures").click()
    expect(page).to_have_url(f"{live_server}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your figures")
    expect(page.locator(".site-nav a[aria-current='page']")).to_have_text("Figures")
    expect(page.locator(".type-card")).to_have_count(2)
    watched.snap("05-home")
    page.get_by_role("link", name="Heart rate", exact=True).click()
    expect(page).to_have_url(f"{live_server}/figures/heartRate")
    page.wait_for_function("() => document.querySelector('[data-chart]').dataset.state === 'drawn'")
    names = page.locator(".sources .source-name a")
    expect(names).to_have_count(3)
    order = [s.device_id for s in sources.sources(user, "heartRate")]
    assert order == [watch.id, phone.id, tester.id]
    page.get_by_role("button", name="Move down Apple Watch").click()
    expect(page.locator(".flash")).to_contain_text("moved down")
    assert [s.device_id for s in sources.sources(user, "heartRate")] == [phone.id, watch.id, tester.id]
    expect(names.first).to_contain_text("iPhone")
    expect(page.locator(".source-test")).to_contain_text("never counted")
    page.wait_for_function("() => document.querySelector('[data-chart]').dataset.state === 'drawn'")
    watched.snap(
        "06-figures-heart", wait_for="() => document.querySelector('[data-chart]').uplot.width <= 390"
    )
    page.emulate_media(color_scheme="dark")
    page.reload()
    page.wait_for_function("() => document.querySelector('[data-chart]').dataset.state === 'drawn'")
    watched.snap(
        "07-figures-heart-dark", wait_for="() => document.querySelector('[data-chart]').uplot.width <= 390"
    )

    assert watched.problems == []
    context.close()
