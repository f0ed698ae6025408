"""Your data is yours (issue 16): download everything as one ZIP, delete a disabled device with
its data, delete the account. Pages of the dashboard; the services do the work."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, logout_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired

from ..downloads import EXPORT_RATELIMIT, export_response
from ..errors import AppError
from ..extensions import limiter
from ..models import DeviceState
from ..origin import current_origin
from ..passwordlimits import limit_password_checks, record_failure
from ..services import accounts, deletion, devices, export
from ..services.events import Origin
from .helpers import apply_service_error, current_actor, form_status, signed_in_only

bp = Blueprint("data", __name__)

signed_in_only(bp)


class ExportForm(FlaskForm):
    """The export button: nothing but the CSRF token."""


class DeleteDeviceForm(FlaskForm):
    confirm = StringField(
        "Type the device's name to confirm",
        validators=[DataRequired(message="Type the device's name (or its model code) to confirm.")],
    )


class DeleteAccountForm(FlaskForm):
    current_password = PasswordField(
        "Your password", validators=[DataRequired(message="Enter your password.")]
    )
    understood = BooleanField(
        "I understand that my account, my devices and all their data are deleted for good.",
        validators=[DataRequired(message="Tick the box to confirm that you want the account deleted.")],
    )


def _origin() -> Origin:
    return current_origin(f"user:{current_actor().id}")


@bp.post("/account/export")
@limiter.limit(EXPORT_RATELIMIT, key_func=lambda: f"export:user:{current_user.id}")
def export_zip() -> ResponseReturnValue:
    """Download everything as one ZIP (streamed); an export.made event on the account."""
    form = ExportForm()
    if not form.validate_on_submit():
        flash("The download form had expired; press the button again.", "error")
        return redirect(url_for("account.index", _anchor="your-data"), code=303)
    user = current_actor()
    export.record_export(user.id, _origin())
    return export_response(user.id)


def _confirmation_word(device: devices.DeviceDetail) -> str:
    """What the person types to delete a device: its name, or its model code without one."""
    return device.name or device.code


@bp.route("/devices/<int:device_id>/delete", methods=["GET", "POST"])
def delete_device(device_id: int) -> ResponseReturnValue:
    """Delete a disabled device with all its data, once its name (or code) is typed."""
    device = devices.read_device(current_actor(), device_id)
    form = DeleteDeviceForm()
    word = _confirmation_word(device)
    if device.state == DeviceState.DISABLED and form.validate_on_submit():
        if form.confirm.data.strip() != word:
            form.confirm.errors = [f"That is not {word!r}: type it exactly as shown."]
        else:
            try:
                done = deletion.delete_device(current_actor(), device_id, _origin())
            except AppError as error:
                apply_service_error(form, error)
            else:
                label = device.name or device.product_name
                flash(
                    f"{label} is deleted with its metrics, samples and history."
                    + ("" if done.finished else " The last of its data is being removed in the background."),
                    "success",
                )
                return redirect(url_for("devices.index"), code=303)
    status = form_status(form)
    if device.state != DeviceState.DISABLED and form.is_submitted():
        status = 409
    return render_template("data/delete_device.html", device=device, form=form, word=word), status


def _signed_in_account() -> str:
    return current_user.email if current_user.is_authenticated else ""


@bp.route("/account/delete", methods=["GET", "POST"])
@limit_password_checks(_signed_in_account)
def delete_account() -> ResponseReturnValue:
    """Delete the account and everything it owns, after the password is entered again."""
    form = DeleteAccountForm()
    if form.validate_on_submit():
        user = current_actor()
        try:
            done = deletion.delete_account(user, form.current_password.data, _origin())
        except accounts.WrongPassword as error:
            record_failure()
            apply_service_error(form, error)
        else:
            logout_user()
            session.clear()
            flash(
                "Your account is deleted: your devices, their data and your sessions are gone, and "
                "your email address is free to sign up again."
                + ("" if done.finished else " The last of the data is being removed in the background."),
                "success",
            )
            return redirect(url_for("pages.index"), code=303)
    return render_template("data/delete_account.html", form=form), form_status(form)
