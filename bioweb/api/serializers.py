"""Model (or read-only row) -> JSON-ready dict.

Times stay timezone-aware datetimes: the app's JSON provider (extensions.FastJSONProvider)
writes them as RFC 3339 with a UTC offset, e.g. 2022-02-06T00:54:45.249153+00:00.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app

from ..models import Device, Event
from ..services.devices import SUMMARY_COLUMNS, Credentials


def device_summary(device: sa.Row) -> dict[str, Any]:
    """One entry of the device list: a row of services.devices.SUMMARY_COLUMNS, as it is."""
    return dict(zip(SUMMARY_COLUMNS, device, strict=True))


def device_detail(device: Device) -> dict[str, Any]:
    """The retrieve response of the published document, plus product_name and is_test_mode."""
    return {
        "id": device.id,
        "uuid": device.uuid,
        "tenant_id": device.tenant_id,
        "manufacturer": device.manufacturer,
        "code": device.code,
        "product_name": device.product_name,
        "is_test_mode": device.is_test_mode,
        "state": device.state,
        "user_id": device.user_id,
        "client_id": device.client_id,
        "created_time": device.created_time,
        "modified_time": device.modified_time,
        "last_active_time": device.last_active_time,
    }


def redirect_url() -> str:
    return current_app.config["BIOWEB_BASE_URL"] + "/appauth/code"


def credentials(creds: Credentials) -> dict[str, Any]:
    """The create / re-authorize response: the one time the client secret is shown."""
    return {
        "id": creds.device.id,
        "uuid": creds.device.uuid,
        "oauth2_client_id": creds.device.client_id,
        "oauth2_client_secret": creds.client_secret,
        "oauth2_redirect_url": redirect_url(),
    }


def event(item: Event) -> dict[str, Any]:
    """One audit event; aggregated kinds carry how many times and when last in `count`/`last_time`."""
    return {
        "id": item.id,
        "kind": item.kind,
        "time": item.time,
        "last_time": item.last_time,
        "count": item.count,
        "actor": item.actor,
        "ip": item.ip,
        "request_id": item.request_id,
    }
