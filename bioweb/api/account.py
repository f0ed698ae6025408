"""The person behind a token: GET and PATCH /api/v1/account (their time zone, for now).

Person-only, like the device registry's own routes: a device's token holds none of the
person's scopes, so it is refused with 403 insufficient_scope.
"""

from __future__ import annotations

from flask import Response

from ..bearer import current_principal, require_token
from ..forms import TimeZoneForm
from ..services import accounts
from ..services.tokens import PAT_SCOPES
from .core import answer, bind_json, bp


@bp.get("/account")
@require_token(*PAT_SCOPES)
def get_account() -> Response:
    return answer(accounts.account_view(current_principal()))


@bp.patch("/account")
@require_token("devices:write")
def update_account() -> Response:
    form = bind_json(TimeZoneForm)
    principal = current_principal()
    accounts.set_time_zone(principal, form.time_zone.data)
    return answer(accounts.account_view(principal))
