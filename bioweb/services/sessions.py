"""Dashboard sessions: one user_sessions row per signed-in browser.

Sign-in makes a row and hands back its handle, "<id>:bcw_<key>", which the view puts in the
session cookie; the row keeps only the key's SHA-256 digest. Every dashboard request resolves
the handle with one read by primary key (the session's columns and its user in one
statement). A session ends when its row is deleted (sign-out, "sign out" on the account page,
"sign out everywhere else", a password change), after BIOWEB_SESSION_IDLE_MINUTES without a
request, or BIOWEB_SESSION_MAX_DAYS after sign-in; `flask maintenance` deletes the ended ones.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..models import AccountEventKind, User, UserSession, utcnow
from ..security import SESSION_PREFIX, digest, digest_matches, new_secret
from . import Actor, account_events
from .events import Origin

# last_seen_time is written when it is at least this old, so a busy session costs one write a
# minute and every other request reads only. Idle expiry is therefore exact to the minute.
TOUCH_INTERVAL = timedelta(minutes=1)
USER_AGENT_LENGTH = 200
IP_LENGTH = 45


def idle_timeout() -> timedelta:
    return timedelta(minutes=current_app.config["BIOWEB_SESSION_IDLE_MINUTES"])


def max_lifetime() -> timedelta:
    return timedelta(days=current_app.config["BIOWEB_SESSION_MAX_DAYS"])


def _live(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(UserSession.expires_time > now, UserSession.last_seen_time > now - idle_timeout())


def start_session(
    user: User,
    user_agent: str,
    ip: str | None,
    now: datetime | None = None,
    origin: Origin | None = None,
) -> tuple[int, str]:
    """Record a sign-in of `user` from a browser (`user_agent`, cut to 200 characters) at `ip`;
    with an `origin`, a signin account event too (a fresh session after a password change
    or reset is none). Returns the session's id and its handle for the cookie; the handle is
    not kept anywhere else and must not be logged. Commits."""
    now = now or utcnow()
    key = new_secret(SESSION_PREFIX)
    row = UserSession(
        user_id=user.id,
        key_digest=digest(key),
        user_agent=(user_agent or "")[:USER_AGENT_LENGTH],
        ip=ip[:IP_LENGTH] if ip else None,
        created_time=now,
        last_seen_time=now,
        expires_time=now + max_lifetime(),
    )
    db.session.add(row)
    db.session.flush()
    session_id = row.id
    if origin is not None:
        account_events.record(user.id, AccountEventKind.SIGNIN, origin)
    db.session.commit()
    return session_id, f"{session_id}:{key}"


def _parse(handle: object) -> tuple[int, str] | None:
    if not isinstance(handle, str):
        return None
    session_id, sep, key = handle.partition(":")
    if not sep or not key.startswith(SESSION_PREFIX) or not (session_id.isascii() and session_id.isdigit()):
        return None
    number = int(session_id)
    return (number, key) if 0 < number < 2**31 else None


def resolve(handle: object, now: datetime | None = None) -> tuple[User, int] | None:
    """The user and session id that a cookie's `handle` names while that session lives, else
    None. One read by primary key. Notes the activity when last_seen_time is a minute old or
    more (see _touch); otherwise writes nothing."""
    parsed = _parse(handle)
    if parsed is None:
        return None
    session_id, key = parsed
    now = now or utcnow()
    row = db.session.execute(
        sa.select(UserSession.key_digest, UserSession.last_seen_time, UserSession.expires_time, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.id == session_id)
    ).first()
    if row is None or not digest_matches(key, row.key_digest):
        return None
    if row.expires_time <= now or row.last_seen_time <= now - idle_timeout():
        return None
    if now - row.last_seen_time >= TOUCH_INTERVAL:
        _touch(session_id, now)
    return row.User, session_id


def _touch(session_id: int, now: datetime) -> None:
    """Set last_seen_time to `now`. On a connection of its own, committed at once: the request's
    ORM session neither commits anything it has pending nor expires the user it just loaded.
    The condition makes concurrent requests of one session write once."""
    with db.engine.begin() as conn:
        conn.execute(
            sa.update(UserSession)
            .where(UserSession.id == session_id, UserSession.last_seen_time <= now - TOUCH_INTERVAL)
            .values(last_seen_time=now)
        )


def list_sessions(actor: Actor, now: datetime | None = None) -> list[UserSession]:
    """The actor's live sessions, the most recently active first. Reads only."""
    now = now or utcnow()
    return list(
        db.session.scalars(
            sa.select(UserSession)
            .where(UserSession.user_id == actor.id, _live(now))
            .order_by(UserSession.last_seen_time.desc(), UserSession.id.desc())
        )
    )


def end_session(actor: Actor, session_id: int, origin: Origin | None = None) -> bool:
    """End one of the actor's sessions (its cookie is signed out at its next request), with a
    signout account event when `origin` is given. False when there is no such session of the
    actor's: already ended, or someone else's. Commits."""
    result = db.session.execute(
        sa.delete(UserSession).where(UserSession.id == session_id, UserSession.user_id == actor.id)
    )
    ended = _count(result) > 0
    if ended and origin is not None:
        account_events.record(actor.id, AccountEventKind.SIGNOUT, origin)
    db.session.commit()
    return ended


def delete_sessions(user_id: int, keep_session_id: int | None = None) -> int:
    """Delete every session of the user but `keep_session_id` (all of them when None), in the
    caller's transaction. Returns how many went. Does not commit."""
    statement = sa.delete(UserSession).where(UserSession.user_id == user_id)
    if keep_session_id is not None:
        statement = statement.where(UserSession.id != keep_session_id)
    return _count(db.session.execute(statement))


def end_other_sessions(actor: Actor, keep_session_id: int | None) -> int:
    """Sign out everywhere but `keep_session_id` (the session asking). Returns how many sessions
    ended, live ones only (expired ones waiting for the purge go too, uncounted). Commits."""
    now = utcnow()
    live = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(UserSession)
        .where(UserSession.user_id == actor.id, UserSession.id != (keep_session_id or 0), _live(now))
    )
    delete_sessions(actor.id, keep_session_id)
    db.session.commit()
    return int(live or 0)


def purge(now: datetime | None = None) -> int:
    """Delete the sessions that have ended by age: past their absolute end or idle too long.
    Returns the count. Commits."""
    now = now or utcnow()
    result = db.session.execute(sa.delete(UserSession).where(sa.not_(_live(now))))
    db.session.commit()
    return _count(result)


def _count(result: sa.Result[Any]) -> int:
    return cast("sa.CursorResult[Any]", result).rowcount
