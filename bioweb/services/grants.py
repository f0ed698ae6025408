"""Grants: what a person approved a client to do for them, and the tokens of the
authorization-code flow (RFC 6749 4.1 with PKCE, RFC 7636).

A client is a device (only its owner may authorize it: the companion-app case) or an
application someone registered (anyone may authorize it). A grant is one (person, client)
with the scopes the person approved; approving again widens it.

- An authorization code is stored as a SHA-256 digest, lives CODE_LIFETIME, is spent by a
  conditional UPDATE (of two racing exchanges, one wins), and is bound to its grant's client,
  the redirect URI and the PKCE challenge. A code presented again once spent (the loser of
  such a race too; with its PKCE verifier, if it has a challenge) ends the refresh family issued from it and every access token of its
  grant (RFC 6749 4.1.2).
- Access tokens are signed (bioweb/signing.py) with the grant's id and generation. Revoking
  one, or a refresh family, moves that grant's generation: its access tokens end at their next
  use, and no other grant's do.
- Refresh tokens rotate at every use; a spent one presented again ends its family and moves
  the generation. Each code starts a family; a grant keeps at most MAX_FAMILIES live ones
  (the oldest ends first): the cap counts one person's sign-ins with one client, so nobody
  else's sign-in can end anyone's grant.
- Revoking a grant (the person, on "Authorized apps"), disabling or re-authorizing its device,
  rotating its application's secret or deleting the application deletes the grant with its
  codes and refresh tokens: its access tokens find no grant and end.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from .. import reads
from ..errors import NotFound
from ..extensions import db
from ..models import (
    MAX_ID,
    Application,
    AuthorizationCode,
    ClientType,
    Device,
    DeviceState,
    Grant,
    Token,
    TokenKind,
    User,
    utcnow,
)
from ..readmodels import IssuedTokens
from ..security import CODE_PREFIX, REFRESH_PREFIX, digest, new_secret
from . import Actor, Principal
from .tokens import PAT_SCOPES, note_use, signer

# The published system's scope "all" means every scope a person can grant.
ALL_ALIAS = "all"
# What each scope lets a client do, in words the consent screen shows.
SCOPE_WORDS = {
    "devices:read": "See your devices: their names, models and state",
    "devices:write": "Register, rename, disable and re-authorize your devices (and receive their client secrets)",
    "samples:read": "Read your devices' data: metrics, samples and figures",
    "samples:write": "Add, change and delete data on your devices",
}
# Without a scope, a client asks to read.
DEFAULT_SCOPE = "devices:read samples:read"
CODE_LIFETIME = timedelta(minutes=10)
MAX_FAMILIES = 10
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 4.1
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # base64url of a SHA-256, unpadded


class GrantProblem(Exception):
    """An RFC 6749 error the client can act on: `error` code and a sentence."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


# --- scopes --------------------------------------------------------------------------------------


def parse_scope(requested: str | None) -> str:
    """The scopes a client asks for, normalised (in the order of PAT_SCOPES); `all` means all
    four, none means DEFAULT_SCOPE. Raises GrantProblem(invalid_scope) naming unknown ones."""
    wanted = (requested or "").split()
    if not wanted:
        return DEFAULT_SCOPE
    unknown = [s for s in wanted if s not in PAT_SCOPES and s != ALL_ALIAS]
    if unknown:
        raise GrantProblem(
            "invalid_scope",
            f"Unknown scope {' '.join(unknown)!r}; a person can grant {', '.join(PAT_SCOPES)} "
            f"(or {ALL_ALIAS!r} for all of them).",
        )
    if ALL_ALIAS in wanted:
        return " ".join(PAT_SCOPES)
    return " ".join(s for s in PAT_SCOPES if s in wanted)


def describe_scope(scope: str) -> list[str]:
    """The consent screen's sentences for `scope`: a pair of read (or write) scopes is one
    sentence ("Read your devices and their data")."""
    held = set(scope.split())
    sentences: list[str] = []
    for pair, together in (
        (("devices:read", "samples:read"), "Read your devices and their data"),
        (
            ("devices:write", "samples:write"),
            "Register, rename, disable and re-authorize your devices (and receive their client "
            "secrets), and add, change and delete their data",
        ),
    ):
        if set(pair) <= held:
            sentences.append(together)
        else:
            sentences.extend(SCOPE_WORDS[s] for s in pair if s in held)
    return sentences


