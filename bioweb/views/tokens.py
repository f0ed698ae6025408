"""Personal access tokens: create (shown once), list, revoke."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from ..forms import PersonalTokenForm
from ..services import tokens
from .helpers import (
    current_actor,
    issue_nonce,
    one_time_response,
    signed_in_only,
    submit_once,
)

# Personal access tokens for the API; "/token..." itself is the OAuth endpoints' space.
bp = Blueprint("tokens", __name__, url_prefix="/api-tokens")

NEW_PURPOSE = "token:new"


signed_in_only(bp)


def _render_index(form: PersonalTokenForm, status: int = 200) -> tuple[str, int]:
    return render_template(
        "tokens/index.html", form=form, tokens=tokens.list_personal_tokens(current_actor())
    ), status


@bp.get("")
def index() -> tuple[str, int]:
    form = PersonalTokenForm()
    form.nonce.data = issue_nonce(NEW_PURPOSE)
    return _render_index(form)


@bp.post("")
def create() -> ResponseReturnValue:
    """Create a token and show it once; a resubmission goes back to the list. Commits via the service."""
    form = PersonalTokenForm()

    def create_token() -> tuple[int, Response]:
        token, plaintext = tokens.create_personal_token(
            current_actor(), form.name.data, " ".join(form.scopes.data), form.expiry_days()
        )
        return token.id, one_time_response(
            render_template("tokens/created.html", token=token, plaintext=plaintext)
        )

    def already_sent(_: int | None) -> Response:
        flash(
            "That form was already sent and the token is in the list below. It was shown only once: "
            "if you did not copy it, revoke it and create another.",
            "info",
        )
        return redirect(url_for(".index"), code=303)

    def expired() -> tuple[str, int]:
        form.nonce.data = issue_nonce(NEW_PURPOSE)
        form.form_errors.append("This form had expired, so no token was created. Check it and send it again.")
        return _render_index(form, 400)

    return submit_once(
        form,
        NEW_PURPOSE,
        create_token,
        used=already_sent,
        expired=expired,
        invalid=lambda _status: _render_index(form, 400),
    )


@bp.get("/<int:token_id>/revoke")
def confirm_revoke(token_id: int) -> str:
    """Ask before revoking: whatever uses the token is refused from its next request, and a
    revoked token cannot be brought back. Another user's token is a 404."""
    return render_template("tokens/revoke.html", token=tokens.get_personal_token(current_actor(), token_id))


@bp.post("/<int:token_id>/revoke")
def revoke(token_id: int) -> Response:
    """Revoke one of the user's tokens (idempotent); another user's is a 404. Commits via the service."""
    token = tokens.revoke_personal_token(current_actor(), token_id)
    flash(f"The token “{token.name}” is revoked; anything using it is refused from now on.", "success")
    return redirect(url_for(".index"), code=303)
