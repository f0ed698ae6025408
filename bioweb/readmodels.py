"""Read models: what services return and both surfaces show, as msgspec Structs.

Each answer's fields are written once, here. The API encodes these Structs as they are
(`to_json`), the OpenAPI document takes its response schemas from them
(`msgspec.json.schema_components`, see api/openapi.py), the device list selects exactly
the columns of `DeviceSummary`, and the dashboard's templates read the same attributes.

Structs are cheap to make from database rows (`DeviceSummary(*row)`: the field order is
the column order) and are not validated on construction: the database and the forms
already did that. The annotations (`Id`, `Time`, ...) describe the values for the schema.

JSON times stay RFC 3339 with `+00:00` (the published API's format,
`2026-11-25T20:53:42.069609+00:00`). msgspec's own encoder would write `Z`, so `to_json`
turns a Struct into builtins keeping datetimes as they are, and the app's orjson provider
(extensions.FastJSONProvider) writes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import msgspec

from .models import MAX_ID, DeviceState, EventKind

Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
Time = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with a UTC offset.")]
Uuid = Annotated[str, msgspec.Meta(extra_json_schema={"format": "uuid"})]
State = Annotated[
    int,
    msgspec.Meta(
        description="1 active, 2 disabled.",
        extra_json_schema={"enum": [state.value for state in DeviceState]},
    ),
]

T = TypeVar("T")


class DeviceSummary(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One device in a list (the API's list entries and the dashboard's table)."""

    id: Id
    uuid: Uuid
    manufacturer: str
    code: str
    product_name: str
    is_test_mode: bool
    state: State
    created_time: Time
    modified_time: Time
    last_active_time: Time


class DeviceDetail(DeviceSummary, frozen=True, forbid_unknown_fields=True, gc=False):
    """One device (the retrieve answer and the device page): its summary, owner and client id."""

    tenant_id: Id
    user_id: Id
    client_id: str


class EventView(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One audit event; aggregated kinds carry how many times and when last in `count`/`last_time`."""

    id: Id
    kind: EventKind
    time: Time
    last_time: Time
    count: Annotated[int, msgspec.Meta(ge=1)]
    actor: str
    ip: str | None
    request_id: str | None


class Page(msgspec.Struct, Generic[T], frozen=True, forbid_unknown_fields=True):
    """One keyset page: the records, how many there are in all, and the cursor for the next page."""

    next_id: Annotated[int | None, msgspec.Meta(description="Pass back as offset; null on an empty page.")]
    count: Annotated[int, msgspec.Meta(ge=0)]
    results: list[T]


class DeviceList(Page[DeviceSummary], frozen=True, forbid_unknown_fields=True):
    """One keyset page of the caller's devices."""


class EventList(Page[EventView], frozen=True, forbid_unknown_fields=True):
    """One keyset page of a device's events, by id."""


class Credentials(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The one time the client secret is shown (Cache-Control: no-store): on create and re-authorize."""

    id: Id
    uuid: Uuid
    oauth2_client_id: Annotated[str, msgspec.Meta(min_length=1)]
    oauth2_client_secret: Annotated[str, msgspec.Meta(pattern="^bcs_")]
    oauth2_redirect_url: Annotated[str, msgspec.Meta(extra_json_schema={"format": "uri"})]


class IssuedTokens(msgspec.Struct, frozen=True):
    """What a token request produced; bioweb.oauth shapes it into the RFC 6749 answer."""

    access_token: str
    expires_in: int
    scope: str
    device_id: int
    user_id: int
    tenant_id: int
    refresh_token: str | None = None


# The read models the API answers with, for the OpenAPI document's components.
API_MODELS: tuple[type[msgspec.Struct], ...] = (DeviceList, DeviceDetail, EventList, Credentials)

_KEEP_AS_IS = (datetime,)


def to_builtins(value: msgspec.Struct | list[Any]) -> Any:
    """Dicts, lists and scalars for the app's JSON provider; datetimes left for it to write (+00:00)."""
    return msgspec.to_builtins(value, builtin_types=_KEEP_AS_IS)
