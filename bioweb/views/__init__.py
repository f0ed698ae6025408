"""The server-rendered dashboard: blueprints, template helpers, one-time submissions.

Views validate with forms.py, call services (which commit), and render or redirect. They never
commit, and a secret shown once (client secret, personal access token) travels only in the body
of the response that minted it: never in the session cookie (signed, not encrypted), never in a
URL, never in a log.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from flask import Flask, Response, render_template, session
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from wtforms import Form

from ..errors import AppError, InvalidInput
from ..forms import OnceForm
from .helpers import current_actor as current_actor
from .helpers import signed_in_only as signed_in_only

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


def _csrf_error(error: CSRFError) -> tuple[str, int]:
    description = (
        "This form has expired or did not come from this site, so nothing was changed. "
        "Go back, reload the page and try again."
    )
    return render_template("errors/generic.html", status=400, description=description), 400


def init_app(app: Flask) -> None:
    """Register the dashboard blueprints, template helpers, CSRF page and security headers."""
    from .. import headers
    from ..extensions import login_manager
    from . import auth, devices, metrics, pages, tokens

    for module in (pages, auth, devices, metrics, tokens):
        app.register_blueprint(module.bp)
    app.add_template_filter(format_time, "when")
    app.register_error_handler(CSRFError, _csrf_error)
    headers.init_app(app)
    login_manager.login_message = "Log in to see that page."
    login_manager.login_message_category = "info"
