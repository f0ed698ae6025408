"""Configuration: safe laptop defaults, overridden from the environment."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def normalize_database_url(url: str) -> str:
    """Map the URL spellings people paste (postgres://, postgresql://) onto psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _generated_once(path: Path, make: Callable[[], str]) -> str:
    """The content of `path`, written once by `make()` when the file is missing.

    O_EXCL: when several workers start at once, exactly one writes the file; the others read it.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def new_token_key_line() -> str:
    """One signing key for device access tokens as 'kid:secret' (kid = UTC date and random suffix)."""
    kid = datetime.now(UTC).strftime("%Y%m%d") + "-" + secrets.token_hex(3)
    return f"{kid}:{secrets.token_urlsafe(32)}"


TOKEN_KEYS_FILE = "token_keys"


def fill_generated(config: dict[str, Any], instance_path: str) -> None:
    """Generate what is still missing after defaults and the caller's settings: the session
    SECRET_KEY and the access-token signing keys, each kept in instance/ so that every worker
    and every restart uses the same ones (never a constant in the code)."""
    instance = Path(instance_path)
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _generated_once(instance / "secret_key", lambda: secrets.token_hex(32))
    if not config.get("BIOWEB_TOKEN_KEYS"):
        config["BIOWEB_TOKEN_KEYS"] = _generated_once(instance / TOKEN_KEYS_FILE, new_token_key_line)


def load(instance_path: str) -> dict[str, Any]:
    """The defaults for an app whose instance folder is `instance_path`, overridden from the
    environment. Writes nothing: secrets still missing after the caller's settings are made
    by fill_generated()."""
    env = os.environ.get
    instance = Path(instance_path)
    database_url = env("DATABASE_URL") or f"sqlite:///{instance / 'bioweb.db'}"
    return {
        "SECRET_KEY": env("SECRET_KEY"),
        # Keys that sign device access tokens: 'kid:secret' items separated by commas or
        # newlines; the first signs, all of them verify (so a rotated-out key keeps its
        # tokens valid until they expire). Generated into instance/token_keys when unset.
        "BIOWEB_TOKEN_KEYS": env("BIOWEB_TOKEN_KEYS"),
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(database_url),
        "SQLALCHEMY_POOL_SIZE": int(env("BIOWEB_DB_POOL_SIZE", "5")),
        "BIOWEB_DB_CONNECT_TIMEOUT": int(env("BIOWEB_DB_CONNECT_TIMEOUT", "5")),
        "BIOWEB_PROXY_COUNT": int(env("BIOWEB_PROXY_COUNT", "0")),
        "BIOWEB_BASE_URL": env("BIOWEB_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
        "BIOWEB_TOKEN_EXPIRES_IN": int(env("BIOWEB_TOKEN_EXPIRES_IN", "3600")),
        "BIOWEB_REFRESH_TOKEN_EXPIRES_IN": int(env("BIOWEB_REFRESH_TOKEN_EXPIRES_IN", str(30 * 24 * 3600))),
        # Request bodies on this API are small JSON objects and forms.
        "MAX_CONTENT_LENGTH": int(env("BIOWEB_MAX_CONTENT_LENGTH", str(64 * 1024))),
        "RATELIMIT_ENABLED": _bool(env("RATELIMIT_ENABLED"), True),
        "RATELIMIT_STORAGE_URI": env("RATELIMIT_STORAGE_URI", "memory://"),
        # No X-RateLimit-*/Retry-After on every answer: a 429 says Retry-After (errors.py).
        "RATELIMIT_HEADERS_ENABLED": False,
        # Deployments sharing one Redis keep their counters apart.
        "RATELIMIT_KEY_PREFIX": env("RATELIMIT_KEY_PREFIX", "bioweb"),
        # If Redis goes away, count in memory per process rather than fail /token.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        # Failed client authentications at /token, /token/revoke, /token/introspect, counted per
        # (client id, client address) and per client address; successful requests spend nothing.
        "BIOWEB_TOKEN_RATELIMIT_PER_CLIENT": env("BIOWEB_TOKEN_RATELIMIT_PER_CLIENT", "30/minute"),
        "BIOWEB_TOKEN_RATELIMIT_PER_IP": env("BIOWEB_TOKEN_RATELIMIT_PER_IP", "300/minute"),
        # Sign-ups per client address (every attempt counts).
        "BIOWEB_SIGNUP_RATELIMIT": env("BIOWEB_SIGNUP_RATELIMIT", "10/minute"),
        # Failed password checks (log in, change password), counted per (account, client
        # address) and per client address; never per account alone, which would let anyone
        # lock a person out. Successful checks spend nothing (bioweb/passwordlimits.py).
        "BIOWEB_PASSWORD_RATELIMIT_PER_ACCOUNT": env(
            "BIOWEB_PASSWORD_RATELIMIT_PER_ACCOUNT", "10/minute;50/hour"
        ),
        "BIOWEB_PASSWORD_RATELIMIT_PER_IP": env("BIOWEB_PASSWORD_RATELIMIT_PER_IP", "30/minute;300/hour"),
        # Outgoing mail (bioweb/mail.py): smtp://user:pass@host:587?starttls=1, smtps://host:465,
        # smtp://127.0.0.1:2525. Unset: every message is a file in BIOWEB_MAIL_OUTBOX
        # (default instance/outbox) and a log line, so a laptop needs no mail server.
        "BIOWEB_SMTP_URL": env("BIOWEB_SMTP_URL", ""),
        "BIOWEB_MAIL_FROM": env("BIOWEB_MAIL_FROM", "bioweb <no-reply@localhost>"),
        "BIOWEB_MAIL_OUTBOX": env("BIOWEB_MAIL_OUTBOX", ""),
        "BIOWEB_SMTP_TIMEOUT": float(env("BIOWEB_SMTP_TIMEOUT", "10")),
        # Mailed links: a password reset link works for an hour (and once), a confirmation
        # link for three days (until the address is confirmed).
        "BIOWEB_RESET_LINK_MAX_AGE": int(env("BIOWEB_RESET_LINK_MAX_AGE", "3600")),
        "BIOWEB_CONFIRM_LINK_MAX_AGE": int(env("BIOWEB_CONFIRM_LINK_MAX_AGE", str(3 * 24 * 3600))),
        # Password reset requests (each one mails), counted per (address typed, client address)
        # and per client address; never per account alone, which would let anyone use up a
        # person's resets. "Send the confirmation link again" per (account, client address).
        "BIOWEB_RESET_RATELIMIT_PER_ACCOUNT": env("BIOWEB_RESET_RATELIMIT_PER_ACCOUNT", "5/hour"),
        "BIOWEB_RESET_RATELIMIT_PER_IP": env("BIOWEB_RESET_RATELIMIT_PER_IP", "30/hour"),
        "BIOWEB_CONFIRM_RATELIMIT": env("BIOWEB_CONFIRM_RATELIMIT", "5/hour"),
        # Notes (mail without a link: "someone tried to sign up with your address", "no account
        # has this address") to one address, whoever asks from wherever: nobody floods a
        # mailbox through bioweb. Past it the page answers the same and sends nothing.
        "BIOWEB_MAIL_NOTE_RATELIMIT": env("BIOWEB_MAIL_NOTE_RATELIMIT", "3/hour"),
        # Dashboard sessions (user_sessions rows) end after this long without a request, and
        # at the latest this many days after sign-in.
        "BIOWEB_SESSION_IDLE_MINUTES": int(env("BIOWEB_SESSION_IDLE_MINUTES", str(7 * 24 * 60))),
        "BIOWEB_SESSION_MAX_DAYS": int(env("BIOWEB_SESSION_MAX_DAYS", "30")),
        # Sample submissions per device (its own token) or per person (a PAT).
        "BIOWEB_SAMPLE_RATELIMIT": env("BIOWEB_SAMPLE_RATELIMIT", "600/minute"),
        # werkzeug method string for new password hashes; verifying reads the method from the hash.
        "BIOWEB_PASSWORD_HASH_METHOD": env("BIOWEB_PASSWORD_HASH_METHOD", "scrypt"),
        # Cookie flags and security headers follow from this in bioweb/headers.py.
        "BIOWEB_SECURE_COOKIES": _bool(env("BIOWEB_SECURE_COOKIES"), False),
        "WTF_CSRF_TIME_LIMIT": None,
    }
