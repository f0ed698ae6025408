"""Metrics: a metric's page with its latest samples, newest first, 50 at a time.

The device page lists a device's metrics (views.devices.detail); this blueprint adds the page of
one metric and the template filters both pages use to show values. Another user's metric is a
404, as for a missing id (services raise NotFound).
"""

from __future__ import annotations

import math
from datetime import datetime

from flask import Blueprint, render_template, request

from ..services import devices, metrics, samples
from ..services.samples import SampleFilter
from .helpers import current_actor, signed_in_only

bp = Blueprint("metrics", __name__, url_prefix="/metrics")

PAGE_SIZE = 50
# HealthKit's HKMetadataKeyHeartRateSensorLocation order, as the API takes it (spec/samples.md).
SENSOR_LOCATIONS = {0: "Other", 1: "Chest", 2: "Wrist", 3: "Finger", 4: "Hand", 5: "Ear lobe", 6: "Foot"}
MOTION_CONTEXTS = {"NotSet": "Not set", "Sedentary": "Sedentary", "Active": "Active"}

signed_in_only(bp)


@bp.app_template_filter("quantity")
def format_quantity(value: float | None, unit: str) -> str:
    """A sample's value for people: thousands grouped, at most 3 decimals (4 significant digits
    below 1); a `%` value (a fraction, as HealthKit sends it) as a percentage. The exact value
    stays in the page's <data value>."""
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    if unit == "%":
        value *= 100
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1:
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"


@bp.app_template_filter("when_exact")
def format_exact_time(value: datetime | None) -> str:
    """A UTC time to the second, for samples ('2024-05-01 12:34:56')."""
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M:%S")


@bp.app_template_filter("sensor_location")
def sensor_location(location: int | None, other: str = "") -> str:
    """Where the sensor was, in words ("Wrist"); "Other" with its description when given."""
    if location is None:
        return "—"
    if location == 0 and other:
        return f"Other: {other}"
    return SENSOR_LOCATIONS.get(location, str(location))


@bp.app_template_filter("motion_context")
def motion_context(value: str) -> str:
    return MOTION_CONTEXTS.get(value, value)


@bp.get("/<int:metric_id>")
def detail(metric_id: int) -> str:
    """A metric's facts and its samples, newest first, PAGE_SIZE a page; ?cursor=<next_cursor>
    pages towards older samples (keyset, exact even for many samples at one instant)."""
    actor = current_actor()
    overview = metrics.metric_overview(actor, metric_id)
    device = devices.read_device(actor, overview.metric.device_id)
    cursor = request.args.get("cursor") or None
    page = samples.list_samples(
        actor, SampleFilter(metric_id=metric_id, limit=PAGE_SIZE, sort_order="desc", cursor=cursor)
    )
    return render_template(
        "metrics/detail.html",
        overview=overview,
        metric=overview.metric,
        device=device,
        samples=page,
        cursor=cursor,
    )
