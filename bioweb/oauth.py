"""The OAuth 2.0 server's token side, in one place: Authlib's AuthorizationServer with the
client-credentials, authorization-code (PKCE) and refresh-token grants, RFC 7009 revocation,
RFC 7662 introspection, RFC 8414 metadata. The authorization endpoint (a dashboard page, with
the person's consent) is bioweb/views/authorize.py; grants and codes are services/grants.py.

What bioweb adds around Authlib, all here:
- one parser of client credentials (`presented_client`): exactly one method per request
  (HTTP Basic, percent-decoded once per RFC 6749 2.3.1, or form fields; a public
  application names itself with the form field client_id alone); the client
  authentication, the audit trail and the rate limiter all read what it parsed;
- a front gate: no parameters in the URL, a form body, no repeated parameter;
- RFC 6749 5.2 errors, each with an error_description a person can act on, and a Basic
  challenge with a realm on every 401;
- rate limits that count *failed* client authentications per (client id, address) and
  per address, so nobody can lock a device out by naming its client id.

The services decide, sign and commit; this module shapes the OAuth answers. The bearer
check of /api/v1 is bioweb/bearer.py.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from .errors import json_error
from .extensions import csrf, limiter
from .models import DeviceState, utcnow
from .origin import current_origin
from .readmodels import IssuedTokens
from .security import ACCESS_PREFIX, REFRESH_PREFIX
from .services import devices, events, grants, tokens
from .services.grants import GrantProblem
from .signing import AccessClaims, TokenSigner

bp = Blueprint("oauth", __name__)

REALM = "bioweb"
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
# A public application (a native app, RFC 8252) authenticates with nothing: it names itself
# (client_id) and proves its sign-in with PKCE; it may also revoke its own tokens.
PUBLIC_METHODS = [*AUTH_METHODS, "none"]
GRANT_TYPES = ["client_credentials", "authorization_code", "refresh_token"]
FORM = "application/x-www-form-urlencoded"

WRONG_CREDENTIALS = "The client id or client secret is wrong."
EXPIRED_SECRET = (
    "This client secret has expired: its device was given a newer one. Use the new secret "
    "(its owner can add another on the device's page)."
)
DISABLED = "The device is disabled; its owner can re-authorize it (which gives it a new secret)."
NO_CREDENTIALS = (
    "Authenticate the client: HTTP Basic with client_id:client_secret (client_secret_basic), "
    "or the form fields client_id and client_secret (client_secret_post)."
)
# What each RFC 6749 error means to a person, for errors raised without a sentence of their own.
DESCRIPTIONS = {
    "invalid_request": "The request is missing a parameter or is malformed.",
    "invalid_client": NO_CREDENTIALS,
    "invalid_grant": "The code or refresh token is unknown, expired, revoked, already used or not this client's.",
    "unauthorized_client": "This client may not use this grant type.",
    "unsupported_grant_type": (
        "Devices use grant_type=client_credentials; apps use authorization_code, then refresh_token."
    ),
    "invalid_scope": "A device may ask for the scope 'device' (or its alias 'all'), or for none.",
    "unsupported_token_type": "This kind of token cannot be revoked here.",
}


# --- the credentials a request presents ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PresentedClient:
    method: str  # "client_secret_basic" or "client_secret_post"
    client_id: str
    secret: str


class CredentialsProblem(Exception):
    """The request's client authentication cannot even be read: answer before Authlib runs."""

    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _parse_presented_client() -> PresentedClient | None:
    header = request.headers.get("Authorization", "")
    form = request.form
    basic: PresentedClient | None = None
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            decoded = ""
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise CredentialsProblem(
                401,
                "invalid_client",
                "The Basic credentials are not base64 of UTF-8 'client_id:client_secret'.",
            )
        # RFC 6749 2.3.1: both halves are form-urlencoded before they are joined.
        basic = PresentedClient("client_secret_basic", unquote_plus(client_id), unquote_plus(secret))
    form_id, form_secret = form.get("client_id"), form.get("client_secret")
    if basic is not None:
        if form_secret is not None or (form_id is not None and form_id != basic.client_id):
            raise CredentialsProblem(
                400,
                "invalid_request",
                "Authenticate the client with one method: HTTP Basic or the form fields client_id and "
                "client_secret, not both (RFC 6749 section 2.3).",
            )
        return basic if basic.client_id and basic.secret else None
    if form_id and form_secret:
        return PresentedClient("client_secret_post", form_id, form_secret)
    return None


