"""The OAuth 2.0 server, in one place: Authlib's AuthorizationServer with the client-credentials
and refresh-token grants, RFC 7009 revocation, RFC 7662 introspection, RFC 8414 metadata, and
the ResourceProtector that guards /api/v1.

Authlib parses requests, authenticates clients and formats RFC 6749 errors; the bioweb
services decide, store digests and commit.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import sqlalchemy as sa
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.integrations.flask_oauth2 import current_token as _current_token
from authlib.integrations.flask_oauth2.errors import raise_http_exception
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, InvalidGrantError, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator, InsufficientScopeError, InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Blueprint, Flask, current_app, json, jsonify, request

from .errors import json_error
from .extensions import csrf, limiter
from .models import DeviceState, TokenKind
from .origin import current_origin
from .security import DUMMY_DIGEST, digest_matches
from .services import devices, events, tokens

bp = Blueprint("oauth", __name__)

AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
GRANT_TYPES = ["client_credentials", "refresh_token"]


class DeviceClient(ClientMixin):
    """Authlib's view of a device (a row of devices.find_client) as a confidential client.

    Built for unknown client ids too (device None), so that an unknown client takes the
    same path, and the same digest comparison, as a wrong secret: no timing oracle. A
    disabled device fails authentication the same way (invalid_client).
    """

    def __init__(self, device: sa.Row | None):
        self.device = device

    def get_client_id(self) -> str | None:
        return self.device.client_id if self.device else None

    def check_client_secret(self, client_secret: str) -> bool:
        known = self.device is not None
        matches = digest_matches(client_secret, self.device.client_secret_digest if known else DUMMY_DIGEST)
        accepted = matches and known and self.device.state == DeviceState.ACTIVE
        if known and not accepted:
            events.record_failed_authentication(self.device, current_origin("anonymous"))
        return accepted

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES

    def get_allowed_scope(self, scope: str) -> str:
        return tokens.DEVICE_SCOPE


class BearerToken(TokenMixin):
    """Authlib's view of a stored token (tokens.TokenRecord)."""

    def __init__(self, record: tokens.TokenRecord):
        self.record = record

    def check_client(self, client: DeviceClient) -> bool:
        return client.device is not None and self.record.device_id == client.device.id

    def get_scope(self) -> str:
        return self.record.scope

    def get_expires_in(self) -> int:
        if self.record.expires_time is None:
            return 0
        return int((self.record.expires_time - self.record.created_time).total_seconds())

    def is_expired(self) -> bool:
        return self.record.is_expired()

    def is_revoked(self) -> bool:
        return not self.record.is_usable() and not self.record.is_expired()


def _query_client(client_id: str) -> DeviceClient:
    return DeviceClient(devices.find_client(client_id))


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def create_token_response(self):
        # Unlike Authlib's default, the contract issues a refresh token here (rotated on use).
        device = self.client.device
        body = tokens.issue_device_tokens(device, current_origin(f"device:{device.id}"))
        return 200, body, self.TOKEN_RESPONSE_HEADER


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> BearerToken | None:
        record = tokens.find_refresh_token(self.request.client.device, refresh_token)
        return BearerToken(record) if record else None

    def authenticate_user(self, refresh_token: BearerToken) -> tokens.UserRef:
        return refresh_token.record.actor

    def create_token_response(self):
        device = self.client.device
        body = tokens.rotate_refresh_token(
            device, self.request.refresh_token.record, current_origin(f"device:{device.id}")
        )
        if body is None:
            raise InvalidGrantError("The refresh token is expired, revoked or already used.")
        return 200, body, self.TOKEN_RESPONSE_HEADER


class _DeviceTokenEndpoint:
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> BearerToken | None:
        record = tokens.find_token(token_string)
        if record is None or record.kind == TokenKind.PERSONAL:
            return None
        return BearerToken(record)


class Revocation(_DeviceTokenEndpoint, RevocationEndpoint):
    def revoke_token(self, token: BearerToken, request) -> None:
        tokens.revoke_device_token(token.record)


class Introspection(_DeviceTokenEndpoint, IntrospectionEndpoint):
    def check_permission(self, token: BearerToken, client: DeviceClient, request) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: BearerToken) -> dict[str, Any]:
        record = token.record
        return {
            "active": True,
            "scope": record.scope,
            "client_id": record.device_client_id,
            "token_type": "Bearer" if record.kind == TokenKind.ACCESS else "refresh_token",
            "exp": int(record.expires_time.timestamp()) if record.expires_time else None,
            "iat": int(record.created_time.timestamp()),
            "sub": str(record.user_id),
            "device_id": record.device_id,
            "user_id": record.user_id,
            "tenant_id": record.tenant_id,
        }


