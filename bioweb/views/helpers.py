"""What every signed-in blueprint needs, in a module that imports nothing of bioweb.views, so a
blueprint module can use it without an import cycle through the package (tests/test_imports.py).
The package re-exports these for the blueprints that still import them from there."""

from __future__ import annotations

from flask import Blueprint
from flask_login import current_user, login_required

from ..models import User


def signed_in_only(bp: Blueprint) -> None:
    """Every page of `bp` is a signed-in user's own: others go to the login page (?next=...)."""

    @bp.before_request
    @login_required
    def _require_login() -> None:
        return None


def current_actor() -> User:
    """The signed-in user, as the services take it."""
    return current_user._get_current_object()
