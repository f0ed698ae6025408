"""The operator CLI: flask --app app users ... / tokens ..."""

from __future__ import annotations

import os
import subprocess

import pytest
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import Tenant, Token, User
from bioweb.security import digest
from tests.helpers import CLI_ENV, PASSWORD, ROOT, bearer, make_pat, make_user


def create_user(runner, email="ada@example.com", *extra, password=PASSWORD):
    return runner.invoke(args=["users", "create", email, "--password-stdin", *extra], input=password + "\n")


def test_users_create_hashes_the_password(runner, app):
    result = create_user(
        runner, "Ada@Example.com", "--first-name", "Ada", "--last-name", "Lovelace", "--tenant", "acme"
    )
    assert result.exit_code == 0, result.output
    assert "Created user" in result.output and PASSWORD not in result.output
    user = db.session.scalar(sa.select(User))
    assert (user.email, user.first_name, user.last_name) == ("ada@example.com", "Ada", "Lovelace")
    assert db.session.get(Tenant, user.tenant_id).name == "acme"
    assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash


def test_users_create_prompts_for_the_password(runner, app):
    result = runner.invoke(args=["users", "create", "bob@example.com"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert db.session.scalar(sa.select(User.email)) == "bob@example.com"


def test_users_create_duplicate_email_is_a_clear_error(runner, app):
    assert create_user(runner).exit_code == 0
    result = create_user(runner, "ADA@example.com")
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


@pytest.mark.parametrize("password", ["short", "aaaaaaaaaaaaaaaa", "x" * 129])
def test_users_create_rejects_weak_passwords(runner, app, password):
    result = create_user(runner, password=password)
    assert result.exit_code == 1 and "Error: password:" in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_users_share_the_default_tenant_unless_told(runner, app):
    create_user(runner, "a@example.com")
    create_user(runner, "b@example.com")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Tenant)) == 1


def test_tokens_create_prints_the_token_alone_on_the_last_line(runner, client, app):
    make_user()
    result = runner.invoke(args=["tokens", "create", "ada@example.com", "--name", "laptop"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("bcp_") and " " not in token
    assert client.get("/api/v1/devices", headers=bearer(token)).status_code == 200
    row = db.session.scalar(sa.select(Token))
    assert row.digest == digest(token) and row.name == "laptop"
    # The dashboard's default lifetime, 30 days.
    assert 29.9 < (row.expires_time - row.created_time).total_seconds() / 86400 < 30.1
    assert row.scope == "devices:read devices:write samples:read samples:write"


def test_tokens_create_with_scope_and_expiry(runner, client, app):
    make_user()
    result = runner.invoke(
        args=["tokens", "create", "ada@example.com", "--scope", "devices:read", "--expires-in-days", "7"]
    )
    token = result.output.strip().splitlines()[-1]
    row = db.session.scalar(sa.select(Token))
    assert row.scope == "devices:read"
    assert 6.9 < (row.expires_time - row.created_time).total_seconds() / 86400 < 7.1
    assert client.post("/api/v1/devices", json={}, headers=bearer(token)).status_code == 403


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tokens", "create", "nobody@example.com"], "no user with the email"),
        (["tokens", "create", "ada@example.com", "--scope", "admin"], "Unknown scope admin"),
        (["tokens", "create", "ada@example.com", "--expires-in-days", "0"], "'0' is not a whole number"),
        (["tokens", "revoke", "9999"], "no personal access token with id 9999"),
        (["tokens", "list", "nobody@example.com"], "no user with the email"),
    ],
)
def test_tokens_errors_exit_nonzero_with_a_message(runner, app, args, message):
    make_user()
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Token)) == 0


def test_tokens_list_and_revoke(runner, client, app):
    user = make_user()
    token = make_pat(user)
    row = db.session.scalar(sa.select(Token))
    listing = runner.invoke(args=["tokens", "list", "ada@example.com"])
    assert listing.exit_code == 0
    assert f"{row.id:>6}" in listing.output and "active" in listing.output
    assert token not in listing.output and row.digest not in listing.output
    assert runner.invoke(args=["tokens", "revoke", str(row.id)]).exit_code == 0
    assert "revoked" in runner.invoke(args=["tokens", "list", "ada@example.com"]).output
    assert client.get("/api/v1/devices", headers=bearer(token)).status_code == 401


@pytest.mark.slow
def test_readme_commands_work_in_a_real_shell(app, database_url, client):
    """The README's walkthrough, as a person types it: create a user, export a token, use it."""
    env = {**os.environ, **CLI_ENV, "DATABASE_URL": database_url, "FLASK_APP": "app"}
    flask = f"{ROOT}/.venv/bin/flask" if (ROOT / ".venv/bin/flask").exists() else "flask"
    script = f"""
set -e
echo '{PASSWORD}' | {flask} --app app users create me@example.com --password-stdin
export BIOMETRICSCLOUD_ACCESS_TOKEN=$({flask} --app app tokens create me@example.com | tail -n 1)
echo "$BIOMETRICSCLOUD_ACCESS_TOKEN"
"""
    result = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert client.get("/api/v1/devices", headers=bearer(token)).status_code == 200