class _Validator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> BearerToken | None:
        record = tokens.find_token(token_string)
        return BearerToken(record) if record else None

    def validate_token(self, token, scopes, request) -> None:
        if token is None or not token.record.is_usable():
            raise InvalidTokenError(description="The access token is unknown, expired or revoked.")
        if self.scope_insufficient(token.get_scope(), scopes):
            raise InsufficientScopeError(description=f"This needs the scope {' or '.join(scopes)}.")
        tokens.record_use(token.record)


class BioResourceProtector(ResourceProtector):
    """Bearer errors in the contract's one shape, with RFC 6750 WWW-Authenticate headers."""

    def raise_error_response(self, error: OAuth2Error):
        if isinstance(error, InsufficientScopeError):
            status, code = 403, "insufficient_scope"
            description = error.description
        else:
            status, code = 401, "invalid_token"
            description = (
                error.description
                if isinstance(error, InvalidTokenError)
                else "Send a token in the header Authorization: Bearer <token>."
            )
        challenge = f'Bearer realm="bioweb", error="{code}", error_description="{description}"'
        body = json.dumps({"error": code, "error_description": description})
        headers = [
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
            ("WWW-Authenticate", challenge),
        ]
        raise_http_exception(status, body, headers)


require_oauth = BioResourceProtector()
require_oauth.register_token_validator(_Validator(realm="bioweb"))
current_token = _current_token


def current_user_and_device() -> tuple[tokens.UserRef, int | None]:
    """The acting user of this bearer request, and the device id if it is a device token."""
    record: tokens.TokenRecord = current_token.record
    return record.actor, record.device_id


def bearer_origin() -> events.Origin:
    """The audit Origin of this bearer request: the user, or the device for a device token."""
    record: tokens.TokenRecord = current_token.record
    return current_origin(f"device:{record.device_id}" if record.device_id else f"user:{record.user_id}")


def _client_key() -> str:
    """Rate-limit key of /token: the client id the request names (Basic or form), else the IP."""
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
            return "client:" + decoded.split(":", 1)[0][:64]
        except (binascii.Error, UnicodeDecodeError):
            pass
    client_id = request.form.get("client_id")
    return "client:" + client_id[:64] if client_id else "ip:" + (request.remote_addr or "")


def _per_client_limit() -> str:
    return current_app.config["BIOWEB_TOKEN_RATELIMIT_PER_CLIENT"]


def _per_ip_limit() -> str:
    return current_app.config["BIOWEB_TOKEN_RATELIMIT_PER_IP"]


_token_limits = [limiter.limit(_per_client_limit, key_func=_client_key), limiter.limit(_per_ip_limit)]


def _limited(view):
    for decorate in _token_limits:
        view = decorate(view)
    return view


@bp.before_request
def _refuse_undecodable_basic_credentials():
    """Basic credentials that are not base64 of UTF-8 text are invalid_client, not a crash in Authlib."""
    header = request.headers.get("Authorization", "")
    if header[:6].lower() != "basic ":
        return None
    try:
        base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        response = json_error(
            401,
            "invalid_client",
            "The Basic credentials are not base64-encoded UTF-8 'client_id:client_secret'.",
            headers={"WWW-Authenticate": 'Basic realm="bioweb"', "Pragma": "no-cache"},
        )
        return response
    return None


def _server() -> AuthorizationServer:
    return current_app.extensions["bioweb.oauth"]


@bp.post("/token")
@_limited
def issue_token():
    return _server().create_token_response()


@bp.post("/token/revoke")
@_limited
def revoke_token():
    return _server().create_endpoint_response(Revocation.ENDPOINT_NAME)


@bp.post("/token/introspect")
@_limited
def introspect_token():
    return _server().create_endpoint_response(Introspection.ENDPOINT_NAME)


@bp.get("/.well-known/oauth-authorization-server")
def metadata():
    base = current_app.config["BIOWEB_BASE_URL"]
    return jsonify(
        issuer=base,
        token_endpoint=f"{base}/token",
        revocation_endpoint=f"{base}/token/revoke",
        introspection_endpoint=f"{base}/token/introspect",
        grant_types_supported=GRANT_TYPES,
        response_types_supported=[],
        scopes_supported=[tokens.DEVICE_SCOPE],
        token_endpoint_auth_methods_supported=AUTH_METHODS,
        revocation_endpoint_auth_methods_supported=AUTH_METHODS,
        introspection_endpoint_auth_methods_supported=AUTH_METHODS,
        service_documentation=f"{base}/api/docs",
    )


def init_app(app: Flask) -> None:
    """Build this app's authorization server and mount the OAuth endpoints (no CSRF: no cookies here)."""
    server = AuthorizationServer(app, query_client=_query_client)
    server.scopes_supported = [tokens.DEVICE_SCOPE]
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(RefreshTokenGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    app.extensions["bioweb.oauth"] = server
    csrf.exempt(bp)
    app.register_blueprint(bp)
