"""Tenants and user accounts: sign-up, log-in, password, and the person's time zone."""

from __future__ import annotations

import difflib
import functools
import zoneinfo
from datetime import datetime

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

from ..errors import Conflict, Forbidden, InvalidInput
from ..extensions import db
from ..models import AccountEventKind, Tenant, User, utcnow
from ..readmodels import AccountView
from ..security import check_password, hash_password, password_hash_method
from . import Actor, account_events, sessions
from .events import Origin

DEFAULT_TENANT = "default"
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128


class WrongPassword(InvalidInput):
    """The password given for a signed-in account's check is not its password (the views count
    these failures against the password-check limits)."""


@functools.cache
def _dummy_password_hash(method: str) -> str:
    """A hash made the way real ones are, checked against when the email is unknown, so both
    paths cost one verification at the configured cost (an answer's timing does not tell
    whether an account exists)."""
    return generate_password_hash("bioweb: not a real password", method=method)


def normalize_email(email: str) -> str:
    return email.strip().lower()


MAX_EMAIL_LENGTH = 254


def email_problem(email: str) -> str | None:
    """Why `email` cannot be an account's address, or None: the sign-up form's rule (at most
    254 characters, and the syntax check WTForms' Email validator runs, email_validator without
    DNS), also for `flask users create` and any other caller of create_user."""
    email = email.strip()
    if not email:
        return "Enter your email address."
    if len(email) > MAX_EMAIL_LENGTH:
        return f"Use an email address of at most {MAX_EMAIL_LENGTH} characters."
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return "Enter an email address like name@example.com."
    return None


def password_problem(password: str) -> str | None:
    """Why `password` is unacceptable (length over composition, per NIST SP 800-63B), or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Use at most {MAX_PASSWORD_LENGTH} characters."
    if len(set(password)) < 4:
        return "That password is too repetitive; a few random words work well."
    return None


def _tenant(name: str) -> Tenant:
    """The tenant called `name`, created if new (race-safe via the unique constraint)."""
    tenant: Tenant | None = db.session.scalar(sa.select(Tenant).where(Tenant.name == name))
    if tenant is not None:
        return tenant
    try:
        with db.session.begin_nested():
            tenant = Tenant(name=name)
            db.session.add(tenant)
    except IntegrityError:
        tenant = db.session.scalars(sa.select(Tenant).where(Tenant.name == name)).one()
    return tenant


def create_user(
    email: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    tenant_name: str | None = None,
    confirmed: bool = True,
) -> User:
    """Create an account. Its address counts as confirmed (the CLI's and the operator's way)
    unless `confirmed` is False (the sign-up page's: services.account_mail.sign_up). Raises
    InvalidInput for a bad email or password, Conflict for a taken email. Commits."""
    problem = email_problem(email)
    if problem:
        raise InvalidInput(f"email: {problem}", {"email": [problem]})
    problem = password_problem(password)
    if problem:
        raise InvalidInput(f"password: {problem}", {"password": [problem]})
    email = normalize_email(email)
    tenant = _tenant(tenant_name or DEFAULT_TENANT)
    user = User(
        email=email,
        password_hash=hash_password(password),
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        tenant=tenant,
        email_confirmed_time=utcnow() if confirmed else None,
    )
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(
            f"An account with the email {email} already exists.",
            {"email": ["An account with this email already exists."]},
        ) from None
    return user


NOT_CONFIRMED = (
    "Confirm your email address before registering devices: open the link we mailed you when "
    "you signed up, or ask for a new one on the dashboard (log in at /login)."
)


def is_confirmed(actor: Actor) -> bool:
    """Whether the actor's address is confirmed. One read by primary key (none for a User)."""
    if isinstance(actor, User):
        return actor.email_confirmed_time is not None
    confirmed: datetime | None = db.session.scalar(
        sa.select(User.email_confirmed_time).where(User.id == actor.id)
    )
    return confirmed is not None


def require_confirmed(actor: Actor, doing: str = "registering devices") -> None:
    """Raises Forbidden unless the actor's address is confirmed (registering devices and
    applications needs it: an application's consent screen shows its owner's address)."""
    if not is_confirmed(actor):
        raise Forbidden(NOT_CONFIRMED.replace("registering devices", doing))


def get_user_by_email(email: str) -> User | None:
    if "\x00" in email:  # no stored email has one, and PostgreSQL refuses NUL in text
        return None
    return db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))


