"""Devices: register, list, read, disable, re-authorize. A user only ever reaches their own."""

from __future__ import annotations

import functools
from operator import attrgetter
from typing import Any, Literal

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from .. import devicecodes, reads
from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import MAX_ID, Device, DeviceState, Event, EventKind, User, utcnow
from ..readmodels import (
    Credentials,
    DeviceDetail,
    DeviceList,
    DeviceSummary,
    EventList,
    EventView,
    NewDevice,
)
from ..security import SECRET_PREFIX, digest, new_client_id, new_secret
from . import Actor, Principal, events, tokens
from .events import Origin

SORT_FIELDS = (
    "id",
    "created_time",
    "modified_time",
    "last_active_time",
    "manufacturer",
    "code",
    "state",
)
SortOrder = Literal["asc", "desc"]
_devices, _users, _events = Device.__table__, User.__table__, Event.__table__


# The fields of NewDevice that are Device columns of the same name (is_test_mode, ...).
_CHOSEN_COLUMNS = NewDevice.__struct_fields__[2:]


def redirect_url() -> str:
    """The OAuth redirect URL devices are given with their credentials."""
    return str(current_app.config["BIOWEB_BASE_URL"]) + "/appauth/code"


def _credentials(device: Device, secret: str) -> Credentials:
    """The client secret just minted for `device` (shown once, never stored), with what goes with it."""
    return Credentials(device.id, device.uuid, device.client_id, secret, redirect_url())


def create_device(actor: Actor, new: NewDevice, origin: Origin | None = None) -> Credentials:
    """Register a device for `actor` with fresh client credentials.

    `new` must already be validated (see forms.DeviceForm). Raises InvalidInput for an unknown
    code. Commits.
    """
    entry = devicecodes.lookup(new.device_code)
    if entry is None:
        raise InvalidInput(f"device_code: unknown Apple model identifier {new.device_code!r}.")
    chosen = {name: getattr(new, name) for name in _CHOSEN_COLUMNS}
    secret = new_secret(SECRET_PREFIX)
    now = utcnow()
    # client_id is 64 random bits: a collision is astronomically rare, but the unique
    # constraint is the arbiter, so retry on one rather than pre-check.
    for _attempt in range(3):
        device = Device(
            tenant_id=actor.tenant_id,
            user_id=actor.id,
            manufacturer=new.manufacturer,
            code=entry.code,
            product_name=entry.product_name,
            state=DeviceState.ACTIVE,
            client_id=new_client_id(),
            client_secret_digest=digest(secret),
            created_time=now,
            modified_time=now,
            last_active_time=now,
            **chosen,
        )
        db.session.add(device)
        db.session.execute(
            sa.update(User).where(User.id == actor.id).values(device_count=User.device_count + 1)
        )
        try:
            db.session.flush()
            events.add(device.id, EventKind.CREATED, origin)
            events.add(device.id, EventKind.CREDENTIALS_SHOWN, origin)
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            continue
        return _credentials(device, secret)
    raise RuntimeError("could not allocate a unique client id")


_READ_DEVICE = sa.select(_devices).where(
    _devices.c.id == sa.bindparam("id"), _devices.c.user_id == sa.bindparam("user_id")
)
_FIND_CLIENT = sa.select(_devices).where(_devices.c.client_id == sa.bindparam("client_id"))


# A devices row (any columns, in any order) -> the values of a DeviceDetail, in field order.
_detail_values = attrgetter(*DeviceDetail.__struct_fields__)


def read_device(actor: Actor, device_id: int) -> DeviceDetail:
    """The actor's device `device_id`.

    One plain query, for read paths; none for a device reading itself with its own token
    (the bearer check read that row). A device's token reaches its own device only. Raises
    NotFound for a missing id, another user's device and, for a device, any other device alike.
    """
    if isinstance(actor, Principal) and actor.device is not None:
        if actor.device.id != device_id:
            raise NotFound(f"You have no device with id {device_id}.")
        return DeviceDetail(*_detail_values(actor.device))
    row = None
    if 0 < device_id <= MAX_ID:
        row = reads.first(_READ_DEVICE, {"id": device_id, "user_id": actor.id})
    if row is None:
        raise NotFound(f"You have no device with id {device_id}.")
    return DeviceDetail(*_detail_values(row))


def get_device(actor: Actor, device_id: int) -> Device:
    """The actor's device `device_id`. Raises NotFound for a missing id and for another user's device alike."""
    device = db.session.get(Device, device_id) if 0 < device_id <= MAX_ID else None
    if device is None or device.user_id != actor.id:
        raise NotFound(f"You have no device with id {device_id}.")
    return device


# The columns of a device in a list (API list entry and dashboard table): the read model's
# fields, in its order, so a row is a DeviceSummary's arguments.
SUMMARY_COLUMNS: tuple[str, ...] = DeviceSummary.__struct_fields__


