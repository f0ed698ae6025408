"""Passwords, high-entropy secrets and their digests, and the log filter that hides them."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets

from flask import current_app, has_app_context
from werkzeug.security import check_password_hash, generate_password_hash

DEFAULT_PASSWORD_HASH_METHOD = "scrypt"  # werkzeug's scrypt at full cost (n=2**15, r=8, p=1)

# Prefixes make a leaked credential easy to recognise and to scan for.
PAT_PREFIX = "bcp_"
ACCESS_PREFIX = "bcd_"
REFRESH_PREFIX = "bcr_"
SECRET_PREFIX = "bcs_"
SESSION_PREFIX = "bcw_"  # the key of a dashboard (web) session, in its cookie only
CODE_PREFIX = "bcc_"  # an authorization code (RFC 6749 4.1.2), single use, minutes long
MAIL_LINK_PREFIX = "bcm_"  # a signed token in a mailed link (password reset, email confirmation)

_SECRET_BYTES = 32  # 256 bits of entropy in every token and client secret

# A digest that matches no secret: compared against when a client is unknown, so an
# unknown client costs the same as a wrong secret (no timing oracle).
DUMMY_DIGEST = hashlib.sha256(b"bioweb: no such client").hexdigest()


def password_hash_method() -> str:
    """The app's BIOWEB_PASSWORD_HASH_METHOD (a werkzeug method string); "scrypt", werkzeug's
    full cost, by default and outside an app context."""
    return (
        current_app.config.get("BIOWEB_PASSWORD_HASH_METHOD") if has_app_context() else None
    ) or DEFAULT_PASSWORD_HASH_METHOD


def hash_password(password: str) -> str:
    """A salted hash by password_hash_method(). Passwords are low-entropy, so production keeps
    the slow hash; the test suite sets a cheap one."""
    return generate_password_hash(password, method=password_hash_method())


def check_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches `password_hash`, whatever method and cost made the hash."""
    return check_password_hash(password_hash, password)


def new_secret(prefix: str) -> str:
    """A fresh random credential, e.g. 'bcs_' + 43 URL-safe characters."""
    return prefix + secrets.token_urlsafe(_SECRET_BYTES)


def new_client_id() -> str:
    """A public client identifier in the published format (16 hex digits)."""
    return secrets.token_hex(8)


def digest(secret: str) -> str:
    """SHA-256 hex digest of a high-entropy secret; what the database stores and looks up.

    A password hash would add nothing here (the input already has 256 bits of entropy) and
    would make every /token call a CPU cost an attacker controls.
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def digest_matches(secret: str, expected_digest: str) -> bool:
    """Constant-time comparison of a presented secret against a stored digest."""
    return hmac.compare_digest(digest(secret), expected_digest)


# Signed credentials (bcd_ JWTs, bcm_ mail links) are dot-separated segments: all of them go.
# bcc_: authorization codes, which travel in redirect URLs (and so in access logs).
_CREDENTIAL = re.compile(r"\b(bc[cmpdrsw]_)[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]+)*")


def redact(text: str) -> str:
    """Replace every credential with a recognisable prefix by '<prefix>[REDACTED]'."""
    return _CREDENTIAL.sub(r"\1[REDACTED]", text)


_formatter = logging.Formatter()


def install_log_redaction() -> None:
    """Redact credentials from every log record made in this process, whatever its handler.

    Done at record creation (not as a handler filter) so that loggers and handlers added
    later (gunicorn's, pytest's, a deployment's) are covered too. Idempotent.
    """
    factory = logging.getLogRecordFactory()
    if getattr(factory, "bioweb_redacting", False):
        return

    def make_record(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        # Tracebacks quote exception messages and locals' reprs: format them now, redacted.
        # Formatters reuse exc_text when it is set.
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(_formatter.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    make_record.bioweb_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)
