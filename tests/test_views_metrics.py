"""Metrics on the dashboard: the device page lists a device's metrics (type, unit, latest value
and time, samples of the last 24 hours); a metric's page lists its samples newest first, 50 a
page, with keyset paging; another user's metric is a 404, and the pages need a login."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import unquote

import pytest

from bioweb.errors import NotFound
from bioweb.models import utcnow
from bioweb.services import metrics, samples
from tests.helpers import bearer, make_device, make_user


def add_samples(user, metric_id: int, starts, **extra) -> None:
    """Store one sample per start time (a minute long), values 1, 2, 3, ... in `starts` order."""
    items = [
        {
            "metric_id": metric_id,
            "start_date": start,
            "end_date": start + timedelta(minutes=1),
            "quantity": float(index + 1),
            **extra,
        }
        for index, start in enumerate(starts)
    ]
    result = samples.submit_batch(user, items)
    assert result.rejected == [] and result.accepted == len(items)


def sample_values(html: str) -> list[str]:
    """The values of the samples table, top to bottom."""
    table = html.split('class="devices sample-list"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<td data-label="Value" class="num"><data value="([^"]+)">', table)


def older_link(html: str) -> str | None:
    match = re.search(r'href="([^"]+)" rel="next">Older', html)
    return unquote(match.group(1)).replace("&amp;", "&") if match else None


# --- Logins and ownership -------------------------------------------------------------------------


def test_metric_page_needs_a_login(client, user):
    device, _ = make_device(user)
    metric = metrics.create_metric(user, device.id, "heartRate", "count/min")
    response = client.get(f"/metrics/{metric.id}")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next=%2Fmetrics%2F{metric.id}"


def test_another_users_metric_is_not_found(web, user):
    other = make_user("grace@example.com")
    device, _ = make_device(other)
    theirs = metrics.create_metric(other, device.id, "heartRate", "count/min")
    add_samples(other, theirs.id, [utcnow() - timedelta(minutes=5)])
    page = web.get(f"/metrics/{theirs.id}")
    assert page.status_code == 404 and "Page not found" in page.text
    assert "count/min" not in page.text
    assert web.get("/metrics/999999").status_code == 404
    assert web.get("/metrics/0").status_code == 404
    assert web.get(f"/devices/{device.id}").status_code == 404


def test_services_refuse_another_users_device_and_metric(app, user):
    other = make_user("grace@example.com")
    device, _ = make_device(other)
    theirs = metrics.create_metric(other, device.id, "stepCount", "count")
    with pytest.raises(NotFound):
        metrics.device_metrics(user, device.id)
    with pytest.raises(NotFound):
        metrics.metric_overview(user, theirs.id)
    assert [o.metric.id for o in metrics.device_metrics(other, device.id)] == [theirs.id]


def test_a_cursor_not_made_here_is_a_400(web, user):
    device, _ = make_device(user)
    metric = metrics.create_metric(user, device.id, "heartRate", "count/min")
    assert web.get(f"/metrics/{metric.id}?cursor=not-a-cursor").status_code == 400


# --- The device page ---------------------------------------------------------------------------------


def test_device_page_without_metrics_says_how_to_add_one(web, user):
    device, _ = make_device(user)
    page = web.get(f"/devices/{device.id}")
    assert page.status_code == 200
    assert "No metrics yet" in page.text and "POST /api/v1/metrics" in page.text


def test_device_page_lists_metrics_with_latest_value_and_24h_count(web, user):
    device, _ = make_device(user, "Watch6,1")
    heart = metrics.create_metric(user, device.id, "heartRate", "bpm", name="Resting heart")
    steps = metrics.create_metric(user, device.id, "HKQuantityTypeIdentifierStepCount", "count")
    oxygen = metrics.create_metric(user, device.id, "oxygenSaturation", "%")
    now = utcnow().replace(microsecond=0)
    # Two days ago (not in the last 24 hours), then three recent ones; the latest is worth 4.
    add_samples(
        user, heart.id, [now - timedelta(days=2), *(now - timedelta(minutes=m) for m in (30, 20, 10))]
    )
    add_samples(user, oxygen.id, [now - timedelta(hours=3)], quantity=0.97)

    page = web.get(f"/devices/{device.id}")
    assert page.status_code == 200
    html = page.text
    rows = re.findall(r"<tr>\s*<th scope=\"row\" data-label=\"Metric\">(.*?)</tr>", html, re.S)
    assert len(rows) == 3
    heart_row, steps_row, oxygen_row = rows
    assert f'href="/metrics/{heart.id}"' in heart_row
    assert "Resting heart" in heart_row and "Heart rate" in heart_row
    assert "count/min" in heart_row  # bpm is stored as HealthKit's unit
    assert '<data value="4.0">4</data>' in heart_row
    latest = now - timedelta(minutes=10)
    assert f'<time datetime="{latest.isoformat()}">{latest:%Y-%m-%d %H:%M} UTC</time>' in heart_row
    assert "3 samples" in heart_row
    assert f'href="/metrics/{steps.id}"' in steps_row and "Step count" in steps_row
    assert "no samples yet" in steps_row and "0 samples" in steps_row
    assert '<data value="0.97">97</data>' in oxygen_row and "1 sample<" in oxygen_row
    assert "No metrics yet" not in html
    assert (
        "<caption>What this device measures" in html
        and '<th scope="col" class="num">Last 24 hours</th>' in html
    )


def test_device_page_lists_metrics_created_through_the_api(web, user, pat):
    device, _ = make_device(user)
    created = web.post(
        "/api/v1/metrics",
        json={"device_id": device.id, "sample_type": "bodyMass", "quantity_type": "kg"},
        headers=bearer(pat),
    )
    assert created.status_code == 201, created.text
    start = (utcnow() - timedelta(hours=1)).isoformat()
    posted = web.post(
        "/api/v1/quantity-samples",
        json={"metric_id": created.json["id"], "start_date": start, "end_date": start, "quantity": 72.35},
        headers=bearer(pat),
    )
    assert posted.status_code == 201, posted.text
    html = web.get(f"/devices/{device.id}").text
    assert "Body mass" in html and '<data value="72.35">72.35</data>' in html and "1 sample<" in html


# --- The metric page ---------------------------------------------------------------------------------


def test_metric_page_shows_facts_and_samples_newest_first(web, user):
    device, _ = make_device(user, "Watch6,1")
    metric = metrics.create_metric(user, device.id, "heartRate", "count/min")
    now = utcnow().replace(microsecond=0)
    add_samples(
        user,
        metric.id,
        [now - timedelta(minutes=m) for m in (50, 40, 30)],
        sample_motion_context="Active",
        sample_sensor_location=2,
        client_sample_id=None,
    )
    samples.submit_one(
        user,
        {
            "metric_id": metric.id,
            "start_date": now - timedelta(minutes=5),
            "end_date": now - timedelta(minutes=5),
            "quantity": 61.5,
            "client_sample_id": "watch-abc-123",
            "client_sample_version": 2,
        },
    )
    page = web.get(f"/metrics/{metric.id}")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Heart rate</h1>" in html
    assert f'href="/devices/{device.id}"' in html and "Apple Watch Series 6" in html
    assert "Discrete: a period" in html and "count/min" in html
    assert sample_values(html) == ["61.5", "3.0", "2.0", "1.0"]
    table = html.split('class="devices sample-list"', 1)[1]
    assert "<caption>The latest samples, newest first, 4 of 4." in table
    assert "watch-abc-123" in table and '<td data-label="Version" class="num">2</td>' in table
    assert "Wrist" in table and "Active" in table
    newest = now - timedelta(minutes=5)
    assert f'<time datetime="{newest.isoformat()}">{newest:%Y-%m-%d %H:%M:%S}</time>' in table
    assert "4 samples in the last 24 hours, 4 in all" in " ".join(html.split())
    assert older_link(html) is None


def test_metric_page_without_samples_says_how_to_send_them(web, user):
    device, _ = make_device(user)
    metric = metrics.create_metric(user, device.id, "stepCount", "count")
    html = web.get(f"/metrics/{metric.id}").text
    assert "No samples yet" in html and "POST /api/v1/quantity-samples" in html
    assert "sample-list" not in html


def test_metric_page_pages_towards_older_samples_without_skipping_or_repeating(web, user):
    device, _ = make_device(user)
    metric = metrics.create_metric(user, device.id, "stepCount", "count")
    now = utcnow().replace(microsecond=0)
    # 120 samples, 30 of them at one instant (idempotent by client id, so they may share dates).
    starts = [now - timedelta(minutes=m) for m in range(90)]
    add_samples(user, metric.id, starts)
    same = now - timedelta(hours=5)
    batch = [
        {
            "metric_id": metric.id,
            "start_date": same,
            "end_date": same,
            "quantity": 1000.0 + i,
            "client_sample_id": f"s{i}",
        }
        for i in range(30)
    ]
    assert samples.submit_batch(user, batch).accepted == 30

    seen: list[str] = []
    url: str | None = f"/metrics/{metric.id}"
    pages = 0
    while url:
        page = web.get(url)
        assert page.status_code == 200
        values = sample_values(page.text)
        assert len(values) == (50 if pages < 2 else 20)
        seen.extend(values)
        if pages:
            assert "Older samples, newest first" in page.text and "← Newest" in page.text
        url = older_link(page.text)
        pages += 1
    assert pages == 3
    assert len(seen) == len(set(seen)) == 120
    # Newest first: the minute-spaced samples (values 1..90, value 1 the newest), then the 30 at one instant.
    assert seen[:90] == [f"{float(v)}" for v in range(1, 91)]
    assert sorted(seen[90:]) == sorted(f"{1000.0 + i}" for i in range(30))
