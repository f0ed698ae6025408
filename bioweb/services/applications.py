"""Applications: OAuth clients a person registers (a phone app, a third-party service), which
anyone may then authorize to act for them (services/grants.py).

Confidential applications get a `bcs_` client secret, shown once and kept as a SHA-256
digest; public ones (native apps, RFC 8252) have none and must use PKCE. Rotating the secret
ends every grant on the application, like re-authorizing a device; so does deleting it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app

from .. import redirects
from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import MAX_ID, Application, ClientType, utcnow
from ..security import SECRET_PREFIX, digest, new_secret
from . import Actor, accounts, grants

MAX_PER_USER = 100


@dataclass(frozen=True, slots=True)
class Registered:
    """A registered (or re-keyed) application and its secret, shown this once (None: public)."""

    application: Application
    client_secret: str | None


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", {field: [message]})


def _redirect_uris(text: str) -> str:
    try:
        uris = redirects.check_all(text, current_app.config["BIOWEB_BASE_URL"])
    except redirects.RedirectProblem as problem:
        raise _invalid("redirect_uris", str(problem)) from None
    if not uris:
        raise _invalid("redirect_uris", "Register at least one redirect URI.")
    return "\n".join(uris)


def _homepage(url: str) -> str:
    url = (url or "").strip()
    if url and not (url.startswith("https://") or url.startswith("http://")) or len(url) > 500:
        raise _invalid("homepage_url", "Give an http(s) URL of at most 500 characters, or none.")
    if any(ord(c) <= 32 for c in url):
        raise _invalid("homepage_url", "A URL has no spaces or control characters.")
    if url:
        try:
            host = urlsplit(url).hostname
        except ValueError:  # a malformed [IPv6] host
            host = None
        if not host:
            raise _invalid("homepage_url", "Give the URL with its host, such as https://example.com.")
    return url


def _name(name: str) -> str:
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise _invalid("name", "Give the application a name of 1 to 100 characters.")
    return name


def register(
    actor: Actor, name: str, redirect_uris: str, client_type: str, homepage_url: str = ""
) -> Registered:
    """Register an application owned by `actor`, whose email address is confirmed (the consent
    screen names the owner by it). Raises Forbidden, InvalidInput. Commits."""
    accounts.require_confirmed(actor, "registering applications")
    if client_type not in (ClientType.CONFIDENTIAL, ClientType.PUBLIC):
        raise _invalid(
            "client_type", "Choose 'confidential' (a server with a secret) or 'public' (a native app)."
        )
    count = db.session.scalar(sa.select(sa.func.count()).where(Application.user_id == actor.id)) or 0
    if count >= MAX_PER_USER:
        raise InvalidInput(
            f"You have {count} applications, the most an account may register; delete one first."
        )
    now = utcnow()
    secret = new_secret(SECRET_PREFIX) if client_type == ClientType.CONFIDENTIAL else None
    app = Application(
        user_id=actor.id,
        name=_name(name),
        homepage_url=_homepage(homepage_url),
        client_id=grants.APP_CLIENT_PREFIX + secrets.token_hex(12),
        client_type=client_type,
        client_secret_digest=digest(secret) if secret else "",
        client_secret_created_time=now if secret else None,
        redirect_uris=_redirect_uris(redirect_uris),
        created_time=now,
        modified_time=now,
    )
    db.session.add(app)
    db.session.commit()
    return Registered(app, secret)


def list_applications(actor: Actor) -> list[Application]:
    return list(
        db.session.scalars(
            sa.select(Application).where(Application.user_id == actor.id).order_by(Application.id)
        )
    )


def get_application(actor: Actor, application_id: int) -> Application:
    """One of `actor`'s applications. Raises NotFound, also for another person's."""
    app = db.session.get(Application, application_id) if 0 < application_id <= MAX_ID else None
    if app is None or app.user_id != actor.id:
        raise NotFound(f"There is no application with id {application_id}.")
    return app


def update(
    actor: Actor,
    application_id: int,
    *,
    name: str | None = None,
    homepage_url: str | None = None,
    redirect_uris: str | None = None,
) -> Application:
    """Change an application's name, homepage or redirect URIs. Raises NotFound, InvalidInput. Commits."""
    app = get_application(actor, application_id)
    # Every value is checked before any is set: a refused change leaves the session's row as stored.
    checked = {
        "name": _name(name) if name is not None else None,
        "homepage_url": _homepage(homepage_url) if homepage_url is not None else None,
        "redirect_uris": _redirect_uris(redirect_uris) if redirect_uris is not None else None,
    }
    for column, value in checked.items():
        if value is not None:
            setattr(app, column, value)
    app.modified_time = utcnow()
    db.session.commit()
    return app


def rotate_secret(actor: Actor, application_id: int) -> Registered:
    """A new client secret for a confidential application; the old one stops working and every
    grant on the application ends (people authorize it again). Raises NotFound, InvalidInput. Commits."""
    app = get_application(actor, application_id)
    if app.client_type != ClientType.CONFIDENTIAL:
        raise InvalidInput("A public application has no client secret to rotate.")
    secret = new_secret(SECRET_PREFIX)
    now = utcnow()
    app.client_secret_digest = digest(secret)
    app.client_secret_created_time = now
    app.modified_time = now
    grants.end_application_grants(app.id)
    db.session.commit()
    return Registered(app, secret)


def delete(actor: Actor, application_id: int) -> None:
    """Delete an application with every grant on it. Raises NotFound. Commits."""
    app = get_application(actor, application_id)
    grants.end_application_grants(app.id)
    db.session.delete(app)
    db.session.commit()
