"""The account page: who you are, your time zone (the day, week, month and year of your
figures, with the browser's own zone proposed by static/js/account.js), and where you are
logged in, with "log out" for each session and for all but this one, and what happened to the
account (its events, newest first, paged by ?before=<id>)."""

from __future__ import annotations

from datetime import timedelta
from itertools import groupby

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..errors import InvalidInput
from ..forms import TimeZoneForm, arg_int
from ..models import AccountEventKind
from ..origin import current_origin
from ..services import account_events, accounts, sessions
from .auth import current_session_id, end_this_session
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


# First match wins: Edge and Opera say "Chrome" too, Chrome says "Safari", iOS says "Mac OS X".
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("CrOS", "ChromeOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def describe_browser(user_agent: str) -> str:
    """'Firefox on Linux', 'Safari on iPhone', ... from a User-Agent; 'Unknown browser' when
    nothing in it is recognised. For people to tell their sessions apart, not for decisions."""
    browser = next((name for token, name in _BROWSERS if token in user_agent), None)
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or (f"A browser on {system}" if system else "Unknown browser")


def _span(duration: timedelta) -> str:
    """'7 days', '12 hours', '90 minutes': the largest whole unit."""
    minutes = int(duration.total_seconds() // 60)
    for size, unit in ((1440, "day"), (60, "hour"), (1, "minute")):
        if minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{minutes} minutes"


EVENT_NAMES = {
    AccountEventKind.SIGNIN: "Logged in",
    AccountEventKind.SIGNOUT: "Logged out",
    AccountEventKind.PASSWORD_CHANGED: "Password changed",
    AccountEventKind.RESET_REQUESTED: "Password reset email asked for",
    AccountEventKind.RESET_USED: "Password reset by email link",
    AccountEventKind.EMAIL_CONFIRMED: "Email address confirmed",
    AccountEventKind.EXPORT_MADE: "Data exported",
    AccountEventKind.DEVICE_DELETED: "Device deleted",
    AccountEventKind.ACCOUNT_DELETED: "Account deleted",
}


def event_name(kind: str) -> str:
    return EVENT_NAMES.get(AccountEventKind(kind), kind) if kind in EVENT_NAMES else kind


def _render(form: TimeZoneForm, status: int = 200) -> tuple[str, int]:
    user = current_actor()
    before = arg_int(request.args, "before", 0, minimum=1) or None
    events = account_events.list_events(user, before)
    # A re-rendered form keeps what was chosen when it is a zone, else shows the saved one.
    chosen = form.time_zone.data
    selected = chosen if chosen in accounts.time_zones() else user.time_zone
    this_session = current_session_id()
    return render_template(
        "account/index.html",
        form=form,
        user=user,
        zone_groups=zone_groups(),
        saved_zone=user.time_zone,
        selected=selected,
        # This session first, then the others, the most recently active first.
        sessions=sorted(sessions.list_sessions(user), key=lambda row: row.id != this_session),
        this_session=this_session,
        describe_browser=describe_browser,
        idle=_span(sessions.idle_timeout()),
        lifetime=_span(sessions.max_lifetime()),
        events=events,
        events_before=before,
        event_name=event_name,
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


@bp.post("/account/sessions/<int:session_id>/end")
def end_session(session_id: int) -> ResponseReturnValue:
    """Log one of your sessions out (this one: log out here). Commits via the service."""
    if session_id == current_session_id():
        end_this_session()
        flash("You are logged out.", "info")
        return redirect(url_for("pages.index"), code=303)
    actor = current_actor()
    if sessions.end_session(actor, session_id, current_origin(f"user:{actor.id}")):
        flash("That session is logged out. Its browser will have to log in again.", "success")
    else:
        flash("That session had already ended.", "info")
    return redirect(url_for(".index", _anchor="sessions"), code=303)


@bp.post("/account/sessions/end-others")
def end_other_sessions() -> ResponseReturnValue:
    """Log out everywhere but here. Commits via the service."""
    ended = sessions.end_other_sessions(current_actor(), current_session_id())
    if ended:
        flash(
            f"Logged out {ended} other session{'s' if ended != 1 else ''}. This one stays logged in.",
            "success",
        )
    else:
        flash("You were not logged in anywhere else.", "info")
    return redirect(url_for(".index", _anchor="sessions"), code=303)
