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
# A time in an optional field (the description goes on the field).
UtcTime = Annotated[datetime, msgspec.Meta(tz=True)]
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
    last_active_time: Annotated[
        datetime,
        msgspec.Meta(
            tz=True,
            description="RFC 3339 with a UTC offset. When the device last got or used a token (moved at "
            "most once a minute); its registration time until it first connects.",
        ),
    ]
    name: Annotated[
        Annotated[str, msgspec.Meta(max_length=100)] | None,
        msgspec.Meta(description="The user's own label for the device."),
    ]
    last_token_time: Annotated[
        UtcTime | None,
        msgspec.Meta(
            description="When the device last got an access token at /token (noted once an hour); "
            "null: it never has (never connected).",
        ),
    ]


Slot = Annotated[int, msgspec.Meta(ge=1, le=2, description="The client secret's slot: 1 or 2.")]


class SecretView(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One client secret a device holds (never the secret itself: only its digest is kept)."""

    slot: Slot
    created_time: Annotated[
        UtcTime | None,
        msgspec.Meta(description="When it was added; null for secrets older than this record."),
    ]
    expires_time: Annotated[
        UtcTime | None,
        msgspec.Meta(description="When it stops working by itself; null: when it is removed."),
    ]


class DeviceDetail(DeviceSummary, frozen=True, forbid_unknown_fields=True, gc=False):
    """One device (the retrieve answer and the device page): its summary, owner, client id and
    the client secrets it holds (one or two, for rotation without downtime)."""

    tenant_id: Id
    user_id: Id
    client_id: str
    secrets: list[SecretView]


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
    secret_slot: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            le=2,
            description="token.issued and secret.added/removed: the client secret's slot (1 or 2); "
            "0 for other kinds.",
        ),
    ]


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


class NewSecret(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A client secret just added to a device, shown this once (Cache-Control: no-store), with its
    slot and the secrets the device holds now (the other one keeps working until it is removed
    or expires)."""

    id: Id
    oauth2_client_id: Annotated[str, msgspec.Meta(min_length=1)]
    oauth2_client_secret: Annotated[str, msgspec.Meta(pattern="^bcs_")]
    slot: Slot
    secrets: list[SecretView]


class NewDevice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What registering a device takes, as forms.DeviceForm validated it (an input, beside the
    read models). Fields after the manufacturer and model identifier are Device columns of the
    same name that the user chooses, stored as given: a new one is added here and in the form."""

    manufacturer: str
    device_code: str
    is_test_mode: bool = False
    name: str | None = None


class IssuedTokens(msgspec.Struct, frozen=True):
    """What a token request produced; bioweb.oauth shapes it into the RFC 6749 answer."""

    access_token: str
    expires_in: int
    scope: str
    device_id: int | None  # the device a device's own token is for, or a device client's grant
    user_id: int
    tenant_id: int
    refresh_token: str | None = None


class MetricView(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One metric: a measured thing on one device, in one unit, with its latest sample."""

    id: Id
    uuid: Uuid
    device_id: Id
    tenant_id: Id
    user_id: Id
    name: str
    sample_type: Annotated[
        str, msgspec.Meta(description="HealthKit quantity type, short form (heartRate), or other.")
    ]
    sample_type_other: str
    quantity_type: Annotated[
        str, msgspec.Meta(description="The unit, HealthKit syntax (count/min), or other.")
    ]
    quantity_type_other: str
    is_continuous_data: bool
    created_time: Time
    modified_time: Time
    aggregation: Annotated[
        str | None,
        msgspec.Meta(
            description="cumulative (a period's figure is a sum) or discrete (an average); null for other.",
            extra_json_schema={"enum": ["cumulative", "discrete", None]},
        ),
    ]
    latest_value: float | None
    latest_timestamp: Time | None


Figure = Annotated[
    float | None,
    msgspec.Meta(
        description="In the owner's time zone: the period's sum for a cumulative type, its average "
        "for a discrete one (the published field names stay); null when it has no samples."
    ),
]


class MetricFigures(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """A metric's figures per calendar period of its owner's time zone, from the rollups."""

    time_zone: Annotated[str, msgspec.Meta(description="The owner's IANA time zone the periods follow.")]
    avg_today: Figure
    avg_yesterday: Figure
    avg_this_week: Figure
    avg_last_week: Figure
    avg_this_month: Figure
    avg_last_month: Figure
    avg_this_year: Figure
    avg_last_year: Figure


class MetricDetail(MetricView, frozen=True, forbid_unknown_fields=True, gc=False):
    """One metric with its figures (GET /metric/<id>; the list carries only the latest sample)."""

    time_zone: Annotated[str, msgspec.Meta(description="The owner's IANA time zone the figures follow.")]
    avg_today: Figure
    avg_yesterday: Figure
    avg_this_week: Figure
    avg_last_week: Figure
    avg_this_month: Figure
    avg_last_month: Figure
    avg_this_year: Figure
    avg_last_year: Figure


LocalTime = Annotated[
    datetime, msgspec.Meta(tz=True, description="RFC 3339 with the local offset of the zone asked for.")
]


class CalculationBucket(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One local calendar bucket [start, finish) of a calculation."""

    start: LocalTime
    finish: LocalTime
    value: Annotated[float | None, msgspec.Meta(description="null when no sample of the range lies in it.")]
    count: Annotated[int, msgspec.Meta(ge=0, description="Samples counted (is_null ones never are).")]
    partial: Annotated[
        bool, msgspec.Meta(description="The range cuts this bucket: only its samples in the range count.")
    ]


class CalculationResult(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A function of samples per local bucket, for one metric or all of a person's metrics of a type."""

    metric_id: Id | None
    sample_type: str
    unit: Annotated[str, msgspec.Meta(description="The unit of every value (that of the metrics counted).")]
    metric_ids: Annotated[list[Id], msgspec.Meta(description="The metrics counted.")]
    function: Annotated[
        int, msgspec.Meta(description="1 average, 2 sum, 3 minimum, 4 maximum, 5 count, 6 latest.")
    ]
    frequency: Annotated[int, msgspec.Meta(description="1 day, 2 week (ISO), 3 month, 4 year, 5 hour.")]
    time_zone: str
    start_gte: Time
    finish_lte: Time
    results: list[CalculationBucket]


class MetricList(Page[MetricView], frozen=True, forbid_unknown_fields=True):
    """One keyset page of the caller's metrics, by id."""


class SampleView(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One stored quantity sample; `duplicate` says a submission found it already stored."""

    uuid: Uuid
    metric_id: Id
    device_id: Id
    sample_type: str
    quantity: float | None
    quantity_type: str
    start_date: Time
    end_date: Time
    sample_motion_context: Annotated[
        str, msgspec.Meta(extra_json_schema={"enum": ["NotSet", "Sedentary", "Active"]})
    ]
    sample_sensor_location: Annotated[int, msgspec.Meta(ge=0, le=6)] | None
    sample_sensor_location_other: str
    is_null: bool
    client_sample_id: str | None
    client_sample_version: Annotated[int, msgspec.Meta(ge=1)]
    received_time: Time
    duplicate: bool = False


class SampleList(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One page of a metric's samples in (start_date, id) order."""

    next_timestamp: Annotated[
        int | None,
        msgspec.Meta(description="The last result's start_date in epoch milliseconds (old clients)."),
    ]
    next_cursor: Annotated[
        str | None, msgspec.Meta(description="Pass back as cursor for the next page; null on the last page.")
    ]
    count: Annotated[int, msgspec.Meta(ge=0, description="Samples matching the filters, all pages together.")]
    results: list[SampleView]


class SampleRejected(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An item of a batch that was refused (and changed nothing): its index and what is wrong."""

    index: Annotated[int, msgspec.Meta(ge=0)]
    fields: dict[str, list[str]]


class SampleBatchResult(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a batch submission did."""

    accepted: Annotated[int, msgspec.Meta(ge=0, description="New samples stored.")]
    duplicates: Annotated[
        int, msgspec.Meta(ge=0, description="Already stored (same key, version not higher).")
    ]
    replaced: Annotated[int, msgspec.Meta(ge=0, description="Stored samples replaced by a higher version.")]
    rejected: list[SampleRejected]


class MetricOverview(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """A metric as the dashboard lists it: the metric (with its latest sample), its type in
    words, and how many samples started in the last 24 hours."""

    metric: MetricView
    type_name: Annotated[str, msgspec.Meta(description="The type in words (Heart rate), or its description.")]
    samples_last_24h: Annotated[int, msgspec.Meta(ge=0)]


# The read models the API answers with, for the OpenAPI document's components.
API_MODELS: tuple[type[msgspec.Struct], ...] = (
    DeviceList,
    DeviceDetail,
    EventList,
    Credentials,
    NewSecret,
    MetricView,
    MetricDetail,
    MetricList,
    CalculationResult,
    SampleView,
    SampleList,
    SampleBatchResult,
)

_KEEP_AS_IS = (datetime,)


def to_builtins(value: msgspec.Struct | list[Any]) -> Any:
    """Dicts, lists and scalars for the app's JSON provider; datetimes left for it to write (+00:00)."""
    return msgspec.to_builtins(value, builtin_types=_KEEP_AS_IS)


class AccountView(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The person a token acts for: GET and PATCH /api/v1/account."""

    id: Id
    email: str
    first_name: str
    last_name: str
    tenant_id: Id
    time_zone: Annotated[
        str,
        msgspec.Meta(
            description="An IANA time zone name: the person's day, week, month and year in figures "
            "and calculations.",
            examples=["Europe/Berlin"],
        ),
    ]
    created_time: Time


class SimulationResult(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What filling a test-mode device's metric with generated samples stored."""

    metric_id: Id
    days: Annotated[int, msgspec.Meta(ge=1, le=366)]
    accepted: Annotated[int, msgspec.Meta(ge=0, description="Generated samples stored now.")]
    duplicates: Annotated[
        int, msgspec.Meta(ge=0, description="Generated samples that were stored already (an earlier run).")
    ]
    start: Annotated[Time, msgspec.Meta(description="The simulated range starts here ...")]
    finish: Annotated[Time, msgspec.Meta(description="... and ends here (now, at the latest).")]


# --- Applications and authorized apps (issue 13) ---

ClientTypeName = Annotated[
    str,
    msgspec.Meta(
        description="confidential: a server that keeps a client secret; public: a native or browser "
        "app, which has none and must use PKCE.",
        extra_json_schema={"enum": ["confidential", "public"]},
    ),
]


class ApplicationView(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An application you registered: an OAuth client anyone may authorize to act for them
    (never its client secret: only a digest of it is kept)."""

    id: Id
    client_id: Annotated[str, msgspec.Meta(pattern="^app_")]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    homepage_url: Annotated[str, msgspec.Meta(max_length=500, description="An http(s) URL, or '' for none.")]
    client_type: ClientTypeName
    redirect_uris: Annotated[
        list[str],
        msgspec.Meta(
            min_length=1,
            max_length=10,
            description="Matched exactly, except that a loopback http://127.0.0.1 or http://[::1] "
            "URI matches on any port (RFC 8252 7.3).",
        ),
    ]
    client_secret_created_time: Annotated[
        UtcTime | None,
        msgspec.Meta(description="When its client secret was made (or last rotated); null for a public one."),
    ]
    created_time: Time
    modified_time: Time


class ApplicationList(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every application you registered, oldest first (an account holds at most 100)."""

    count: Annotated[int, msgspec.Meta(ge=0)]
    results: list[ApplicationView]


class ApplicationCredentials(ApplicationView, frozen=True, forbid_unknown_fields=True):
    """An application just registered, or its secret just rotated: the one time its client
    secret shows (Cache-Control: no-store)."""

    client_secret: Annotated[
        Annotated[str, msgspec.Meta(pattern="^bcs_")] | None,
        msgspec.Meta(description="Shown this once; null for a public application, which has none."),
    ]


class AuthorizedApp(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A client you authorized to act for you (a grant): an application, or one of your devices."""

    id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="The grant's id (to revoke it).")]
    client_name: str
    client_id: str
    kind: Annotated[str, msgspec.Meta(extra_json_schema={"enum": ["application", "device"]})]
    owner_name: Annotated[
        str, msgspec.Meta(description="'you', or the name and email address of who registered it.")
    ]
    homepage_url: str
    scope: Annotated[str, msgspec.Meta(description="The scopes you granted, space-separated.")]
    scope_words: Annotated[list[str], msgspec.Meta(description="What they let it do, in words.")]
    created_time: Annotated[Time, msgspec.Meta(description="When you first authorized it.")]
    modified_time: Annotated[Time, msgspec.Meta(description="When you last authorized it.")]
    last_used_time: Annotated[
        UtcTime | None,
        msgspec.Meta(
            description="When it last got or used a token for you (noted once a minute); null: never."
        ),
    ]


class AuthorizedAppList(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The clients you authorized, the most recently authorized first."""

    count: Annotated[int, msgspec.Meta(ge=0)]
    results: list[AuthorizedApp]


# The API's answers of this section, for the OpenAPI document's components.
APPLICATION_MODELS: tuple[type[msgspec.Struct], ...] = (
    ApplicationList,
    ApplicationView,
    ApplicationCredentials,
    AuthorizedAppList,
)