def _union(first: str, second: str) -> str:
    held = set(first.split()) | set(second.split())
    return " ".join(s for s in PAT_SCOPES if s in held)


def _within(scope: str, granted: str) -> bool:
    return set(scope.split()) <= set(granted.split())


# --- clients -------------------------------------------------------------------------------------

APP_CLIENT_PREFIX = "app_"


@dataclass(frozen=True, slots=True)
class Client:
    """An OAuth client of the authorization-code flow: a device or an application."""

    client_id: str
    name: str  # what the consent screen calls it
    owner_id: int
    owner_name: str
    public: bool
    redirect_uris: tuple[str, ...]
    # An application's secret digest (none for a public client); a device's secrets are
    # checked by tokens.match_secret, which knows its two slots and their expiry.
    secret_digests: tuple[str, ...]
    device_id: int | None = None
    application_id: int | None = None
    homepage_url: str = ""
    active: bool = True

    @property
    def is_device(self) -> bool:
        return self.device_id is not None


def _person(user: User) -> str:
    name = f"{user.first_name} {user.last_name}".strip()
    return f"{name} ({user.email})" if name else user.email


def _device_redirect_uris(device: Device) -> tuple[str, ...]:
    from ..redirects import own_landing_page

    own = own_landing_page(current_app.config["BIOWEB_BASE_URL"])
    return (own, *(u for u in device.redirect_uris.split() if u != own))


def find_client(client_id: str) -> Client | None:
    """The device or application whose client id is `client_id`, or None."""
    if not client_id or len(client_id) > 32 or "\x00" in client_id:
        return None
    if client_id.startswith(APP_CLIENT_PREFIX):
        app = db.session.scalar(sa.select(Application).where(Application.client_id == client_id))
        if app is None:
            return None
        return Client(
            client_id=app.client_id,
            name=app.name,
            owner_id=app.user_id,
            owner_name=_person(app.owner),
            public=app.client_type == ClientType.PUBLIC,
            redirect_uris=tuple(app.redirect_uris.split()),
            secret_digests=(app.client_secret_digest,) if app.client_secret_digest else (),
            application_id=app.id,
            homepage_url=app.homepage_url,
        )
    device = db.session.scalar(sa.select(Device).where(Device.client_id == client_id))
    if device is None:
        return None
    return Client(
        client_id=device.client_id,
        name=device.name or f"{device.product_name} ({device.code})",
        owner_id=device.user_id,
        owner_name=_person(device.user),
        public=False,
        redirect_uris=_device_redirect_uris(device),
        secret_digests=(),  # a device authenticates by its two slots (tokens.match_secret)
        device_id=device.id,
        active=device.state == DeviceState.ACTIVE,
    )


def secret_matches(client: Client, secret: str) -> bool:
    """Whether `secret` is one of the client's live secrets (constant time, every slot compared)."""
    presented = digest(secret)
    matched = False
    for held in client.secret_digests:
        matched |= hmac.compare_digest(presented, held)
    return matched


# --- approval: the grant and its code -----------------------------------------------------------


def _grant_condition(client: Client) -> sa.ColumnElement[bool]:
    if client.device_id is not None:
        return Grant.device_id == client.device_id
    return Grant.application_id == client.application_id


def has_grant(user_id: int, client: Client) -> bool:
    """Whether the person has authorized `client` (and not revoked it since)."""
    found = db.session.scalar(sa.select(Grant.id).where(Grant.user_id == user_id, _grant_condition(client)))
    return found is not None


