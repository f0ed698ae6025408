"""The account's mail: sign-up and its confirmation link, "someone tried to sign up with your
address", and password reset.

Links carry signed tokens ("bcm_" + itsdangerous, keyed by SECRET_KEY with a salt per purpose),
so nothing of them is stored; each is bound to account state that its use changes:
- a reset link to the account's session_version, password hash and email: using it moves
  session_version (so does any password change), which spends it and every other reset link
  sent before. It works for BIOWEB_RESET_LINK_MAX_AGE (an hour).
- a confirmation link to the email, and only while the address is unconfirmed; it works for
  BIOWEB_CONFIRM_LINK_MAX_AGE (three days).
Opening a link (GET) changes nothing: mail scanners fetch links. The form it shows posts back.

Sign-up and reset requests answer the same whether or not an account has the address, and do
the same work: one password hash for a sign-up, one signed token and one message either way.
Mail goes out after the transaction has committed; a failure raises mail.MailError.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from flask import current_app, render_template
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from .. import mail
from ..errors import AppError, Conflict, InvalidInput
from ..extensions import db
from ..models import AccountEventKind, User, utcnow
from ..security import MAIL_LINK_PREFIX, hash_password
from . import account_events, accounts, sessions
from .events import Origin

RESET_SALT = "bioweb.password-reset"
CONFIRM_SALT = "bioweb.email-confirmation"
# The pages the links open (views.auth routes them).
RESET_PATH = "/reset-password/"
CONFIRM_PATH = "/confirm-email/"
MAX_TOKEN_LENGTH = 400  # a real one is about 100 characters


class LinkProblem(AppError):
    """A mailed link that cannot be used: `reason` is "invalid", "expired" or "used"."""

    def __init__(self, reason: str, description: str):
        super().__init__(description)
        self.reason = reason
        self.status = 404 if reason == "invalid" else 410


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _sign(salt: str, payload: list[Any], issued_at: int | None = None) -> str:
    serializer = _serializer(salt)
    if issued_at is None:
        token = serializer.dumps(payload)
    else:  # a link made at another time (tests of expiry), signed the same way
        signer = cast(TimestampSigner, serializer.make_signer(salt))
        signer.get_timestamp = lambda: issued_at  # type: ignore[method-assign]
        token = signer.sign(serializer.dump_payload(payload)).decode()
    return MAIL_LINK_PREFIX + str(token)


def _unsign(salt: str, token: str, max_age: int, what: str) -> list[Any]:
    """The payload of a link's token. Raises LinkProblem: expired, or invalid (garbled,
    truncated, signed for another purpose or with another key)."""
    if not token.startswith(MAIL_LINK_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        raise LinkProblem("invalid", _INVALID.format(what=what))
    try:
        payload = _serializer(salt).loads(token[len(MAIL_LINK_PREFIX) :], max_age=max_age)
    except SignatureExpired:
        raise LinkProblem("expired", _EXPIRED[what]) from None
    except BadSignature:
        raise LinkProblem("invalid", _INVALID.format(what=what)) from None
    if not (isinstance(payload, list) and len(payload) == 2 and type(payload[0]) is int):
        raise LinkProblem("invalid", _INVALID.format(what=what))
    return payload


_INVALID = (
    "This {what} link is not valid: it may have been cut short or changed when it was copied. "
    "Open it from the email again, or ask for a new one."
)
_EXPIRED = {
    "password reset": "This password reset link has expired: links work for one hour. Ask for a new one.",
    "confirmation": "This confirmation link has expired. Log in and ask for a new one on any page.",
}
_USED = (
    "This password reset link has already been used, or the password has changed since it was "
    "sent. Ask for a new one if you still need to reset it."
)


def invalid_message(what: str) -> str:
    return _INVALID.format(what=what)


def _fingerprint(*parts: object) -> str:
    text = "\x00".join(str(part) for part in parts)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:22]


def _link(path: str, token: str) -> str:
    return f"{current_app.config['BIOWEB_BASE_URL']}{path}{token}"


def _send(to: str, subject: str, template: str, **context: Any) -> None:
    body = render_template(f"mail/{template}", base_url=current_app.config["BIOWEB_BASE_URL"], **context)
    mail.send(to, subject, body)


def duration(seconds: int) -> str:
    """'1 hour', '3 days', '30 minutes': how long a link works, for people."""
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''}"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


# --- sign-up and email confirmation ---------------------------------------------------------------


def confirmation_token(user: User, issued_at: int | None = None) -> str:
    return _sign(CONFIRM_SALT, [user.id, _fingerprint(user.email)], issued_at)


def _any_note(address: str) -> bool:
    return True


def sign_up(
    email: str,
    password: str,
    first_name: str,
    last_name: str,
    note_allowed: Callable[[str], bool] = _any_note,
) -> None:
    """Sign up from the page: a new, unconfirmed account and a confirmation link mailed to it.
    When the address has an account already, that account gets a note instead ("someone tried
    to sign up with your address", when `note_allowed(address)`: the caller's cap on notes to
    one address) and nothing else changes: the caller answers the same either way. Raises
    InvalidInput (bad email or password), mail.MailError. Commits."""
    existing = accounts.get_user_by_email(email)
    if existing is None:
        try:
            user = accounts.create_user(email, password, first_name, last_name, confirmed=False)
        except Conflict:  # signed up at the same moment by another request
            existing = accounts.get_user_by_email(email)
        else:
            send_confirmation(user)
            return
    if existing is None:  # pragma: no cover - the conflicting account vanished again
        raise InvalidInput("email: try again.", {"email": ["Try again."]})
    problem = accounts.password_problem(password)
    if problem:  # the same answer as for a fresh address
        raise InvalidInput(f"password: {problem}", {"password": [problem]})
    hash_password(password)  # the cost a new account pays, so the answers take as long
    if not note_allowed(existing.email):
        return
    _send(
        existing.email,
        "Someone tried to sign up to bioweb with your address",
        "signup_taken.txt",
        user=existing,
        confirmed=existing.email_confirmed_time is not None,
    )


def send_confirmation(user: User) -> None:
    """Mail `user` a link that confirms their address (nothing when it is confirmed already).
    Raises mail.MailError. Writes nothing."""
    if user.email_confirmed_time is not None:
        return
    max_age = current_app.config["BIOWEB_CONFIRM_LINK_MAX_AGE"]
    _send(
        user.email,
        "Confirm your email address for bioweb",
        "confirm.txt",
        user=user,
        link=_link(CONFIRM_PATH, confirmation_token(user)),
        valid_for=duration(max_age),
    )


def check_confirmation(token: str) -> User:
    """The account a confirmation link names (confirmed or not). Raises LinkProblem. Reads only."""
    user_id, fingerprint = _unsign(
        CONFIRM_SALT, token, current_app.config["BIOWEB_CONFIRM_LINK_MAX_AGE"], "confirmation"
    )
    user = db.session.get(User, user_id)
    if user is None or fingerprint != _fingerprint(user.email):
        raise LinkProblem("invalid", _INVALID.format(what="confirmation"))
    return user


@dataclass(frozen=True)
class Confirmed:
    user: User
    now: bool  # False: the address had been confirmed before


def confirm_email(token: str, origin: Origin | None) -> Confirmed:
    """Confirm the address a link names (once: again is no change). Raises LinkProblem. Commits."""
    user = check_confirmation(token)
    result = db.session.execute(
        sa.update(User)
        .where(User.id == user.id, User.email_confirmed_time.is_(None))
        .values(email_confirmed_time=utcnow())
    )
    if not _rowcount(result):
        db.session.rollback()
        return Confirmed(user, now=False)
    account_events.record(user.id, AccountEventKind.EMAIL_CONFIRMED, origin)
    db.session.commit()
    db.session.refresh(user)
    return Confirmed(user, now=True)


# --- password reset ----------------------------------------------------------------------------------


def _reset_fingerprint(user: User) -> str:
    return _fingerprint(user.session_version, user.password_hash, user.email)


def reset_token(user: User, issued_at: int | None = None) -> str:
    return _sign(RESET_SALT, [user.id, _reset_fingerprint(user)], issued_at)


# Signed for the unknown address, so both answers cost one signature.
_NOBODY = [0, "-"]


def request_reset(email: str, origin: Origin | None, note_allowed: Callable[[str], bool] = _any_note) -> None:
    """Mail a password reset link to the account with address `email`; to an address without
    an account, a note saying so (the person may have signed up with another address), when
    `note_allowed(address)`. The caller answers the same either way. `email` must be a valid
    address (forms). Raises mail.MailError. Commits (the account's reset.requested event)."""
    user = accounts.get_user_by_email(email)
    max_age = current_app.config["BIOWEB_RESET_LINK_MAX_AGE"]
    if user is None:
        _sign(RESET_SALT, _NOBODY)
        if not note_allowed(accounts.normalize_email(email)):
            return
        _send(
            accounts.normalize_email(email),
            "Password reset for bioweb",
            "reset_no_account.txt",
            email=accounts.normalize_email(email),
        )
        return
    token = reset_token(user)
    account_events.record(user.id, AccountEventKind.RESET_REQUESTED, origin)
    db.session.commit()
    _send(
        user.email,
        "Reset your bioweb password",
        "reset.txt",
        user=user,
        link=_link(RESET_PATH, token),
        valid_for=duration(max_age),
    )


def check_reset(token: str) -> User:
    """The account a reset link is for, while the link can be used. Raises LinkProblem
    (invalid, expired, or used: the password changed since). Reads only."""
    user_id, fingerprint = _unsign(
        RESET_SALT, token, current_app.config["BIOWEB_RESET_LINK_MAX_AGE"], "password reset"
    )
    user = db.session.get(User, user_id)
    if user is None:
        raise LinkProblem("invalid", _INVALID.format(what="password reset"))
    if fingerprint != _reset_fingerprint(user):
        raise LinkProblem("used", _USED)
    return user


def reset_password(token: str, new_password: str, origin: Origin | None) -> User:
    """Set the password of the account a reset link is for: the link is spent (and every other
    one sent before), every session of the account ends, and the address counts as confirmed
    (the link reached it). Raises LinkProblem, InvalidInput (an unacceptable password).
    Commits."""
    user = check_reset(token)
    problem = accounts.password_problem(new_password)
    if problem:
        raise InvalidInput(f"password: {problem}", {"password": [problem]})
    now = utcnow()
    # Conditional on the version the link was checked against: of two uses at once, one wins.
    result = db.session.execute(
        sa.update(User)
        .where(User.id == user.id, User.session_version == user.session_version)
        .values(
            password_hash=hash_password(new_password),
            session_version=User.session_version + 1,
            email_confirmed_time=sa.func.coalesce(User.email_confirmed_time, now),
        )
    )
    if not _rowcount(result):
        db.session.rollback()
        raise LinkProblem("used", _USED)
    sessions.delete_sessions(user.id)
    account_events.record(user.id, AccountEventKind.RESET_USED, origin)
    db.session.commit()
    db.session.refresh(user)
    return user


def _rowcount(result: sa.Result[Any]) -> int:
    rowcount: int = getattr(result, "rowcount", 0)
    return rowcount
