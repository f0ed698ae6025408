"""Limits on password checks: every route that verifies a person's password (log in, change
password; any new one must use `limit_password_checks` too).

Two limits, both counting *failed* checks only, like /token's (bioweb/oauth.py):
- per (account, client address), BIOWEB_PASSWORD_RATELIMIT_PER_ACCOUNT: guessing one
  person's password from one place stops soon;
- per client address, BIOWEB_PASSWORD_RATELIMIT_PER_IP: so does trying one password on many
  accounts.
Never per account alone: then anyone could lock a person out by failing on their behalf. The
counters are shared by every route here (a guess at the login form and one on the password
page spend the same budget) and live in the limiter's storage (RATELIMIT_STORAGE_URI), so with
Redis they are one limit for every worker and host. The account is the email address as typed
(normalized), whether or not an account has it, so a limited answer tells nothing about which
accounts exist; the storage sees its SHA-256 digest, not the address.

Checking happens before the view (a limited request is answered 429 before any password is
verified); counting after it, when the view called `record_failure()`. Requests racing one
another can each pass the check before any of them is counted, so a burst of concurrent
guesses may overshoot a limit by about the number of requests served at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from flask import Response, current_app, g, request

from .extensions import limiter

F = TypeVar("F", bound=Callable[..., object])

TOO_MANY = (
    "Too many wrong passwords were tried from your network, so password checks from here are "
    "paused for a while. Nothing about your account has changed."
)


def record_failure() -> None:
    """Count this request against the password-check limits (a password did not match)."""
    g.password_check_failed = True


def _failed(response: Response) -> bool:
    return bool(g.get("password_check_failed"))


def _address() -> str:
    return request.remote_addr or "-"


def _account_digest(account: str) -> str:
    return hashlib.sha256(account.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]


def limit_password_checks(account: Callable[[], str]) -> Callable[[F], F]:
    """Decorate a route (POST) that verifies the password of the account `account()` names (an
    email address). The route calls record_failure() on a wrong password."""

    per_account = limiter.shared_limit(
        lambda: current_app.config["BIOWEB_PASSWORD_RATELIMIT_PER_ACCOUNT"],
        scope="password-checks-account",
        key_func=lambda: f"{_account_digest(account())}@{_address()}",
        methods=["POST"],
        deduct_when=_failed,
        error_message=TOO_MANY,
    )
    per_address = limiter.shared_limit(
        lambda: current_app.config["BIOWEB_PASSWORD_RATELIMIT_PER_IP"],
        scope="password-checks-address",
        key_func=_address,
        methods=["POST"],
        deduct_when=_failed,
        error_message=TOO_MANY,
    )

    def decorate(view: F) -> F:
        return per_address(per_account(view))  # type: ignore[return-value]

    return decorate