def approve(
    user: User,
    client: Client,
    scope: str,
    redirect_uri: str,
    redirect_uri_given: bool,
    code_challenge: str | None,
) -> str:
    """The person approved `client` for `scope`: create or widen their grant and return a new
    authorization code (shown to no one but the redirect). Commits."""
    now = utcnow()
    for _ in range(2):  # a concurrent first approval may insert the grant first: then widen it
        grant = db.session.scalar(sa.select(Grant).where(Grant.user_id == user.id, _grant_condition(client)))
        try:
            if grant is None:
                grant = Grant(
                    user_id=user.id,
                    device_id=client.device_id,
                    application_id=client.application_id,
                    scope=scope,
                    created_time=now,
                    modified_time=now,
                )
                db.session.add(grant)
            else:
                grant.scope = _union(grant.scope, scope)
                grant.modified_time = now
            db.session.flush()
            break
        except IntegrityError:
            db.session.rollback()
    else:
        raise RuntimeError("the grant could not be written")
    code = new_secret(CODE_PREFIX)
    db.session.add(
        AuthorizationCode(
            digest=digest(code),
            grant_id=grant.id,
            user_id=user.id,
            scope=scope,
            redirect_uri=redirect_uri,
            redirect_uri_given=redirect_uri_given,
            code_challenge=code_challenge,
            created_time=now,
            expires_time=now + CODE_LIFETIME,
        )
    )
    db.session.commit()
    return code


def valid_challenge(challenge: str) -> bool:
    """Whether `challenge` is an S256 code challenge (43 base64url characters)."""
    return bool(_S256_CHALLENGE.fullmatch(challenge))


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class CodeStatus:
    """What the /appauth/code page may say of a code: when it ends and whether it was used."""

    expires_time: datetime
    used: bool


def code_status(code: str) -> CodeStatus | None:
    """The expiry and use of a code, for the landing page (None: unknown)."""
    if not code.startswith(CODE_PREFIX):
        return None
    row = db.session.execute(
        sa.select(AuthorizationCode.expires_time, AuthorizationCode.used_time).where(
            AuthorizationCode.digest == digest(code)
        )
    ).first()
    return None if row is None else CodeStatus(row.expires_time, row.used_time is not None)


# --- tokens --------------------------------------------------------------------------------------

_tokens, _grants, _codes = Token.__table__, Grant.__table__, AuthorizationCode.__table__


def _count(result: sa.Result[Any]) -> int:
    return cast("sa.CursorResult[Any]", result).rowcount


def _sign(grant: Any, client: Client, scope: str, tenant_id: int) -> tuple[str, int]:
    expires_in = int(current_app.config["BIOWEB_TOKEN_EXPIRES_IN"])
    token = signer().sign_for_grant(
        client_id=client.client_id,
        scope=scope,
        user_id=grant.user_id,
        tenant_id=tenant_id,
        grant_id=grant.id,
        generation=grant.generation,
        expires_in=expires_in,
    )
    return token, expires_in


def _new_refresh(grant_id: int, user_id: int, scope: str, family: str, now: datetime) -> str:
    refresh = new_secret(REFRESH_PREFIX)
    db.session.execute(
        sa.insert(_tokens).values(
            kind=TokenKind.REFRESH.value,
            digest=digest(refresh),
            name="",
            scope=scope,
            user_id=user_id,
            grant_id=grant_id,
            family=family,
            created_time=now,
            expires_time=now + timedelta(seconds=current_app.config["BIOWEB_REFRESH_TOKEN_EXPIRES_IN"]),
        )
    )
    return refresh


def _cap_families(grant_id: int, now: datetime) -> None:
    """Keep at most MAX_FAMILIES live refresh families on the grant (the newest); no commit."""
    live = db.session.execute(
        sa.select(_tokens.c.family)
        .where(_tokens.c.grant_id == grant_id, _tokens.c.revoked_time.is_(None))
        .order_by(_tokens.c.id.desc())
    ).scalars()
    families: list[str] = []
    for family in live:
        if family not in families:
            families.append(family)
    for family in families[MAX_FAMILIES:]:
        revoke_family(family, now)


def move_generation(grant_id: int) -> None:
    """End every access token of the grant (no commit)."""
    db.session.execute(
        sa.update(_grants).where(_grants.c.id == grant_id).values(generation=_grants.c.generation + 1)
    )


def revoke_family(family: str | None, now: datetime | None = None) -> int:
    """Revoke every live refresh token of a family; how many were live (no commit)."""
    if family is None:
        return 0
    result = db.session.execute(
        sa.update(_tokens)
        .where(_tokens.c.family == family, _tokens.c.revoked_time.is_(None))
        .values(revoked_time=now or utcnow())
    )
    return _count(result)


