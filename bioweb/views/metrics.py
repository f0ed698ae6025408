"""Metrics: a metric's page with its figures, its chart and its latest samples, newest first,
50 at a time; and the chart's data (GET /metrics/<id>/calculations, the API's calculation of
that metric for the signed-in person).

The device page lists a device's metrics (views.devices.detail); this blueprint adds the page of
one metric and the template filters both pages use to show values. Another user's metric is a
404, as for a missing id (services raise NotFound).
"""

from __future__ import annotations

import math
from datetime import datetime

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..services import calculations, devices, metrics, samples
from ..services.samples import SampleFilter
from .charts import DEFAULT_PERIOD, calculation_answer, chart_periods
from .helpers import current_actor, json_view, signed_in_only

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


@bp.app_template_filter("figure")
def format_figure(value: float | None, unit: str) -> str:
    """A period's figure (an average or a total) for the tiles: as `quantity`, but rounded to
    what a figure is read for: whole above 100, one decimal above 10, two below (three
    significant digits below 1), as the charts show values too. The exact value stays in <data value>."""
    if value is None or not math.isfinite(value):
        return format_quantity(value, unit)
    shown = value * 100 if unit == "%" else value
    size = abs(shown)
    digits = 0 if size >= 100 else 1 if size >= 10 else 2
    if size < 1 and shown:
        return f"{shown:.3g}"
    rounded = round(shown, digits)
    if float(rounded).is_integer():
        return f"{int(rounded):,}"
    return f"{rounded:,.{digits}f}".rstrip("0").rstrip(".")


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
    """A metric's figures (today ... last year in the owner's time zone), its chart, its facts
    and its samples, newest first, PAGE_SIZE a page; ?cursor=<next_cursor> pages towards older
    samples (keyset, exact even for many samples at one instant)."""
    actor = current_actor()
    overview = metrics.metric_overview(actor, metric_id)
    device = devices.read_device(actor, overview.metric.device_id)
    figures = calculations.metric_figures(actor, metric_id)
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
        figures=figures,
        periods=chart_periods(
            ".calculations", overview.metric.aggregation, figures.time_zone, metric_id=metric_id
        ),
        default_period=DEFAULT_PERIOD,
    )


@bp.get("/<int:metric_id>/calculations", endpoint="calculations")
@json_view
def calculations_of(metric_id: int) -> ResponseReturnValue:
    """The metric's calculation as GET /api/v1/quantity-sample-calculations answers it (the
    same parameters but metric_id, which is in the path; time_zone defaults to the person's):
    400 JSON for bad parameters, 404 JSON for a metric that is not theirs."""
    query = calculations.parse_query(request.args, current_user.time_zone, metric_id=metric_id)
    return calculation_answer(calculations.calculate(current_actor(), query))
