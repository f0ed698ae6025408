"""Application errors and the handlers that turn every failure into the right response.

Under the JSON URL space (/api/, /token, /.well-known/) every error has one shape:
{"error": snake_case_code, "error_description": sentence, "fields": {...}} (fields only for
validation). Elsewhere errors render the site's HTML error pages.
"""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, Response, json, render_template, request
from flask_limiter import RateLimitExceeded
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# The JSON URL space: the API, the OAuth endpoints, metadata and the health check.
JSON_PREFIXES = ("/api/", "/token/", "/.well-known/")
JSON_PATHS = frozenset({"/token", "/healthz"})

# Error codes for plain HTTP errors, in the RFC 6749/6750 vocabulary where it has a word.
HTTP_ERROR_CODES = {
    400: "invalid_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "server_error",
    503: "temporarily_unavailable",
}


class AppError(Exception):
    """An error a client can act on: status, machine code, sentence, optional field messages."""

    status = 400
    code = "invalid_request"

    def __init__(self, description: str, fields: dict[str, list[str]] | None = None):
        super().__init__(description)
        self.description = description
        self.fields = fields


class InvalidInput(AppError):
    status = 400
    code = "invalid_request"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class Conflict(AppError):
    status = 409
    code = "conflict"


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"


def wants_json() -> bool:
    return request.path in JSON_PATHS or request.path.startswith(JSON_PREFIXES)


def json_error(
    status: int,
    code: str,
    description: str,
    fields: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, object] = {"error": code, "error_description": description}
    if fields:
        body["fields"] = fields
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _html_error(
    status: int, description: str, headers: dict[str, str] | None = None
) -> tuple[str, int, dict[str, str]]:
    template = f"errors/{status}.html" if status in (403, 404, 500) else "errors/generic.html"
    return render_template(template, status=status, description=description), status, headers or {}


def handle_app_error(error: AppError):
    if wants_json():
        return json_error(error.status, error.code, error.description, error.fields)
    return _html_error(error.status, error.description)


def handle_http_exception(error: HTTPException):
    if error.code is None:
        return error
    response = error.get_response()
    if response.mimetype == "application/json":
        # Already in the shape (Authlib's bearer errors carry WWW-Authenticate): pass it on.
        return response
    headers = {k: v for k, v in response.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
    if error.code == 413 and not wants_json():
        return _html_error(413, _too_large(people=True), headers)
    if not wants_json():
        return _html_error(error.code, error.description or "", headers)
    description = error.description or ""
    if error.code == 405:
        description = (
            f"Method {request.method} is not allowed here; allowed: {response.headers.get('Allow', '')}."
        )
    elif error.code == 404:
        description = f"There is no resource at {request.path}."
    elif error.code == 413:
        description = _too_large()
        if request.path.endswith(("/quantity-samples", "/samples")):
            description += " Send at most 1,000 samples a batch."
    return json_error(error.code, HTTP_ERROR_CODES.get(error.code, "error"), description, headers=headers)


def _too_large(people: bool = False) -> str:
    """The 413 sentence with the limit that applied to this request (the app's, or the one a
    route set for itself, such as the samples API's 1 MiB): for the API, or for a page."""
    limit = request.max_content_length
    if not limit:
        return "What you sent is too large." if people else "The request body is too large."
    if limit % 1024**2 == 0:
        size = f"{limit:,} bytes ({limit // 1024**2:,} MiB)"
    elif limit % 1024 == 0:
        size = f"{limit:,} bytes ({limit // 1024:,} KiB)"
    else:
        size = f"{limit:,} bytes"
    if people:
        return f"What you sent is too large: this page accepts at most {size}. Shorten it and send it again."
    return f"The request body is too large; the limit here is {size}."


def _duration(seconds: int) -> str:
    """'1 second', '45 seconds', '3 minutes' (rounded up: never sooner than the limit allows)."""
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


def handle_rate_limited(error: RateLimitExceeded):
    """429 with Retry-After: the seconds until the breached window resets."""
    from .extensions import limiter

    current = limiter.current_limit
    retry_after = 60
    if current:  # the seconds until the window resets, never more than the window itself
        retry_after = min(max(1, math.ceil(current.reset_at - time.time())), current.limit.get_expiry())
    headers = {"Retry-After": str(retry_after)}
    message = f"Too many requests; try again in {_duration(retry_after)}."
    if error.limit.error_message:  # the limit's own words (what was limited), then when to retry
        message = f"{error.description} Try again in {_duration(retry_after)}."
    if wants_json():
        return json_error(429, "too_many_requests", message, headers=headers)
    return _html_error(429, message, headers)


def handle_database_unavailable(error: OperationalError):
    log.error("database unavailable: %s", type(error).__name__)
    from .extensions import db

    db.session.rollback()
    message = "The database is not answering; try again shortly."
    if wants_json():
        return json_error(503, "temporarily_unavailable", message, headers={"Retry-After": "5"})
    return _html_error(503, message)


def handle_unexpected(error: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    message = "Something went wrong on our side. It has been logged."
    if wants_json():
        return json_error(500, "server_error", message)
    return _html_error(500, message)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(AppError, handle_app_error)
    app.register_error_handler(RateLimitExceeded, handle_rate_limited)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
