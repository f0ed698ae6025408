"""Devices: register, list and search, read, rename, disable, re-authorize, and rotate their
client secrets. A user only ever reaches their own."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, Literal

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from .. import devicecodes, reads
from ..errors import Conflict, InvalidInput, NotFound
from ..extensions import db
from ..models import MAX_ID, Device, DeviceState, Event, EventKind, User, search_key, utcnow
from ..readmodels import (
    Credentials,
    DeviceDetail,
    DeviceList,
    DeviceSummary,
    EventList,
    EventView,
    NewDevice,
    NewSecret,
    SecretView,
)
from ..security import SECRET_PREFIX, digest, new_client_id, new_secret
from . import Actor, Principal, accounts, events, grants, tokens
from .events import Origin

# The list's sort fields (API names) and the column each sorts by: names, codes and products by
# their case-folded keys, so "iPad" and "Watch" sort as a person reads them.
SORT_COLUMNS = {
    "id": "id",
    "created_time": "created_time",
    "modified_time": "modified_time",
    "last_active_time": "last_active_time",
    "manufacturer": "manufacturer",
    "code": "code_key",
    "state": "state",
    "name": "name_key",
    "product_name": "product_key",
}
SORT_FIELDS = tuple(SORT_COLUMNS)
SortOrder = Literal["asc", "desc"]
_devices, _users, _events = Device.__table__, User.__table__, Event.__table__

# A filtered count stops here: "10,000+" beyond, so no page waits on counting a million rows.
COUNT_LIMIT = 10_000
# A client secret added next to another may end the other after at most this long.
MAX_OLD_SECRET_LIFETIME = timedelta(days=30)


# The fields of NewDevice that are Device columns of the same name (is_test_mode, ...).
_CHOSEN_COLUMNS = NewDevice.__struct_fields__[2:]


def redirect_url() -> str:
    """The OAuth redirect URL devices are given with their credentials (always registered)."""
    from .. import redirects

    return redirects.own_landing_page(str(current_app.config["BIOWEB_BASE_URL"]))


def _credentials(device: Device, secret: str) -> Credentials:
    """The client secret just minted for `device` (shown once, never stored), with what goes with it."""
    return Credentials(device.id, device.uuid, device.client_id, secret, redirect_url())


def create_device(actor: Actor, new: NewDevice, origin: Origin | None = None) -> Credentials:
    """Register a device for `actor` with fresh client credentials (one secret, in slot 1).

    `new` must already be validated (see forms.DeviceForm). Raises Forbidden while the actor's
    email address is unconfirmed, InvalidInput for an unknown code. Commits.
    """
    accounts.require_confirmed(actor)
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
            client_secret_created_time=now,
            created_time=now,
            modified_time=now,
            last_active_time=now,
            **chosen,
            name_key=search_key(new.name or ""),
            code_key=search_key(entry.code),
            product_key=search_key(entry.product_name),
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


# A deleted device (deleted_time set, its data going in batches: services.deletion) is gone
# for every reader: these statements and get_device pass it by.
_LIVE = _devices.c.deleted_time.is_(None)
_READ_DEVICE = sa.select(_devices).where(
    _devices.c.id == sa.bindparam("id"), _devices.c.user_id == sa.bindparam("user_id"), _LIVE
)
_FIND_CLIENT = sa.select(_devices).where(_devices.c.client_id == sa.bindparam("client_id"))


def secrets_of(device: Any) -> list[SecretView]:
    """The client secrets `device` (a devices row or model) holds now: live slots, in order."""
    held = []
    if tokens.secret_is_live(device, device.client_secret_serial):
        held.append(SecretView(1, device.client_secret_created_time, device.client_secret_expires_time))
    if tokens.secret_is_live(device, device.client_secret2_serial):
        held.append(SecretView(2, device.client_secret2_created_time, device.client_secret2_expires_time))
    return held


_SUMMARY_FIELDS = DeviceSummary.__struct_fields__
# A devices row (any columns, in any order) -> the values of a DeviceSummary, in field order;
# a detail adds its own fields after them (positionally: the cheapest way to make one).
_summary_values = attrgetter(*_SUMMARY_FIELDS)
_make_detail: Callable[..., DeviceDetail] = DeviceDetail


def _detail(device: Any) -> DeviceDetail:
    """A devices row (any columns, in any order) or model as the detail read model."""
    return _make_detail(
        *_summary_values(device), device.tenant_id, device.user_id, device.client_id, secrets_of(device)
    )


def read_device(actor: Actor, device_id: int) -> DeviceDetail:
    """The actor's device `device_id`.

    One plain query, for read paths; none for a device reading itself with its own token
    (the bearer check read that row). A device's token reaches its own device only. Raises
    NotFound for a missing id, another user's device and, for a device, any other device alike.
    """
    if isinstance(actor, Principal) and actor.device is not None:
        if actor.device.id != device_id:
            raise NotFound(f"You have no device with id {device_id}.")
        return _detail(actor.device)
    row = None
    if 0 < device_id <= MAX_ID:
        row = reads.first(_READ_DEVICE, {"id": device_id, "user_id": actor.id})
    if row is None:
        raise NotFound(f"You have no device with id {device_id}.")
    return _detail(row)


def get_device(actor: Actor, device_id: int) -> Device:
    """The actor's device `device_id`. Raises NotFound for a missing id and for another user's device alike."""
    device = db.session.get(Device, device_id) if 0 < device_id <= MAX_ID else None
    if device is None or device.user_id != actor.id or device.deleted_time is not None:
        raise NotFound(f"You have no device with id {device_id}.")
    return device


def rename_device(
    actor: Actor, device_id: int, name: str | None, origin: Origin | None = None
) -> DeviceDetail:
    """Give the device a name (validated by forms.DeviceNameForm: at most 100 characters), or
    take it away with None. Raises NotFound. Commits (nothing when the name is unchanged)."""
    device = get_device(actor, device_id)
    if device.name != name:
        device.name = name
        device.name_key = search_key(name or "")
        device.modified_time = utcnow()
        events.add(device.id, EventKind.RENAMED, origin)
        db.session.commit()
    return _detail(device)


# --- the list ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """What the dashboard's list narrows to: a prefix of the name, code or product (any case),
    a state, test or live devices. The empty filter is every device."""

    search: str = ""
    state: int | None = None
    test_mode: bool | None = None

    def __bool__(self) -> bool:
        return bool(self.search) or self.state is not None or self.test_mode is not None


NO_FILTER = DeviceFilter()
# Above every character a key holds: a prefix p is the range p <= key < p + TOP.
_TOP = "\U0010ffff"


def _filtered(query: sa.Select[Any], shape: tuple[bool, bool, bool]) -> sa.Select[Any]:
    """`query` narrowed by a filter of `shape` (search, state, test mode); values bound per call.

    The search is a prefix range on each case-folded key, each of which has an index beginning
    (user_id, key): both databases read the three ranges and merge them, whatever the sort.
    """
    search, state, test_mode = shape
    if search:
        low, high = sa.bindparam("prefix", type_=sa.String()), sa.bindparam("prefix_end", type_=sa.String())
        query = query.where(
            sa.or_(
                *(
                    sa.and_(_devices.c[key] >= low, _devices.c[key] < high)
                    for key in ("name_key", "code_key", "product_key")
                )
            )
        )
    if state:
        query = query.where(_devices.c.state == sa.bindparam("state"))
    if test_mode:
        query = query.where(_devices.c.is_test_mode == sa.bindparam("test_mode"))
    return query


def _filter_params(found: DeviceFilter) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if found.search:
        params["prefix"], params["prefix_end"] = found.search, found.search + _TOP
    if found.state is not None:
        params["state"] = found.state
    if found.test_mode is not None:
        params["test_mode"] = found.test_mode
    return params


def _shape(found: DeviceFilter) -> tuple[bool, bool, bool]:
    return bool(found.search), found.state is not None, found.test_mode is not None


# The columns of a device in a list (API list entry and dashboard table): the read model's
# fields, in its order, so a row is a DeviceSummary's arguments.
SUMMARY_COLUMNS: tuple[str, ...] = _SUMMARY_FIELDS


@functools.lru_cache(maxsize=256)
def _page_statement(
    sort_field: str,
    sort_order: SortOrder,
    after_cursor: bool,
    shape: tuple[bool, bool, bool] = (False, False, False),
) -> sa.Select[Any]:
    """The keyset page query for one sort and filter shape, built once per process (parameters
    bound per call)."""
    column, ident = _devices.c[SORT_COLUMNS[sort_field]], _devices.c.id
    query = sa.select(*(_devices.c[name] for name in SUMMARY_COLUMNS)).where(
        _devices.c.user_id == sa.bindparam("user_id"), _LIVE
    )
    query = _filtered(query, shape)
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
    field: sa.select(_devices.c[column]).where(
        _devices.c.id == sa.bindparam("id"), _devices.c.user_id == sa.bindparam("user_id"), _LIVE
    )
    for field, column in SORT_COLUMNS.items()
}
_DEVICE_COUNT = sa.select(_users.c.device_count).where(_users.c.id == sa.bindparam("user_id"))


# A filter matching at most this many devices gets its page cut from the matches themselves
# (find_devices); more matches are dense enough for the page query to meet them early.
FEW_MATCHES = 2_000


_KEYS = ("name_key", "code_key", "product_key")


@functools.lru_cache(maxsize=16)
def _ids_statement(shape: tuple[bool, bool, bool]) -> sa.Select[Any]:
    """The ids of the devices matching a filter of `shape`, in no order, no more than
    COUNT_LIMIT + 1. For one condition alone they come from that condition's index without
    table reads: the state's, the test mode's; for the search, each key's prefix range is read
    from its own index (COUNT_LIMIT + 1 at most each) and the three merged. Spelt so that the
    only sensible plan is the fast one, with or without the planner's statistics (SQLite has
    none unless someone runs ANALYZE)."""
    user = _devices.c.user_id == sa.bindparam("user_id")
    if shape == (True, False, False):
        low, high = sa.bindparam("prefix", type_=sa.String()), sa.bindparam("prefix_end", type_=sa.String())
        branches = []
        for key in _KEYS:
            ranged = sa.select(_devices.c.id).where(user, _devices.c[key] >= low, _devices.c[key] < high)
            inner = ranged.limit(COUNT_LIMIT + 1).subquery()
            branches.append(sa.select(inner.c.id))
        merged = sa.union(*branches).subquery()
        return sa.select(merged.c.id).limit(COUNT_LIMIT + 1)
    return _filtered(sa.select(_devices.c.id).where(user), shape).limit(COUNT_LIMIT + 1)


@functools.lru_cache(maxsize=16)
def _count_statement(shape: tuple[bool, bool, bool]) -> sa.Select[Any]:
    """How many devices match a filter of `shape`, counting no further than COUNT_LIMIT + 1."""
    return sa.select(sa.func.count()).select_from(_ids_statement(shape).subquery())


# The statements below read given ids (of the actor's devices, found by the statements above)
# by primary key. They name no user_id: with it a planner without statistics may prefer an
# index beginning with user_id (a whole user's devices) to the primary key; the rows' user_id
# is checked in Python instead.
_BY_IDS = sa.and_(_devices.c.id.in_(sa.bindparam("ids", expanding=True)), _LIVE)


@functools.lru_cache(maxsize=16)
def _narrow_statement(shape: tuple[bool, bool, bool]) -> sa.Select[Any]:
    """(id, user_id) of the given ids (at most COUNT_LIMIT) that also match a filter of `shape`."""
    return _filtered(sa.select(_devices.c.id, _devices.c.user_id).where(_BY_IDS), shape)


@functools.lru_cache(maxsize=16)
def _sort_values_statement(sort_field: str) -> sa.Select[Any]:
    """(sort value, id, user_id) of the given ids (at most FEW_MATCHES)."""
    return sa.select(_devices.c[SORT_COLUMNS[sort_field]], _devices.c.id, _devices.c.user_id).where(_BY_IDS)


# A list row of each given id, with its user_id last.
_ROWS_BY_ID = sa.select(*(_devices.c[name] for name in _SUMMARY_FIELDS), _devices.c.user_id).where(_BY_IDS)


@functools.lru_cache(maxsize=16)
def _deleted_statement(shape: tuple[bool, bool, bool]) -> sa.Select[Any]:
    """The ids of the user's deleted devices (still waiting for their data to go) that match a
    filter of `shape`: read through the partial index ix_devices_user_deleted (usually none)."""
    deleted = sa.select(_devices.c.id).where(
        _devices.c.user_id == sa.bindparam("user_id"), _devices.c.deleted_time.is_not(None)
    )
    return _filtered(deleted, shape)


def _matches(conn: sa.Connection, actor: Actor, found: DeviceFilter) -> tuple[int, list[int] | None]:
    """_count_matches without the user's deleted devices: the count and id statements read the
    list's covering indexes, which still hold a deleted device until its row goes, so the few
    that match are subtracted here (one read of the partial index, empty but for minutes after
    a deletion)."""
    count, ids = _count_matches(conn, actor, found)
    gone = set(
        conn.execute(
            _deleted_statement(_shape(found)), {"user_id": actor.id, **_filter_params(found)}
        ).scalars()
    )
    if not gone:
        return count, ids
    if ids is not None:
        kept = [ident for ident in ids if ident not in gone]
        return count - (len(ids) - len(kept)), kept
    return max(0, count - len(gone)), None


def _count_matches(conn: sa.Connection, actor: Actor, found: DeviceFilter) -> tuple[int, list[int] | None]:
    """How many of the actor's devices match `found` (exact up to COUNT_LIMIT, else
    COUNT_LIMIT + 1), and their ids when they are at most FEW_MATCHES (else None).

    Each condition (the search, the state, the test mode) is counted alone through its own
    index, no further than COUNT_LIMIT + 1 and without table reads. The rarest decides: at most
    COUNT_LIMIT matches of it are read and the other conditions checked on them by id, so a
    rare condition keeps the whole filter cheap, whichever it is. Only when every condition
    matches more than COUNT_LIMIT devices are they counted together.
    """
    params = {"user_id": actor.id, **_filter_params(found)}
    search, state, test_mode = _shape(found)
    parts = [p for p in ((search, False, False), (False, state, False), (False, False, test_mode)) if any(p)]
    counts = {part: conn.execute(_count_statement(part), params).scalar() or 0 for part in parts}
    rarest = min(parts, key=lambda part: counts[part])
    if len(parts) == 1:
        count = counts[rarest]
        ids = conn.execute(_ids_statement(rarest), params).scalars().all() if count <= FEW_MATCHES else None
        return count, list(ids) if ids is not None else None
    if counts[rarest] > COUNT_LIMIT:
        return conn.execute(_count_statement(_shape(found)), params).scalar() or 0, None
    ids = list(conn.execute(_ids_statement(rarest), params).scalars())
    rest = tuple(any(p[i] for p in parts if p != rarest) for i in range(3))
    if ids:
        narrowed = conn.execute(_narrow_statement(rest), {**params, "ids": ids})
        ids = [ident for ident, owner in narrowed if owner == actor.id]
    return len(ids), ids if len(ids) <= FEW_MATCHES else None


def _page(
    conn: sa.Connection,
    actor: Actor,
    offset: int,
    limit: int,
    sort_order: SortOrder,
    sort_field: str,
    found: DeviceFilter,
) -> list[DeviceSummary]:
    params: dict[str, Any] = {
        "user_id": actor.id,
        "limit": limit,
        "cursor_id": offset,
        **_filter_params(found),
    }
    if offset and sort_field != "id":
        value = conn.execute(_CURSOR_VALUES[sort_field], {"id": offset, "user_id": actor.id}).scalar()
        if value is None:
            message = f"offset {offset} is not the id of one of your devices."
            raise InvalidInput(message, {"offset": [message]})
        params["cursor_value"] = value
    rows = conn.execute(_page_statement(sort_field, sort_order, bool(offset), _shape(found)), params).all()
    return [DeviceSummary(*row) for row in rows]


def list_devices(
    actor: Actor,
    offset: int = 0,
    limit: int = 100,
    sort_order: SortOrder = "asc",
    sort_field: str = "id",
) -> DeviceList:
    """One keyset page of the actor's devices (the API's list).

    `offset` is an id cursor: results come after the device with that id in the requested
    order (0: from the start). Ties on `sort_field` are broken by id, so pages never skip or
    repeat a record. The cost of a page does not depend on its depth. `count` is every device
    of the actor's (kept on the user row). Raises InvalidInput when a non-zero cursor names no
    device of the actor's under a non-id sort.
    """
    with reads.connection() as conn:
        results = _page(conn, actor, offset, limit, sort_order, sort_field, NO_FILTER)
        count = conn.execute(_DEVICE_COUNT, {"user_id": actor.id}).scalar() or 0
    return DeviceList(results[-1].id if results else None, count, results)


@dataclass(frozen=True, slots=True)
class DeviceFinding:
    """One page of the dashboard's list: the devices, and how many match in all (`count`, exact
    up to COUNT_LIMIT; `count_exact` False means "more than COUNT_LIMIT")."""

    results: list[DeviceSummary]
    count: int
    count_exact: bool


def find_devices(
    actor: Actor,
    found: DeviceFilter = NO_FILTER,
    offset: int = 0,
    limit: int = 25,
    sort_order: SortOrder = "desc",
    sort_field: str = "id",
) -> DeviceFinding:
    """A keyset page of the actor's devices matching `found` (the dashboard's list), and their
    count: without a filter the user's device_count and the page query, as the API's list.

    With a filter, the matches are counted first (_matches), no further than COUNT_LIMIT + 1
    through each condition's index: so the count stops there ("10,000+") and a page never
    waits on counting a million. When they are at most FEW_MATCHES, the page is cut from them
    (their sort values read by id, sorted here, after the cursor) and its rows read by id: a
    rare match costs what its matches cost, whatever the sort, never a walk along a sort index
    hoping to meet them. More matches than that are dense: the page query walks the sort's
    index and meets them early. Raises InvalidInput for a cursor that names none of the
    actor's devices under a non-id sort.
    """
    with reads.connection() as conn:
        if not found:
            results = _page(conn, actor, offset, limit, sort_order, sort_field, found)
            count = conn.execute(_DEVICE_COUNT, {"user_id": actor.id}).scalar() or 0
            return DeviceFinding(results, count, True)
        count, ids = _matches(conn, actor, found)
        exact = count <= COUNT_LIMIT
        if ids is None:
            results = _page(conn, actor, offset, limit, sort_order, sort_field, found)
            return DeviceFinding(results, min(count, COUNT_LIMIT), exact)
        # (sort value, id) of each match, in the page query's order (keys compare by code point,
        # as the "C" collation does).
        keys: list[tuple[Any, int]]
        if sort_field == "id":
            keys = [(ident, ident) for ident in ids]
        elif ids:
            values = conn.execute(_sort_values_statement(sort_field), {"ids": ids})
            keys = [(value, ident) for value, ident, owner in values if owner == actor.id]
        else:
            keys = []
        descending = sort_order == "desc"
        keys.sort(reverse=descending)
        if offset:
            cursor_value: Any = offset
            if sort_field != "id":
                cursor_value = conn.execute(
                    _CURSOR_VALUES[sort_field], {"id": offset, "user_id": actor.id}
                ).scalar()
                if cursor_value is None:
                    message = f"offset {offset} is not the id of one of your devices."
                    raise InvalidInput(message, {"offset": [message]})
            cursor = (cursor_value, offset)
            keys = [key for key in keys if (key < cursor if descending else key > cursor)]
        page_ids = [ident for _, ident in keys[:limit]]
        rows = conn.execute(_ROWS_BY_ID, {"ids": page_ids}).all() if page_ids else []
    by_id = {row.id: DeviceSummary(*row[:-1]) for row in rows if row[-1] == actor.id}
    return DeviceFinding([by_id[i] for i in page_ids if i in by_id], count, True)


# --- the audit trail -------------------------------------------------------------------------------

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


# --- disable, re-authorize -----------------------------------------------------------------------------


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
    tokens.move_generation(device.id)
    grants.end_device_grants(device.id)
    db.session.commit()
    return device


def authorize_device(actor: Actor, device_id: int, origin: Origin | None = None) -> Credentials:
    """Re-authorize: the device is active again with one new client secret (same client id).

    Kills everything: both old secrets and every token issued before stop working (the new
    secret takes slot 1, slot 2 is emptied). Raises NotFound. Commits.
    """
    device = get_device(actor, device_id)
    secret = new_secret(SECRET_PREFIX)
    now = utcnow()
    device.client_secret_digest = digest(secret)
    device.client_secret_serial += 2
    device.client_secret_created_time = now
    device.client_secret_expires_time = None
    _empty_slot(device, 2)
    device.state = DeviceState.ACTIVE
    device.modified_time = now
    tokens.move_generation(device.id)
    grants.end_device_grants(device.id)
    events.add(device.id, EventKind.REAUTHORIZED, origin)
    events.add(device.id, EventKind.CREDENTIALS_SHOWN, origin)
    db.session.commit()
    return _credentials(device, secret)


def set_redirect_uris(actor: Actor, device_id: int, text: str) -> Device:
    """The redirect URIs the owner registers for the device's authorization-code flow (one per
    line; <base URL>/appauth/code is always registered besides them). Raises NotFound,
    InvalidInput. Commits."""
    from .. import redirects

    device = get_device(actor, device_id)
    base = current_app.config["BIOWEB_BASE_URL"]
    try:
        uris = [u for u in redirects.check_all(text, base) if u != redirects.own_landing_page(base)]
    except redirects.RedirectProblem as problem:
        raise InvalidInput(f"redirect_uris: {problem}", {"redirect_uris": [str(problem)]}) from None
    device.redirect_uris = "\n".join(uris)
    device.modified_time = utcnow()
    db.session.commit()
    return device


def find_client(client_id: str) -> reads.Row | None:
    """The device whose OAuth client id is `client_id` (any state) as a read-only row, or None."""
    if "\x00" in client_id:  # no stored id has one, and PostgreSQL refuses NUL in text
        return None
    return reads.first(_FIND_CLIENT, {"client_id": client_id})


# --- two client secrets: rotation without downtime ----------------------------------------------------


def _slot_columns(slot: int) -> tuple[str, str, str, str]:
    """The device columns of a secret slot: digest, serial, created, expires."""
    prefix = "client_secret" if slot == 1 else "client_secret2"
    return f"{prefix}_digest", f"{prefix}_serial", f"{prefix}_created_time", f"{prefix}_expires_time"


def _empty_slot(device: Device, slot: int) -> None:
    digest_column, _, created_column, expires_column = _slot_columns(slot)
    setattr(device, digest_column, "")
    setattr(device, created_column, None)
    setattr(device, expires_column, None)


def _live_condition(slot: int, now: datetime) -> sa.ColumnElement[bool]:
    """SQL: the slot holds a secret that has not expired."""
    digest_column, _, _, expires_column = _slot_columns(slot)
    expires = _devices.c[expires_column]
    return sa.and_(_devices.c[digest_column] != "", sa.or_(expires.is_(None), expires > now))


def _rowcount(result: sa.Result[Any]) -> int:
    """How many rows an UPDATE matched (session.execute is typed as returning a plain Result)."""
    return int(getattr(result, "rowcount", 0))


def _secret_conflict(device_id: int) -> Conflict:
    message = (
        "The device already holds two client secrets (slots 1 and 2). Remove the one it no longer "
        f"uses (DELETE /api/v1/device/{device_id}/secrets/<slot>) before adding another; "
        "re-authorizing replaces both with one new secret."
    )
    return Conflict(message)


def add_secret(
    actor: Actor, device_id: int, old_expires_in: int | None = None, origin: Origin | None = None
) -> NewSecret:
    """Give an active device a second client secret, shown this once, in its free slot; the
    secret it held keeps working (both authenticate at /token), until it is removed or, with
    `old_expires_in` (seconds, at most 30 days), until then.

    A slot whose secret has expired counts as free. Raises NotFound; Conflict for a disabled
    device and for one that already holds two live secrets (a third is refused). The slot is
    taken by a conditional UPDATE, so of two racing adds one gets it and the other is refused.
    Commits.
    """
    if old_expires_in is not None and not 0 < old_expires_in <= MAX_OLD_SECRET_LIFETIME.total_seconds():
        message = f"Must be from 1 to {int(MAX_OLD_SECRET_LIFETIME.total_seconds())} seconds (30 days)."
        raise InvalidInput(f"expires_in: {message}", {"expires_in": [message]})
    device = get_device(actor, device_id)
    if device.state != DeviceState.ACTIVE:
        raise Conflict("The device is disabled; re-authorize it to give it a new secret and turn it back on.")
    now = utcnow()
    free = [
        slot
        for slot in tokens.SLOTS
        if not tokens.secret_is_live(device, getattr(device, _slot_columns(slot)[1]))
    ]
    if not free:
        raise _secret_conflict(device.id)
    slot, old = free[0], 3 - free[0]
    digest_column, serial_column, created_column, expires_column = _slot_columns(slot)
    secret = new_secret(SECRET_PREFIX)
    values: dict[str, Any] = {
        digest_column: digest(secret),
        serial_column: _devices.c[serial_column] + 2,
        created_column: now,
        expires_column: None,
        "modified_time": now,
    }
    if old_expires_in is not None and tokens.secret_is_live(device, getattr(device, _slot_columns(old)[1])):
        values[_slot_columns(old)[3]] = now + timedelta(seconds=old_expires_in)
    taken = db.session.execute(
        sa.update(_devices)
        .where(_devices.c.id == device.id, sa.not_(_live_condition(slot, now)))
        .values(**values)
    )
    if _rowcount(taken) != 1:
        db.session.rollback()
        raise _secret_conflict(device.id)
    events.add(device.id, EventKind.SECRET_ADDED, origin, secret_slot=slot)
    events.add(device.id, EventKind.CREDENTIALS_SHOWN, origin, secret_slot=slot)
    db.session.commit()
    db.session.refresh(device)
    return NewSecret(device.id, device.client_id, secret, slot, secrets_of(device))


def remove_secret(actor: Actor, device_id: int, slot: int, origin: Origin | None = None) -> DeviceDetail:
    """Remove the client secret in `slot` (1 or 2): it stops working at /token, and the access
    tokens obtained with it stop working at their next use; the other secret and its tokens are
    untouched. The remaining secret no longer expires by itself (removing the new secret of a
    rotation keeps the old one).

    A device keeps at least one secret: removing its only one is a Conflict (re-authorize
    replaces it; disable stops the device). Raises NotFound for another user's device and for
    an empty or expired slot. Commits.
    """
    device = get_device(actor, device_id)
    if slot not in tokens.SLOTS or not tokens.secret_is_live(device, getattr(device, _slot_columns(slot)[1])):
        raise NotFound(f"Device {device.id} holds no client secret in slot {slot}.")
    now = utcnow()
    other = 3 - slot
    digest_column, _, created_column, expires_column = _slot_columns(slot)
    removed = db.session.execute(
        sa.update(_devices)
        .where(_devices.c.id == device.id, _live_condition(other, now))
        .values(
            {
                digest_column: "",
                created_column: None,
                expires_column: None,
                _slot_columns(other)[3]: None,
                "modified_time": now,
            }
        )
    )
    if _rowcount(removed) != 1:
        db.session.rollback()
        raise Conflict(
            f"Slot {slot} holds the device's only client secret, and a device keeps one. Add a new "
            "secret first, re-authorize to replace it, or disable the device to stop it."
        )
    events.add(device.id, EventKind.SECRET_REMOVED, origin, secret_slot=slot)
    db.session.commit()
    db.session.refresh(device)
    return _detail(device)


@dataclass(frozen=True, slots=True)
class SecretUse:
    """How much one secret slot was used: token requests in the last 24 hours (from the hourly
    token.issued counts, which can arrive up to an hour or so late) and the latest one counted."""

    tokens_24h: int
    last_time: datetime


def secret_use(device_id: int, now: datetime | None = None) -> dict[int, SecretUse]:
    """Token requests per secret slot of a device over the last 24 hours (slots without any are
    absent). For the device page, which has checked ownership already; no commit."""
    since = (now or utcnow()) - timedelta(hours=24)
    rows = db.session.execute(
        sa.select(_events.c.secret_slot, sa.func.sum(_events.c.count), sa.func.max(_events.c.last_time))
        .where(
            _events.c.device_id == device_id,
            _events.c.kind == EventKind.TOKEN_ISSUED.value,
            _events.c.last_time >= since,
        )
        .group_by(_events.c.secret_slot)
    )
    return {slot: SecretUse(int(total), last) for slot, total, last in rows if slot in tokens.SLOTS}