def presented_client() -> PresentedClient | None:
    """The client credentials of this request, parsed once. Raises CredentialsProblem."""
    if "presented_client" not in g:
        try:
            g.presented_client = _parse_presented_client()
        except CredentialsProblem as problem:
            g.presented_client = problem
    if isinstance(g.presented_client, CredentialsProblem):
        raise g.presented_client
    presented: PresentedClient | None = g.presented_client
    return presented


# --- rate limits: failed client authentications only ---------------------------------------------


def _address_key() -> str:
    return "token-failures:" + (request.remote_addr or "")


def _client_and_address_key() -> str:
    try:
        client = presented_client()
    except CredentialsProblem:
        client = None
    client_id = client.client_id[:64] if client else "-"
    return f"token-failures:{client_id}@{request.remote_addr or ''}"


def _failed_authentication(response: Response) -> bool:
    return response.status_code == 401


_failure_limits = [
    limiter.limit(
        lambda: current_app.config["BIOWEB_TOKEN_RATELIMIT_PER_CLIENT"],
        key_func=_client_and_address_key,
        deduct_when=_failed_authentication,
    ),
    limiter.limit(
        lambda: current_app.config["BIOWEB_TOKEN_RATELIMIT_PER_IP"],
        key_func=_address_key,
        deduct_when=_failed_authentication,
    ),
]


def _limited(view: Callable[..., Any]) -> Callable[..., Any]:
    for decorate in _failure_limits:
        view = decorate(view)
    return view


# --- Authlib's view of clients and tokens ----------------------------------------------------------


class DeviceClient(ClientMixin):
    """A device (a row of devices.find_client) as Authlib's confidential client, with the serial
    of the client secret it authenticated with (the `cs` claim of the tokens it gets)."""

    def __init__(self, device: Any, secret_serial: int):
        self.device = device
        self.secret_serial = secret_serial

    def get_client_id(self) -> str:
        client_id: str = self.device.client_id
        return client_id

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES

    def get_allowed_scope(self, scope: str) -> str:
        return tokens.DEVICE_SCOPE

    def grant_client(self) -> grants.Client:
        """The device as a client of the authorization-code flow (its companion app)."""
        client = grants.find_client(self.device.client_id)
        assert client is not None  # it authenticated a moment ago
        return client


class AppClient(ClientMixin):
    """A registered application (services/applications.py) as Authlib's client."""

    def __init__(self, client: grants.Client):
        self.client = client

    def get_client_id(self) -> str:
        return self.client.client_id

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none" if self.client.public else method in AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def grant_client(self) -> grants.Client:
        return self.client


AnyClient = DeviceClient | AppClient

PUBLIC_WITH_SECRET = (
    "This application is public (a native app): it has no client secret; send only client_id."
)
PUBLIC_NEEDS_ID = (
    "Authenticate the client: a public application sends its client_id as a form field; a "
    "confidential one uses HTTP Basic or client_id and client_secret."
)