def prepare_dummy_hash() -> None:
    """Make the unknown-email hash for the configured method now (at app start), not during
    the first login with an unknown email, whose answer would then take longer."""
    _dummy_password_hash(password_hash_method())


def authenticate(email: str, password: str) -> User | None:
    """The user whose email and password match, or None. Same cost whether or not the email exists."""
    user = get_user_by_email(email)
    if user is None:
        check_password(_dummy_password_hash(password_hash_method()), password)
        return None
    return user if check_password(user.password_hash, password) else None


def change_password(
    user: User, current_password: str, new_password: str, origin: Origin | None = None
) -> None:
    """Set a new password and end every dashboard session of the user (the view signs the
    asking browser in again on a fresh session, so a copy of its old cookie dies too). Raises
    WrongPassword for a wrong current password, InvalidInput for an unacceptable new one.
    Commits."""
    if not check_password(user.password_hash, current_password):
        raise WrongPassword(
            "current_password: that is not your current password.",
            {"current_password": ["That is not your current password."]},
        )
    problem = password_problem(new_password)
    if problem:
        raise InvalidInput(f"new_password: {problem}", {"new_password": [problem]})
    user.password_hash = hash_password(new_password)
    user.session_version += 1
    sessions.delete_sessions(user.id)
    account_events.record(user.id, AccountEventKind.PASSWORD_CHANGED, origin)
    db.session.commit()


# --- the account and its time zone --------------------------------------------------------------

# Names zoneinfo lists that are no place's zone: "localtime" is the host's own setting (a
# different zone on every server), "Factory" tzdata's "-00" placeholder.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@functools.cache
def time_zones() -> tuple[str, ...]:
    """Every IANA time zone name this system knows, sorted (read from tzdata once)."""
    return tuple(sorted(zoneinfo.available_timezones() - _NOT_ZONES))


@functools.cache
def _folded_zones() -> dict[str, str]:
    """Case-folded name -> IANA spelling ("europe/berlin" -> "Europe/Berlin")."""
    folded: dict[str, str] = {}
    for name in time_zones():
        folded.setdefault(name.casefold(), name)
    return folded


def valid_time_zone(name: str, field: str = "time_zone") -> str:
    """The IANA spelling of the time zone `name` (matched exactly, else without regard to case:
    "europe/berlin" is Europe/Berlin). Raises InvalidInput naming `field`, with the closest
    names, when there is no such zone."""
    text = name.strip()
    zones = _folded_zones()
    canonical = zones.get(text.casefold())
    if canonical is not None:
        return canonical
    folded = text.casefold()
    close = [zones[m] for m in difflib.get_close_matches(folded, list(zones), n=3, cutoff=0.6)]
    # "Berlin" or "new york": the city part of a zone name.
    city = folded.replace(" ", "_")
    close += [
        zone for zone in time_zones() if zone.casefold().rpartition("/")[2] == city and zone not in close
    ]
    hint = f" Did you mean {', '.join(close[:3])}?" if close else ""
    message = f"{text[:100]!r} is not an IANA time zone name (such as Europe/Berlin or UTC).{hint}"
    raise InvalidInput(f"{field}: {message}", {field: [message]})


def _user(actor: Actor) -> User:
    user = actor if isinstance(actor, User) else db.session.get(User, actor.id)
    if user is None:  # a token outliving its user: not reachable while users are never deleted
        raise LookupError(f"no user {actor.id}")
    return user


def account_view(actor: Actor) -> AccountView:
    """The acting person's account: who they are and their time zone. Reads only."""
    user = _user(actor)
    return AccountView(
        id=user.id,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        tenant_id=user.tenant_id,
        time_zone=user.time_zone,
        created_time=user.created_time,
    )


def set_time_zone(user: Actor, name: str) -> str:
    """Set the person's time zone (their day, week, month and year in figures and
    calculations); returns its IANA spelling. Raises InvalidInput. Commits."""
    zone = valid_time_zone(name)
    row = _user(user)
    row.time_zone = zone
    db.session.commit()
    return zone
