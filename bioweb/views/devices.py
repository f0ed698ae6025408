"""Devices: the list, registering one, its page, disabling and re-authorizing it.

The secret of a new or re-authorized device is rendered straight into the response to the
POST that minted it (see views.one_time_response); a resubmission of that POST is recognised
by its spent nonce and redirected to the device page instead of minting anything.
"""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.wrappers import Response

from .. import devicecodes
from ..forms import OnceForm, RegisterDeviceForm, arg_int, form_struct
from ..origin import current_origin
from ..readmodels import Credentials, NewDevice
from ..services import devices, metrics
from ..services.events import Origin
from .charts import sparkline_url
from .helpers import (
    current_actor,
    issue_nonce,
    one_time_response,
    signed_in_only,
    submit_once,
)

bp = Blueprint("devices", __name__, url_prefix="/devices")

PAGE_SIZE = 25
NEW_PURPOSE = "device:new"


signed_in_only(bp)


def _origin() -> Origin:
    """The audit origin of this dashboard request: the signed-in user, their address, the request id."""
    return current_origin(f"user:{current_user.id}")


def _authorize_purpose(device_id: int) -> str:
    return f"device:{device_id}:authorize"


@bp.get("")
def index() -> str:
    """Newest first, PAGE_SIZE at a time. ?after=<id> pages towards older devices, ?before=<id>
    back towards newer ones; both are keyset cursors (services.devices.list_devices), never OFFSET."""
    actor = current_actor()
    # ASCII digits within an id's range, else a 400 page naming the parameter (never a 500).
    after = arg_int(request.args, "after", default=0)
    before = arg_int(request.args, "before", default=0)
    # One row more than shown tells whether another page exists, without counting.
    if before and before > 0:
        page = devices.list_devices(actor, offset=before, limit=PAGE_SIZE + 1, sort_order="asc")
        rows = page.results[:PAGE_SIZE]
        rows.reverse()
        has_newer, has_older = len(page.results) > PAGE_SIZE, True
    else:
        cursor = after if after and after > 0 else 0
        page = devices.list_devices(actor, offset=cursor, limit=PAGE_SIZE + 1, sort_order="desc")
        rows = page.results[:PAGE_SIZE]
        has_newer, has_older = cursor > 0, len(page.results) > PAGE_SIZE
    return render_template(
        "devices/index.html",
        devices=rows,
        count=page.count,
        newer_url=url_for(".index", before=rows[0].id) if rows and has_newer else None,
        older_url=url_for(".index", after=rows[-1].id) if rows and has_older else None,
        first_url=url_for(".index") if has_newer and not rows else None,
    )


@bp.get("/codes")
def codes() -> Response:
    """Identifier suggestions for the register form: ?q=Watch -> [{code, product_name}, ...]."""
    query = request.args.get("q", "")[:40]
    return jsonify(
        [{"code": e.code, "product_name": e.product_name} for e in devicecodes.search(query, limit=30)]
    )


def _render_new(form: RegisterDeviceForm, status: int = 200) -> tuple[str, int]:
    return render_template("devices/new.html", form=form), status


@bp.get("/new")
def new() -> tuple[str, int]:
    form = RegisterDeviceForm()
    form.nonce.data = issue_nonce(NEW_PURPOSE)
    return _render_new(form)


@bp.post("/new")
def create() -> ResponseReturnValue:
    """Register a device and show its credentials once. A resubmitted form (reload, back, double
    post) finds its nonce spent and goes to the device it already created. Commits via the service."""
    form = RegisterDeviceForm()

    def register() -> tuple[int, Response]:
        creds = devices.create_device(current_actor(), form_struct(form, NewDevice), _origin())
        return creds.id, _credentials_page(creds, reauthorized=False)

    def already_sent(device_id: int | None) -> Response:
        flash(
            "That form was already sent, and the device it registered is below. Its secret was shown "
            "only once: if you did not copy it, use Re-authorize to get a new one.",
            "info",
        )
        return redirect(url_for(".detail", device_id=device_id), code=303)

    def expired() -> tuple[str, int]:
        form.nonce.data = issue_nonce(NEW_PURPOSE)
        form.form_errors.append(
            "This form had expired, so nothing was registered. Check the details and send it again."
        )
        return _render_new(form, 400)

    return submit_once(
        form,
        NEW_PURPOSE,
        register,
        used=already_sent,
        expired=expired,
        invalid=lambda status: _render_new(form, status),
    )