class BioAuthorizationServer(AuthorizationServer):
    def authenticate_client(self, request: Any, methods: Sequence[str], endpoint: str = "token") -> AnyClient:
        """Client authentication from the one parse of the request's credentials.

        Either of a device's client secrets (slot 1 or 2) authenticates it. An unknown client
        id costs the same digest comparisons as a wrong secret, and gets the same answer. A
        secret that checks out but has expired, and a disabled device's, are told so. An
        application authenticates with its secret, or (public, where `methods` has "none")
        with its client_id alone.
        """
        presented = presented_client()
        if presented is None:
            return self._public_client(methods)
        if presented.method not in methods:
            raise InvalidClientError(status_code=401, description=NO_CREDENTIALS)
        if presented.client_id.startswith(grants.APP_CLIENT_PREFIX):
            return self._application(presented)
        device = devices.find_client(presented.client_id)
        match = tokens.match_secret(device, presented.secret)
        if match is None or device is None:
            if device is not None:
                events.record_failed_authentication(device, current_origin("anonymous"))
            raise InvalidClientError(status_code=401, description=WRONG_CREDENTIALS)
        if match.expired:
            events.record_failed_authentication(device, current_origin("anonymous"))
            raise InvalidClientError(status_code=401, description=EXPIRED_SECRET)
        if device.state != DeviceState.ACTIVE:
            events.record_failed_authentication(device, current_origin("anonymous"))
            raise InvalidClientError(status_code=401, description=DISABLED)
        if request is not None:  # Authlib's request object, when Authlib asks
            request.auth_method = presented.method
        return DeviceClient(device, match.serial)

    def _application(self, presented: PresentedClient) -> AppClient:
        client = grants.find_client(presented.client_id)
        if client is not None and client.public:
            raise InvalidClientError(status_code=401, description=PUBLIC_WITH_SECRET)
        if client is None:
            tokens.match_secret(None, presented.secret)  # the same cost as a wrong secret
            raise InvalidClientError(status_code=401, description=WRONG_CREDENTIALS)
        if not grants.secret_matches(client, presented.secret):
            raise InvalidClientError(status_code=401, description=WRONG_CREDENTIALS)
        return AppClient(client)

    def _public_client(self, methods: Sequence[str]) -> AppClient:
        """A public application naming itself with the form field client_id (method "none")."""
        client_id = request.form.get("client_id")
        if "none" not in methods or not client_id:
            raise InvalidClientError(status_code=401, description=NO_CREDENTIALS)
        client = grants.find_client(client_id)
        if client is None or not client.public:
            raise InvalidClientError(status_code=401, description=PUBLIC_NEEDS_ID)
        return AppClient(client)

    def validate_requested_scope(self, scope: str | None) -> None:
        wanted = (scope or "").split()
        unknown = [s for s in wanted if s not in tokens.DEVICE_SCOPE_ALIASES]
        if unknown:
            raise InvalidScopeError(
                description=f"Unknown scope {' '.join(unknown)!r}; a device may ask for 'device' "
                "(or its alias 'all'), or for none."
            )

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Response:
        description = error.description
        if isinstance(error, UnsupportedGrantTypeError):
            description = (
                f"The grant type {error.grant_type!r} is not supported here. " + DESCRIPTIONS[error.error]
            )
        return oauth_error(error.status_code, error.error, description)


def oauth_error(status: int, error: str, description: str | None) -> Response:
    """An RFC 6749 5.2 error answer in the one JSON shape; a 401 carries a Basic challenge."""
    description = description or DESCRIPTIONS.get(error, "The request cannot be served.")
    headers = {"Pragma": "no-cache"}
    if status == 401:
        quoted = description.replace('"', "'")
        headers["WWW-Authenticate"] = f'Basic realm="{REALM}", error="{error}", error_description="{quoted}"'
    return json_error(status, error, description, headers=headers)


def token_body(issued: IssuedTokens) -> dict[str, Any]:
    """The RFC 6749 5.1 answer, plus the device (for a device client), user and tenant the
    token acts for."""
    body: dict[str, Any] = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    }
    if issued.device_id is not None:
        body["device_id"] = issued.device_id
    body.update(user_id=issued.user_id, tenant_id=issued.tenant_id)
    if issued.refresh_token is not None:
        body["refresh_token"] = issued.refresh_token
    return body


TOKEN_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def client_credentials_grant() -> Response:
    """RFC 6749 4.4: authenticate the device, check the scope, sign. No refresh token
    (4.4.3): the device holds its secret and asks again.

    The hottest request devices make, so it runs without Authlib's per-request grant objects:
    measured in process, they cost more than the work itself (authentication, scope and
    errors were bioweb's own already; see bench/RESULTS.md).
    """
    server = _server()
    try:
        client = server.authenticate_client(None, AUTH_METHODS)
        if not isinstance(client, DeviceClient):
            raise UnauthorizedClientError(
                description="Applications sign people in with grant_type=authorization_code; "
                "client_credentials is for devices."
            )
        server.validate_requested_scope(request.form.get("scope"))
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    device = client.device
    issued = tokens.issue_device_token(device, client.secret_serial, current_origin(f"device:{device.id}"))
    response = jsonify(token_body(issued))
    response.headers.update(TOKEN_HEADERS)
    return response


def _token_answer(issued: IssuedTokens) -> Response:
    response = jsonify(token_body(issued))
    response.headers.update(TOKEN_HEADERS)
    return response


def _required(name: str, what: str) -> str:
    value = request.form.get(name)
    if not value:
        raise GrantProblem("invalid_request", f"The parameter {name} is missing: send {what}.")
    return value


def authorization_code_grant() -> Response:
    """RFC 6749 4.1.3 (with RFC 7636): a device (its companion app) or an application trades
    the code its redirect received, once, for a grant's access and refresh tokens."""
    server = _server()
    try:
        client = server.authenticate_client(None, PUBLIC_METHODS)
        code = _required("code", "the code the redirect URI received")
        issued = grants.exchange_code(
            client.grant_client(), code, request.form.get("redirect_uri"), request.form.get("code_verifier")
        )
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    except GrantProblem as problem:
        return oauth_error(problem.status, problem.error, problem.description)
    return _token_answer(issued)


