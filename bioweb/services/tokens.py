"""Bearer credentials: personal access tokens and signed device access tokens.

PATs are random strings stored only as SHA-256 digests and looked up by digest (unique
index). Device access tokens are signed (bioweb/signing.py) and stored nowhere: they die when
the device's credential generation moves (disable, re-authorize, revocation) or when they
expire. Refresh tokens and the access tokens of the authorization-code flow belong to grants
(services/grants.py).
"""

from __future__ import annotations

import atexit
import hmac
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from flask import Flask, current_app

from .. import reads
from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import MAX_ID, Device, EventKind, Token, TokenKind, User, utcnow
from ..readmodels import IssuedTokens
from ..security import DUMMY_DIGEST, PAT_PREFIX, digest, new_secret
from ..signing import TokenSigner
from . import Actor, events
from .events import Origin

PAT_SCOPES = ("devices:read", "devices:write", "samples:read", "samples:write")
DEVICE_SCOPE = "device"
# The published system's only scope was "all", and its own device client asks for it.
DEVICE_SCOPE_ALIASES = frozenset({DEVICE_SCOPE, "all"})
# A bearer request writes last_used_time / last_active_time at most this often.
ACTIVITY_WRITE_INTERVAL = timedelta(seconds=60)
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


def get_personal_token(actor: Actor | None, token_id: int) -> Token:
    """One PAT of `actor` (None: an operator, any user's). Raises NotFound, also for another
    user's token. Does not commit."""
    token = db.session.get(Token, token_id) if 0 < token_id <= MAX_ID else None
    if token is None or token.kind != TokenKind.PERSONAL or (actor is not None and token.user_id != actor.id):
        raise NotFound(f"There is no personal access token with id {token_id}.")
    return token


def revoke_personal_token(actor: Actor | None, token_id: int) -> Token:
    """Revoke a PAT (idempotent). `actor` None means an operator (CLI). Raises NotFound. Commits."""
    token = get_personal_token(actor, token_id)
    if token.revoked_time is None:
        token.revoked_time = utcnow()
        db.session.commit()
    return token


def signer() -> TokenSigner:
    signer: TokenSigner = current_app.extensions["bioweb.signer"]
    return signer


# --- client secrets: the two slots of a device ----------------------------------------------------
# A device holds one or two client secrets, in slots 1 and 2 of its row (models.Device). A secret
# is known by its serial (odd in slot 1, even in slot 2, never reused), which the access tokens
# obtained with it carry as their `cs` claim.

SLOTS = (1, 2)


def slot_of(serial: int) -> int:
    """The slot (1 or 2) of the secret numbered `serial`."""
    return 1 if serial % 2 else 2


def secret_is_live(device: Any, serial: int) -> bool:
    """Whether the device (a devices row or model) holds the secret numbered `serial` now:
    present in its slot and not expired. The bearer check's rule for a token's `cs` claim."""
    if serial == device.client_secret_serial:
        held, expires = device.client_secret_digest, device.client_secret_expires_time
    elif serial == device.client_secret2_serial:
        held, expires = device.client_secret2_digest, device.client_secret2_expires_time
    else:
        return False
    return bool(held) and (expires is None or expires > utcnow())


class SecretMatch(NamedTuple):
    """Which of a device's secrets a presented one is: its serial, and whether it has expired."""

    serial: int
    expired: bool


def match_secret(device: Any | None, secret: str) -> SecretMatch | None:
    """The device's secret (slot 1 or 2) that `secret` is, or None.

    Both slots are compared in constant time, whichever matches, and an unknown client (None)
    or an empty slot is compared against a dummy digest: every answer costs the same.
    """
    presented = digest(secret)
    first = second = DUMMY_DIGEST
    if device is not None:
        first = device.client_secret_digest or DUMMY_DIGEST
        second = device.client_secret2_digest or DUMMY_DIGEST
    in_first = hmac.compare_digest(presented, first)
    in_second = hmac.compare_digest(presented, second)
    if device is None or not (in_first or in_second):
        return None
    if in_first:
        serial, expires = device.client_secret_serial, device.client_secret_expires_time
    else:
        serial, expires = device.client_secret2_serial, device.client_secret2_expires_time
    return SecretMatch(serial, expires is not None and expires <= utcnow())


def first_live_serial(device: Any) -> int:
    """The serial of the device's first live secret (slot 1 before slot 2)."""
    for serial in (device.client_secret_serial, device.client_secret2_serial):
        if secret_is_live(device, serial):
            return int(serial)
    return int(device.client_secret_serial)


