"""Device endpoints of the published documentation (device-endpoints.md)."""

from __future__ import annotations

from flask import Response

from ..bearer import bearer_origin, current_principal, require_token
from ..forms import DeviceForm, DeviceRefForm, ListDevicesForm, PageForm, form_struct
from ..readmodels import Credentials, NewDevice
from ..services import devices
from ..services.tokens import DEVICE_SCOPE
from .core import answer, bind_args, bind_json, bp, no_content


def _credentials_response(creds: Credentials) -> Response:
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


@bp.delete("/device/<int:device_id>")
@bp.delete("/devices/<int:device_id>")
@require_token("devices:write")
def disable_device(device_id: int) -> Response:
    actor = current_principal()
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