@functools.lru_cache(maxsize=64)
def _page_statement(sort_field: str, sort_order: SortOrder, after_cursor: bool) -> sa.Select[Any]:
    """The keyset page query for one sort, built once per process (parameters bound per call)."""
    column, ident = _devices.c[sort_field], _devices.c.id
    query = sa.select(*(_devices.c[name] for name in SUMMARY_COLUMNS)).where(
        _devices.c.user_id == sa.bindparam("user_id")
    )
    if after_cursor:
        key: sa.ColumnElement[Any]
        cursor: sa.ColumnElement[Any]
        if sort_field == "id":
            key, cursor = ident, sa.bindparam("cursor_id")
        else:
            key = sa.tuple_(column, ident)
            cursor = sa.tuple_(sa.bindparam("cursor_value", type_=column.type), sa.bindparam("cursor_id"))
        query = query.where(key > cursor if sort_order == "asc" else key < cursor)
    direction = sa.asc if sort_order == "asc" else sa.desc
    order = [direction(ident)] if sort_field == "id" else [direction(column), direction(ident)]
    return query.order_by(*order).limit(sa.bindparam("limit"))


_CURSOR_VALUES = {
    field: sa.select(_devices.c[field]).where(
        _devices.c.id == sa.bindparam("id"), _devices.c.user_id == sa.bindparam("user_id")
    )
    for field in SORT_FIELDS
}
_DEVICE_COUNT = sa.select(_users.c.device_count).where(_users.c.id == sa.bindparam("user_id"))


def list_devices(
    actor: Actor,
    offset: int = 0,
    limit: int = 100,
    sort_order: SortOrder = "asc",
    sort_field: str = "id",
) -> DeviceList:
    """One keyset page of the actor's devices.

    `offset` is an id cursor: results come after the device with that id in the requested
    order (0: from the start). Ties on `sort_field` are broken by id, so pages never skip or
    repeat a record. The cost of a page does not depend on its depth. Raises InvalidInput
    when a non-zero cursor names no device of the actor's under a non-id sort.
    """
    params: dict[str, Any] = {"user_id": actor.id, "limit": limit, "cursor_id": offset}
    with reads.connection() as conn:
        if offset and sort_field != "id":
            value = conn.execute(_CURSOR_VALUES[sort_field], {"id": offset, "user_id": actor.id}).scalar()
            if value is None:
                message = f"offset {offset} is not the id of one of your devices."
                raise InvalidInput(message, {"offset": [message]})
            params["cursor_value"] = value
        rows = conn.execute(_page_statement(sort_field, sort_order, bool(offset)), params).all()
        count = conn.execute(_DEVICE_COUNT, {"user_id": actor.id}).scalar() or 0
    results = [DeviceSummary(*row) for row in rows]
    return DeviceList(results[-1].id if results else None, count, results)


_EVENT_COLUMNS = tuple(_events.c[name] for name in EventView.__struct_fields__)


def list_events(
    actor: Actor, device_id: int, offset: int = 0, limit: int = 100, sort_order: SortOrder = "asc"
) -> EventList:
    """A keyset page of the events of one of the actor's devices, by id.

    Raises NotFound for a device that is not the actor's (read_device's rule, a device's own
    token included).
    """
    return device_history(actor, device_id, offset, limit, sort_order)[1]


def device_history(
    actor: Actor, device_id: int, offset: int = 0, limit: int = 100, sort_order: SortOrder = "asc"
) -> tuple[DeviceDetail, EventList]:
    """The actor's device `device_id` and a keyset page of its events (list_events), with one
    ownership check. Raises NotFound as read_device does."""
    device = read_device(actor, device_id)
    query = sa.select(*_EVENT_COLUMNS).where(_events.c.device_id == device.id)
    if offset:
        query = query.where(_events.c.id > offset if sort_order == "asc" else _events.c.id < offset)
    order = _events.c.id.asc() if sort_order == "asc" else _events.c.id.desc()
    results = [EventView(*row) for row in db.session.execute(query.order_by(order).limit(limit))]
    count = db.session.scalar(
        sa.select(sa.func.count()).select_from(_events).where(_events.c.device_id == device.id)
    )
    return device, EventList(results[-1].id if results else None, count or 0, results)


def disable_device(actor: Actor, device_id: int, origin: Origin | None = None) -> Device:
    """Disable the device now: its credentials and every token it holds stop working.

    Idempotent. Raises NotFound. Commits.
    """
    device = get_device(actor, device_id)
    now = utcnow()
    if device.state != DeviceState.DISABLED:
        device.state = DeviceState.DISABLED
        device.modified_time = now
        events.add(device.id, EventKind.DISABLED, origin)
    tokens.revoke_all_device_tokens(device.id, now)
    db.session.commit()
    return device


def authorize_device(actor: Actor, device_id: int, origin: Origin | None = None) -> Credentials:
    """Re-authorize: the device is active again with a new client secret (same client id).

    The old secret and every token issued before stop working. Raises NotFound. Commits.
    """
    device = get_device(actor, device_id)
    secret = new_secret(SECRET_PREFIX)
    now = utcnow()
    device.client_secret_digest = digest(secret)
    device.state = DeviceState.ACTIVE
    device.modified_time = now
    tokens.revoke_all_device_tokens(device.id, now)
    events.add(device.id, EventKind.REAUTHORIZED, origin)
    events.add(device.id, EventKind.CREDENTIALS_SHOWN, origin)
    db.session.commit()
    return _credentials(device, secret)


def find_client(client_id: str) -> reads.Row | None:
    """The device whose OAuth client id is `client_id` (any state) as a read-only row, or None."""
    if "\x00" in client_id:  # no stored id has one, and PostgreSQL refuses NUL in text
        return None
    return reads.first(_FIND_CLIENT, {"client_id": client_id})
