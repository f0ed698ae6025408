"""Applications a person registered (OAuth clients anyone may authorize), the apps a person
authorized ("Authorized apps", on the account), and a device's redirect URIs.

An application's client secret is shown once, in the response to the POST that minted it
(registering, or rotating it), like a device's secret (views.one_time_response); a
resubmission of that POST finds its nonce spent and goes to the application's page instead.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from .. import redirects
from ..errors import InvalidInput
from ..forms import (
    REDIRECT_RULES,
    ApplicationChangeForm,
    OnceForm,
    RedirectUrisForm,
    RegisterApplicationForm,
)
from ..models import Application
from ..services import applications, devices, grants
from ..services.applications import Registered
from .helpers import (
    apply_service_error,
    current_actor,
    issue_nonce,
    one_time_response,
    signed_in_only,
    submit_once,
)

bp = Blueprint("applications", __name__)

NEW_PURPOSE = "application:new"

signed_in_only(bp)


def _rotate_purpose(application_id: int) -> str:
    return f"application:{application_id}:secret"


def _landing_page() -> str:
    """<base URL>/appauth/code: the redirect URI every device has, and any client may register."""
    return redirects.own_landing_page(current_app.config["BIOWEB_BASE_URL"])


# --- your applications -----------------------------------------------------------------------------


def _render_index(form: RegisterApplicationForm, status: int = 200) -> tuple[str, int]:
    return render_template(
        "applications/index.html",
        form=form,
        applications=applications.list_applications(current_actor()),
        landing_page=_landing_page(),
    ), status


@bp.get("/applications")
def index() -> tuple[str, int]:
    form = RegisterApplicationForm(data={"client_type": "confidential"})
    form.nonce.data = issue_nonce(NEW_PURPOSE)
    return _render_index(form)


def _secret_page(registered: Registered, rotated: bool) -> Response:
    return one_time_response(
        render_template(
            "applications/created.html",
            application=registered.application,
            client_secret=registered.client_secret,
            rotated=rotated,
        )
    )


@bp.post("/applications")
def create() -> ResponseReturnValue:
    """Register an application and show its client id (and a confidential one's secret) once;
    a resubmission goes to the application it already registered. Commits via the service."""
    form = RegisterApplicationForm()

    def register() -> tuple[int, Response]:
        registered = applications.register(
            current_actor(),
            form.name.data,
            form.redirect_uris.data,
            form.client_type.data,
            form.homepage_url.data or "",
        )
        return registered.application.id, _secret_page(registered, rotated=False)

    def already_sent(application_id: int | None) -> Response:
        flash(
            "That form was already sent, and the application it registered is below. Its client "
            "secret was shown only once: if you did not copy it, rotate the secret to get a new one.",
            "info",
        )
        return redirect(url_for(".detail", application_id=application_id), code=303)

    def expired() -> tuple[str, int]:
        form.nonce.data = issue_nonce(NEW_PURPOSE)
        form.form_errors.append(
            "This form had expired, so nothing was registered. Check the details and send it again."
        )
        return _render_index(form, 400)

    return submit_once(
        form,
        NEW_PURPOSE,
        register,
        used=already_sent,
        expired=expired,
        invalid=lambda status: _render_index(form, status),
    )


def _render_detail(
    application: Application, form: ApplicationChangeForm, status: int = 200
) -> tuple[str, int]:
    return render_template(
        "applications/detail.html",
        application=application,
        redirect_uris=application.redirect_uris.split(),
        form=form,
    ), status


@bp.get("/applications/<int:application_id>")
def detail(application_id: int) -> tuple[str, int]:
    """An application's page: its facts, the form to change it, Rotate secret and Delete.
    Another person's application is a 404, as for a missing id."""
    application = applications.get_application(current_actor(), application_id)
    form = ApplicationChangeForm(
        data={
            "name": application.name,
            "homepage_url": application.homepage_url,
            "redirect_uris": application.redirect_uris,
        }
    )
    return _render_detail(application, form)


@bp.post("/applications/<int:application_id>")
def update(application_id: int) -> ResponseReturnValue:
    """Save the name, homepage and redirect URIs (POST-redirect-GET); errors go on the fields.
    Commits via the service."""
    application = applications.get_application(current_actor(), application_id)
    form = ApplicationChangeForm()
    if form.validate_on_submit():
        try:
            applications.update(
                current_actor(),
                application.id,
                name=form.name.data or "",
                homepage_url=form.homepage_url.data or "",
                redirect_uris=form.redirect_uris.data or "",
            )
        except InvalidInput as error:
            apply_service_error(form, error)
        else:
            flash(f"Saved the changes to “{application.name}”.", "success")
            return redirect(url_for(".detail", application_id=application.id), code=303)
    # What the person typed stays in the fields, on the application as it is stored.
    return _render_detail(applications.get_application(current_actor(), application.id), form, 400)


@bp.get("/applications/<int:application_id>/secret")
def confirm_rotate(application_id: int) -> str:
    """Ask before rotating: the old secret stops working and everyone who authorized the
    application has to authorize it again."""
    application = applications.get_application(current_actor(), application_id)
    form = OnceForm()
    form.nonce.data = issue_nonce(_rotate_purpose(application.id))
    return render_template("applications/rotate.html", application=application, form=form)


@bp.post("/applications/<int:application_id>/secret")
def rotate(application_id: int) -> ResponseReturnValue:
    """A new client secret, shown once; the old one and every grant on the application end.
    A resubmission rotates nothing. Commits via the service."""
    application = applications.get_application(current_actor(), application_id)
    form = OnceForm()

    def rotate_secret() -> tuple[int, Response]:
        return application.id, _secret_page(
            applications.rotate_secret(current_actor(), application.id), rotated=True
        )

    def already_done(_: int | None) -> Response:
        flash(
            "That secret was already rotated, and it was shown only once. If you did not copy it, "
            "rotate it again.",
            "info",
        )
        return redirect(url_for(".detail", application_id=application.id), code=303)

    def refused(*_: int) -> Response:
        flash(
            " ".join(form.form_errors)
            or "That form had expired, so the secret was not rotated. Confirm again.",
            "error",
        )
        return redirect(url_for(".confirm_rotate", application_id=application.id), code=303)

    return submit_once(
        form,
        _rotate_purpose(application.id),
        rotate_secret,
        used=already_done,
        expired=refused,
        invalid=refused,
    )


@bp.get("/applications/<int:application_id>/delete")
def confirm_delete(application_id: int) -> str:
    application = applications.get_application(current_actor(), application_id)
    return render_template("applications/delete.html", application=application)


@bp.post("/applications/<int:application_id>/delete")
def delete(application_id: int) -> Response:
    """Delete the application with every grant on it. Commits via the service."""
    application = applications.get_application(current_actor(), application_id)
    name = application.name
    applications.delete(current_actor(), application.id)
    flash(
        f"“{name}” is deleted: its client id and secret no longer work, and everyone who "
        "authorized it is signed out of it.",
        "success",
    )
    return redirect(url_for(".index"), code=303)


# --- authorized apps -------------------------------------------------------------------------------


@bp.get("/account/authorized-apps")
def authorized_apps() -> str:
    """The clients the person authorized to act for them: what each may do, when it last
    did, and Revoke."""
    return render_template("grants/index.html", grants=grants.list_grants(current_actor()))


@bp.post("/account/authorized-apps/<int:grant_id>/revoke")
def revoke_grant(grant_id: int) -> Response:
    """Revoke one of the person's grants: the client is refused from its next request. Another
    person's grant is a 404. Commits via the service."""
    actor = current_actor()
    name = next((view.client_name for view in grants.list_grants(actor) if view.id == grant_id), "")
    grants.revoke_grant(actor, grant_id)
    flash(f"{name} can no longer act for you. It would have to ask you again.", "success")
    return redirect(url_for(".authorized_apps"), code=303)


# --- a device's redirect URIs ------------------------------------------------------------------------


@bp.app_template_global()
def device_redirect_uris(device_id: int) -> list[str]:
    """The redirect URIs the owner added to their device `device_id` (the device page's
    section; its own landing page comes on top of them)."""
    return devices.get_device(current_actor(), device_id).redirect_uris.split()


@bp.app_template_global()
def oauth_landing_page() -> str:
    return _landing_page()


@bp.app_template_global()
def redirect_rules() -> str:
    """Which redirect URIs may be registered, in one sentence (the forms' description)."""
    return REDIRECT_RULES


@bp.post("/devices/<int:device_id>/redirect-uris")
def device_redirect_uris_update(device_id: int) -> ResponseReturnValue:
    """Set the redirect URIs of the owner's device (one a line; empty: only the landing page).
    Errors: a page with the form and its messages (400). Commits via the service."""
    device = devices.read_device(current_actor(), device_id)
    form = RedirectUrisForm()
    if form.validate_on_submit():
        try:
            devices.set_redirect_uris(current_actor(), device.id, form.redirect_uris.data or "")
        except InvalidInput as error:
            apply_service_error(form, error)
        else:
            flash("Saved the device's redirect URIs.", "success")
            return redirect(url_for("devices.detail", device_id=device.id, _anchor="redirect-uris"), code=303)
    return render_template(
        "devices/redirect_uris.html", device=device, form=form, landing_page=_landing_page()
    ), 400
