"""Operator commands: flask --app app users ..., tokens ..., samples ..., maintenance."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from .errors import AppError
from .extensions import db
from .forms import DEFAULT_TOKEN_EXPIRY_DAYS, parse_int
from .models import MAX_ID
from .services import accounts, deletion, metrics, sessions, simulator, tokens
from .services.events import OPERATOR

users_cli = AppGroup("users", help="Manage user accounts.")
tokens_cli = AppGroup("tokens", help="Manage personal access tokens and stored device tokens.")
samples_cli = AppGroup("samples", help="Quantity samples: generated data for test-mode devices.")


class MigrationCommands(click.Group):
    """`flask db ...`: Flask-Migrate, and Alembic under it, load only when these commands run,
    so the app's worker processes never import them (about 10 MiB each)."""

    def __init__(self, app: Flask, directory: Path):
        super().__init__("db", help="Database migrations (Flask-Migrate / Alembic): upgrade, downgrade, ...")
        self._app, self._directory = app, directory
        self._commands: click.Group | None = None

    def _load(self) -> click.Group:
        if self._commands is None:
            from flask_migrate import Migrate
            from flask_migrate.cli import db as commands

            Migrate(self._app, db, directory=str(self._directory), render_as_batch=True)
            self._commands = commands
        return self._commands

    def make_context(self, info_name, args, parent=None, **extra):  # type: ignore[no-untyped-def]
        # Run as Flask-Migrate's own group: its options (-d, -x) and its callback.
        commands = self._load()
        self.params, self.callback = commands.params, commands.callback
        return super().make_context(info_name, args, parent, **extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._load().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load().get_command(ctx, cmd_name)


class Digits(click.ParamType):
    """A whole number from `minimum` to `maximum` in ASCII digits, read as the web forms read
    them (forms.parse_int): click's own int type takes " 1", "1_0" and "١" too."""

    name = "integer"

    def __init__(self, minimum: int = 0, maximum: int = MAX_ID):
        self.minimum, self.maximum = minimum, maximum

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, int):
            return value
        number = parse_int(str(value), self.minimum, self.maximum)
        if number is None:
            self.fail(
                f"{value!r} is not a whole number from {self.minimum} to {self.maximum} (digits 0-9).",
                param,
                ctx,
            )
        return number


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _user_or_fail(email: str):
    user = accounts.get_user_by_email(email)
    if user is None:
        _fail(f"no user with the email {email}.")
    return user


@users_cli.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--first-name", default="", help="Given name.")
@click.option("--last-name", default="", help="Family name.")
@click.option("--tenant", "tenant_name", default=None, help="Tenant name (default: 'default').")
def create_user(
    email: str, password_stdin: bool, first_name: str, last_name: str, tenant_name: str | None
) -> None:
    """Create a user account."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = accounts.create_user(email, password, first_name, last_name, tenant_name)
    except AppError as error:
        _fail(error.description)
    click.echo(f"Created user {user.id} <{user.email}> in tenant {user.tenant.name!r}.")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="A label to recognise the token by.")
@click.option(
    "--scope",
    default=None,
    help="Space-separated scopes (default: all four: devices:read devices:write samples:read samples:write).",
)
@click.option(
    "--expires-in-days",
    type=Digits(1, 3650),
    default=DEFAULT_TOKEN_EXPIRY_DAYS,
    show_default=True,
    help="Expiry in days (the dashboard's default too).",
)
@click.option("--no-expiry", is_flag=True, help="A token that never expires (the dashboard's “Never”).")
def create_token(email: str, name: str, scope: str | None, expires_in_days: int, no_expiry: bool) -> None:
    """Create a personal access token; it is printed once, alone on the last line."""
    if no_expiry and _given(click.get_current_context(), "expires_in_days"):
        _fail("give either --expires-in-days or --no-expiry, not both.")
    user = _user_or_fail(email)
    try:
        token, plaintext = tokens.create_personal_token(
            user, name, scope, None if no_expiry else expires_in_days
        )
    except AppError as error:
        _fail(error.description)
    expiry = token.expires_time.isoformat() if token.expires_time else "never"
    click.echo(f"Created token {token.id} ({token.scope}; expires {expiry}). It is shown only now:")
    click.echo(plaintext)


@tokens_cli.command("list")
@click.argument("email")
def list_tokens(email: str) -> None:
    """List a user's personal access tokens (never the tokens themselves)."""
    user = _user_or_fail(email)
    rows = tokens.list_personal_tokens(user)
    click.echo(
        f"{'ID':>6}  {'NAME':<20} {'SCOPE':<28} {'CREATED':<20} {'EXPIRES':<20} {'LAST USED':<20} STATUS"
    )
    for t in rows:
        status = "revoked" if t.revoked_time else ("expired" if t.is_expired() else "active")
        click.echo(
            f"{t.id:>6}  {t.name[:20]:<20} {t.scope:<28} {_when(t.created_time):<20} "
            f"{_when(t.expires_time, 'never'):<20} {_when(t.last_used_time, 'never'):<20} {status}"
        )