def refresh_token_grant() -> Response:
    """RFC 6749 6 with rotation: a grant's refresh token, once, for a new pair."""
    server = _server()
    try:
        client = server.authenticate_client(None, PUBLIC_METHODS)
        refresh = _required("refresh_token", "the refresh token of the last token answer")
        issued = grants.refresh(client.grant_client(), refresh, request.form.get("scope"))
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    except GrantProblem as problem:
        return oauth_error(problem.status, problem.error, problem.description)
    return _token_answer(issued)


# --- revocation and introspection ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OwnToken:
    """A token presented at /token/revoke or /token/introspect that belongs to the client."""

    access: AccessClaims | None = None
    refresh: grants.RefreshRecord | None = None


def find_own_token(token: str, client: AnyClient) -> OwnToken | None:
    """The client's own token for `token` (any kind: a token_type_hint is not needed, RFC 7009
    2.2.1), or None for an unknown token and another client's alike. A device's own tokens are
    its own; so are the grant tokens and refresh tokens issued to it as a client."""
    if token.startswith(ACCESS_PREFIX):
        claims = tokens.signer().verify(token)
        if claims is not None and claims.client_id == client.get_client_id():
            return OwnToken(access=claims)
    elif token.startswith(REFRESH_PREFIX):
        record = grants.find_refresh_token(token)
        if record is not None and grants.client_grant(client.grant_client(), record.grant_id) is not None:
            return OwnToken(refresh=record)
    return None


