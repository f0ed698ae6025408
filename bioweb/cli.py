"""Operator commands: flask --app app users ..., flask --app app tokens ..."""

from __future__ import annotations

import sys
from datetime import timedelta

import click
from flask.cli import AppGroup

from .errors import AppError
from .services import accounts, tokens

users_cli = AppGroup("users", help="Manage user accounts.")
tokens_cli = AppGroup("tokens", help="Manage personal access tokens and stored device tokens.")


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
@click.option("--scope", default=None, help='Space-separated scopes (default: "devices:read devices:write").')
@click.option(
    "--expires-in-days", type=click.IntRange(1, 3650), default=None, help="Expiry in days (default: never)."
)
def create_token(email: str, name: str, scope: str | None, expires_in_days: int | None) -> None:
    """Create a personal access token; it is printed once, alone on the last line."""
    user = _user_or_fail(email)
    try:
        token, plaintext = tokens.create_personal_token(user, name, scope, expires_in_days)
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


def _when(value, empty: str = "") -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else empty


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
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
    type=click.IntRange(0, 365),
    default=7,
    show_default=True,
    help="Keep revoked tokens this long, so reuse of a rotated refresh token is recognised.",
)
def purge_tokens(keep_revoked_days: int) -> None:
    """Delete expired tokens and long-revoked ones."""
    removed = tokens.purge(timedelta(days=keep_revoked_days))
    click.echo(f"Purged {removed} tokens.")
