"""Accounts: sign up, log in, log out, change password."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.blueprints import BlueprintSetupState
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from ..errors import Conflict, InvalidInput
from ..extensions import limiter
from ..forms import ChangePasswordForm, LoginForm, SignupForm
from ..models import User
from ..passwordlimits import limit_password_checks, record_failure
from ..services import accounts, sessions
from .helpers import apply_service_error, form_status, safe_next

bp = Blueprint("auth", __name__)


@bp.record_once
def _prepare_dummy_hash(state: BlueprintSetupState) -> None:
    # The first login with an unknown email must not be the one that pays for making it.
    with state.app.app_context():
        accounts.prepare_dummy_hash()


def _signup_limit() -> str:
    return current_app.config["BIOWEB_SIGNUP_RATELIMIT"]


_TOO_MANY = "Too many sign-ups from your network."


def _start_session(user: User) -> None:
    """Log `user` in on a fresh session: whatever the session held before (a planted value, an
    old CSRF token, another user's nonces) is dropped, so nothing carries across the login.

    A user_sessions row is made for it, and the cookie's user id is that row's handle
    (services.sessions), which load_user resolves on every request: deleting the row
    signs the cookie out, wherever a copy of it is."""
    session.clear()
    login_user(user)
    session_id, handle = sessions.start_session(
        user, request.headers.get("User-Agent", ""), request.remote_addr
    )
    session["_user_id"] = handle
    g.user_session_id = session_id


def load_user(handle: str) -> User | None:
    """Flask-Login's user loader. The session cookie's user id is a dashboard session's handle
    ("<session id>:<key>", see _start_session): the user of that session while it lives, else
    None (signed out). Remembers the session's id in g.user_session_id."""
    found = sessions.resolve(handle)
    if found is None:
        return None
    user, g.user_session_id = found
    return user


def current_session_id() -> int | None:
    """The id of the signed-in request's user_sessions row (set by load_user)."""
    if not current_user.is_authenticated:
        return None
    return g.get("user_session_id")


def end_this_session() -> None:
    """Sign this browser out: its session row goes, then the cookie's content."""
    session_id = current_session_id()
    if session_id is not None:
        sessions.end_session(current_user._get_current_object(), session_id)
    logout_user()
    session.clear()


def _after_login_url() -> str:
    return safe_next(request.args.get("next")) or url_for("devices.index")


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(_signup_limit, methods=["POST"], error_message=_TOO_MANY)
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


def _login_account() -> str:
    return request.form.get("email", "")


def _signed_in_account() -> str:
    return current_user.email if current_user.is_authenticated else ""


@bp.route("/login", methods=["GET", "POST"])
@limit_password_checks(_login_account)
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
        record_failure()
        # One message for an unknown email and a wrong password: no account enumeration.
        form.form_errors.append("That email and password do not match an account. Check both and try again.")
    next_path = safe_next(request.args.get("next"))
    return render_template("auth/login.html", form=form, next_path=next_path), form_status(form)


@bp.post("/logout")
def logout() -> Response:
    """Sign out: the session's row is deleted, so a copy of the cookie is signed out too."""
    end_this_session()
    flash("You are logged out.", "info")
    return redirect(url_for("pages.index"), code=303)


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
@limit_password_checks(_signed_in_account)
def change_password() -> str | Response:
    """Change the password. Every session of the account ends; this browser stays signed in on
    a fresh session (a new key), so a copy of its old cookie is signed out as well."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        user: User = current_user._get_current_object()
        try:
            accounts.change_password(user, form.current_password.data, form.new_password.data)
        except accounts.WrongPassword as error:
            record_failure()
            apply_service_error(form, error)
        except InvalidInput as error:
            apply_service_error(form, error)
        else:
            _start_session(user)
            flash(
                "Your password is changed. Any other place you were logged in has been logged out.", "success"
            )
            return redirect(url_for("devices.index"), code=303)
    return render_template("auth/change_password.html", form=form), form_status(form)
