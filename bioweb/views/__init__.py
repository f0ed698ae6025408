"""The server-rendered dashboard: blueprints, template helpers, one-time submissions.

Views validate with forms.py, call services (which commit), and render or redirect. They never
commit, and a secret shown once (client secret, personal access token) travels only in the body
of the response that minted it: never in the session cookie (signed, not encrypted), never in a
URL, never in a log.
"""

from __future__ import annotations

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError

from .helpers import format_time


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
    from . import account, applications, auth, authorize, data, devices, metrics, pages, tokens

    for module in (pages, auth, account, authorize, data, devices, metrics, tokens, applications):
        app.register_blueprint(module.bp)
    app.add_template_filter(format_time, "when")
    app.register_error_handler(CSRFError, _csrf_error)
    headers.init_app(app)
    login_manager.user_loader(auth.load_user)
    login_manager.login_message = "Log in to see that page."
    login_manager.login_message_category = "info"