def _sign_device_token(device: Any, serial: int) -> IssuedTokens:
    """A signed access token for `device` (a devices row) under its current generation,
    obtained with its secret numbered `serial`."""
    expires_in = current_app.config["BIOWEB_TOKEN_EXPIRES_IN"]
    access = signer().sign(
        client_id=device.client_id,
        scope=DEVICE_SCOPE,
        device_id=device.id,
        user_id=device.user_id,
        tenant_id=device.tenant_id,
        generation=device.credential_generation,
        secret_slot=serial,
        expires_in=expires_in,
    )
    return IssuedTokens(access, expires_in, DEVICE_SCOPE, device.id, device.user_id, device.tenant_id)


_tokens, _devices, _users = Token.__table__, Device.__table__, User.__table__


def _count(result: sa.Result[*tuple[Any, ...]]) -> int:
    """How many rows an UPDATE or DELETE matched (db.session.execute is typed as returning a
    plain Result; for these statements it is a CursorResult)."""
    return cast("sa.CursorResult[*tuple[Any, ...]]", result).rowcount


# --- token requests per secret and hour --------------------------------------------------------------


class _Pending(NamedTuple):
    requests: int
    first: datetime
    last: datetime
    origin: Origin | None


# How many (device, slot, hour) counts a worker holds before it writes them all at once.
MAX_PENDING_COUNTS = 10_000


class TokenCounts:
    """The token requests a worker served and has not written yet, per device, secret slot and
    hour (one per app: app.extensions["bioweb.token_counts"]).

    /token writes at most once an hour per device (its first token of the hour writes
    last_token_time and that hour's token.issued row). Every other request is counted here, in
    memory, and written later, in one statement, added to the rows of the hours they belong
    to: when this worker next makes a device's hourly write, that device's counts go with it;
    when it holds MAX_PENDING_COUNTS, all of them; and when the worker exits. So an hour's count
    is exact but late, or slightly short when a worker is killed before it writes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, int, datetime], _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, device_id: int, slot: int, hour: datetime, now: datetime, origin: Origin | None) -> int:
        """Count one token request; returns how many counts the worker holds."""
        key = (device_id, slot, hour)
        with self._lock:
            held = self._pending.get(key)
            self._pending[key] = (
                _Pending(1, now, now, origin)
                if held is None
                else held._replace(requests=held.requests + 1, last=now)
            )
            return len(self._pending)

    def take(self, device_id: int | None = None) -> list[events.Count]:
        """Remove and return the counts of one device (every hour and slot), or of all devices."""
        with self._lock:
            keys = [k for k in self._pending if device_id is None or k[0] == device_id]
            taken = [(k, self._pending.pop(k)) for k in keys]
        return [
            events.Count(d, EventKind.TOKEN_ISSUED, hour, slot, p.requests, p.first, p.last, p.origin)
            for (d, slot, hour), p in taken
        ]


def token_counts() -> TokenCounts:
    counts: TokenCounts = current_app.extensions["bioweb.token_counts"]
    return counts


def write_token_counts() -> int:
    """Write every token request count this worker holds (one statement per 500). Commits.
    Returns how many (device, slot, hour) counts it wrote."""
    taken = token_counts().take()
    events.add_counts(taken)
    db.session.commit()
    return len(taken)


def init_app(app: Flask) -> None:
    """Give `app` its in-memory token counts, written when the process exits (best effort)."""
    app.extensions["bioweb.token_counts"] = TokenCounts()
    atexit.register(_write_at_exit, weakref.ref(app))


def _write_at_exit(app_ref: weakref.ref[Flask]) -> None:
    app = app_ref()
    if app is None or not len(app.extensions["bioweb.token_counts"]):
        return
    try:
        with app.app_context():
            write_token_counts()
    except Exception:  # noqa: BLE001 - exiting: a count lost here is the documented "slightly short"
        pass


def issue_device_token(device: Any, serial: int | None = None, origin: Origin | None = None) -> IssuedTokens:
    """Client-credentials grant for an authenticated, active device (a row of devices.find_client)
    that presented its secret numbered `serial` (None: its first live one).

    Reads nothing more and normally writes nothing: the token is signed with the generation
    of the row the secret was checked against, so a disable or re-authorize that races this
    request leaves the token dead at its first use. Once an hour per device it notes the
    activity (last_token_time, last_active_time) and writes the hour's token.issued row for
    the secret used, with the counts this worker held for the device (TokenCounts); of
    concurrent requests only the one whose conditional UPDATE wins writes. Every other request
    is counted in memory. Commits only when it writes.
    """
    if serial is None:
        serial = first_live_serial(device)
    issued = _sign_device_token(device, serial)
    now = utcnow()
    hour = now.replace(minute=0, second=0, microsecond=0)
    counts = token_counts()
    if device.last_token_time is None or device.last_token_time < hour:
        noted = db.session.execute(
            sa.update(_devices)
            .where(
                _devices.c.id == device.id,
                sa.or_(_devices.c.last_token_time.is_(None), _devices.c.last_token_time < hour),
            )
            .values(last_token_time=now, last_active_time=now)
        )
        if _count(noted) == 1:
            this = events.Count(device.id, EventKind.TOKEN_ISSUED, hour, slot_of(serial), 1, now, now, origin)
            events.add_counts([this, *counts.take(device.id)])
            db.session.commit()
            return issued
        db.session.commit()
    if counts.add(device.id, slot_of(serial), hour, now, origin) >= MAX_PENDING_COUNTS:
        write_token_counts()
    return issued


@dataclass(frozen=True, slots=True)
class PersonalToken:
    """A stored PAT as the bearer check needs it, read in one indexed query (plain row)."""

    id: int
    scope: str
    user_id: int
    tenant_id: int
    expires_time: datetime | None
    revoked_time: datetime | None
    last_used_time: datetime | None

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_time is None and (self.expires_time is None or self.expires_time > now)


_FIND_PAT = (
    sa.select(
        _tokens.c.id,
        _tokens.c.scope,
        _tokens.c.user_id,
        _users.c.tenant_id,
        _tokens.c.expires_time,
        _tokens.c.revoked_time,
        _tokens.c.last_used_time,
    )
    .select_from(_tokens.join(_users, _users.c.id == _tokens.c.user_id))
    .where(_tokens.c.digest == sa.bindparam("digest"), _tokens.c.kind == TokenKind.PERSONAL.value)
)


def find_personal_token(plaintext: str) -> PersonalToken | None:
    """The PAT stored for `plaintext` with its user's tenant, usable or not; None if unknown."""
    row = reads.first(_FIND_PAT, {"digest": digest(plaintext)})
    return PersonalToken(*row) if row is not None else None


