"""The authorization endpoint (RFC 6749 4.1.1, PKCE per RFC 7636 with S256 only, RFC 8252 for
native apps) and /appauth/code, the landing page for clients that cannot receive a redirect.

GET /authorize checks the request in the RFC's order: the client and its redirect URI first
(a problem with either is shown here, on an error page: nothing is ever sent to a URI that is
not registered), then everything else, whose errors go back to the redirect URI (4.1.2.1) with
`state` and `iss` (RFC 9207), once the person has signed in and only for a client they trust
(their own, or one they authorized): anyone can register any https redirect URI, so otherwise
this endpoint would be an open redirector (RFC 9700 4.11.2); others' errors are shown here.
Then the person signs in if needed and sees the consent screen: which device or application
asks, who registered it, what it may do in words, and where the answer goes (a device only
its owner). The form posts back here (CSRF-protected); the POST checks the request again from
scratch, so nothing the page carried is trusted, then redirects with the code or access_denied.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, SubmitField

from .. import redirects
from ..headers import CONTENT_SECURITY_POLICY
from ..services import grants
from ..services.grants import GrantProblem
from .helpers import current_actor, one_time_response

bp = Blueprint("authorize", __name__)

PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


class ConsentForm(FlaskForm):
    """The consent screen: the request's parameters ride along (checked again on post)."""

    response_type = HiddenField()
    client_id = HiddenField()
    redirect_uri = HiddenField()
    scope = HiddenField()
    state = HiddenField()
    code_challenge = HiddenField()
    code_challenge_method = HiddenField()
    approve = SubmitField("Allow")
    deny = SubmitField("Deny")


class PageError(Exception):
    """A problem with the client or the redirect URI: shown to the person, never redirected."""

    def __init__(self, title: str, description: str):
        super().__init__(description)
        self.title, self.description = title, description


class RedirectError(Exception):
    """An RFC 6749 4.1.2.1 error, sent back to the (registered) redirect URI with the state."""

    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error, self.description = error, description
        self.client: grants.Client | None = None
        self.redirect_uri = ""
        self.state: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client: grants.Client
    redirect_uri: str
    redirect_uri_given: bool
    scope: str
    state: str | None
    code_challenge: str | None


def _one(values: dict[str, list[str]], name: str) -> str | None:
    """A parameter's value; None when absent or empty (RFC 6749 3.1: an empty parameter is
    treated as omitted)."""
    found = values.get(name) or []
    return found[0] or None if found else None


def _client_and_redirect(values: dict[str, list[str]]) -> tuple[grants.Client, str, bool]:
    """The client and the redirect URI to answer to, or PageError."""
    for name in ("client_id", "redirect_uri"):
        if len(values.get(name) or []) > 1:
            raise PageError("This sign-in link is broken", f"The parameter {name} appears more than once.")
    client_id = _one(values, "client_id")
    if not client_id:
        raise PageError(
            "This sign-in link is broken", "It names no client (the parameter client_id is missing)."
        )
    client = grants.find_client(client_id)
    if client is None:
        raise PageError(
            "Unknown app", "No device or application has this client id. The app's sign-in link is wrong."
        )
    presented = _one(values, "redirect_uri")
    if presented is None:
        if len(client.redirect_uris) != 1:
            raise PageError(
                "This sign-in link is broken",
                f"{client.name} has registered several redirect URIs, so the link must name one "
                "(the parameter redirect_uri is missing).",
            )
        return client, client.redirect_uris[0], False
    matched = redirects.find_match(list(client.redirect_uris), presented)
    if matched is None:
        raise PageError(
            "This redirect URI is not registered",
            f"{client.name} asked to send the answer to an address it has not registered, so "
            "nothing is sent there. If this is your app, register the redirect URI first.",
        )
    return client, matched, True


def _check_rest(values: dict[str, list[str]], client: grants.Client) -> tuple[str, str | None, str | None]:
    """Scope, state and PKCE challenge, or RedirectError."""
    repeated = sorted(name for name in PARAMETERS if len(values.get(name) or []) > 1)
    if repeated:
        raise RedirectError("invalid_request", f"Send each parameter once; repeated: {', '.join(repeated)}.")
    response_type = _one(values, "response_type")
    if response_type != "code":
        if not response_type:
            raise RedirectError(
                "invalid_request", "The parameter response_type is missing; use response_type=code."
            )
        raise RedirectError(
            "unsupported_response_type",
            f"The response_type {response_type[:40]!r} is not supported; use code.",
        )
    try:
        scope = grants.parse_scope(_one(values, "scope"))
    except GrantProblem as problem:
        raise RedirectError(problem.error, problem.description) from None
    state = _one(values, "state")
    challenge = _one(values, "code_challenge")
    method = _one(values, "code_challenge_method")
    if challenge is None and method is not None:
        raise RedirectError("invalid_request", "code_challenge_method was sent without a code_challenge.")
    if challenge is not None:
        if method != "S256":
            raise RedirectError(
                "invalid_request",
                "Only the S256 code challenge method is supported (send code_challenge_method=S256); "
                "plain is not (RFC 7636 4.4.1).",
            )
        if not grants.valid_challenge(challenge):
            raise RedirectError(
                "invalid_request",
                "The code_challenge must be the base64url SHA-256 of the code verifier: 43 characters.",
            )
    elif client.public:
        raise RedirectError(
            "invalid_request",
            "A public client must use PKCE: send code_challenge and code_challenge_method=S256 (RFC 8252 6).",
        )
    if not state and challenge is None:
        raise RedirectError(
            "invalid_request",
            "Send a state parameter (or use PKCE): without either, nothing ties this answer to your "
            "request (cross-site request forgery, RFC 6749 10.12).",
        )
    if len(state or "") > 500:
        raise RedirectError("invalid_request", "The state parameter has at most 500 characters.")
    if not client.active:
        raise RedirectError(
            "unauthorized_client", "This device is disabled; its owner can re-authorize it on its page."
        )
    return scope, state, challenge


