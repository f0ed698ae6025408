"""The keys that sign access tokens, and the signing and verifying of those tokens.

An access token is an RFC 9068 JWT (`typ: at+jwt`, HS256) behind the `bcd_` prefix, so leaked
ones stay easy to scan for. Two kinds: a device's own (client credentials: `device_id`, the
device's credential generation `gen` and secret serial `cs`), and a grant's (a client acting
for a person after the authorization-code flow: `grant` and the grant's generation `gen`). It
carries everything its check needs; no copy is stored anywhere. Keys come from BIOWEB_TOKEN_KEYS ('kid:secret' items; the first signs,
every one verifies), generated once into instance/token_keys when unset (config.py).
Verifying costs about 25 µs here; HS256 because RSA signing (~450 µs) would dominate /token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

from .security import ACCESS_PREFIX

ALGORITHM = "HS256"
TOKEN_TYPE = "at+jwt"
_KID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MIN_SECRET_LENGTH = 32
# Verified tokens whose claims a process keeps (about 600 bytes each).
VERIFIED_CACHE_SIZE = 4096


class KeyConfigError(ValueError):
    """BIOWEB_TOKEN_KEYS cannot be used (said at start-up, never at request time)."""


def parse_keys(value: str) -> list[tuple[str, str]]:
    """'kid:secret' items separated by commas or newlines -> [(kid, secret), ...], signing key first."""
    keys: list[tuple[str, str]] = []
    for item in re.split(r"[,\n]", value):
        item = item.strip()
        if not item:
            continue
        kid, sep, secret = item.partition(":")
        if not sep or not _KID.match(kid):
            raise KeyConfigError("BIOWEB_TOKEN_KEYS: each key is 'kid:secret' with a kid of [A-Za-z0-9._-].")
        if len(secret) < MIN_SECRET_LENGTH:
            raise KeyConfigError(
                f"BIOWEB_TOKEN_KEYS: the secret of key {kid!r} is shorter than 32 characters."
            )
        if any(kid == known for known, _ in keys):
            raise KeyConfigError(f"BIOWEB_TOKEN_KEYS: the key id {kid!r} appears twice.")
        keys.append((kid, secret))
    if not keys:
        raise KeyConfigError("BIOWEB_TOKEN_KEYS holds no key.")
    return keys


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says (RFC 9068 claims plus bioweb's own)."""

    jti: str
    client_id: str
    scope: str
    device_id: int | None  # a device's own token: the device (None for a grant's token)
    user_id: int
    tenant_id: int
    generation: int  # the device's credential generation, or the grant's, when it was minted
    secret_slot: int | None  # a device's own token: which of its client secrets it was obtained with
    issued_at: int
    expires_at: int
    grant_id: int | None = None  # a grant's token: the grant (models.Grant) it acts under


class TokenSigner:
    """Signs and verifies device access tokens for one app (issuer, audience, key ring)."""

    def __init__(self, keys: str, issuer: str, audience: str):
        parsed = parse_keys(keys)
        self.issuer = issuer
        self.audience = audience
        self.signing_kid = parsed[0][0]
        self._signing_key = OctKey.import_key(parsed[0][1].encode(), {"kid": self.signing_kid})
        self._keys = KeySet([OctKey.import_key(s.encode(), {"kid": kid}) for kid, s in parsed])
        self._verified: dict[bytes, AccessClaims] = {}
        self._header = {"alg": ALGORITHM, "typ": TOKEN_TYPE, "kid": self.signing_kid}

    def sign(
        self,
        *,
        client_id: str,
        scope: str,
        device_id: int,
        user_id: int,
        tenant_id: int,
        generation: int,
        secret_slot: int,
        expires_in: int,
    ) -> str:
        """A device's own `bcd_` access token, valid for `expires_in` seconds."""
        # RFC 9068 2.2: no resource owner in client credentials, so the subject is the client.
        return self._encode(
            client_id,
            client_id,
            scope,
            expires_in,
            device_id=device_id,
            user_id=user_id,
            tenant_id=tenant_id,
            gen=generation,
            cs=secret_slot,
        )

    def sign_for_grant(
        self,
        *,
        client_id: str,
        scope: str,
        user_id: int,
        tenant_id: int,
        grant_id: int,
        generation: int,
        expires_in: int,
    ) -> str:
        """A new `bcd_` access token of a grant: `client_id` acting for the person `user_id`."""
        # RFC 9068 2.2: the subject is the resource owner.
        return self._encode(
            str(user_id),
            client_id,
            scope,
            expires_in,
            user_id=user_id,
            tenant_id=tenant_id,
            grant=grant_id,
            gen=generation,
        )

    def _encode(self, subject: str, client_id: str, scope: str, expires_in: int, **own: int) -> str:
        """The RFC 9068 claims (and bioweb's `own`), signed with the signing key, behind the prefix."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "client_id": client_id,
            "scope": scope,
            "iat": now,
            "exp": now + expires_in,
            "jti": secrets.token_urlsafe(16),
            **own,
        }
        return ACCESS_PREFIX + jwt.encode(self._header, claims, self._signing_key)

    def verify(self, token: str, now: float | None = None) -> AccessClaims | None:
        """The claims of a genuine, unexpired access token of ours; None for anything else
        (another prefix, a bad signature, an unknown key id, a wrong type, issuer or audience).

        A device uses one token for many requests within its hour, so the claims of tokens this
        process has verified are kept (keyed by the token's SHA-256, never the token; only good
        tokens, so forgeries cannot fill it): a repeat costs a hash instead of a signature
        check. Expiry is checked every time; the device's state and generation are the bearer
        check's, on every request. The keys cannot change under it (they are read at start).
        """
        if not token.startswith(ACCESS_PREFIX):
            return None
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        claims = self._verified.get(key)
        if claims is None:
            claims = self._check(token)
            if claims is None:
                return None
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()  # crude but bounded; refills at the next requests
            self._verified[key] = claims
        if claims.expires_at <= (now or time.time()):
            return None
        return claims

    def _check(self, token: str) -> AccessClaims | None:
        """Signature, type, issuer, audience and the claims' shape of a `bcd_` token (not expiry)."""
        try:
            decoded = jwt.decode(token[len(ACCESS_PREFIX) :], self._keys, algorithms=[ALGORITHM])
        except (JoseError, ValueError, TypeError):
            return None
        if decoded.header.get("typ") != TOKEN_TYPE:
            return None
        c: dict[str, Any] = decoded.claims
        grant = c.get("grant")
        try:
            claims = AccessClaims(
                jti=c["jti"],
                client_id=c["client_id"],
                scope=c["scope"],
                # A grant's token has no device claims; a device's own token must have both.
                device_id=None if grant is not None else c["device_id"],
                user_id=c["user_id"],
                tenant_id=c["tenant_id"],
                generation=c["gen"],
                secret_slot=None if grant is not None else c["cs"],
                issued_at=c["iat"],
                expires_at=c["exp"],
                grant_id=grant,
            )
        except KeyError:
            return None
        if c.get("iss") != self.issuer or c.get("aud") != self.audience:
            return None
        if not isinstance(claims.expires_at, int):
            return None
        return claims
