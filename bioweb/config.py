"""Configuration: safe laptop defaults, overridden from the environment."""

from __future__ import annotations

import os
import secrets
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


def _secret_key(instance_path: Path) -> str:
    """SECRET_KEY from the environment, else one generated once and kept in instance/."""
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    path = instance_path / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    # O_EXCL: when two workers start at once, exactly one writes the key; the other reads it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def load(instance_path: str) -> dict[str, Any]:
    """Return the configuration mapping for an app whose instance folder is `instance_path`."""
    env = os.environ.get
    instance = Path(instance_path)
    database_url = env("DATABASE_URL") or f"sqlite:///{instance / 'bioweb.db'}"
    return {
        "SECRET_KEY": _secret_key(instance),
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
        "RATELIMIT_HEADERS_ENABLED": True,
        # Deployments sharing one Redis keep their counters apart.
        "RATELIMIT_KEY_PREFIX": env("RATELIMIT_KEY_PREFIX", "bioweb"),
        # If Redis goes away, count in memory per process rather than fail /token.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "BIOWEB_TOKEN_RATELIMIT_PER_CLIENT": env("BIOWEB_TOKEN_RATELIMIT_PER_CLIENT", "30/minute"),
        "BIOWEB_TOKEN_RATELIMIT_PER_IP": env("BIOWEB_TOKEN_RATELIMIT_PER_IP", "300/minute"),
        "BIOWEB_LOGIN_RATELIMIT": env("BIOWEB_LOGIN_RATELIMIT", "10/minute"),
        # Cookie flags and security headers follow from this in bioweb/headers.py.
        "BIOWEB_SECURE_COOKIES": _bool(env("BIOWEB_SECURE_COOKIES"), False),
        "WTF_CSRF_TIME_LIMIT": None,
    }