def note_use(table: sa.Table, row_id: int, last_used: datetime | None) -> None:
    """Set the last_used_time of a row of `table` (a PAT, a grant) that a bearer request just
    used, read as `last_used`: at most once a minute, by a conditional UPDATE, so concurrent
    requests write it once. Commits only when it writes."""
    now = utcnow()
    stale = now - ACTIVITY_WRITE_INTERVAL
    if last_used is None or last_used < stale:
        column = table.c.last_used_time
        db.session.execute(
            sa.update(table)
            .where(table.c.id == row_id, sa.or_(column.is_(None), column < stale))
            .values(last_used_time=now)
        )
        db.session.commit()


def record_personal_token_use(token: PersonalToken) -> None:
    """Note a PAT's use in last_used_time, at most once a minute. Commits only when it writes."""
    note_use(_tokens, token.id, token.last_used_time)


def record_device_activity(device: Any) -> None:
    """Note that `device` (a devices row) just used a token: last_active_time, at most once a
    minute. Commits only when it writes."""
    now = utcnow()
    stale = now - ACTIVITY_WRITE_INTERVAL
    if device.last_active_time < stale:
        db.session.execute(
            sa.update(_devices)
            .where(_devices.c.id == device.id, _devices.c.last_active_time < stale)
            .values(last_active_time=now)
        )
        db.session.commit()


def move_generation(device_id: int) -> None:
    """End every signed access token of the device: move its credential generation (no commit)."""
    db.session.execute(
        sa.update(_devices)
        .where(_devices.c.id == device_id)
        .values(credential_generation=_devices.c.credential_generation + 1)
    )


def revoke_device_access_tokens(device_id: int) -> None:
    """RFC 7009 revocation of a device access token. A signed token has no row of its own, so
    this ends every access token of the device (section 2.1 allows revoking related tokens);
    the device's secret keeps working and it simply asks /token again. Commits."""
    move_generation(device_id)
    db.session.commit()


def purge(keep_revoked: timedelta = DEFAULT_KEEP_REVOKED) -> int:
    """Delete expired tokens, and revoked ones older than `keep_revoked`. Returns the count. Commits."""
    now = utcnow()
    result = db.session.execute(
        sa.delete(Token).where(sa.or_(Token.expires_time <= now, Token.revoked_time <= now - keep_revoked))
    )
    db.session.commit()
    return _count(result)
