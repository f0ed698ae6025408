"""Bearer credentials: personal access tokens, device access and refresh tokens.

Only SHA-256 digests are stored. Lookups are by digest (unique index), so checking a
token is one indexed read joined to its user and device.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import joinedload

from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import MAX_ID, Device, DeviceState, EventKind, Token, TokenKind, User, utcnow
from . import events
from .events import Origin
from ..security import ACCESS_PREFIX, PAT_PREFIX, REFRESH_PREFIX, digest, new_secret

PAT_SCOPES = ("devices:read", "devices:write")
DEVICE_SCOPE = "device"
# last_used_time / last_active_time are written at most this often per token and device.
ACTIVITY_WRITE_INTERVAL = timedelta(seconds=60)
# A device keeps at most this many live refresh-token families; older ones are revoked.
MAX_REFRESH_FAMILIES = 5
# Revoked tokens are kept this long so that reuse of a rotated refresh token is recognised.
DEFAULT_KEEP_REVOKED = timedelta(days=7)


def parse_scope(scope: str | None) -> str:
    """Normalise a PAT scope string. Raises InvalidInput naming unknown scopes."""
    if scope is None:
        return " ".join(PAT_SCOPES)
    wanted = scope.replace(",", " ").split()
    unknown = [s for s in wanted if s not in PAT_SCOPES]
    if unknown or not wanted:
        problem = (
            f"Unknown scope {', '.join(unknown)}" if unknown else "At least one scope is needed"
        ) + f"; available: {', '.join(PAT_SCOPES)}."
        raise InvalidInput(f"scope: {problem}", {"scope": [problem]})
    return " ".join(s for s in PAT_SCOPES if s in wanted)


def create_personal_token(
    user: User, name: str = "", scope: str | None = None, expires_in_days: int | None = None
) -> tuple[Token, str]:
    """Create a PAT for `user`; return the row and the token (shown once). Raises InvalidInput. Commits."""
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        message = "Give a number of days from 1 to 3650, or none for no expiry."
        raise InvalidInput(f"expires_in_days: {message}", {"expires_in_days": [message]})
    plaintext = new_secret(PAT_PREFIX)
    now = utcnow()
    token = Token(
        kind=TokenKind.PERSONAL,
        digest=digest(plaintext),
        name=(name or "").strip()[:100],
        scope=parse_scope(scope),
        user_id=user.id,
        created_time=now,
        expires_time=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    db.session.add(token)
    db.session.commit()
    return token, plaintext


def list_personal_tokens(user: User) -> list[Token]:
    return list(
        db.session.scalars(
            sa.select(Token)
            .where(Token.user_id == user.id, Token.kind == TokenKind.PERSONAL)
            .order_by(Token.id.desc())
        )
    )


def revoke_personal_token(actor: User | None, token_id: int) -> Token:
    """Revoke a PAT (idempotent). `actor` None means an operator (CLI). Raises NotFound. Commits."""
    token = db.session.get(Token, token_id) if 0 < token_id <= MAX_ID else None
    if (
        token is None
        or token.kind != TokenKind.PERSONAL
        or (actor is not None and token.user_id != actor.id)
    ):
        raise NotFound(f"There is no personal access token with id {token_id}.")
    if token.revoked_time is None:
        token.revoked_time = utcnow()
        db.session.commit()
    return token


def find_token(plaintext: str) -> Token | None:
    """The token row for a presented bearer string, with its user and device, in one query."""
    return db.session.scalar(
        sa.select(Token)
        .options(joinedload(Token.user), joinedload(Token.device))
        .where(Token.digest == digest(plaintext))
    )


def is_usable(token: Token, now: datetime | None = None) -> bool:
    """Not revoked, not expired, and (for device tokens) its device is active right now."""
    if token.revoked_time is not None or token.is_expired(now):
        return False
    return token.device is None or token.device.state == DeviceState.ACTIVE


def record_use(token: Token) -> None:
    """Note that `token` was just used: last_used_time, and the device's last_active_time.

    Throttled to one write a minute per token and device, so the hot path stays a read.
    Commits only when it writes.
    """
    now = utcnow()
    stale = now - ACTIVITY_WRITE_INTERVAL
    wrote = False
    if token.last_used_time is None or token.last_used_time < stale:
        db.session.execute(
            sa.update(Token)
            .where(Token.id == token.id)
            .where(sa.or_(Token.last_used_time.is_(None), Token.last_used_time < stale))
            .values(last_used_time=now)
        )
        wrote = True
    if token.device is not None and token.device.last_active_time < stale:
        _touch_device(token.device.id, now)
        wrote = True
    if wrote:
        db.session.commit()


def _touch_device(device_id: int, now: datetime) -> None:
    db.session.execute(
        sa.update(Device)
        .where(Device.id == device_id, Device.last_active_time < now - ACTIVITY_WRITE_INTERVAL)
        .values(last_active_time=now)
    )


def _token_response(device: Device, family: str, origin: Origin | None) -> dict[str, object]:
    """Mint an access and a refresh token for `device` in `family`; add their rows and an
    aggregated audit event (no commit)."""
    config = current_app.config
    now = utcnow()
    access, refresh = new_secret(ACCESS_PREFIX), new_secret(REFRESH_PREFIX)
    expires_in = config["BIOWEB_TOKEN_EXPIRES_IN"]
    common = {
        "scope": DEVICE_SCOPE,
        "user_id": device.user_id,
        "device_id": device.id,
        "family": family,
        "created_time": now,
    }
    db.session.add_all(
        [
            Token(
                kind=TokenKind.ACCESS,
                digest=digest(access),
                expires_time=now + timedelta(seconds=expires_in),
                **common,
            ),
            Token(
                kind=TokenKind.REFRESH,
                digest=digest(refresh),
                expires_time=now + timedelta(seconds=config["BIOWEB_REFRESH_TOKEN_EXPIRES_IN"]),
                **common,
            ),
        ]
    )
    _touch_device(device.id, now)
    events.add_aggregated(device.id, EventKind.TOKEN_ISSUED, origin)
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": refresh,
        "scope": DEVICE_SCOPE,
        "device_id": device.id,
        "user_id": device.user_id,
        "tenant_id": device.tenant_id,
    }


def issue_device_tokens(device: Device, origin: Origin | None = None) -> dict[str, object]:
    """Client-credentials grant: a new token family for an authenticated, active device.

    Revokes the device's refresh families beyond the newest MAX_REFRESH_FAMILIES, so a
    device that asks again and again cannot pile up live tokens. Commits.
    """
    response = _token_response(device, uuid.uuid4().hex, origin)
    db.session.flush()
    keep = (
        sa.select(Token.id)
        .where(Token.device_id == device.id, Token.kind == TokenKind.REFRESH)
        .where(Token.revoked_time.is_(None))
        .order_by(Token.id.desc())
        .limit(MAX_REFRESH_FAMILIES)
    )
    db.session.execute(
        sa.update(Token)
        .where(Token.device_id == device.id, Token.kind == TokenKind.REFRESH)
        .where(Token.revoked_time.is_(None), Token.id.not_in(keep.scalar_subquery()))
        .values(revoked_time=utcnow())
    )
    db.session.commit()
    return response


def find_refresh_token(device: Device, plaintext: str) -> Token | None:
    """The refresh token `plaintext` if it was issued to `device`, else None."""
    token = db.session.scalar(sa.select(Token).where(Token.digest == digest(plaintext)))
    if token is None or token.kind != TokenKind.REFRESH or token.device_id != device.id:
        return None
    return token


def rotate_refresh_token(device: Device, token: Token, origin: Origin | None = None) -> dict[str, object] | None:
    """Refresh grant with rotation: spend `token` and issue a new pair in the same family.

    The spend is a conditional UPDATE, so of two concurrent refreshes exactly one wins.
    A token that is already spent (or revoked, or expired) is refused with None; if it was
    spent, that is reuse, and the whole family is revoked. Commits in every case.
    """
    now = utcnow()
    if token.is_expired(now):
        return None
    spent = db.session.execute(
        sa.update(Token)
        .where(Token.id == token.id, Token.revoked_time.is_(None))
        .values(revoked_time=now)
    )
    if spent.rowcount != 1:
        revoke_family(token.family, now)
        db.session.commit()
        return None
    response = _token_response(device, token.family or uuid.uuid4().hex, origin)
    db.session.commit()
    return response


def revoke_family(family: str | None, now: datetime | None = None) -> None:
    """Revoke every live token of a family (no commit)."""
    if family is None:
        return
    db.session.execute(
        sa.update(Token)
        .where(Token.family == family, Token.revoked_time.is_(None))
        .values(revoked_time=now or utcnow())
    )


def revoke_device_token(token: Token) -> None:
    """RFC 7009 revocation by the device itself: a refresh token takes its family with it. Commits."""
    now = utcnow()
    if token.kind == TokenKind.REFRESH:
        revoke_family(token.family, now)
    elif token.revoked_time is None:
        token.revoked_time = now
    db.session.commit()


def revoke_all_device_tokens(device_id: int, now: datetime) -> None:
    """Revoke every live access and refresh token of a device (no commit: the caller's use case commits)."""
    db.session.execute(
        sa.update(Token)
        .where(Token.device_id == device_id, Token.revoked_time.is_(None))
        .values(revoked_time=now)
    )


def purge(keep_revoked: timedelta = DEFAULT_KEEP_REVOKED) -> int:
    """Delete expired tokens, and revoked ones older than `keep_revoked`. Returns the count. Commits."""
    now = utcnow()
    result = db.session.execute(
        sa.delete(Token).where(
            sa.or_(Token.expires_time <= now, Token.revoked_time <= now - keep_revoked)
        )
    )
    db.session.commit()
    return result.rowcount
