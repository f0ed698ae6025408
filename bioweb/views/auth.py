"""Accounts: sign up (and confirm the address by a mailed link), log in, log out, change the
password, reset a forgotten one by a mailed link."""

from __future__ import annotations

import hashlib
import logging

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_login import current_user, login_required, login_user, logout_user
from limits import parse_many
from werkzeug.wrappers import Response

from ..errors import Conflict, InvalidInput
from ..extensions import limiter
from ..forms import ChangePasswordForm, ForgotPasswordForm, LoginForm, ResetPasswordForm, SignupForm
from ..mail import MailError
from ..models import User
from ..origin import current_origin
from ..passwordlimits import limit_password_checks, record_failure
from ..services import account_mail, accounts, sessions
from ..services.account_mail import LinkProblem
from .helpers import apply_service_error, form_status, safe_next

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)


@bp.record_once
def _prepare_dummy_hash(state: BlueprintSetupState) -> None:
    # The first login with an unknown email must not be the one that pays for making it.
    with state.app.app_context():
        accounts.prepare_dummy_hash()


def _signup_limit() -> str:
    return current_app.config["BIOWEB_SIGNUP_RATELIMIT"]


_TOO_MANY = "Too many sign-ups from your network."


def _start_session(user: User, signin: bool = False) -> None:
    """Log `user` in on a fresh session: whatever the session held before (a planted value, an
    old CSRF token, another user's nonces) is dropped, so nothing carries across the login.

    A user_sessions row is made for it, and the cookie's user id is that row's handle
    (services.sessions), which load_user resolves on every request: deleting the row
    signs the cookie out, wherever a copy of it is. `signin`: a sign-in with the password, an
    account event (a fresh session after a password change or reset is not one)."""
    session.clear()
    login_user(user)
    session_id, handle = sessions.start_session(
        user,
        request.headers.get("User-Agent", ""),
        request.remote_addr,
        origin=current_origin(f"user:{user.id}") if signin else None,
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
        user = current_user._get_current_object()
        sessions.end_session(user, session_id, current_origin(f"user:{user.id}"))
    logout_user()
    session.clear()


def _after_login_url() -> str:
    return safe_next(request.args.get("next")) or url_for("devices.index")


def _note_allowed(address: str) -> bool:
    """Whether one more note may go to `address`: mail without a link ("someone tried to sign up
    with your address", "no account has this address"), which anyone can make bioweb send. At
    most BIOWEB_MAIL_NOTE_RATELIMIT per address, from any number of networks, counted in the
    limiter's storage (by the address's digest). Per address alone is safe here: a withheld
    note changes no answer and keeps nobody from signing in, resetting or confirming."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return True
    key = hashlib.sha256(address.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX", "")
    allowed = all(
        limiter.limiter.hit(item, prefix, "mail-note", key)
        for item in parse_many(current_app.config["BIOWEB_MAIL_NOTE_RATELIMIT"])
    )
    if not allowed:
        log.info("a note to %s is withheld: BIOWEB_MAIL_NOTE_RATELIMIT reached", address)
    return allowed


_MAIL_FAILED = (
    "We could not send you an email just now, so this is not finished. Nothing is lost: "
    "try again in a few minutes."
)


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(_signup_limit, methods=["POST"], error_message=_TOO_MANY)
def signup() -> str | Response:
    """Create an account and mail a link to confirm its address; "check your email" next. An
    address that has an account already gets a note instead, and the answer is the same, so
    this page does not tell who has an account."""
    if current_user.is_authenticated:
        return redirect(url_for("devices.index"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            account_mail.sign_up(
                form.email.data,
                form.password.data,
                form.first_name.data,
                form.last_name.data,
                note_allowed=_note_allowed,
            )
        except (InvalidInput, Conflict) as error:
            apply_service_error(form, error)
        except MailError:
            form.form_errors.append(_MAIL_FAILED)
            return render_template("auth/signup.html", form=form), 503
        else:
            session["mailed_to"] = accounts.normalize_email(form.email.data)
            return redirect(url_for(".signup_sent"), code=303)
    return render_template("auth/signup.html", form=form), form_status(form)


@bp.get("/signup/check-your-email")
def signup_sent() -> str:
    return render_template("auth/email_sent.html", purpose="signup", email=session.get("mailed_to"))


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
            _start_session(user, signin=True)
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
            accounts.change_password(
                user, form.current_password.data, form.new_password.data, current_origin(f"user:{user.id}")
            )
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


# --- password reset -------------------------------------------------------------------------------


def _address() -> str:
    return request.remote_addr or "-"


def _typed_address_digest() -> str:
    """The address typed in the reset form, as the limiter's storage sees it (a digest)."""
    typed = accounts.normalize_email(request.form.get("email", ""))
    return hashlib.sha256(typed.encode("utf-8", "surrogatepass")).hexdigest()[:32]


_TOO_MANY_RESETS = (
    "Too many password reset emails were asked for from your network, so we are not sending more "
    "for a while. The links already sent still work."
)


@bp.route("/forgot-password", methods=["GET", "POST"])
# Every request mails, so every one counts: per (address typed, client address), and per client
# address; never per account alone, which would let anyone use up a person's resets.
@limiter.limit(
    lambda: current_app.config["BIOWEB_RESET_RATELIMIT_PER_IP"],
    key_func=_address,
    scope="reset-address",
    methods=["POST"],
    error_message=_TOO_MANY_RESETS,
)
@limiter.limit(
    lambda: current_app.config["BIOWEB_RESET_RATELIMIT_PER_ACCOUNT"],
    key_func=lambda: f"{_typed_address_digest()}@{_address()}",
    scope="reset-account",
    methods=["POST"],
    error_message=_TOO_MANY_RESETS,
)
def forgot_password() -> str | Response | tuple[str, int]:
    """Ask for a reset link by email. The answer ("check your email") is the same whether or
    not the address has an account: an address without one gets a note saying so."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        try:
            account_mail.request_reset(form.email.data, current_origin("anonymous"), _note_allowed)
        except MailError:
            form.form_errors.append(_MAIL_FAILED)
            return render_template("auth/forgot_password.html", form=form), 503
        session["mailed_to"] = accounts.normalize_email(form.email.data)
        return redirect(url_for(".forgot_password_sent"), code=303)
    if request.method == "GET" and current_user.is_authenticated:
        form.email.data = current_user.email
    return render_template("auth/forgot_password.html", form=form), form_status(form)


@bp.get("/forgot-password/check-your-email")
def forgot_password_sent() -> str:
    return render_template(
        "auth/email_sent.html",
        purpose="reset",
        email=session.get("mailed_to"),
        valid_for=account_mail.duration(current_app.config["BIOWEB_RESET_LINK_MAX_AGE"]),
    )


def _link_page(html: str, status: int = 200) -> Response:
    """A page opened from a mailed link: its URL holds a credential, so it is never cached and
    never sent on as a Referer."""
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _link_problem(problem: LinkProblem, purpose: str) -> Response:
    return _link_page(
        render_template("auth/link_problem.html", problem=problem, purpose=purpose), problem.status
    )


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> Response:
    """Choose a new password from a mailed link. Opening it changes nothing (mail scanners open
    links); the form's post spends it, ends every session of the account and signs this
    browser in afresh."""
    try:
        user = account_mail.check_reset(token)
    except LinkProblem as problem:
        return _link_problem(problem, "reset")
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            user = account_mail.reset_password(token, form.password.data, current_origin(f"user:{user.id}"))
        except LinkProblem as problem:
            return _link_problem(problem, "reset")
        except InvalidInput as error:
            apply_service_error(form, error)
        else:
            _start_session(user)
            flash(
                "Your password is changed, and you are logged in. Every other place you were logged in "
                "has been logged out.",
                "success",
            )
            return redirect(url_for("devices.index"), code=303)
    html = render_template("auth/reset_password.html", form=form, email=user.email, token=token)
    return _link_page(html, form_status(form))


# --- email confirmation -----------------------------------------------------------------------------


@bp.route("/confirm-email/<token>", methods=["GET", "POST"])
def confirm_email(token: str) -> Response:
    """Confirm the address from a mailed link: a page with one button (opening the link changes
    nothing, mail scanners open links), whose post confirms it."""
    try:
        user = account_mail.check_confirmation(token)
    except LinkProblem as problem:
        return _link_problem(problem, "confirm")
    signed_in_as_them = current_user.is_authenticated and current_user.id == user.id
    if request.method == "POST":
        # The one input is the CSRF token, which the app-wide CSRFProtect has checked.
        try:
            confirmed = account_mail.confirm_email(token, current_origin(f"user:{user.id}"))
        except LinkProblem as problem:
            return _link_problem(problem, "confirm")
        if confirmed.now:
            flash(
                f"Your email address is confirmed. Welcome to bioweb, {confirmed.user.first_name}.", "success"
            )
        else:
            flash("Your email address was confirmed already.", "info")
        if signed_in_as_them:
            return redirect(url_for("devices.index"), code=303)
        flash("Log in to register your first device.", "info")
        return redirect(url_for(".login"), code=303)
    html = render_template(
        "auth/confirm_email.html", email=user.email, confirmed=user.email_confirmed_time is not None
    )
    return _link_page(html)


@bp.post("/account/confirmation")
@login_required
@limiter.limit(
    lambda: current_app.config["BIOWEB_CONFIRM_RATELIMIT"],
    key_func=lambda: f"{current_user.id}@{_address()}",
    scope="confirmation-resend",
    error_message="Too many confirmation emails were asked for.",
)
def resend_confirmation() -> Response:
    """Mail the signed-in person a new confirmation link."""
    user: User = current_user._get_current_object()
    if user.email_confirmed_time is not None:
        flash("Your email address is confirmed already.", "info")
    else:
        try:
            account_mail.send_confirmation(user)
        except MailError:
            flash(_MAIL_FAILED, "error")
        else:
            flash(
                f"We sent a new confirmation link to {user.email}. It may take a minute to arrive.", "success"
            )
    target = safe_next(request.form.get("next")) or url_for("devices.index")
    return redirect(target, code=303)


# A bare /reset-password or /confirm-email (a link cut short before its token) says what happened.
@bp.get("/reset-password/")
@bp.get("/confirm-email/")
def link_without_token() -> Response:
    purpose = "reset" if request.path.startswith("/reset") else "confirm"
    what = "password reset" if purpose == "reset" else "confirmation"
    return _link_problem(LinkProblem("invalid", account_mail.invalid_message(what)), purpose)
