"""The account page: who you are, and your time zone (the day, week, month and year of your
figures), with the browser's own zone proposed by static/js/account.js."""

from __future__ import annotations

from itertools import groupby

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from ..errors import InvalidInput
from ..forms import TimeZoneForm
from ..services import accounts
from .helpers import apply_service_error, current_actor, signed_in_only

bp = Blueprint("account", __name__)

signed_in_only(bp)


def _region(zone: str) -> str:
    """The <optgroup> of a zone: its area (Europe, America, ...), else "Other"."""
    area, slash, _ = zone.partition("/")
    return area if slash and area not in _OLD_AREAS else "Other"


# Areas of the backward-compatible names (US/Eastern, Canada/Pacific, ...), listed under Other.
_OLD_AREAS = frozenset({"Brazil", "Canada", "Chile", "Mexico", "US"})


def zone_groups() -> list[tuple[str, list[str]]]:
    """Every time zone, grouped by area: UTC first, the areas in order, "Other" last."""
    zones = [zone for zone in accounts.time_zones() if zone != "UTC"]
    ordered = sorted(zones, key=lambda zone: (_region(zone) == "Other", _region(zone), zone))
    return [("UTC", ["UTC"])] + [(area, list(names)) for area, names in groupby(ordered, key=_region)]


def _render(form: TimeZoneForm, status: int = 200) -> tuple[str, int]:
    user = current_actor()
    # A re-rendered form keeps what was chosen when it is a zone, else shows the saved one.
    chosen = form.time_zone.data
    selected = chosen if chosen in accounts.time_zones() else user.time_zone
    return render_template(
        "account/index.html",
        form=form,
        user=user,
        zone_groups=zone_groups(),
        saved_zone=user.time_zone,
        selected=selected,
    ), status


@bp.get("/account")
def index() -> ResponseReturnValue:
    form = TimeZoneForm(data={"time_zone": current_actor().time_zone})
    return _render(form)


@bp.post("/account")
def update() -> ResponseReturnValue:
    """Save the time zone, then back to the page (POST-redirect-GET). Commits via the service."""
    form = TimeZoneForm()
    if form.validate_on_submit():
        try:
            zone = accounts.set_time_zone(current_actor(), form.time_zone.data)
        except InvalidInput as error:
            apply_service_error(form, error)
        else:
            flash(
                f"Your time zone is now {zone}. Days, weeks and months of your figures follow it.", "success"
            )
            return redirect(url_for(".index"), code=303)
    return _render(form, 400)