def _presented_token(request: Any) -> str:
    token: str | None = request.form.get("token")
    if not token:
        raise InvalidRequestError("The parameter token is missing: send the token to revoke or inspect.")
    return token


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = PUBLIC_METHODS

    def create_endpoint_response(self, request: Any) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """RFC 7009: 200 with an empty object for every authenticated request. The client's own
        token is revoked; an unknown token or another client's changes nothing (same answer)."""
        client = self.authenticate_endpoint_client(request)
        own = find_own_token(_presented_token(request), client)
        if own is not None and own.access is not None:
            # Only a token of the current generation: revoking an already dead one must not
            # end the tokens the client holds now.
            if own.access.grant_id is not None:
                grants.revoke_access(own.access.grant_id, own.access.generation)
            elif (
                isinstance(client, DeviceClient)
                and own.access.generation == client.device.credential_generation
            ):
                tokens.revoke_device_access_tokens(client.device.id)
        elif own is not None and own.refresh is not None:
            grants.revoke_refresh(own.refresh)
        return 200, {}, [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def create_endpoint_response(self, request: Any) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """RFC 7662: what the client's own live token is; {"active": false} for anything else."""
        client = self.authenticate_endpoint_client(request)
        own = find_own_token(_presented_token(request), client)
        body: dict[str, Any] = {"active": False}
        if own is not None and own.access is not None:
            body = _describe_access(own.access, client)
        elif own is not None and own.refresh is not None:
            body = _describe_refresh(own.refresh, client)
        return 200, body, [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


def _describe_access(claims: AccessClaims, client: AnyClient) -> dict[str, Any]:
    """RFC 7662 2.2 for a live access token of the client; inactive otherwise."""
    if claims.grant_id is not None:
        live = grants.token_is_live(claims)
    else:
        device = client.device if isinstance(client, DeviceClient) else None
        live = (
            device is not None
            and claims.generation == device.credential_generation
            and claims.secret_slot is not None
            and tokens.secret_is_live(device, claims.secret_slot)
        )
    if not live:
        return {"active": False}
    body: dict[str, Any] = {
        "active": True,
        "scope": claims.scope,
        "token_type": "Bearer",
        "exp": claims.expires_at,
        "iat": claims.issued_at,
        "sub": claims.client_id if claims.grant_id is None else str(claims.user_id),
        "aud": tokens.signer().audience,
        "iss": tokens.signer().issuer,
        "jti": claims.jti,
        "client_id": claims.client_id,
    }
    if claims.device_id is not None:
        body["device_id"] = claims.device_id
    return {**body, "user_id": claims.user_id, "tenant_id": claims.tenant_id}


def _describe_refresh(record: grants.RefreshRecord, client: AnyClient) -> dict[str, Any]:
    """RFC 7662 2.2 for a live refresh token of the client's grant; inactive otherwise."""
    grant = grants.client_grant(client.grant_client(), record.grant_id)
    if (
        grant is None
        or record.revoked_time is not None
        or (record.expires_time is not None and record.expires_time <= utcnow())
    ):
        return {"active": False}
    body: dict[str, Any] = {
        "active": True,
        "scope": record.scope,
        "token_type": "refresh_token",
        "exp": int(record.expires_time.timestamp()) if record.expires_time else None,
        "sub": str(grant.user_id),
        "client_id": client.get_client_id(),
    }
    if grant.device_id is not None:
        body["device_id"] = grant.device_id
    return {**body, "user_id": grant.user_id}


# --- the endpoints ------------------------------------------------------------------------------


@bp.before_request
def _front_gate() -> Response | None:
    """What every OAuth POST must get right before Authlib sees it."""
    if request.method != "POST":
        return None
    if request.query_string:
        return oauth_error(
            400,
            "invalid_request",
            "Send the parameters in the request body as form fields, not in the URL "
            "(URLs end up in logs and proxies).",
        )
    if request.mimetype != FORM and (request.mimetype or request.content_length):
        return oauth_error(
            400,
            "invalid_request",
            f"Send the parameters as form fields, with the header Content-Type: {FORM}.",
        )
    repeated = sorted(name for name, values in request.form.lists() if len(values) > 1)
    if repeated:
        return oauth_error(
            400, "invalid_request", f"Send each parameter once; repeated: {', '.join(repeated)}."
        )
    try:
        presented_client()
    except CredentialsProblem as problem:
        return oauth_error(problem.status, problem.error, problem.description)
    return None


def _server() -> BioAuthorizationServer:
    server: BioAuthorizationServer = current_app.extensions["bioweb.oauth"]
    return server


@bp.post("/token")
@_limited
def issue_token() -> Response:
    if not request.form.get("grant_type"):
        return oauth_error(
            400,
            "invalid_request",
            "The parameter grant_type is missing; devices send grant_type=client_credentials.",
        )
    grant_type = request.form["grant_type"]
    if grant_type == "client_credentials":
        return client_credentials_grant()
    if grant_type == "authorization_code":
        return authorization_code_grant()
    if grant_type == "refresh_token":
        return refresh_token_grant()
    response: Response = _server().create_token_response()  # unsupported_grant_type
    return response


@bp.post("/token/revoke")
@_limited
def revoke_token() -> Response:
    response: Response = _server().create_endpoint_response(Revocation.ENDPOINT_NAME)
    return response


@bp.post("/token/introspect")
@_limited
def introspect_token() -> Response:
    response: Response = _server().create_endpoint_response(Introspection.ENDPOINT_NAME)
    return response


@bp.get("/.well-known/oauth-authorization-server")
def metadata() -> Response:
    base = current_app.config["BIOWEB_BASE_URL"]
    return jsonify(
        issuer=base,
        authorization_endpoint=f"{base}/authorize",
        token_endpoint=f"{base}/token",
        revocation_endpoint=f"{base}/token/revoke",
        introspection_endpoint=f"{base}/token/introspect",
        grant_types_supported=GRANT_TYPES,
        response_types_supported=["code"],
        response_modes_supported=["query"],
        code_challenge_methods_supported=["S256"],
        scopes_supported=[tokens.DEVICE_SCOPE, *tokens.PAT_SCOPES, grants.ALL_ALIAS],
        token_endpoint_auth_methods_supported=PUBLIC_METHODS,
        revocation_endpoint_auth_methods_supported=PUBLIC_METHODS,
        introspection_endpoint_auth_methods_supported=AUTH_METHODS,
        # RFC 9207: the redirect carries iss, so a client talking to several servers can tell.
        authorization_response_iss_parameter_supported=True,
        service_documentation=f"{base}/api/docs",
    )


def init_app(app: Flask) -> None:
    """Build this app's token signer and authorization server and mount the OAuth endpoints
    (no CSRF: no cookies here)."""
    base = app.config["BIOWEB_BASE_URL"]
    app.extensions["bioweb.signer"] = TokenSigner(app.config["BIOWEB_TOKEN_KEYS"], base, f"{base}/api/v1")
    tokens.init_app(app)
    server = BioAuthorizationServer(app, query_client=devices.find_client)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    app.extensions["bioweb.oauth"] = server
    csrf.exempt(bp)
    app.register_blueprint(bp)
