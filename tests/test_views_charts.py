"""Figures and charts on the dashboard: the metric page's tiles and chart periods, the device
page's small charts, the home page's figures per type, the type pages with their data sources;
and the JSON routes the charts read (/metrics/<id>/calculations, /figures/<type>/calculations),
which answer what GET /api/v1/quantity-sample-calculations answers for the same parameters."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from bioweb.extensions import db
from bioweb.models import User, utcnow
from bioweb.services import calculations, metrics, samples, sources
from bioweb.views import charts
from tests.helpers import bearer, log_in_with_csrf, make_device, make_pat, make_user

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def set_zone(user: User, zone: str) -> None:
    user.time_zone = zone
    db.session.commit()


def hourly(
    user: User, metric_id: int, hours: int, value=lambda h: 60.0 + h % 9, skip=lambda h: False
) -> None:
    """A sample at each of the last `hours` whole UTC hours (the newest an hour ago)."""
    top = utcnow().replace(minute=0, second=0, microsecond=0)
    items = [
        {
            "metric_id": metric_id,
            "start_date": top - timedelta(hours=h),
            "end_date": top - timedelta(hours=h),
            "quantity": value(h),
        }
        for h in range(1, hours + 1)
        if not skip(h)
    ]
    result = samples.submit_batch(user, items)
    assert result.rejected == []


def data_urls(html: str, attribute: str = "data-url") -> list[str]:
    return [url.replace("&amp;", "&") for url in re.findall(rf'{attribute}="([^"]+)"', html)]


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def figure_values(html: str) -> dict[str, float | None]:
    """data-figure name -> the exact value of its tile (None for an empty one)."""
    found: dict[str, float | None] = {}
    for name, body in re.findall(r'data-figure="(\w+)">(.*?)</div>', html, re.S):
        match = re.search(r'<data value="([^"]+)">', body)
        found[name] = float(match.group(1)) if match else None
    return found


@pytest.fixture
def heart(user):
    device, _ = make_device(user, "Watch6,1")
    return metrics.create_metric(user, device.id, "heartRate", "count/min")


# --- The JSON routes ------------------------------------------------------------------------------


def test_metric_route_answers_what_the_api_answers(web, user, pat, heart):
    hourly(user, heart.id, 80)
    set_zone(user, "America/New_York")
    now = utcnow()
    base = {
        "start_gte": (now - timedelta(days=4)).isoformat(),
        "finish_lte": now.isoformat(),
    }
    for extra in (
        {"function": "1", "frequency": "1"},
        {"function": "sum", "frequency": "hour"},
        {"function": "6", "frequency": "2", "time_zone": "Asia/Kolkata"},
        {"function": "3", "frequency": "3", "time_zone": "Europe/Berlin"},
    ):
        params = {**base, **extra}
        ours = web.get(f"/metrics/{heart.id}/calculations", query_string=params)
        api = web.get(
            "/api/v1/quantity-sample-calculations",
            query_string={**params, "metric_id": heart.id},
            headers=bearer(pat),
        )
        assert ours.status_code == api.status_code == 200, ours.text
        assert ours.json == api.json
        assert ours.mimetype == "application/json"
        assert ours.headers["Cache-Control"] == "private, no-store"
    # Without time_zone, the person's own (America/New_York), as the API.
    answer = web.get(
        f"/metrics/{heart.id}/calculations", query_string={**base, "function": 1, "frequency": 1}
    )
    assert answer.json["time_zone"] == "America/New_York"
    assert answer.json["results"][0]["start"].endswith(("-05:00", "-04:00"))


def test_type_route_answers_what_the_api_answers(web, user, pat, heart):
    other_device, _ = make_device(user, "iPhone14,2")
    phone = metrics.create_metric(user, other_device.id, "heartRate", "count/min")
    hourly(user, heart.id, 30)
    hourly(user, phone.id, 30, value=lambda h: 90.0)
    steps_watch = metrics.create_metric(user, heart.device_id, "stepCount", "count")
    steps_phone = metrics.create_metric(user, other_device.id, "stepCount", "count")
    hourly(user, steps_watch.id, 30, value=lambda h: 100.0)
    hourly(user, steps_phone.id, 30, value=lambda h: 300.0)
    now = utcnow()
    for sample_type, function in (
        ("heartRate", "1"),
        ("stepCount", "2"),
        ("HKQuantityTypeIdentifierStepCount", "5"),
    ):
        params = {
            "function": function,
            "frequency": "1",
            "start_gte": (now - timedelta(days=3)).isoformat(),
            "finish_lte": now.isoformat(),
        }
        ours = web.get(f"/figures/{sample_type}/calculations", query_string=params)
        api = web.get(
            "/api/v1/quantity-sample-calculations",
            query_string={**params, "sample_type": sample_type},
            headers=bearer(pat),
        )
        assert ours.status_code == api.status_code == 200, ours.text
        assert ours.json == api.json
        assert ours.json["metric_id"] is None and len(ours.json["metric_ids"]) == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"function": "9", "frequency": "1"}, "function"),
        ({"function": "1", "frequency": "fortnight"}, "frequency"),
        ({"function": "1", "frequency": "1", "start_gte": ""}, "start_gte"),
        ({"function": "1", "frequency": "1", "finish_lte": "yesterday"}, "finish_lte"),
        ({"function": "1", "frequency": "1", "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"function": "1", "frequency": "5", "start_gte": "2000-01-01T00:00:00Z"}, "finish_lte"),
        ({"function": "1", "frequency": "1", "metric_id": "1"}, "metric_id"),
        ({"function": "1", "frequency": "1", "sample_type": "heartRate"}, "sample_type"),
        ({"function": "1", "frequency": "1", "colour": "red"}, "colour"),
    ],
)
def test_bad_parameters_are_a_400_in_json(web, heart, params, field):
    now = utcnow()
    query = {"start_gte": (now - timedelta(days=1)).isoformat(), "finish_lte": now.isoformat(), **params}
    for url in (f"/metrics/{heart.id}/calculations", "/figures/heartRate/calculations"):
        response = web.get(url, query_string=query)
        assert response.status_code == 400, (url, response.text)
        assert response.mimetype == "application/json"
        assert response.json["error"] == "invalid_request"
        assert field in response.json["fields"], response.json


def test_another_persons_metric_or_an_unrecorded_type_is_a_404_in_json(web, user):
    other = make_user("grace@example.com")
    device, _ = make_device(other)
    theirs = metrics.create_metric(other, device.id, "heartRate", "count/min")
    hourly(other, theirs.id, 5)
    now = utcnow()
    query = {
        "function": 1,
        "frequency": 1,
        "start_gte": (now - timedelta(days=1)).isoformat(),
        "finish_lte": now.isoformat(),
    }
    for url in (
        f"/metrics/{theirs.id}/calculations",
        "/metrics/999999/calculations",
        "/figures/heartRate/calculations",
    ):
        response = web.get(url, query_string=query)
        assert response.status_code == 404, url
        assert response.json["error"] == "not_found"
        assert "results" not in response.json
    assert web.get("/figures/heartRate").status_code == 404
    assert web.get("/figures/notAType").status_code == 404


def test_the_json_routes_need_a_session_and_say_so_in_json(client, user, heart):
    for url in (f"/metrics/{heart.id}/calculations?function=1", "/figures/heartRate/calculations?function=1"):
        response = client.get(url)
        assert response.status_code == 401
        assert response.json["error"] == "login_required"
    # The pages themselves still send people to the login page.
    assert client.get(f"/metrics/{heart.id}").status_code == 302
    assert client.get("/figures/heartRate").headers["Location"].startswith("/login")


# --- Chart periods ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "key", "start", "finish_day", "buckets"),
    [
        # A Wednesday afternoon in summer: the last 24 hours end with the current local hour.
        (datetime(2024, 7, 3, 14, 20, tzinfo=UTC), "day", "2024-07-02T17:00:00+02:00", "2024-07-03", 24),
        (datetime(2024, 7, 3, 14, 20, tzinfo=UTC), "week", "2024-06-27T00:00:00+02:00", "2024-07-03", 7),
        (datetime(2024, 7, 3, 14, 20, tzinfo=UTC), "month", "2024-06-04T00:00:00+02:00", "2024-07-03", 30),
        (datetime(2024, 7, 3, 14, 20, tzinfo=UTC), "year", "2023-08-01T00:00:00+02:00", "2024-07-31", 12),
        # The week holding the spring change (31 March 2024: a 23-hour day) and 23:30 UTC,
        # already the next local day in Berlin.
        (datetime(2024, 4, 2, 23, 30, tzinfo=UTC), "week", "2024-03-28T00:00:00+01:00", "2024-04-03", 7),
        (datetime(2024, 3, 31, 12, 0, tzinfo=UTC), "day", "2024-03-30T14:00:00+01:00", "2024-03-31", 24),
        # January: the year reaches back into the previous one.
        (datetime(2024, 1, 15, 9, 0, tzinfo=UTC), "year", "2023-02-01T00:00:00+01:00", "2024-01-31", 12),
    ],
)
def test_period_ranges_are_whole_local_buckets_ending_with_now(now, key, start, finish_day, buckets):
    low, high = charts.period_range(key, BERLIN, now)
    assert low.astimezone(BERLIN).isoformat() == start
    local_finish = high.astimezone(BERLIN)
    assert local_finish.date().isoformat() == finish_day
    assert (local_finish.minute, local_finish.second, local_finish.microsecond) == (59, 59, 999999)
    frequency = next(p.frequency for p in charts.PERIODS if p.key == key)
    bounds = calculations.bucket_bounds(frequency, BERLIN, low, high)
    assert len(bounds) - 1 == buckets
    assert bounds[0] == low and bounds[-1] == high + timedelta(microseconds=1)  # no partial bucket


# --- The metric page ------------------------------------------------------------------------------


def test_metric_page_tiles_show_the_figures_and_periods_link_whole_buckets(web, user, pat, heart):
    set_zone(user, "Pacific/Auckland")
    hourly(user, heart.id, 24 * 10, skip=lambda h: 40 < h <= 90)  # two days: a whole local one
    html = web.get(f"/metrics/{heart.id}").text
    api = web.get(f"/api/v1/metric/{heart.id}", headers=bearer(pat)).json
    tiles = figure_values(html)
    assert set(tiles) == {"latest_value", *(f"avg_{p}" for p in calculations.PERIODS)}
    for name in calculations.PERIODS:
        assert tiles[f"avg_{name}"] == api[f"avg_{name}"], name
    assert tiles["latest_value"] == api["latest_value"]
    assert "Pacific/Auckland" in html and "average</span>" in html and "total</span>" not in html
    assert "Test data" not in html
    # The chart: period buttons with ready-made URLs, week pressed; line for a discrete type.
    assert 'data-kind="line"' in html
    buttons = re.findall(
        r'<button type="button" class="period-button" aria-pressed="(\w+)"\s+data-period="(\w+)"', html
    )
    assert buttons == [("false", "day"), ("true", "week"), ("false", "month"), ("false", "year")]
    expected = {"day": (5, 24), "week": (1, 7), "month": (1, 30), "year": (3, 12)}
    for url, (key, (frequency, count)) in zip(data_urls(html), expected.items(), strict=True):
        query = query_of(url)
        assert query["function"] == "1" and query["frequency"] == str(frequency), key
        assert query["time_zone"] == "Pacific/Auckland"
        assert query["start_gte"].endswith(("+12:00", "+13:00"))
        answer = web.get(url)
        assert answer.status_code == 200, answer.text
        assert len(answer.json["results"]) == count, key
        assert not any(bucket["partial"] for bucket in answer.json["results"]), key
    week = web.get(data_urls(html)[1]).json["results"]
    assert [b["value"] is None for b in week].count(True) >= 1  # the empty day is a gap
    assert '<script src="/static/vendor/uplot/uPlot.iife.min.js" defer></script>' in html
    assert '<script src="/static/js/charts.js" defer></script>' in html


def test_cumulative_metric_page_shows_totals_as_bars_and_test_data_badged(web, user):
    device, _ = make_device(user, "iPhone14,2", is_test_mode=True)
    steps = metrics.create_metric(user, device.id, "stepCount", "count")
    hourly(user, steps.id, 30, value=lambda h: 250.0)
    html = web.get(f"/metrics/{steps.id}").text
    assert 'data-kind="bars"' in html and "total</span>" in html and "average</span>" not in html
    assert "Test data" in html
    assert all(query_of(url)["function"] == "2" for url in data_urls(html))
    tiles = figure_values(html)
    assert tiles["avg_this_year"] is not None and tiles["avg_this_year"] % 250 == 0


# --- The device page ------------------------------------------------------------------------------


def test_device_page_has_a_small_chart_of_the_last_7_days_per_metric(web, user, heart):
    steps = metrics.create_metric(user, heart.device_id, "stepCount", "count")
    hourly(user, heart.id, 50)
    html = web.get(f"/devices/{heart.device_id}").text
    assert '<th scope="col">Last 7 days</th>' in html
    sparks = re.findall(r'<span class="sparkline" data-sparkline data-url="([^"]+)" data-kind="(\w+)"', html)
    assert [kind for _, kind in sparks] == ["line", "bars"]
    for (url, _), metric in zip(sparks, (heart, steps), strict=True):
        url = url.replace("&amp;", "&")
        assert url.startswith(f"/metrics/{metric.id}/calculations?")
        answer = web.get(url).json
        assert answer["frequency"] == 1 and len(answer["results"]) == 7
    assert "vendor/uplot/uPlot.iife.min.js" in html


def test_device_page_without_metrics_loads_no_chart_code(web, user):
    device, _ = make_device(user)
    assert "charts.js" not in web.get(f"/devices/{device.id}").text


# --- Home and the type pages ----------------------------------------------------------------------


def test_home_shows_the_persons_figures_per_type_from_live_devices(web, user, heart):
    test_device, _ = make_device(user, "iPhone14,2", is_test_mode=True)
    only_test = metrics.create_metric(user, test_device.id, "bodyMass", "kg")
    hourly(user, only_test.id, 5, value=lambda h: 70.0)
    hourly(user, heart.id, 20)
    html = web.get("/").text
    assert "<h1>Your figures</h1>" in html and "Connect your devices" not in html
    assert 'href="/figures/heartRate"' in html and "Heart rate" in html
    assert "/figures/bodyMass" not in html  # test-mode data never count
    tiles = figure_values(html)
    person = calculations.person_figures(user)[0].figures
    assert tiles["avg_today"] == person.avg_today and tiles["avg_this_month"] == person.avg_this_month


def test_home_without_figures_points_to_the_devices(web):
    html = web.get("/").text
    assert "No figures yet" in html and 'href="/devices"' in html


def test_home_for_visitors_is_the_landing_page(client):
    html = client.get("/").text
    assert "Connect your devices" in html and "Your figures" not in html


def test_type_page_shows_figures_chart_and_sources_in_order(web, user, heart):
    phone, _ = make_device(user, "iPhone14,2")
    tester, _ = make_device(user, "iPhone12,1", is_test_mode=True)
    phone_steps = metrics.create_metric(user, phone.id, "stepCount", "count")
    metrics.create_metric(user, tester.id, "stepCount", "count")
    watch_steps = metrics.create_metric(user, heart.device_id, "stepCount", "count")
    hourly(user, watch_steps.id, 10, value=lambda h: 100.0)
    html = web.get("/figures/stepCount").text
    assert "<h1>Step count</h1>" in html and "total</span>" in html
    assert "only the higher one in this list counts" in html
    urls = data_urls(html)
    assert len(urls) == 4 and all(u.startswith("/figures/stepCount/calculations?") for u in urls)
    assert all(query_of(u)["quantity_type"] == "count" for u in urls)
    assert web.get(urls[1]).json["metric_ids"] == [phone_steps.id, watch_steps.id]  # not the test device's
    listed = re.findall(
        r'<li class="source( source-test)?">\s*<div class="source-name">\s*<a href="/devices/(\d+)"', html
    )
    assert [int(device_id) for _, device_id in listed] == [heart.device_id, phone.id, tester.id]
    assert [bool(test) for test, _ in listed] == [False, False, True]
    assert "Test device: never counted" in html
    # The long form of a type goes to the short one.
    moved = web.get("/figures/HKQuantityTypeIdentifierStepCount")
    assert moved.status_code == 301 and moved.headers["Location"] == "/figures/stepCount"


def test_moving_a_source_changes_the_order(csrf_client, user, heart):
    phone, _ = make_device(user, "iPhone14,2")
    metrics.create_metric(user, phone.id, "heartRate", "count/min")
    log_in_with_csrf(csrf_client)
    page = csrf_client.get("/figures/heartRate").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    order = lambda: [s.device_id for s in sources.sources(user, "heartRate")]  # noqa: E731
    assert order() == [heart.device_id, phone.id]

    response = csrf_client.post(f"/figures/heartRate/sources/{phone.id}/up", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/figures/heartRate#sources"
    assert order() == [phone.id, heart.device_id]
    page = csrf_client.get("/figures/heartRate").text
    assert "moved up" in page
    assert [int(d) for d in re.findall(r'<div class="source-name">\s*<a href="/devices/(\d+)"', page)] == [
        phone.id,
        heart.device_id,
    ]
    # The first one's "Move up" and the last one's "Move down" are disabled.
    assert page.count(" disabled>") == 2

    response = csrf_client.post(f"/figures/heartRate/sources/{phone.id}/down", data={"csrf_token": token})
    assert response.status_code == 303 and order() == [heart.device_id, phone.id]

    # Without the CSRF token nothing moves; another person's device, a bad direction: 404.
    refused = csrf_client.post(f"/figures/heartRate/sources/{phone.id}/up")
    assert refused.status_code == 400 and order() == [heart.device_id, phone.id]
    other = make_user("grace@example.com")
    theirs, _ = make_device(other)
    metrics.create_metric(other, theirs.id, "heartRate", "count/min")
    for url in (
        f"/figures/heartRate/sources/{theirs.id}/up",
        f"/figures/heartRate/sources/{phone.id}/sideways",
        f"/figures/noSuchType/sources/{phone.id}/up",
    ):
        assert csrf_client.post(url, data={"csrf_token": token}).status_code == 404, url
    assert order() == [heart.device_id, phone.id]


def test_moving_needs_a_login(client, user, heart):
    response = client.post(f"/figures/heartRate/sources/{heart.device_id}/down")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_the_json_routes_take_no_api_token(client, user, heart):
    # A bearer token is no session: the dashboard's JSON routes are the API's only for the API's callers.
    response = client.get(f"/metrics/{heart.id}/calculations?function=1", headers=bearer(make_pat(user)))
    assert response.status_code == 401
