"""The bearer check of /api/v1: the whole rule in one module.

`Authorization: Bearer <token>`, by prefix:
- `bcd_` a grant's access token (an app acting for a person, services/grants.py): signature
  and claims in process, then one primary-key read of the grant: it must still exist (not
  revoked, its client not disabled, re-authorized, re-keyed or deleted) at the generation the
  token carries. Its scopes are the person's (devices:*, samples:*), never `device`.
- `bcd_` a device's own access token: signature, type, issuer, audience and expiry are checked in
  process (bioweb/signing.py); then one primary-key read of the device row: the device must
  be active, its credential generation the one the token was minted under, and the client
  secret the token was obtained with (its `cs` claim) one the device still holds, unexpired
  (a removed or expired secret ends its tokens, not the other secret's). That row is the
  principal's `device`, so a device reading itself costs this one query.
- `bcp_` a personal access token: one indexed read by digest, joined to its user's tenant;
  not revoked, not expired.
- anything else, a refresh token (`bcr_`) included, is refused like an unknown token:
  refresh tokens work at /token only, with the client's credentials.
Missing, unknown, expired or revoked: 401 invalid_token; a valid token without the scope:
403 insufficient_scope. Both in the one JSON error shape with an RFC 6750 challenge.

It runs outside Authlib's ResourceProtector: that costs as much as the rest of a device
read, and this rule is short enough to read whole.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Response, g, request

from . import reads
from .errors import json_error
from .models import Device, DeviceState, utcnow
from .origin import current_origin
from .security import ACCESS_PREFIX, PAT_PREFIX
from .services import Principal, grants
from .services import tokens as token_service
from .services.events import Origin

REALM = "bioweb"
_MISSING = "Send a token in the header Authorization: Bearer <token>."
_INVALID = "The access token is unknown, expired or revoked."

_devices = Device.__table__
_DEVICE_BY_ID = sa.select(_devices).where(_devices.c.id == sa.bindparam("id"))

V = TypeVar("V", bound=Callable[..., Any])


def _challenge(status: int, code: str, description: str) -> Response:
    header = f'Bearer realm="{REALM}", error="{code}", error_description="{description}"'
    return json_error(status, code, description, headers={"WWW-Authenticate": header})


def authenticate(authorization: str | None) -> Principal | Response:
    """The principal behind an Authorization header, or the 401 answer to send instead."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return _challenge(401, "invalid_token", _MISSING)
    if token.startswith(ACCESS_PREFIX):
        claims = token_service.signer().verify(token)
        if claims is None:
            return _challenge(401, "invalid_token", _INVALID)
        if claims.grant_id is not None:
            principal = grants.authenticate(claims)
            return principal if principal is not None else _challenge(401, "invalid_token", _INVALID)
        device = reads.first(_DEVICE_BY_ID, {"id": claims.device_id})
        if (
            device is None
            or device.state != DeviceState.ACTIVE
            or device.credential_generation != claims.generation
            or device.user_id != claims.user_id
            # Deleted rows free their ids, and SQLite hands out the highest one again: a device
            # registered after a deletion can carry an old device's id (and generation 1), never
            # its random client id.
            or device.client_id != claims.client_id
            or claims.secret_slot is None
            or not token_service.secret_is_live(device, claims.secret_slot)
        ):
            return _challenge(401, "invalid_token", _INVALID)
        token_service.record_device_activity(device)
        return Principal(device.user_id, device.tenant_id, claims.scope, device=device)
    if token.startswith(PAT_PREFIX):
        pat = token_service.find_personal_token(token)
        if pat is None or not pat.is_usable(utcnow()):
            return _challenge(401, "invalid_token", _INVALID)
        token_service.record_personal_token_use(pat)
        return Principal(pat.user_id, pat.tenant_id, pat.scope, token_id=pat.id)
    return _challenge(401, "invalid_token", _INVALID)


def require_token(*scopes: str, all_of: bool = False, personal: str | None = None) -> Callable[[V], V]:
    """Guard a view: a valid bearer token holding any one of `scopes` (with `all_of`, every one
    of them). With `personal` (the sentence to answer otherwise), only a personal access token:
    an app's token from the authorization-code flow, or a device's, gets 403 insufficient_scope
    whatever its scopes. The view reads the principal with current_principal()."""
    wanted = frozenset(scopes)
    needs = (" and " if all_of else " or ").join(scopes)

    def decorate(view: V) -> V:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate(request.headers.get("Authorization"))
            if isinstance(principal, Response):
                return principal
            held = principal.scope.split()
            if (not wanted.issubset(held)) if all_of else wanted.isdisjoint(held):
                noun = "scopes" if all_of and len(scopes) > 1 else "scope"
                return _challenge(403, "insufficient_scope", f"This needs the {noun} {needs}.")
            if personal is not None and principal.token_id is None:
                return _challenge(403, "insufficient_scope", personal)
            g.principal = principal
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def current_principal() -> Principal:
    """The principal of this request (inside a view guarded by require_token)."""
    principal: Principal = g.principal
    return principal


def bearer_origin() -> Origin:
    """The audit Origin of this bearer request: the device for a device token, else the user."""
    principal = current_principal()
    if principal.device is not None:
        return current_origin(f"device:{principal.device.id}")
    return current_origin(f"user:{principal.id}")