def _issue(grant: Grant, client: Client, scope: str, family: str, now: datetime) -> IssuedTokens:
    tenant_id = db.session.scalar(sa.select(User.tenant_id).where(User.id == grant.user_id))
    access, expires_in = _sign(grant, client, scope, int(tenant_id or 0))
    refresh = _new_refresh(grant.id, grant.user_id, scope, family, now)
    grant.last_used_time = now
    return IssuedTokens(
        access, expires_in, scope, client.device_id, grant.user_id, int(tenant_id or 0), refresh
    )


def exchange_code(client: Client, code: str, redirect_uri: str | None, verifier: str | None) -> IssuedTokens:
    """RFC 6749 4.1.3 with RFC 7636 4.6: the tokens for an authorization code, once.
    Raises GrantProblem. Commits."""
    if not code.startswith(CODE_PREFIX):
        raise GrantProblem("invalid_grant", "The authorization code is unknown.")
    row = db.session.scalar(sa.select(AuthorizationCode).where(AuthorizationCode.digest == digest(code)))
    grant = db.session.get(Grant, row.grant_id) if row is not None else None
    if row is None or grant is None:
        raise GrantProblem("invalid_grant", "The authorization code is unknown, or its grant was revoked.")
    if (grant.device_id, grant.application_id) != (client.device_id, client.application_id):
        raise GrantProblem("invalid_grant", "The authorization code was issued to another client.")
    now = utcnow()
    if redirect_uri is None and row.redirect_uri_given:
        raise GrantProblem(
            "invalid_request",
            "The parameter redirect_uri is missing: send the redirect_uri of the authorization request.",
        )
    if redirect_uri is not None and redirect_uri != row.redirect_uri:
        raise GrantProblem(
            "invalid_grant", "The redirect_uri differs from the one of the authorization request."
        )
    if row.code_challenge is not None:
        if verifier is None:
            raise GrantProblem(
                "invalid_request",
                "The parameter code_verifier is missing: this code was requested with a PKCE code_challenge.",
            )
        if not _VERIFIER.fullmatch(verifier):
            raise GrantProblem(
                "invalid_grant",
                "The code_verifier must be 43 to 128 characters of A-Z, a-z, 0-9, '-', '.', '_', '~' (RFC 7636).",
            )
        if not hmac.compare_digest(_s256(verifier), row.code_challenge):
            raise GrantProblem("invalid_grant", "The code_verifier does not match the code_challenge.")
    elif verifier is not None:
        raise GrantProblem(
            "invalid_grant",
            "This code was requested without a code_challenge, so it takes no code_verifier.",
        )
    # A replay ends what the code gave only once it proved itself the client's (with PKCE, its
    # verifier): a public client is named by its client_id alone, and whoever saw a spent code
    # must not be able to end the person's sign-in with it.
    if row.used_time is not None:
        _code_reused(row, now)
        raise GrantProblem(
            "invalid_grant",
            "The authorization code was already used; the tokens issued for it are revoked (RFC 6749 4.1.2).",
        )
    if row.expires_time <= now:
        raise GrantProblem("invalid_grant", "The authorization code has expired; start the sign-in again.")
    family = uuid.uuid4().hex
    spent = db.session.execute(
        sa.update(_codes)
        .where(_codes.c.id == row.id, _codes.c.used_time.is_(None))
        .values(used_time=now, family=family)
    )
    if _count(spent) != 1:  # a concurrent exchange won (and committed): this one is a replay too
        db.session.rollback()
        _code_reused(row, now)
        raise GrantProblem("invalid_grant", "The authorization code was already used.")
    issued = _issue(grant, client, row.scope, family, now)
    _cap_families(grant.id, now)
    _commit_unless_revoked()
    return issued


def _commit_unless_revoked() -> None:
    """Commit new tokens of a grant; if the person revoked the grant (or its client ended it)
    while they were made, their refresh token's row has no grant to point at: nothing is
    issued. Raises GrantProblem."""
    try:
        db.session.commit()
    except (IntegrityError, StaleDataError):  # the refresh token's grant, or the grant's row, is gone
        db.session.rollback()
        raise GrantProblem("invalid_grant", "The grant was revoked while the tokens were made.") from None


