"""Per-request context the audit trail records: a request id and the client's address.

Every response carries `X-Request-ID` (the caller's, when it is a sane token, else a new
one), so a person can quote it and an operator can find the event. Behind a load balancer,
set BIOWEB_PROXY_COUNT to the number of proxies in front, so the client address (for the
audit trail and per-IP rate limits) comes from X-Forwarded-For.
"""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from .services.events import Origin

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _echo_request_id(response):
    request_id = g.get("request_id")
    if request_id:
        response.headers["X-Request-ID"] = request_id
    return response


def current_origin(actor: str) -> Origin:
    """The Origin of the current request, acted by `actor` ("user:1", "device:7", ...)."""
    return Origin(
        actor=actor,
        ip=request.remote_addr,
        request_id=g.get("request_id"),
        user_agent=request.headers.get("User-Agent", ""),
    )


def init_app(app: Flask) -> None:
    proxies = app.config.get("BIOWEB_PROXY_COUNT", 0)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    app.before_request(_assign_request_id)
    app.after_request(_echo_request_id)
