"""Accounts: sign up, log in, log out, change password."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from ..errors import Conflict, InvalidInput
from ..extensions import limiter
from ..forms import ChangePasswordForm, LoginForm, SignupForm
from ..models import User
from ..services import accounts
from .helpers import apply_service_error, form_status, safe_next

bp = Blueprint("auth", __name__)


def _login_limit() -> str:
    return current_app.config["BIOWEB_LOGIN_RATELIMIT"]


_TOO_MANY = "Too many attempts from your network. Wait a minute, then try again."


def _start_session(user: User) -> None:
    """Log `user` in on a fresh session: whatever the session held before (a planted value, an
    old CSRF token, another user's nonces) is dropped, so nothing carries across the login."""
    session.clear()
    login_user(user)


def _after_login_url() -> str:
    return safe_next(request.args.get("next")) or url_for("devices.index")


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], error_message=_TOO_MANY)
def signup() -> str | Response:
    """Create an account and log it in. Conflict (email taken) lands on the email field."""
    if current_user.is_authenticated:
        return redirect(url_for("devices.index"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(
                form.email.data, form.password.data, form.first_name.data, form.last_name.data
            )
        except (InvalidInput, Conflict) as error:
            apply_service_error(form, error)
        else:
            _start_session(user)
            flash(
                f"Welcome to bioweb, {user.first_name}. Register your first device to get started.", "success"
            )
            return redirect(url_for("devices.index"), code=303)
    return render_template("auth/signup.html", form=form), form_status(form)


@bp.route("/login", methods=["GET", "POST"])
# Only failed attempts count, so people behind one shared address are not locked out by
# their colleagues' successful logins; guessing is what the limit is for.
@limiter.limit(
    _login_limit,
    methods=["POST"],
    error_message=_TOO_MANY,
    deduct_when=lambda response: response.status_code != 303,
)
def login() -> str | Response:
    """Log in with email and password; go to ?next= when it is a local path."""
    if current_user.is_authenticated:
        return redirect(_after_login_url())
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(form.email.data, form.password.data)
        if user is not None:
            target = _after_login_url()
            _start_session(user)
            return redirect(target, code=303)
        # One message for an unknown email and a wrong password: no account enumeration.
        form.form_errors.append("That email and password do not match an account. Check both and try again.")
    next_path = safe_next(request.args.get("next"))
    return render_template("auth/login.html", form=form, next_path=next_path), form_status(form)


@bp.post("/logout")
def logout() -> Response:
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("pages.index"), code=303)


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> str | Response:
    """Change the password; every other session ends (services.accounts bumps session_version),
    and this one is renewed with the new version so the person stays logged in here."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        user: User = current_user._get_current_object()
        try:
            accounts.change_password(user, form.current_password.data, form.new_password.data)
        except InvalidInput as error:
            apply_service_error(form, error)
        else:
            _start_session(user)
            flash(
                "Your password is changed. Any other place you were logged in has been logged out.", "success"
            )
            return redirect(url_for("devices.index"), code=303)
    return render_template("auth/change_password.html", form=form), form_status(form)
