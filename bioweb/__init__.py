"""bioweb: device registry and OAuth 2.0 authorization server of a biometrics cloud."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, jsonify
from sqlalchemy import text
from werkzeug.routing import IntegerConverter, ValidationError

from . import config as config_module
from . import reads
from .errors import json_error, register_error_handlers
from .extensions import FastJSONProvider, csrf, db, limiter, login_manager
from .forms import parse_int
from .models import MAX_ID
from .security import install_log_redaction

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: config -> extensions -> request context -> oauth -> errors -> blueprints -> cli."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder="../templates",
        static_folder="../static",
    )
    # As in Flask's tutorial: defaults (from the environment), then the caller's mapping, then
    # whatever is still missing is generated once and kept in instance/.
    app.config.from_mapping(config_module.load(app.instance_path))
    if config:
        app.config.update(config)
    app.config["SQLALCHEMY_DATABASE_URI"] = config_module.normalize_database_url(
        app.config["SQLALCHEMY_DATABASE_URI"]
    )
    config_module.fill_generated(app.config, app.instance_path)
    register_routing(app)
    register_extensions(app)
    register_request_context(app)
    register_oauth(app)
    register_error_handlers(app)
    register_blueprints(app)
    register_cli(app)
    return app


def digits_up_to(limit: int) -> str:
    """A regular expression matching the decimal numbers 1..`limit` (ASCII digits, leading zeros
    allowed), so a route's pattern itself refuses what its converter would."""
    text = str(limit)
    parts = [f"[1-9][0-9]{{0,{len(text) - 2}}}"] if len(text) > 1 else []
    for i, digit in enumerate(text):
        low, high = (1 if i == 0 else 0), int(digit) - 1
        if high >= low:
            rest = len(text) - i - 1
            choice = f"[{low}-{high}]" if high > low else str(low)
            parts.append(text[:i] + choice + (f"[0-9]{{{rest}}}" if rest else ""))
    parts.append(text)
    return "0*(?:" + "|".join(parts) + ")"


class IdConverter(IntegerConverter):
    """`<int:...>` in every route: 1..MAX_ID in ASCII digits, else a plain 404.

    Werkzeug's own matches `\\d+`, which takes any script's digits ("/devices/١" was device 1),
    and checks its range only after the route matched, so an id out of range answered 405 where
    another method shares the path (POST /devices/0/authorize: "Allow: GET"). Here the pattern
    carries the range and to_python reads through forms.parse_int.
    """

    def __init__(self, url_map, **kwargs):
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, **kwargs)
        self.regex = digits_up_to(self.max) if self.min == 1 and self.max else r"[0-9]+"

    def to_python(self, value: str) -> int:
        number = parse_int(value, self.min if self.min is not None else 0, self.max or MAX_ID)
        if number is None:
            raise ValidationError()
        return number


def register_routing(app: Flask) -> None:
    app.json = FastJSONProvider(app)
    app.url_map.converters["int"] = IdConverter
    # "/api/v1//devices" is a 404 in the JSON shape, not a redirect to a guessed URL.
    app.url_map.merge_slashes = False


def register_extensions(app: Flask) -> None:
    install_log_redaction()
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        # Pre-ping replaces connections the server closed (restart, failover); the connect
        # timeout turns a host that drops packets into a quick 503 instead of a worker
        # stuck until gunicorn kills it. Options given by the caller win, these fill in.
        options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
        options.setdefault("pool_pre_ping", True)
        options.setdefault("pool_size", app.config["SQLALCHEMY_POOL_SIZE"])
        connect_args = options.setdefault("connect_args", {})
        connect_args.setdefault("connect_timeout", app.config["BIOWEB_DB_CONNECT_TIMEOUT"])
    db.init_app(app)
    with app.app_context():
        reads.init_app(app)
    login_manager.init_app(app)  # its user loader: bioweb.views.auth.load_user
    # Flask never accepts a signed session cookie older than a dashboard session may live
    # (the session's own row decides sooner: services.sessions).
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(days=app.config["BIOWEB_SESSION_MAX_DAYS"])
    login_manager.login_view = "auth.login"
    csrf.init_app(app)
    limiter.init_app(app)
    from . import mail

    mail.init_app(app)  # a malformed BIOWEB_SMTP_URL stops the start, naming what is wrong


def register_request_context(app: Flask) -> None:
    from . import origin

    origin.init_app(app)


def register_oauth(app: Flask) -> None:
    from . import oauth

    oauth.init_app(app)


def register_blueprints(app: Flask) -> None:
    from .api import bp as api_bp

    csrf.exempt(api_bp)  # bearer tokens, no cookies: CSRF does not apply
    app.register_blueprint(api_bp)

    from . import views

    views.init_app(app)  # dashboard pages, their template helpers, security headers on every response

    @app.get("/healthz")
    def healthz():
        try:
            db.session.execute(text("SELECT 1"))
        except Exception as exc:  # any failure to reach the database is "not healthy"
            db.session.rollback()
            logging.getLogger(__name__).warning("health check failed: %s", type(exc).__name__)
            return json_error(503, "temporarily_unavailable", "The database is not answering.")
        return jsonify(status="ok")


def register_cli(app: Flask) -> None:
    from .cli import MigrationCommands, maintenance, samples_cli, tokens_cli, users_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(samples_cli)
    app.cli.add_command(maintenance)
    app.cli.add_command(MigrationCommands(app, MIGRATIONS))