def _credentials_page(creds: Credentials, reauthorized: bool) -> Response:
    html = render_template(
        "devices/credentials.html",
        device=devices.read_device(current_actor(), creds.id),
        client_secret=creds.oauth2_client_secret,
        redirect_url=creds.oauth2_redirect_url,
        reauthorized=reauthorized,
    )
    return one_time_response(html)


@bp.get("/<int:device_id>")
def detail(device_id: int) -> str:
    """A device's page: its facts, its metrics (latest value, samples of the last 24 hours,
    a small chart of the last 7 local days, drawn from /metrics/<id>/calculations) and its audit trail, newest first, 20 events a page (?events_before=<id>).

    Another user's device is a 404, as for a missing id (services raise NotFound).
    """
    before = arg_int(request.args, "events_before", default=0)
    device, history = devices.device_history(
        current_actor(), device_id, offset=before, limit=20, sort_order="desc"
    )
    listed = metrics.device_metrics(current_actor(), device.id)
    return render_template(
        "devices/detail.html",
        device=device,
        metrics=listed,
        sparklines={
            o.metric.id: sparkline_url(
                "metrics.calculations", o.metric.aggregation, current_user.time_zone, metric_id=o.metric.id
            )
            for o in listed
        },
        metrics_limit=metrics.DEVICE_METRICS_LIMIT,
        history=history,
        events_before=before,
    )


@bp.get("/<int:device_id>/disable")
def confirm_disable(device_id: int) -> str:
    return render_template("devices/disable.html", device=devices.read_device(current_actor(), device_id))


@bp.post("/<int:device_id>/disable")
def disable(device_id: int) -> Response:
    """Disable now: the device's credentials and tokens are refused (idempotent). Commits via the service."""
    device = devices.disable_device(current_actor(), device_id, _origin())
    flash(
        f"{device.product_name} is disabled. Its credentials and tokens are refused from now on; "
        "Re-authorize gives it new ones.",
        "success",
    )
    return redirect(url_for(".detail", device_id=device.id), code=303)


@bp.get("/<int:device_id>/authorize")
def confirm_authorize(device_id: int) -> str:
    device = devices.read_device(current_actor(), device_id)
    form = OnceForm()
    form.nonce.data = issue_nonce(_authorize_purpose(device.id))
    return render_template("devices/authorize.html", device=device, form=form)


@bp.post("/<int:device_id>/authorize")
def authorize(device_id: int) -> ResponseReturnValue:
    """Give the device a new secret (and make it active); show the secret once. Commits via the service."""
    device = devices.read_device(current_actor(), device_id)

    def reauthorize() -> tuple[int, Response]:
        creds = devices.authorize_device(current_actor(), device.id, _origin())
        return device.id, _credentials_page(creds, reauthorized=True)

    def already_done(_: int | None) -> Response:
        flash(
            "That re-authorization was already done; its secret was shown only once. "
            "If you did not copy it, re-authorize again.",
            "info",
        )
        return redirect(url_for(".detail", device_id=device.id), code=303)

    def expired(*_: int) -> Response:
        flash("That form had expired, so nothing was changed. Confirm again to get a new secret.", "error")
        return redirect(url_for(".confirm_authorize", device_id=device.id), code=303)

    return submit_once(
        OnceForm(),
        _authorize_purpose(device.id),
        reauthorize,
        used=already_done,
        expired=expired,
        invalid=expired,
    )
