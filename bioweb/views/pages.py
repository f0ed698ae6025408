"""The landing page, which for a signed-in person is their home: their figures per sample type
across their live devices; and each type's page (/figures/<sample_type>): the figures, a
chart (from /figures/<sample_type>/calculations, the API's person-level calculation) and the
type's data sources, whose order decides which device counts where two recorded the same
15 minutes."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from .. import quantitytypes
from ..errors import InvalidInput, NotFound
from ..services import calculations, sources
from .charts import DEFAULT_PERIOD, calculation_answer, chart_periods
from .helpers import current_actor, json_view

bp = Blueprint("pages", __name__)

# Moving a source: the form's step, as services.sources.move takes it.
STEPS = {"up": -1, "down": 1}


@bp.get("/")
def index() -> str:
    if not current_user.is_authenticated:
        return render_template("pages/index.html", types=None)
    return render_template("pages/index.html", types=calculations.person_figures(current_actor()))


def _quantity_type(sample_type: str) -> quantitytypes.QuantityType:
    """The HealthKit type of the URL (short or long form); 404 for anything else."""
    qtype = quantitytypes.lookup(sample_type)
    if qtype is None:
        abort(404)
    return qtype


@bp.get("/figures/<sample_type>")
@login_required
def figures(sample_type: str) -> ResponseReturnValue:
    """One type's figures, chart and data sources. 404 when the person has no device recording it."""
    qtype = _quantity_type(sample_type)
    if qtype.identifier != sample_type:
        return redirect(url_for(".figures", sample_type=qtype.identifier), code=301)
    actor = current_actor()
    listed = sources.sources(actor, qtype.identifier)
    if not listed:
        abort(404)
    try:
        found: calculations.TypeFigures | None = calculations.type_figures(actor, qtype.identifier)
    except NotFound:  # only test-mode devices record it: listed, never counted
        found = None
    periods = []
    if found is not None:
        periods = chart_periods(
            ".type_calculations",
            qtype.aggregation,
            found.figures.time_zone,
            sample_type=qtype.identifier,
            quantity_type=found.unit,
        )
    return render_template(
        "pages/figures.html",
        qtype=qtype,
        type_figures=found,
        sources=listed,
        periods=periods,
        default_period=DEFAULT_PERIOD,
    )


@bp.get("/figures/<sample_type>/calculations")
@json_view
def type_calculations(sample_type: str) -> ResponseReturnValue:
    """The person-level calculation of a type, as GET /api/v1/quantity-sample-calculations
    answers it with sample_type (which is in the path here, so neither it nor metric_id may be
    given): 400 JSON for bad parameters, 404 JSON when no live device records the type."""
    given = sorted({"metric_id", "sample_type"} & set(request.args))
    if given:
        message = "Is in the path here; the parameters are: finish_lte, frequency, function, quantity_type, start_gte, time_zone."
        raise InvalidInput(
            f"Invalid query parameters: {', '.join(given)}.", {name: [message] for name in given}
        )
    args = {**request.args.to_dict(), "sample_type": sample_type}
    query = calculations.parse_query(args, current_user.time_zone)
    return calculation_answer(calculations.calculate(current_actor(), query))


@bp.post("/figures/<sample_type>/sources/<int:device_id>/<direction>")
@login_required
def move_source(sample_type: str, device_id: int, direction: str) -> Response:
    """Move a device up or down the type's data sources (CSRF-checked form). Commits via the service."""
    qtype = _quantity_type(sample_type)
    step = STEPS.get(direction)
    if step is None:
        abort(404)
    actor = current_actor()
    listed = sources.sources(actor, qtype.identifier)
    moved = next((s for s in listed if s.device_id == device_id), None)
    if moved is None:
        abort(404)
    sources.move(actor, qtype.identifier, device_id, step)
    flash(f"{moved.label} moved {direction}.", "success")
    return redirect(url_for(".figures", sample_type=qtype.identifier, _anchor="sources"), code=303)
