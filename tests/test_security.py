"""Secrets at rest and in logs, generated keys, password hashing."""

from __future__ import annotations

import logging
import stat

import pytest

from bioweb import config, security


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


def test_passwords_use_scrypt():
    hashed = security.hash_password("correct horse battery staple")
    assert hashed.startswith("scrypt:")
    assert security.check_password(hashed, "correct horse battery staple")
    assert not security.check_password(hashed, "correct horse battery stapler")


def test_secret_key_is_generated_once_and_kept_private(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = config.load(str(tmp_path))["SECRET_KEY"]
    second = config.load(str(tmp_path))["SECRET_KEY"]
    assert first == second and len(first) == 64
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    assert config.load(str(tmp_path))["SECRET_KEY"] == "from-the-environment"


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