def _given(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source != click.core.ParameterSource.DEFAULT


def _when(value, empty: str = "") -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else empty


@tokens_cli.command("revoke")
@click.argument("token_id", type=Digits(1))
def revoke_token(token_id: int) -> None:
    """Revoke a personal access token by its id."""
    try:
        tokens.revoke_personal_token(None, token_id)
    except AppError as error:
        _fail(error.description)
    click.echo(f"Revoked token {token_id}.")


@tokens_cli.command("purge")
@click.option(
    "--keep-revoked-days",
    type=Digits(0, 365),
    default=7,
    show_default=True,
    help="Keep revoked tokens this long, so reuse of a rotated refresh token is recognised.",
)
def purge_tokens(keep_revoked_days: int) -> None:
    """Delete expired tokens and long-revoked ones."""
    removed = tokens.purge(timedelta(days=keep_revoked_days))
    click.echo(f"Purged {removed} tokens.")


@click.command("maintenance")
@click.option(
    "--budget-seconds",
    type=click.FloatRange(1, 86400),
    default=300.0,
    show_default=True,
    help="Stop after this long; the next run carries on.",
)
@with_appcontext
def maintenance(budget_seconds: float) -> None:
    """Finish deleting devices, accounts and metrics whose rows a delete request left behind,
    a bounded batch per transaction, purge expired and long-revoked tokens and ended dashboard
    sessions (idle too long or past their lifetime). Run it from cron (every few minutes is
    fine: it does nothing when nothing waits)."""
    started = time.monotonic()
    done, waiting = deletion.purge_pending(budget_seconds)
    left = max(0.0, budget_seconds - (time.monotonic() - started))
    finished, pending = metrics.purge_deleted_metrics(left)
    removed = tokens.purge()
    ended = sessions.purge()
    click.echo(
        f"Deleted devices and accounts finished: {done}; still pending: {waiting}. "
        f"Deleted metrics finished: {finished}; still pending: {pending}. Purged {removed} tokens"
        f" and {ended} ended sessions."
    )


@samples_cli.command("simulate")
@click.option("--metric-id", type=Digits(1), required=True, help="The metric to fill.")
@click.option(
    "--days",
    type=Digits(1, simulator.MAX_DAYS),
    default=7,
    show_default=True,
    help="Days back from now.",
)
def simulate_samples(metric_id: int, days: int) -> None:
    """Fill a test-mode device's metric with generated samples over the last DAYS days, as the
    metric's owner (a second run stores nothing twice)."""
    try:
        owner = simulator.owner_of(metric_id)
        result = simulator.simulate(owner, metric_id, days, origin=OPERATOR)
    except AppError as error:
        _fail(error.description)
    click.echo(
        f"Metric {result.metric_id}: stored {result.accepted} generated samples "
        f"({result.duplicates} already there) from {result.start:%Y-%m-%d %H:%M} "
        f"to {result.finish:%Y-%m-%d %H:%M} UTC."
    )
