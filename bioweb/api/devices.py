"""Device endpoints of the published documentation (device-endpoints.md)."""

from __future__ import annotations

from flask import Response, jsonify, request

from ..bearer import bearer_origin, current_principal, require_token
from ..errors import InvalidInput
from ..forms import (
    DeviceForm,
    DeviceNameForm,
    DeviceRefForm,
    ListDevicesForm,
    NewSecretForm,
    PageForm,
    form_struct,
)
from ..readmodels import Credentials, NewDevice, NewSecret
from ..services import deletion, devices
from ..services.tokens import DEVICE_SCOPE
from .core import answer, bind_args, bind_json, bp, no_content


def _credentials_response(creds: Credentials | NewSecret) -> Response:
    response = answer(creds)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.post("/devices")
@require_token("devices:write")
def create_device() -> Response:
    form = bind_json(DeviceForm)
    actor = current_principal()
    creds = devices.create_device(actor, form_struct(form, NewDevice), bearer_origin())
    return _credentials_response(creds)


@bp.get("/devices")
@require_token("devices:read")
def list_devices() -> Response:
    args = bind_args(ListDevicesForm)
    actor = current_principal()
    page = devices.list_devices(
        actor,
        offset=args.offset.data,
        limit=args.limit.data,
        sort_order=args.sort_order.data,
        sort_field=args.sort_field.data,
    )
    return answer(page)


@bp.get("/device/<int:device_id>")
@bp.get("/devices/<int:device_id>")
@require_token("devices:read", DEVICE_SCOPE)
def get_device(device_id: int) -> Response:
    return answer(devices.read_device(current_principal(), device_id))


@bp.patch("/device/<int:device_id>")
@bp.patch("/devices/<int:device_id>")
@require_token("devices:write")
def update_device(device_id: int) -> Response:
    """{"name": "Anna's watch"} names the device; null or "" removes its name."""
    form = bind_json(DeviceNameForm)
    if "name" not in request.get_json():
        message = 'Send the new name: {"name": "Anna\'s watch"} (null or "" removes it).'
        raise InvalidInput(f"name: {message}", {"name": [message]})
    actor = current_principal()
    return answer(devices.rename_device(actor, device_id, form.name.data, bearer_origin()))


def _purge_requested() -> bool:
    """?purge=true or ?purge=false (the default); anything else is a 400."""
    values = request.args.getlist("purge")
    if not values:
        return False
    if len(values) > 1 or values[0] not in ("true", "false"):
        message = "Must be true (delete the disabled device with its data) or false (disable it)."
        raise InvalidInput(f"purge: {message}", {"purge": [message]})
    return values[0] == "true"


@bp.delete("/device/<int:device_id>")
@bp.delete("/devices/<int:device_id>")
@require_token("devices:write")
def disable_device(device_id: int) -> Response:
    """The published disable (204, idempotent). ?purge=true, an extension: delete a disabled
    device with its metrics, samples and events (409 while it is active): 204 when every row is
    gone, 202 when `flask maintenance` finishes (the device is gone for every reader either way)."""
    actor = current_principal()
    if _purge_requested():
        done = deletion.delete_device(actor, device_id, bearer_origin())
        if done.finished:
            return no_content()
        response = jsonify(
            status="deleting",
            description="The device is deleted and its credentials are dead; the last of its data "
            "is being removed in the background.",
        )
        response.status_code = 202
        return response
    devices.disable_device(actor, device_id, bearer_origin())
    return no_content()


@bp.delete("/data-submission/device-authorize")
@require_token("devices:write")
def disable_device_by_query() -> Response:
    device_id = bind_args(DeviceRefForm).device_id.data
    actor = current_principal()
    devices.disable_device(actor, device_id, bearer_origin())
    return no_content()


@bp.post("/data-submission/device-authorize")
@require_token("devices:write")
def authorize_device() -> Response:
    device_id = bind_json(DeviceRefForm).device_id.data
    actor = current_principal()
    return _credentials_response(devices.authorize_device(actor, device_id, bearer_origin()))


@bp.get("/device/<int:device_id>/events")
@bp.get("/devices/<int:device_id>/events")
@require_token("devices:read")
def list_device_events(device_id: int) -> Response:
    args = bind_args(PageForm)
    actor = current_principal()
    page = devices.list_events(
        actor, device_id, offset=args.offset.data, limit=args.limit.data, sort_order=args.sort_order.data
    )
    return answer(page)


@bp.post("/device/<int:device_id>/secrets")
@bp.post("/devices/<int:device_id>/secrets")
@require_token("devices:write")
def add_device_secret(device_id: int) -> Response:
    """A second client secret, shown once (201); the current one keeps working until it is
    removed or, with {"expires_in": seconds}, until then. A body is optional."""
    expires_in = None
    if request.content_length or request.mimetype:
        expires_in = bind_json(NewSecretForm).expires_in.data
    actor = current_principal()
    response = _credentials_response(devices.add_secret(actor, device_id, expires_in, bearer_origin()))
    response.status_code = 201
    return response


@bp.delete("/device/<int:device_id>/secrets/<int:slot>")
@bp.delete("/devices/<int:device_id>/secrets/<int:slot>")
@require_token("devices:write")
def remove_device_secret(device_id: int, slot: int) -> Response:
    """Remove the secret in slot 1 or 2; the tokens obtained with it end at their next use."""
    devices.remove_secret(current_principal(), device_id, slot, bearer_origin())
    return no_content()
