"""Secrets at rest and in logs, generated keys, password hashing."""

from __future__ import annotations

import logging
import stat

import pytest
from werkzeug.security import generate_password_hash

from bioweb import config, create_app, security
from tests.helpers import PASSWORD, PASSWORD_HASH_METHOD, make_app


@pytest.mark.parametrize("prefix", ["bcp_", "bcd_", "bcr_", "bcs_"])
def test_every_log_record_is_redacted(caplog, prefix):
    secret = security.new_secret(prefix)
    caplog.set_level(logging.INFO)
    security.install_log_redaction()
    logging.getLogger("some.library").info("got %s from the client", secret)
    logging.getLogger("gunicorn.access").info(f"POST /token?x={secret}")
    assert secret not in caplog.text
    assert f"{prefix}[REDACTED]" in caplog.text


def test_tracebacks_are_redacted(caplog):
    secret = security.new_secret("bcs_")
    security.install_log_redaction()
    try:
        raise ValueError(f"bad secret {secret}")
    except ValueError:
        logging.getLogger("x").exception("failed")
    assert secret not in caplog.text and "bcs_[REDACTED]" in caplog.text


def test_secrets_are_long_random_and_prefixed():
    values = {security.new_secret("bcs_") for _ in range(100)}
    assert len(values) == 100
    assert all(v.startswith("bcs_") and len(v) == 4 + 43 for v in values)  # 32 bytes, base64url


def test_digest_matching_is_exact():
    secret = security.new_secret("bcp_")
    assert security.digest_matches(secret, security.digest(secret))
    assert not security.digest_matches(secret + "x", security.digest(secret))


FULL_COST_SCRYPT = "scrypt:32768:8:1$"  # werkzeug's default parameters, as stored in the hash


def test_production_hashes_passwords_with_full_cost_scrypt(tmp_path, monkeypatch):
    """What `make run` and a deployment get when nothing is said: scrypt at full cost."""
    monkeypatch.delenv("BIOWEB_PASSWORD_HASH_METHOD", raising=False)
    # Given, so that create_app generates nothing into instance/.
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    monkeypatch.setenv("BIOWEB_TOKEN_KEYS", "prod-key:" + "p" * 43)
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'bioweb.db'}"})
    assert app.config["BIOWEB_PASSWORD_HASH_METHOD"] == "scrypt"
    with app.app_context():
        hashed = security.hash_password(PASSWORD)
    assert hashed.startswith(FULL_COST_SCRYPT)
    assert security.check_password(hashed, PASSWORD)
    assert not security.check_password(hashed, PASSWORD + "r")
    # Outside an app (bench seeding, module-level dummies): the same full-cost default.
    assert security.hash_password(PASSWORD).startswith(FULL_COST_SCRYPT)


def test_password_hash_method_is_a_setting_and_every_stored_hash_still_verifies():
    app = make_app("sqlite://")  # the suite's cheap setting
    with app.app_context():
        cheap = security.hash_password(PASSWORD)
    assert cheap.startswith(PASSWORD_HASH_METHOD + "$")
    stored = [
        cheap,
        generate_password_hash(PASSWORD, method="scrypt"),  # made by a full-cost deployment
        generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"),
    ]
    for hashed in stored:
        assert security.check_password(hashed, PASSWORD)
        assert not security.check_password(hashed, PASSWORD + "r")


def test_secret_key_is_generated_once_and_kept_private(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    assert config.load(str(tmp_path))["SECRET_KEY"] is None and not (tmp_path / "secret_key").exists()
    first, second = config.load(str(tmp_path)), config.load(str(tmp_path))
    config.fill_generated(first, str(tmp_path))
    config.fill_generated(second, str(tmp_path))
    assert first["SECRET_KEY"] == second["SECRET_KEY"] and len(first["SECRET_KEY"]) == 64
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    from_env = config.load(str(tmp_path))
    config.fill_generated(from_env, str(tmp_path))
    assert from_env["SECRET_KEY"] == "from-the-environment"


def test_configuration_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db.example/bioweb")
    monkeypatch.setenv("BIOWEB_BASE_URL", "https://biometricscloud.net/")
    monkeypatch.setenv("RATELIMIT_ENABLED", "false")
    loaded = config.load(str(tmp_path))
    assert loaded["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db.example/bioweb"
    assert loaded["BIOWEB_BASE_URL"] == "https://biometricscloud.net"
    assert loaded["RATELIMIT_ENABLED"] is False
    monkeypatch.delenv("DATABASE_URL")
    assert config.load(str(tmp_path))["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'bioweb.db'}"
