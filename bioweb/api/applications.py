"""Applications a person registered, and the apps they authorized: /api/v1/applications and
/api/v1/account/grants.

Personal access tokens only. An access token from the authorization-code flow holds the same
scopes as a PAT, but an app acting for a person must not register apps, mint client secrets
or change that person's grants (its own included): it gets 403 insufficient_scope. A device's
own token holds none of these scopes and is refused by require_token already.
"""

from __future__ import annotations

from flask import Response

from ..bearer import current_principal, require_token
from ..errors import InvalidInput
from ..forms import ApplicationChangeForm, ApplicationForm
from ..models import Application
from ..readmodels import (
    ApplicationCredentials,
    ApplicationList,
    ApplicationView,
    AuthorizedApp,
    AuthorizedAppList,
)
from ..services import applications, grants
from ..services.applications import Registered
from .core import answer, bind_json, bp, no_content

PAT_ONLY = (
    "Applications and authorized apps are managed with a personal access token (bcp_...) only: "
    "an app's access token cannot register applications or change grants."
)


def application_view(app: Application) -> ApplicationView:
    return ApplicationView(
        id=app.id,
        client_id=app.client_id,
        name=app.name,
        homepage_url=app.homepage_url,
        client_type=app.client_type,
        redirect_uris=app.redirect_uris.split(),
        client_secret_created_time=app.client_secret_created_time,
        created_time=app.created_time,
        modified_time=app.modified_time,
    )


def _credentials(registered: Registered, status: int) -> Response:
    """The application with its secret, shown this once: never stored by a cache."""
    view = application_view(registered.application)
    fields = {name: getattr(view, name) for name in view.__struct_fields__}
    response = answer(ApplicationCredentials(**fields, client_secret=registered.client_secret))
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.get("/applications")
@require_token("devices:read", personal=PAT_ONLY)
def list_applications() -> Response:
    found = [application_view(app) for app in applications.list_applications(current_principal())]
    return answer(ApplicationList(count=len(found), results=found))


@bp.post("/applications")
@require_token("devices:write", personal=PAT_ONLY)
def create_application() -> Response:
    form = bind_json(ApplicationForm)
    registered = applications.register(
        current_principal(),
        form.name.data,
        form.redirect_uris.data,
        form.client_type.data,
        form.homepage_url.data or "",
    )
    return _credentials(registered, 201)


@bp.get("/applications/<int:application_id>")
@require_token("devices:read", personal=PAT_ONLY)
def get_application(application_id: int) -> Response:
    return answer(application_view(applications.get_application(current_principal(), application_id)))


@bp.patch("/applications/<int:application_id>")
@require_token("devices:write", personal=PAT_ONLY)
def update_application(application_id: int) -> Response:
    """What the body names changes; omitted or null stays as it is."""
    form = bind_json(ApplicationChangeForm)
    changes = {name: form[name].data for name in ("name", "homepage_url", "redirect_uris")}
    if all(value is None for value in changes.values()):
        raise InvalidInput("Send what changes: name, homepage_url or redirect_uris (an array of URIs).")
    return answer(application_view(applications.update(current_principal(), application_id, **changes)))


@bp.delete("/applications/<int:application_id>")
@require_token("devices:write", personal=PAT_ONLY)
def delete_application(application_id: int) -> Response:
    applications.delete(current_principal(), application_id)
    return no_content()


@bp.post("/applications/<int:application_id>/secret")
@require_token("devices:write", personal=PAT_ONLY)
def rotate_application_secret(application_id: int) -> Response:
    """A new client secret, shown once; the old one and every grant on the application end.
    Takes no body. A public application has no secret: 400."""
    return _credentials(applications.rotate_secret(current_principal(), application_id), 200)


@bp.get("/account/grants")
@require_token("devices:read", personal=PAT_ONLY)
def list_grants() -> Response:
    found = [
        AuthorizedApp(
            id=view.id,
            client_name=view.client_name,
            client_id=view.client_id,
            kind=view.kind,
            owner_name=view.owner_name,
            homepage_url=view.homepage_url,
            scope=view.scope,
            scope_words=view.scope_words,
            created_time=view.created_time,
            modified_time=view.modified_time,
            last_used_time=view.last_used_time,
        )
        for view in grants.list_grants(current_principal())
    ]
    return answer(AuthorizedAppList(count=len(found), results=found))


@bp.delete("/account/grants/<int:grant_id>")
@require_token("devices:write", personal=PAT_ONLY)
def revoke_grant(grant_id: int) -> Response:
    """The client is refused from its next request (its tokens end with the grant)."""
    grants.revoke_grant(current_principal(), grant_id)
    return no_content()
