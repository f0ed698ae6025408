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
from ..errors import AppError, Conflict, InvalidInput, NotFound
from ..forms import (
    DEVICE_LIST_SORTS,
    AddSecretForm,
    DeviceListQuery,
    DeviceNameForm,
    OnceForm,
    RegisterDeviceForm,
    arg_int,
    form_struct,
)
from ..models import DeviceState, search_key
from ..origin import current_origin
from ..readmodels import Credentials, NewDevice, NewSecret
from ..services import accounts, devices, metrics
from ..services.devices import SortOrder
from ..services.events import Origin
from .charts import sparkline_url
from .helpers import (
    current_actor,
    issue_nonce,
    one_time_response,
    relative_time,
    signed_in_only,
    submit_once,
)

bp = Blueprint("devices", __name__, url_prefix="/devices")

PAGE_SIZE = 25
NEW_PURPOSE = "device:new"


signed_in_only(bp)
bp.add_app_template_filter(relative_time, "ago")


def _origin() -> Origin:
    """The audit origin of this dashboard request: the signed-in user, their address, the request id."""
    return current_origin(f"user:{current_user.id}")


def _authorize_purpose(device_id: int) -> str:
    return f"device:{device_id}:authorize"


@bp.get("")
def index() -> str:
    """The devices, PAGE_SIZE at a time: searched (?q=, the start of a name, model identifier or
    product, in any case), filtered (?state=active|disabled, ?mode=test|live) and sorted
    (?sort=, forms.DEVICE_LIST_SORTS; newest first by default). ?after=<id> pages on, ?before=<id>
    back; both are keyset cursors (services.devices.find_devices), never OFFSET. ?at=<n> is the
    position of the page's first device, carried by the pager for "26–50 of 80". Bad values:
    a 400 page naming them (never a 500)."""
    actor = current_actor()
    query = DeviceListQuery(formdata=request.args)
    if not query.validate():
        raise InvalidInput(
            "This list address has a value the list does not know: "
            + "; ".join(f"{name}: {' '.join(messages)}" for name, messages in query.errors.items()),
            query.errors,
        )
    after = arg_int(request.args, "after", default=0)
    before = arg_int(request.args, "before", default=0)
    at = arg_int(request.args, "at", default=0, minimum=1)
    _, sort_field, order = DEVICE_LIST_SORTS[query.sort.data]
    found = devices.DeviceFilter(
        search=search_key(query.q.data or ""),
        state={"active": DeviceState.ACTIVE, "disabled": DeviceState.DISABLED}.get(query.state.data),
        test_mode={"test": True, "live": False}.get(query.mode.data),
    )
    # One row more than shown tells whether another page lies that way, without counting.
    if before:
        backwards: SortOrder = "asc" if order == "desc" else "desc"
        finding = devices.find_devices(actor, found, before, PAGE_SIZE + 1, backwards, sort_field)
        rows = finding.results[:PAGE_SIZE]
        rows.reverse()
        has_previous, has_next = len(finding.results) > PAGE_SIZE, True
    else:
        finding = devices.find_devices(actor, found, after, PAGE_SIZE + 1, order, sort_field)  # type: ignore[arg-type]
        rows = finding.results[:PAGE_SIZE]
        has_previous, has_next = after > 0, len(finding.results) > PAGE_SIZE
    if not has_previous:
        at = 1
    # The query string without defaults, kept by the pager, the sort links and the filter form.
    kept = {
        name: value
        for name, value in (("q", query.q.data), ("state", query.state.data), ("mode", query.mode.data))
        if value
    }
    if query.sort.data != "newest":
        kept["sort"] = query.sort.data
    return render_template(
        "devices/index.html",
        devices=rows,
        query=query,
        filtered=bool(found),
        count=finding.count,
        count_exact=finding.count_exact,
        at=at or None,
        total=actor.device_count,
        previous_url=url_for(".index", **kept, before=rows[0].id, at=max(1, (at or 1) - PAGE_SIZE))
        if rows and has_previous
        else None,
        next_url=url_for(".index", **kept, after=rows[-1].id, at=(at or 1) + len(rows))
        if rows and has_next
        else None,
        first_url=url_for(".index", **kept) if has_previous and not rows else None,
        clear_url=url_for(".index"),
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
    if not accounts.is_confirmed(current_actor()):
        return _confirm_first()
    form = RegisterDeviceForm()
    form.nonce.data = issue_nonce(NEW_PURPOSE)
    return _render_new(form)


def _confirm_first() -> tuple[str, int]:
    """Registering devices waits for the address to be confirmed (services.accounts)."""
    return render_template("devices/confirm_first.html", message=accounts.NOT_CONFIRMED), 403


@bp.post("/new")
def create() -> ResponseReturnValue:
    """Register a device and show its credentials once. A resubmitted form (reload, back, double
    post) finds its nonce spent and goes to the device it already created. Commits via the service."""
    if not accounts.is_confirmed(current_actor()):
        return _confirm_first()
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
        secret_use=devices.secret_use(device.id),
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


# --- the device's name ----------------------------------------------------------------------------


@bp.post("/<int:device_id>/name")
def rename(device_id: int) -> Response:
    """Name the device (or take its name away with an empty field). Commits via the service."""
    form = DeviceNameForm()
    if not form.validate_on_submit():
        problems = "; ".join(" ".join(messages) for messages in form.errors.values())
        flash(f"The name was not changed: {problems}", "error")
        return redirect(url_for(".detail", device_id=device_id, _anchor="device-name"), code=303)
    device = devices.rename_device(current_actor(), device_id, form.name.data, _origin())
    flash(f"Named it “{device.name}”." if device.name else "The device has no name now.", "success")
    return redirect(url_for(".detail", device_id=device.id), code=303)


# --- two client secrets: rotation without downtime ----------------------------------------------------


def _add_secret_purpose(device_id: int) -> str:
    return f"device:{device_id}:secret"


@bp.get("/<int:device_id>/secrets/new")
def new_secret(device_id: int) -> str:
    """Confirm "Add a new secret", choosing how long the current secret keeps working."""
    device = devices.read_device(current_actor(), device_id)
    form = AddSecretForm()
    form.nonce.data = issue_nonce(_add_secret_purpose(device.id))
    return render_template("devices/add_secret.html", device=device, form=form)


@bp.post("/<int:device_id>/secrets/new")
def add_secret(device_id: int) -> ResponseReturnValue:
    """Add a second client secret and show it once; the current one keeps working. A
    resubmission shows nothing and adds nothing. Commits via the service."""
    device = devices.read_device(current_actor(), device_id)
    form = AddSecretForm()

    def add() -> tuple[int, Response]:
        added = devices.add_secret(current_actor(), device.id, form.old_seconds(), _origin())
        return device.id, _new_secret_page(added)

    def already_done(_: int | None) -> Response:
        flash(
            "That secret was already added; it was shown only once. If you did not copy it, "
            "remove it and add another.",
            "info",
        )
        return redirect(url_for(".detail", device_id=device.id, _anchor="secrets"), code=303)

    def expired(*_: int) -> Response:
        flash("That form had expired, so no secret was added. Confirm again.", "error")
        return redirect(url_for(".new_secret", device_id=device.id), code=303)

    try:
        return submit_once(
            form, _add_secret_purpose(device.id), add, used=already_done, expired=expired, invalid=expired
        )
    except AppError as error:  # a third secret, a disabled device: say why on the device page
        flash(error.description, "error")
        return redirect(url_for(".detail", device_id=device.id, _anchor="secrets"), code=303)


def _new_secret_page(added: NewSecret) -> Response:
    html = render_template(
        "devices/new_secret.html",
        device=devices.read_device(current_actor(), added.id),
        added=added,
        redirect_url=devices.redirect_url(),
    )
    return one_time_response(html)


@bp.get("/<int:device_id>/secrets/<int:slot>/remove")
def confirm_remove_secret(device_id: int, slot: int) -> str:
    device = devices.read_device(current_actor(), device_id)
    secret = next((s for s in device.secrets if s.slot == slot), None)
    if secret is None:
        raise NotFound(f"Device {device.id} holds no client secret in slot {slot}.")
    return render_template(
        "devices/remove_secret.html",
        device=device,
        secret=secret,
        only=len(device.secrets) == 1,
        use=devices.secret_use(device.id).get(slot),
    )


@bp.post("/<int:device_id>/secrets/<int:slot>/remove")
def remove_secret(device_id: int, slot: int) -> Response:
    """Remove a secret: it and the tokens obtained with it stop working. Commits via the service."""
    try:
        devices.remove_secret(current_actor(), device_id, slot, _origin())
    except Conflict as error:
        flash(error.description, "error")
    else:
        flash(
            f"Secret {slot} is removed: it no longer works at /token, and the access tokens obtained "
            "with it are refused from their next request.",
            "success",
        )
    return redirect(url_for(".detail", device_id=device_id, _anchor="secrets"), code=303)