def _code_reused(row: AuthorizationCode, now: datetime) -> None:
    """A spent code came back: end the family it started and the grant's access tokens. Commits."""
    if revoke_family(row.family, now):
        move_generation(row.grant_id)
    db.session.commit()


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    id: int
    family: str | None
    grant_id: int | None
    scope: str
    expires_time: datetime | None
    revoked_time: datetime | None


def find_refresh_token(plaintext: str) -> RefreshRecord | None:
    """The refresh token stored for `plaintext` (live or not), or None."""
    if not plaintext.startswith(REFRESH_PREFIX):
        return None
    row = db.session.execute(
        sa.select(
            _tokens.c.id,
            _tokens.c.family,
            _tokens.c.grant_id,
            _tokens.c.scope,
            _tokens.c.expires_time,
            _tokens.c.revoked_time,
        ).where(_tokens.c.digest == digest(plaintext), _tokens.c.kind == TokenKind.REFRESH.value)
    ).first()
    return RefreshRecord(*row) if row is not None else None


def client_grant(client: Client, grant_id: int | None) -> Grant | None:
    """The grant `grant_id` if it is `client`'s, else None."""
    grant = db.session.get(Grant, grant_id) if grant_id else None
    if grant is None or (grant.device_id, grant.application_id) != (client.device_id, client.application_id):
        return None
    return grant


def refresh(client: Client, plaintext: str, scope: str | None) -> IssuedTokens:
    """RFC 6749 6 with rotation: spend the refresh token, issue a new pair in its family (with
    the same scope, or a narrower one asked for). A spent token presented again ends its family
    and the grant's access tokens. Raises GrantProblem. Commits."""
    record = find_refresh_token(plaintext)
    grant = client_grant(client, record.grant_id) if record is not None else None
    if record is None or grant is None:
        raise GrantProblem("invalid_grant", "The refresh token is unknown, revoked, or not this client's.")
    wanted = record.scope if scope is None else parse_scope(scope)
    if not _within(wanted, record.scope):
        raise GrantProblem(
            "invalid_scope",
            f"A refresh can keep or narrow the scope, not widen it: this token holds {record.scope!r}.",
        )
    now = utcnow()
    if record.expires_time is not None and record.expires_time <= now:
        raise GrantProblem("invalid_grant", "The refresh token has expired; sign in again.")
    spent = db.session.execute(
        sa.update(_tokens)
        .where(_tokens.c.id == record.id, _tokens.c.revoked_time.is_(None))
        .values(revoked_time=now)
    )
    if _count(spent) != 1:
        # Reuse of a spent token while its family lives: the family is compromised, so it ends
        # with the grant's access tokens. A family already ended ends nothing more.
        if revoke_family(record.family, now):
            move_generation(grant.id)
        db.session.commit()
        raise GrantProblem("invalid_grant", "The refresh token is revoked or was already used.")
    issued = _issue(grant, client, wanted, record.family or uuid.uuid4().hex, now)
    _commit_unless_revoked()
    return issued


def revoke_refresh(record: RefreshRecord) -> None:
    """RFC 7009 for a refresh token: its family, and its grant's access tokens (2.1). Commits."""
    revoke_family(record.family)
    if record.grant_id is not None:
        move_generation(record.grant_id)
    db.session.commit()


def revoke_access(grant_id: int, generation: int) -> None:
    """RFC 7009 for a grant's access token of the current generation: move the generation (the
    grant's other access tokens end too; its refresh tokens stay). Commits."""
    db.session.execute(
        sa.update(_grants)
        .where(_grants.c.id == grant_id, _grants.c.generation == generation)
        .values(generation=_grants.c.generation + 1)
    )
    db.session.commit()


# --- the bearer check of a grant's access token ---------------------------------------------------

_GRANT_BY_ID = sa.select(_grants.c.user_id, _grants.c.generation, _grants.c.last_used_time).where(
    _grants.c.id == sa.bindparam("id")
)


def authenticate(claims: Any) -> Principal | None:
    """The principal of a grant's verified access token, or None when the grant is gone or its
    generation moved. One primary-key read; last_used_time written at most once a minute."""
    row = reads.first(_GRANT_BY_ID, {"id": claims.grant_id})
    if row is None or row.generation != claims.generation or row.user_id != claims.user_id:
        return None
    note_use(_grants, claims.grant_id, row.last_used_time)
    return Principal(claims.user_id, claims.tenant_id, claims.scope, grant_id=claims.grant_id)


