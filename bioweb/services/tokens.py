"""Bearer credentials: personal access tokens, device access and refresh tokens.

Only SHA-256 digests are stored. Lookups are by digest (unique index), so checking a
token is one indexed read joined to its user and device.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import MAX_ID, Device, DeviceState, EventKind, Token, TokenKind, User, utcnow
from ..security import ACCESS_PREFIX, PAT_PREFIX, REFRESH_PREFIX, digest, new_secret
from . import Actor, events
from .events import Origin

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


def revoke_personal_token(actor: Actor | None, token_id: int) -> Token:
    """Revoke a PAT (idempotent). `actor` None means an operator (CLI). Raises NotFound. Commits."""
    token = db.session.get(Token, token_id) if 0 < token_id <= MAX_ID else None
    if token is None or token.kind != TokenKind.PERSONAL or (actor is not None and token.user_id != actor.id):
        raise NotFound(f"There is no personal access token with id {token_id}.")
    if token.revoked_time is None:
        token.revoked_time = utcnow()
        db.session.commit()
    return token


@dataclass(frozen=True)
class UserRef:
    """The acting user behind a bearer token: enough for the services (see services.Actor)."""

    id: int
    tenant_id: int


@dataclass(frozen=True)
class TokenRecord:
    """A stored token as the hot paths need it, read in one indexed query with plain rows
    (no ORM objects: this runs on every API request and every /token call)."""

    id: int
    kind: str
    scope: str
    family: str | None
    user_id: int
    tenant_id: int
    device_id: int | None
    device_state: int | None
    device_client_id: str | None
    device_last_active: datetime | None
    created_time: datetime
    expires_time: datetime | None
    revoked_time: datetime | None
    last_used_time: datetime | None

    @property
    def actor(self) -> UserRef:
        return UserRef(self.user_id, self.tenant_id)

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_time is not None and self.expires_time <= (now or utcnow())

    def is_usable(self, now: datetime | None = None) -> bool:
        """Not revoked, not expired, and (for device tokens) its device is active right now."""
        if self.revoked_time is not None or self.is_expired(now):
            return False
        return self.device_id is None or self.device_state == DeviceState.ACTIVE


_tokens, _devices, _users = Token.__table__, Device.__table__, User.__table__
_FIND_TOKEN = (
    sa.select(
        _tokens.c.id,
        _tokens.c.kind,
        _tokens.c.scope,
        _tokens.c.family,
        _tokens.c.user_id,
        _users.c.tenant_id,
        _tokens.c.device_id,
        _devices.c.state,
        _devices.c.client_id,
        _devices.c.last_active_time,
        _tokens.c.created_time,
        _tokens.c.expires_time,
        _tokens.c.revoked_time,
        _tokens.c.last_used_time,
    )
    .select_from(
        _tokens.join(_users, _users.c.id == _tokens.c.user_id).outerjoin(
            _devices, _devices.c.id == _tokens.c.device_id
        )
    )
    .where(_tokens.c.digest == sa.bindparam("digest"))
)


def find_token(plaintext: str) -> TokenRecord | None:
    """The stored token for a presented string, with its user's tenant and its device's state."""
    row = db.session.execute(_FIND_TOKEN, {"digest": digest(plaintext)}).first()
    return TokenRecord(*row) if row is not None else None


def record_use(token: TokenRecord) -> None:
    """Note that `token` was just used: a PAT's last_used_time, a device's last_active_time.

    Throttled to one write a minute per token and device, so the hot path stays a read.
    Commits only when it writes.
    """
    now = utcnow()
    stale = now - ACTIVITY_WRITE_INTERVAL
    wrote = False
    if token.device_id is None and (token.last_used_time is None or token.last_used_time < stale):
        db.session.execute(
            sa.update(_tokens)
            .where(_tokens.c.id == token.id)
            .where(sa.or_(_tokens.c.last_used_time.is_(None), _tokens.c.last_used_time < stale))
            .values(last_used_time=now)
        )
        wrote = True
    if token.device_id is not None and token.device_last_active < stale:
        _touch_device(token.device_id, now)
        wrote = True
    if wrote:
        db.session.commit()


def _touch_device(device_id: int, now: datetime) -> None:
    db.session.execute(
        sa.update(_devices)
        .where(_devices.c.id == device_id, _devices.c.last_active_time < now - ACTIVITY_WRITE_INTERVAL)
        .values(last_active_time=now)
    )


def _token_response(device: sa.Row, family: str, origin: Origin | None) -> dict[str, object]:
    """Mint an access and a refresh token for `device` (a row of find_client) in `family`;
    insert their rows and count the audit event (no commit)."""
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
        "name": "",
        "revoked_time": None,
        "last_used_time": None,
    }
    db.session.execute(
        sa.insert(_tokens),
        [
            {
                **common,
                "kind": TokenKind.ACCESS.value,
                "digest": digest(access),
                "expires_time": now + timedelta(seconds=expires_in),
            },
            {
                **common,
                "kind": TokenKind.REFRESH.value,
                "digest": digest(refresh),
                "expires_time": now + timedelta(seconds=config["BIOWEB_REFRESH_TOKEN_EXPIRES_IN"]),
            },
        ],
    )
    if device.last_active_time < now - ACTIVITY_WRITE_INTERVAL:
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


def issue_device_tokens(device: sa.Row, origin: Origin | None = None) -> dict[str, object]:
    """Client-credentials grant: a new token family for an authenticated, active device.

    Revokes the device's refresh families beyond the newest MAX_REFRESH_FAMILIES, so a
    device that asks again and again cannot pile up live tokens. Commits.
    """
    response = _token_response(device, uuid.uuid4().hex, origin)
    live_refresh = sa.and_(
        _tokens.c.device_id == device.id,
        _tokens.c.kind == TokenKind.REFRESH.value,
        _tokens.c.revoked_time.is_(None),
    )
    newest = (
        sa.select(_tokens.c.id).where(live_refresh).order_by(_tokens.c.id.desc()).limit(MAX_REFRESH_FAMILIES)
    )
    db.session.execute(
        sa.update(_tokens)
        .where(live_refresh, _tokens.c.id.not_in(newest.scalar_subquery()))
        .values(revoked_time=utcnow())
    )
    db.session.commit()
    return response


def find_refresh_token(device: sa.Row, plaintext: str) -> TokenRecord | None:
    """The refresh token `plaintext` if it was issued to `device`, else None."""
    token = find_token(plaintext)
    if token is None or token.kind != TokenKind.REFRESH or token.device_id != device.id:
        return None
    return token


def rotate_refresh_token(
    device: sa.Row, token: TokenRecord, origin: Origin | None = None
) -> dict[str, object] | None:
    """Refresh grant with rotation: spend `token` and issue a new pair in the same family.

    The spend is a conditional UPDATE, so of two concurrent refreshes exactly one wins.
    A token that is already spent (or revoked, or expired) is refused with None; if it was
    spent, that is reuse, and the whole family is revoked. Commits in every case.
    """
    now = utcnow()
    if token.is_expired(now):
        return None
    spent = db.session.execute(
        sa.update(_tokens)
        .where(_tokens.c.id == token.id, _tokens.c.revoked_time.is_(None))
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
        sa.update(_tokens)
        .where(_tokens.c.family == family, _tokens.c.revoked_time.is_(None))
        .values(revoked_time=now or utcnow())
    )


def revoke_device_token(token: TokenRecord) -> None:
    """RFC 7009 revocation by the device itself: a refresh token takes its family with it. Commits."""
    now = utcnow()
    if token.kind == TokenKind.REFRESH:
        revoke_family(token.family, now)
    else:
        db.session.execute(
            sa.update(_tokens)
            .where(_tokens.c.id == token.id, _tokens.c.revoked_time.is_(None))
            .values(revoked_time=now)
        )
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
        sa.delete(Token).where(sa.or_(Token.expires_time <= now, Token.revoked_time <= now - keep_revoked))
    )
    db.session.commit()
    return result.rowcount
