"""The person behind a token: GET and PATCH /api/v1/account (their time zone, for now), and
GET /api/v1/account/export: everything of theirs in one ZIP (issue 16; both read scopes).

Person-only, like the device registry's own routes: a device's token holds none of the
person's scopes, so it is refused with 403 insufficient_scope.
"""

from __future__ import annotations

from flask import Response

from ..bearer import bearer_origin, current_principal, require_token
from ..downloads import EXPORT_RATELIMIT, export_response
from ..extensions import limiter
from ..forms import TimeZoneForm
from ..services import accounts, export
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


@bp.get("/account/export")
@require_token(
    "devices:read",
    "samples:read",
    all_of=True,
    personal="The export is made with a personal access token (bcp_...) only: an app's access token "
    "cannot take the whole account (its sessions, activity and applications).",
)
@limiter.limit(EXPORT_RATELIMIT, key_func=lambda: f"export:user:{current_principal().id}")
def export_account() -> Response:
    """The person's whole account as a ZIP, streamed (services.export); an export.made event."""
    principal = current_principal()
    export.record_export(principal.id, bearer_origin())
    return export_response(principal.id)