def _answer_url(redirect_uri: str, params: dict[str, str | None]) -> str:
    """The redirect URI with the answer's parameters added to its own query (RFC 6749 3.1.2)."""
    params = {**params, "iss": current_app.config["BIOWEB_BASE_URL"]}
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if urlsplit(redirect_uri).query else ("" if redirect_uri.endswith("?") else "?")
    return f"{redirect_uri}{separator}{query}"


def _redirect_to_client(redirect_uri: str, params: dict[str, str | None]) -> Response:
    response = redirect(_answer_url(redirect_uri, params), code=303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _error_page(error: PageError) -> tuple[str, int]:
    return render_template("oauth/error.html", title=error.title, description=error.description), 400


def _form_action_source(redirect_uri: str) -> str:
    """The CSP source of the redirect's target: Chromium holds a form's redirects to form-action."""
    parts = urlsplit(redirect_uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:"


def _parse(values: dict[str, list[str]]) -> AuthorizationRequest:
    client, redirect_uri, given = _client_and_redirect(values)
    try:
        scope, state, challenge = _check_rest(values, client)
    except RedirectError as error:
        error.client, error.redirect_uri, error.state = client, redirect_uri, _one(values, "state")
        raise
    return AuthorizationRequest(client, redirect_uri, given, scope, state, challenge)


def _to_login(values: dict[str, list[str]]) -> Response:
    """Sign in first; back here after, with the request's own parameters (a POST's too)."""
    again = url_for("authorize.authorize", **{n: v[0] for n, v in values.items() if v})
    return redirect(url_for("auth.login", next=again))


def _trusted(client: grants.Client, person_id: int) -> bool:
    """Whether an error may go to the client's redirect URI without the person choosing to go
    there (RFC 9700 4.11.2): anyone can register an application with any https redirect URI,
    so an error redirect is automatic only to the person's own device or application, or to
    one they have authorized; otherwise it would make this site an open redirector."""
    return client.owner_id == person_id or grants.has_grant(person_id, client)


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response | tuple[str, int]:
    source = request.form if request.method == "POST" else request.args
    values = {name: source.getlist(name) for name in PARAMETERS}
    try:
        wanted = _parse(values)
    except PageError as error:
        return _error_page(error)
    except RedirectError as error:
        # RFC 9700 4.11.2: the person signs in before any redirect, and only a client they
        # trust gets its error automatically; others' are shown here.
        if not current_user.is_authenticated:
            return _to_login(values)
        if error.client is None or not _trusted(error.client, current_actor().id):
            return _error_page(
                PageError(
                    "This sign-in link does not work",
                    f"The app sent a request that cannot be served ({error.error}): {error.description}",
                )
            )
        return _redirect_to_client(
            error.redirect_uri,
            {"error": error.error, "error_description": error.description, "state": error.state},
        )
    if not current_user.is_authenticated:
        return _to_login(values)
    person = current_actor()
    state = {"state": wanted.state}
    if wanted.client.is_device and wanted.client.owner_id != person.id:
        # A page, not an access_denied to the device's redirect URIs: they are its owner's, and
        # someone else's click must not take this person there (RFC 9700 4.11.2).
        return _error_page(
            PageError(
                "Only its owner can authorize this device", "Only the owner of a device can authorize it."
            )
        )
    form = ConsentForm(data={name: _one(values, name) or "" for name in PARAMETERS})
    if request.method == "POST" and form.validate_on_submit():
        if form.approve.data:
            code = grants.approve(
                person,
                wanted.client,
                wanted.scope,
                wanted.redirect_uri,
                wanted.redirect_uri_given,
                wanted.code_challenge,
            )
            return _redirect_to_client(wanted.redirect_uri, {"code": code, **state})
        return _redirect_to_client(
            wanted.redirect_uri,
            {"error": "access_denied", "error_description": "The person did not allow it.", **state},
        )
    html = render_template(
        "oauth/consent.html",
        form=form,
        client=wanted.client,
        sentences=grants.describe_scope(wanted.scope),
        scope=wanted.scope,
        redirect_uri=wanted.redirect_uri,
        landing=wanted.redirect_uri == redirects.own_landing_page(current_app.config["BIOWEB_BASE_URL"]),
        own=wanted.client.owner_id == person.id,
    )
    response = one_time_response(html)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", f"form-action 'self' {_form_action_source(wanted.redirect_uri)}"
    )
    return response


@bp.get("/appauth/code")
def landing() -> Response:
    """Where a device or script without a redirect of its own receives the answer: the code
    (with a copy button), its state, and how long it stays valid; or the error."""
    code = request.args.get("code", "")
    status = grants.code_status(code) if code else None
    html = render_template(
        "oauth/code.html",
        code=code,
        state=request.args.get("state"),
        error=request.args.get("error"),
        error_description=request.args.get("error_description"),
        status=status,
        lifetime_minutes=int(grants.CODE_LIFETIME.total_seconds() // 60),
    )
    return one_time_response(html)
