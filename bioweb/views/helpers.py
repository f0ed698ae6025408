"""What the dashboard's blueprints share: the sign-in guard, one-time submissions (nonces),
safe redirects, form errors and the time filter. A module that imports nothing of
bioweb.views, so the blueprint modules use it without an import cycle through the package
(tests/test_imports.py)."""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal, ParamSpec
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request, session
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from wtforms import Form

from ..errors import AppError, InvalidInput, json_error
from ..forms import OnceForm
from ..models import User

P = ParamSpec("P")


def signed_in_only(bp: Blueprint) -> None:
    """Every page of `bp` is a signed-in user's own: others go to the login page (?next=...).
    A json_view answers for itself (401 JSON, not a redirect to a page)."""

    @login_required
    def _redirect_to_login() -> None:
        return None

    @bp.before_request
    def _require_login() -> ResponseReturnValue | None:
        view = current_app.view_functions.get(request.endpoint or "")
        if getattr(view, "answers_json", False):
            return None
        return _redirect_to_login()


def json_view(view: Callable[P, ResponseReturnValue]) -> Callable[P, ResponseReturnValue]:
    """A dashboard route that answers JSON to the page's own scripts (chart data): without a
    session it answers 401 and service errors (InvalidInput, NotFound) become the API's JSON
    error shape with their status, never the HTML error pages the dashboard's URL space gets."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        if not current_user.is_authenticated:
            return json_error(401, "login_required", "Log in to the dashboard first.")
        try:
            return view(*args, **kwargs)
        except AppError as error:
            return json_error(error.status, error.code, error.description, error.fields)

    wrapper.answers_json = True  # type: ignore[attr-defined]
    return wrapper


def current_actor() -> User:
    """The signed-in user, as the services take it."""
    return current_user._get_current_object()


NONCE_KEY = "_once"
# A handful of open forms per session; the oldest nonces drop off so the cookie stays small.
MAX_NONCES = 16

NonceState = Literal["fresh", "used", "unknown"]


def issue_nonce(purpose: str) -> str:
    """A fresh one-time submission nonce for `purpose` (e.g. "device:new"), remembered in the session."""
    nonce = secrets.token_urlsafe(16)
    # A list, not a dict: Flask serialises the session with sorted keys, which would lose the age order.
    entries = list(session.get(NONCE_KEY, []))[-(MAX_NONCES - 1) :]
    entries.append([nonce, purpose, None])
    session[NONCE_KEY] = entries
    return nonce


def nonce_state(purpose: str, nonce: str | None) -> tuple[NonceState, int | None]:
    """Whether `nonce` was issued for `purpose` and is unspent ("fresh"), already spent ("used",
    with the id of what it created), or was never issued here or has aged out ("unknown")."""
    if not nonce:
        return "unknown", None
    for issued, issued_for, result in session.get(NONCE_KEY, []):
        if hmac.compare_digest(issued.encode(), nonce.encode()) and issued_for == purpose:
            return ("fresh", None) if result is None else ("used", result)
    return "unknown", None


def spend_nonce(nonce: str, result_id: int) -> None:
    """Mark `nonce` as used, remembering the id of the record its submission created."""
    entries = [list(e) for e in session.get(NONCE_KEY, [])]
    for entry in entries:
        if entry[0] == nonce:
            entry[2] = result_id
    session[NONCE_KEY] = entries


def submit_once(
    form: OnceForm,
    purpose: str,
    action: Callable[[], tuple[int, ResponseReturnValue]],
    *,
    used: Callable[[int | None], ResponseReturnValue],
    expired: Callable[[], ResponseReturnValue],
    invalid: Callable[[int], ResponseReturnValue],
) -> ResponseReturnValue:
    """The one-time submission flow of a POST that mints something (a secret shown once).

    In order: a nonce already spent for `purpose` (reload, back, double post) answers
    `used(id of what it created)`; one never issued here or aged out answers `expired()`; a form
    that does not validate answers `invalid(status)`, and so does an InvalidInput from `action`
    once its messages are on the form (status 400). Otherwise `action()` does the work
    (committing via a service) and returns (id of what it created, response); the nonce is then
    spent with that id and the response returned.
    """
    state, result_id = nonce_state(purpose, form.nonce.data)
    if state == "used":
        return used(result_id)
    if state == "unknown":
        return expired()
    if not form.validate_on_submit():
        return invalid(form_status(form))
    try:
        result_id, response = action()
    except InvalidInput as error:
        apply_service_error(form, error)
        return invalid(400)
    spend_nonce(form.nonce.data, result_id)
    return response


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site (for ?next=), else None.

    Refuses absolute and scheme-relative URLs ("//evil", "/\\evil", which browsers treat as
    another host) and anything with control characters.
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(ord(c) < 32 or c == "\\" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def one_time_response(html: str) -> Response:
    """A page that carries a secret: never cached, never leaked through the Referer header."""
    response = Response(html)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def apply_service_error(form: Form, error: AppError) -> None:
    """Put a service's InvalidInput/Conflict messages on the matching form fields (or the form)."""
    placed = False
    for name, messages in (error.fields or {}).items():
        field = form._fields.get(name)
        if field is not None:
            field.errors = list(field.errors) + list(messages)
            placed = True
    if not placed:
        form.form_errors.append(error.description)


def form_status(form: Form) -> int:
    """400 when a submitted form is re-rendered with errors, else 200."""
    return 400 if form.errors else 200


def format_time(value: datetime | None) -> str:
    """A UTC time for people: '2024-05-01 12:34 UTC' (the <time> element carries the exact value)."""
    if value is None:
        return "never"
    return value.strftime("%Y-%m-%d %H:%M UTC")


def relative_time(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago `value` was, for people: 'just now', '3 minutes ago', '1 hour ago',
    '5 days ago', '2 months ago', '3 years ago' ('never' for None; a time ahead of the clock,
    a few seconds of skew, is 'just now')."""
    if value is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    for size, unit in (
        (365 * 86400, "year"),
        (30 * 86400, "month"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
    ):
        if seconds >= size:
            amount = seconds // size
            return f"{amount} {unit}{'' if amount == 1 else 's'} ago"
    return "just now"