def token_is_live(claims: Any) -> bool:
    """Whether a grant's verified access token still works (introspection)."""
    row = reads.first(_GRANT_BY_ID, {"id": claims.grant_id})
    return row is not None and row.generation == claims.generation and row.user_id == claims.user_id


# --- ending grants -------------------------------------------------------------------------------


def _delete_grants(condition: sa.ColumnElement[bool]) -> int:
    """Delete the grants matching `condition` with their codes and refresh tokens (no commit)."""
    ids = sa.select(_grants.c.id).where(condition).scalar_subquery()
    db.session.execute(sa.delete(_codes).where(_codes.c.grant_id.in_(ids)))
    db.session.execute(sa.delete(_tokens).where(_tokens.c.grant_id.in_(ids)))
    return _count(db.session.execute(sa.delete(_grants).where(condition)))


def end_device_grants(device_id: int) -> int:
    """Every grant on the device ends (disable, re-authorize, deletion). No commit."""
    return _delete_grants(_grants.c.device_id == device_id)


def end_application_grants(application_id: int) -> int:
    """Every grant on the application ends (secret rotated, application deleted). No commit."""
    return _delete_grants(_grants.c.application_id == application_id)


def end_user_grants(user_id: int) -> int:
    """Every grant the person gave ends (account deletion). No commit."""
    return _delete_grants(_grants.c.user_id == user_id)


def revoke_grant(actor: Actor, grant_id: int) -> None:
    """The person revokes one of their grants: the client is cut off at its next request.
    Raises NotFound for an unknown or another person's grant. Commits."""
    grant = db.session.get(Grant, grant_id) if 0 < grant_id <= MAX_ID else None
    if grant is None or grant.user_id != actor.id:
        raise NotFound(f"There is no authorized app with id {grant_id}.")
    _delete_grants(_grants.c.id == grant.id)
    db.session.commit()


@dataclass(frozen=True, slots=True)
class GrantView:
    """One row of the person's "Authorized apps"."""

    id: int
    client_name: str
    client_id: str
    kind: str  # "device" or "application"
    owner_name: str
    homepage_url: str
    scope: str
    scope_words: list[str]
    created_time: datetime
    modified_time: datetime
    last_used_time: datetime | None


def list_grants(actor: Actor) -> list[GrantView]:
    """The person's grants, most recently approved first."""
    grants = db.session.scalars(
        sa.select(Grant)
        .where(Grant.user_id == actor.id)
        .order_by(Grant.modified_time.desc(), Grant.id.desc())
    ).all()
    device_ids = [g.device_id for g in grants if g.device_id is not None]
    app_ids = [g.application_id for g in grants if g.application_id is not None]
    devices = _by_id(Device, device_ids)
    apps = _by_id(Application, app_ids)
    views = []
    for grant in grants:
        if grant.device_id is not None:
            device = devices[grant.device_id]
            name = device.name or f"{device.product_name} ({device.code})"
            client_id, kind, owner, homepage = device.client_id, "device", "you", ""
        else:
            app = apps[cast(int, grant.application_id)]
            name, client_id, kind = app.name, app.client_id, "application"
            owner = "you" if app.user_id == actor.id else _person(app.owner)
            homepage = app.homepage_url
        views.append(
            GrantView(
                grant.id,
                name,
                client_id,
                kind,
                owner,
                homepage,
                grant.scope,
                describe_scope(grant.scope),
                grant.created_time,
                grant.modified_time,
                grant.last_used_time,
            )
        )
    return views


def _by_id(model: Any, ids: Iterable[int]) -> dict[int, Any]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    return {row.id: row for row in db.session.scalars(sa.select(model).where(model.id.in_(wanted)))}


def purge_codes() -> int:
    """Delete authorization codes that expired more than a day ago (a day keeps reuse detection
    for codes used late in their life). Commits. Returns the count."""
    result = db.session.execute(
        sa.delete(_codes).where(_codes.c.expires_time <= utcnow() - timedelta(days=1))
    )
    db.session.commit()
    return _count(result)
