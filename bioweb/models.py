"""The data: tenants, users, their devices, every kind of bearer token, metrics and their samples."""

from __future__ import annotations

import enum
import unicodedata
import uuid as uuid_mod
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.schema import CreateTable

from .extensions import db

# Ids are INTEGER columns (32-bit on PostgreSQL): anything above is no id of ours.
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps them naive on disk)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect, coltype):
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        # SQLite keeps SQLAlchemy's 'YYYY-MM-DD HH:MM:SS.ffffff' text, naive UTC: one C-level
        # parse with the offset appended, instead of a regex parse and then a replace(). A
        # page of 100 devices reads 400 of these.
        def to_utc(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value + "+00:00")

        return to_utc


class DeviceState(enum.IntEnum):
    ACTIVE = 1
    DISABLED = 2


class TokenKind(enum.StrEnum):
    PERSONAL = "pat"  # a user's personal access token (scripts, curl)
    REFRESH = "refresh"  # a refresh token of a grant (models.Grant) that acts for a person
    # Access tokens (a device's own, and a grant's) are signed (bioweb/signing.py) and have no row.


class Tenant(db.Model):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    created_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    first_name: Mapped[str] = mapped_column(sa.String(100), default="")
    last_name: Mapped[str] = mapped_column(sa.String(100), default="")
    # Counts password changes. Sessions once carried it; they are user_sessions rows now, and
    # a password change deletes the others (services.accounts.change_password).
    session_version: Mapped[int] = mapped_column(default=1)
    # Kept beside the devices so `count` on a list of a million devices is one row read.
    device_count: Mapped[int] = mapped_column(default=0)
    # An IANA zone name: the person's day, week, month and year for figures and calculations.
    time_zone: Mapped[str] = mapped_column(sa.String(64), default="UTC", server_default="UTC")
    created_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the person proved the address by a mailed link (or a password reset); NULL until then.
    # Accounts from the CLI and the service count as confirmed; the sign-up page's do not.
    email_confirmed_time: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tenant: Mapped[Tenant] = relationship()

    # Flask-Login's user protocol.
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class UserSession(db.Model):
    """One signed-in browser: made at sign-in, named by the session cookie, deleted at sign-out.

    The cookie carries the row's id and a random key; only the key's SHA-256 digest is stored,
    so a copy of the table opens no session. A session ends when it is deleted (sign-out,
    "sign out everywhere else", a password change), after BIOWEB_SESSION_IDLE_MINUTES without
    a request (`last_seen_time`, written at most once a minute) or at `expires_time`, whatever
    happens first; `flask maintenance` deletes the ended ones.
    """

    __tablename__ = "user_sessions"
    __table_args__ = (sa.Index("ix_user_sessions_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    key_digest: Mapped[str] = mapped_column(sa.String(64))
    # What the person sees in the list of their sessions: the browser (User-Agent, cut to
    # 200 characters) and the address it signed in from.
    user_agent: Mapped[str] = mapped_column(sa.String(200), default="")
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    created_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The absolute end (BIOWEB_SESSION_MAX_DAYS after sign-in), however active the session.
    # Indexed for the purge; last_seen_time is not, so its once-a-minute updates touch no index.
    expires_time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


def search_key(text: str) -> str:
    """The sort and search key of a name, code or product: NFKC-normalised and case-folded
    ("Ängla's Watch" and "ÄNGLA'S WATCH" alike). Search terms are folded the same way."""
    return unicodedata.normalize("NFKC", text).casefold()


def _folded(column: str) -> Callable[[Any], str]:
    """A key column's default: the search key of `column` in the same INSERT ("" without a
    statement to read it from, as in a bulk load that writes the key itself)."""

    def default(context: Any) -> str:
        value = context.get_current_parameters().get(column) if context is not None else None
        return search_key(value or "")

    return default


def KeyString(length: int) -> sa.types.TypeEngine[str]:  # noqa: N802 (a column type, named like one)
    """A key column's type: compared byte by byte (code point order) on both databases."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


class Device(db.Model):
    __tablename__ = "devices"
    __table_args__ = (
        # One index per sort field of the list, each ending in id: keyset pages at any depth.
        sa.Index("ix_devices_user_id_id", "user_id", "id"),
        sa.Index("ix_devices_user_created", "user_id", "created_time", "id"),
        sa.Index("ix_devices_user_modified", "user_id", "modified_time", "id"),
        sa.Index("ix_devices_user_last_active", "user_id", "last_active_time", "id"),
        sa.Index("ix_devices_user_manufacturer", "user_id", "manufacturer", "id"),
        sa.Index("ix_devices_user_state", "user_id", "state", "id"),
        # The case-folded keys: sorts by name, code and product, and the dashboard's prefix
        # search (a range on each key), at any depth and any number of devices.
        sa.Index("ix_devices_user_name_key", "user_id", "name_key", "id"),
        sa.Index("ix_devices_user_code_key", "user_id", "code_key", "id"),
        sa.Index("ix_devices_user_product_key", "user_id", "product_key", "id"),
        # The dashboard's test-mode filter (a few test devices among many live ones).
        sa.Index("ix_devices_user_test_mode", "user_id", "is_test_mode", "id"),
        # Deleted devices whose data is still being removed (issue 16): few, found per user.
        sa.Index(
            "ix_devices_user_deleted",
            "user_id",
            sqlite_where=sa.text("deleted_time IS NOT NULL"),
            postgresql_where=sa.text("deleted_time IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(sa.String(36), unique=True, default=lambda: str(uuid_mod.uuid4()))
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenants.id"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    manufacturer: Mapped[str] = mapped_column(sa.String(40))
    code: Mapped[str] = mapped_column(sa.String(40))
    product_name: Mapped[str] = mapped_column(sa.String(120))
    is_test_mode: Mapped[bool] = mapped_column(default=False)
    # The user's own label for the device ("Anna's watch"), optional.
    name: Mapped[str | None] = mapped_column(sa.String(100))
    # Case-folded sort and search keys of the name ("" without one), the model identifier and
    # the product (search_key), written with them. Byte order on both databases ("C" collation
    # on PostgreSQL, SQLite's binary), so a prefix is a range of an index whatever the locale.
    name_key: Mapped[str] = mapped_column(
        KeyString(300), default=_folded("name"), server_default=sa.text("''")
    )
    code_key: Mapped[str] = mapped_column(
        KeyString(40), default=_folded("code"), server_default=sa.text("''")
    )
    product_key: Mapped[str] = mapped_column(
        KeyString(120), default=_folded("product_name"), server_default=sa.text("''")
    )
    state: Mapped[int] = mapped_column(sa.SmallInteger, default=DeviceState.ACTIVE)
    client_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    # A device holds one or two client secrets (slots 1 and 2), so its owner can rotate one
    # without downtime: add a new secret, move the device over, remove (or let expire) the old.
    # Each slot keeps the SHA-256 digest of its secret ("": empty), when it was added, when it
    # expires (NULL: never) and its serial: the number an access token's `cs` claim carries.
    # Serials are odd in slot 1 and even in slot 2 and grow by 2 each time a slot gets a new
    # secret, so no serial comes back: a token of a removed secret stays dead when a new secret
    # takes its slot. Everything the bearer check needs is on this row (one primary-key read).
    client_secret_digest: Mapped[str] = mapped_column(sa.String(64))
    client_secret_serial: Mapped[int] = mapped_column(default=1, server_default="1")
    client_secret_created_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    client_secret_expires_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    client_secret2_digest: Mapped[str] = mapped_column(
        sa.String(64), default="", server_default=sa.text("''")
    )
    client_secret2_serial: Mapped[int] = mapped_column(default=0, server_default="0")
    client_secret2_created_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    client_secret2_expires_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Moved by disable, re-authorize and the revocation of a device access token: every
    # signed token carries the generation it was minted under and dies when it moves.
    credential_generation: Mapped[int] = mapped_column(default=1, server_default="1")
    # When the device last got a token at /token, to the hour: /token writes only when the
    # hour changes (activity and the hourly audit row), so a device asking every minute
    # costs one write an hour. NULL: the device never got a token ("never connected").
    last_token_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The published API's field: the registration time until the device first gets a token,
    # then moved by /token and by its requests (at most once a minute).
    last_active_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Redirect URIs its owner added for the authorization-code flow (one per line), besides
    # the one every device has: <base URL>/appauth/code (services/clients.py).
    redirect_uris: Mapped[str] = mapped_column(sa.Text, default="", server_default=sa.text("''"))
    # Set when its owner deleted it (issue 16): from then on it is gone for every reader, and
    # its data is removed in batches (services.deletion) before the row itself goes.
    deleted_time: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class Token(db.Model):
    """A bearer credential of any kind. Only the SHA-256 digest of the token is stored."""

    __tablename__ = "tokens"
    __table_args__ = (
        sa.Index("ix_tokens_user_kind", "user_id", "kind", "id"),
        # A device's live tokens (revoked_time NULL): disable, re-authorize and the cap on
        # refresh families touch only those, however many dead ones wait for the purge.
        sa.Index("ix_tokens_device_live", "device_id", "revoked_time", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(8))
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100), default="")
    scope: Mapped[str] = mapped_column(sa.String(255))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    device_id: Mapped[int | None] = mapped_column(sa.ForeignKey("devices.id"))
    # Every refresh token descending from one authorization code shares a family; reuse of a
    # rotated refresh token revokes the whole family (and moves its grant's generation).
    family: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    # The grant a refresh token belongs to (NULL for a PAT).
    grant_id: Mapped[int | None] = mapped_column(sa.ForeignKey("grants.id"), index=True)
    created_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_time: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    revoked_time: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_used_time: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
    device: Mapped[Device | None] = relationship()

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_time is not None and self.expires_time <= (now or utcnow())


class EventKind(enum.StrEnum):
    CREATED = "device.created"
    CREDENTIALS_SHOWN = "device.credentials_shown"
    REAUTHORIZED = "device.reauthorized"
    DISABLED = "device.disabled"
    RENAMED = "device.renamed"
    SECRET_ADDED = "secret.added"  # a second client secret (secret_slot says which slot)
    SECRET_REMOVED = "secret.removed"
    TOKEN_ISSUED = "token.issued"  # per device, secret and hour: how many tokens it got
    AUTH_FAILED = "client_auth.failed"  # aggregated per device and hour
    SAMPLES_ACCEPTED = "samples.accepted"  # stored (new or replacing), aggregated per device and hour
    SAMPLES_DUPLICATE = "samples.duplicate"  # sent again, nothing stored; aggregated likewise
    SAMPLES_REJECTED = "samples.rejected"  # refused items of a batch; aggregated likewise


class Event(db.Model):
    """An append-only audit record of something that happened to a device.

    Frequent kinds are aggregated: one row per device, kind, hour (`bucket`) and client secret
    slot, so a busy or attacked device cannot flood the table. A failed client authentication
    counts every time (`count`). token.issued counts the tokens a device got with each of its
    secrets in an hour, kept without adding writes to /token: its first token of the hour
    writes the row, the rest are counted in the worker's memory and added when that worker next
    writes for the device (services.tokens.TokenCounts), so a count can arrive late or, if a
    worker dies, fall slightly short. Other kinds have no bucket and one row each.
    """

    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_device_id_id", "device_id", "id"),
        sa.UniqueConstraint(
            "device_id", "kind", "bucket", "secret_slot", name="uq_events_device_kind_bucket_slot"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(sa.ForeignKey("devices.id"))
    kind: Mapped[str] = mapped_column(sa.String(40))
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Who acted: "user:<id>", "device:<id>", "operator" (CLI) or "anonymous".
    actor: Mapped[str] = mapped_column(sa.String(40))
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    bucket: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The client secret slot (1 or 2) of token.issued and secret.* events; 0 for other kinds.
    secret_slot: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    count: Mapped[int] = mapped_column(default=1)
    last_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Metric(db.Model):
    """One measured thing on one device (heartRate from a watch, stepCount from a phone).

    Deleting a metric is immediate for everyone (`deleted_time` set: it is gone from every
    answer); its samples are removed in bounded batches, by the request and then by
    `flask --app app maintenance`.
    """

    __tablename__ = "metrics"
    __table_args__ = (
        sa.Index("ix_metrics_user_id_id", "user_id", "id"),
        sa.Index("ix_metrics_device_id_id", "device_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(sa.String(36), unique=True, default=lambda: str(uuid_mod.uuid4()))
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenants.id"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    device_id: Mapped[int] = mapped_column(sa.ForeignKey("devices.id"))
    name: Mapped[str] = mapped_column(sa.String(100), default="")
    # A HealthKit quantity type, short form (heartRate), or "other" with sample_type_other.
    sample_type: Mapped[str] = mapped_column(sa.String(64))
    sample_type_other: Mapped[str] = mapped_column(sa.String(100), default="")
    # The unit, canonical HealthKit syntax (count/min), or "other" with quantity_type_other.
    quantity_type: Mapped[str] = mapped_column(sa.String(32))
    quantity_type_other: Mapped[str] = mapped_column(sa.String(100), default="")
    is_continuous_data: Mapped[bool] = mapped_column(default=False)
    created_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_time: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class MotionContext(enum.StrEnum):
    NOT_SET = "NotSet"
    SEDENTARY = "Sedentary"
    ACTIVE = "Active"


# 64-bit sample ids (a million devices every 5 minutes exhausts 32 bits in days); SQLite's
# INTEGER PRIMARY KEY is already 64-bit and must be spelled INTEGER to be the rowid.
SampleId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SAMPLE_PARTITIONS = 16


class Sample(db.Model):
    """One quantity sample (a reading). Only Core statements touch this table (services/samples.py).

    Idempotency keys are real unique constraints: (metric_id, client_sample_id) when the client
    sent an id, else (metric_id, start_date, end_date). On PostgreSQL the table is
    hash-partitioned by metric_id (every key carries it), with (id, metric_id) as primary key.
    """

    __tablename__ = "quantity_samples"
    __table_args__ = (
        sa.Index("ix_quantity_samples_metric_start", "metric_id", "start_date", "id"),
        sa.Index(
            "uq_quantity_samples_metric_client_id",
            "metric_id",
            "client_sample_id",
            unique=True,
            sqlite_where=sa.text("client_sample_id IS NOT NULL"),
            postgresql_where=sa.text("client_sample_id IS NOT NULL"),
        ),
        sa.Index(
            "uq_quantity_samples_metric_dates",
            "metric_id",
            "start_date",
            "end_date",
            unique=True,
            sqlite_where=sa.text("client_sample_id IS NULL"),
            postgresql_where=sa.text("client_sample_id IS NULL"),
        ),
        sa.Index("ix_quantity_samples_uuid", "uuid"),
        {"postgresql_partition_by": "HASH (metric_id)"},
    )

    id: Mapped[int] = mapped_column(SampleId, primary_key=True)
    uuid: Mapped[str] = mapped_column(sa.String(36))
    metric_id: Mapped[int] = mapped_column(sa.ForeignKey("metrics.id"))
    start_date: Mapped[datetime] = mapped_column(UTCDateTime)
    end_date: Mapped[datetime] = mapped_column(UTCDateTime)
    quantity: Mapped[float | None] = mapped_column(sa.Float(precision=53))
    sample_motion_context: Mapped[str] = mapped_column(sa.String(16), default=MotionContext.NOT_SET)
    sample_sensor_location: Mapped[int | None] = mapped_column(sa.SmallInteger)
    sample_sensor_location_other: Mapped[str] = mapped_column(sa.String(100), default="")
    is_null: Mapped[bool] = mapped_column(default=False)
    client_sample_id: Mapped[str | None] = mapped_column(sa.String(200))
    client_sample_version: Mapped[int] = mapped_column(sa.BigInteger, default=1)
    received_time: Mapped[datetime] = mapped_column(UTCDateTime)


# One rollup row summarises a metric's samples whose start_date lies in one slot: 15 minutes of
# UTC, numbered from the Unix epoch (slot = floor(epoch seconds / 900)). Every zone's offset is
# a multiple of 15 minutes, so any local hour, day, week, month or year is a run of whole slots.
SLOT_SECONDS = 900


class _RollupFigures:
    """The figures of a rollup row: count, sum, min and max of its samples' quantities, and the
    sample with the greatest (start_date, received_time, id)."""

    sample_count: Mapped[int] = mapped_column(sa.Integer)
    total: Mapped[float] = mapped_column(sa.Float(precision=53))
    minimum: Mapped[float] = mapped_column(sa.Float(precision=53))
    maximum: Mapped[float] = mapped_column(sa.Float(precision=53))
    latest_value: Mapped[float] = mapped_column(sa.Float(precision=53))
    latest_start: Mapped[datetime] = mapped_column(UTCDateTime)
    latest_received: Mapped[datetime] = mapped_column(UTCDateTime)
    latest_id: Mapped[int] = mapped_column(sa.BigInteger)


class SampleRollup(_RollupFigures, db.Model):
    """One metric's samples (is_null ones excluded) whose start_date lies in one slot.

    Kept in the transaction that writes the samples (services/rollups.py), so it is always exact.
    Hash-partitioned by metric_id on PostgreSQL, like the samples it summarises.
    """

    __tablename__ = "quantity_rollups"
    # SQLite: the rows live in the primary key's b-tree (a range read is one b-tree walk, not
    # an index walk and a lookup per row). PostgreSQL: partitioned like the samples.
    __table_args__ = ({"postgresql_partition_by": "HASH (metric_id)", "sqlite_with_rowid": False},)

    metric_id: Mapped[int] = mapped_column(sa.ForeignKey("metrics.id"), primary_key=True)
    slot: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)


class HourRollup(_RollupFigures, db.Model):
    """The same per hour of UTC (hour = floor(slot / 4)): a year of one metric is 8,760 rows
    instead of 35,040. A local day of a zone whose offset is whole hours is whole UTC hours;
    elsewhere (Asia/Kolkata, +05:30) the hours a local boundary cuts are read as slots."""

    __tablename__ = "quantity_hour_rollups"
    __table_args__ = ({"postgresql_partition_by": "HASH (metric_id)", "sqlite_with_rowid": False},)

    metric_id: Mapped[int] = mapped_column(sa.ForeignKey("metrics.id"), primary_key=True)
    hour: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)


class SourcePriority(db.Model):
    """A person's order of devices for one sample type (HealthKit's Data Sources): where two
    devices recorded the same slot of a cumulative type, the higher one counts."""

    __tablename__ = "source_priorities"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    sample_type: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    device_id: Mapped[int] = mapped_column(sa.ForeignKey("devices.id"), primary_key=True)
    position: Mapped[int] = mapped_column(sa.Integer)


@compiles(CreateTable, "postgresql")
def _partitioned_primary_key(create: CreateTable, compiler: Any, **kw: Any) -> str:
    """A partitioned table's primary key must contain its partition key: (id, metric_id)."""
    text = compiler.visit_create_table(create, **kw)
    if create.element.name == Sample.__tablename__:
        text = text.replace("PRIMARY KEY (id)", "PRIMARY KEY (id, metric_id)")
    return text


PARTITIONED_TABLES = ("quantity_samples", "quantity_rollups", "quantity_hour_rollups")


def sample_partitions_ddl(table: str = "quantity_samples") -> list[str]:
    """The hash partitions of a partitioned table on PostgreSQL (the migrations run the same)."""
    return [
        f"CREATE TABLE {table}_p{r:02d} PARTITION OF {table} "
        f"FOR VALUES WITH (MODULUS {SAMPLE_PARTITIONS}, REMAINDER {r})"
        for r in range(SAMPLE_PARTITIONS)
    ]


def is_sample_partition(name: str) -> bool:
    """A partition (PostgreSQL) of the samples or their rollups: part of that table, not a table
    of the models."""
    for table in PARTITIONED_TABLES:
        prefix = f"{table}_p"
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            return True
    return False


def include_in_autogenerate(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's include_name: the partitions are managed with their table, not compared alone."""
    return not (type_ == "table" and name is not None and is_sample_partition(name))


@sa.event.listens_for(Sample.__table__, "after_create")
@sa.event.listens_for(SampleRollup.__table__, "after_create")
@sa.event.listens_for(HourRollup.__table__, "after_create")
def _create_partitions(table: sa.Table, connection: sa.Connection, **kw: Any) -> None:
    if connection.dialect.name == "postgresql":
        for statement in sample_partitions_ddl(table.name):
            connection.exec_driver_sql(statement)


# --- applications, grants and authorization codes (issue 13) ---


class ClientType(enum.StrEnum):
    CONFIDENTIAL = "confidential"  # a server-side app: authenticates with its client secret
    PUBLIC = "public"  # a native or browser app: no secret, PKCE required (RFC 8252)


class Application(db.Model):
    """An OAuth client a person registered (a phone app, a third-party service): any person may
    authorize it to act for them. Its client id starts with `app_`, so it never meets a
    device's (16 hex digits)."""

    __tablename__ = "applications"
    __table_args__ = (sa.Index("ix_applications_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))  # who registered it
    name: Mapped[str] = mapped_column(sa.String(100))
    homepage_url: Mapped[str] = mapped_column(sa.String(500), default="")
    client_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    client_type: Mapped[str] = mapped_column(sa.String(12))
    # SHA-256 of the client secret ("" for a public client).
    client_secret_digest: Mapped[str] = mapped_column(sa.String(64), default="")
    client_secret_created_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # One per line; at least one.
    redirect_uris: Mapped[str] = mapped_column(sa.Text)
    created_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner: Mapped[User] = relationship()


class Grant(db.Model):
    """What a person approved: a client (a device, or an application) may act for them with
    these scopes. One per (person, client); approving again widens it.

    Its access tokens are signed and carry the grant's id and generation: revoking one of them
    (or a refresh token's family) moves the generation, which ends that grant's access tokens
    and no one else's. Revoking the grant deletes it with its refresh tokens and codes."""

    __tablename__ = "grants"
    __table_args__ = (
        sa.Index("ix_grants_user_id_id", "user_id", "id"),
        sa.Index(
            "uq_grants_user_device",
            "user_id",
            "device_id",
            unique=True,
            sqlite_where=sa.text("device_id IS NOT NULL"),
            postgresql_where=sa.text("device_id IS NOT NULL"),
        ),
        sa.Index(
            "uq_grants_user_application",
            "user_id",
            "application_id",
            unique=True,
            sqlite_where=sa.text("application_id IS NOT NULL"),
            postgresql_where=sa.text("application_id IS NOT NULL"),
        ),
        sa.Index("ix_grants_device_id", "device_id"),
        sa.Index("ix_grants_application_id", "application_id"),
        sa.CheckConstraint("(device_id IS NULL) <> (application_id IS NULL)", name="one_client"),
        # A grant's id is in its signed tokens: SQLite must never hand a deleted grant's id to a
        # new one (PostgreSQL's sequence never does), or the old tokens would act under it.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    device_id: Mapped[int | None] = mapped_column(sa.ForeignKey("devices.id"))
    application_id: Mapped[int | None] = mapped_column(sa.ForeignKey("applications.id"))
    scope: Mapped[str] = mapped_column(sa.String(255))
    generation: Mapped[int] = mapped_column(default=1, server_default="1")
    created_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The last approval (consent) of this grant.
    modified_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The last request with one of its access tokens, or a token issued (written at most once a minute).
    last_used_time: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuthorizationCode(db.Model):
    """An authorization code (RFC 6749 4.1.2), stored as its SHA-256 digest: single use, valid
    for minutes, bound to its grant's client, the redirect URI and the PKCE challenge."""

    __tablename__ = "authorization_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    grant_id: Mapped[int] = mapped_column(sa.ForeignKey("grants.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    scope: Mapped[str] = mapped_column(sa.String(255))
    redirect_uri: Mapped[str] = mapped_column(sa.String(1000))
    # Whether the authorization request named the redirect URI: then /token must name it too.
    redirect_uri_given: Mapped[bool] = mapped_column(default=True)
    # The S256 challenge (RFC 7636), or NULL when the client sent none.
    code_challenge: Mapped[str | None] = mapped_column(sa.String(128))
    created_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The refresh-token family issued for it: a second use of the code ends it (RFC 6749 4.1.2).
    family: Mapped[str | None] = mapped_column(sa.String(32))


# --- accounts: email confirmation, password reset, account events (issue 16) ---


class AccountEventKind(enum.StrEnum):
    SIGNIN = "signin"
    SIGNOUT = "signout"
    PASSWORD_CHANGED = "password.changed"
    RESET_REQUESTED = "reset.requested"
    RESET_USED = "reset.used"
    EMAIL_CONFIRMED = "email.confirmed"
    EXPORT_MADE = "export.made"
    DEVICE_DELETED = "device.deleted"
    ACCOUNT_DELETED = "account.deleted"


class AccountEvent(db.Model):
    """Something that happened to a person's account (sign-in, password reset, export, ...),
    with where it was asked from; shown to them on the account page, newest first
    (services.account_events)."""

    __tablename__ = "account_events"
    __table_args__ = (sa.Index("ix_account_events_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(sa.String(40))
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str] = mapped_column(sa.String(200), default="")


# --- export and deletion (issue 16) ---


class DeletionKind(enum.StrEnum):
    DEVICE = "device"
    ACCOUNT = "account"


class DeletionRecord(db.Model):
    """The anonymous audit record that a deletion happened: what kind, when it was asked for and
    when its last row was gone, and how much it removed. Nothing in it names the person, the
    device or the account (no ids, no email, no address): it outlives them on purpose."""

    __tablename__ = "deletion_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    requested_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # NULL while rows remain (the request did not finish them; `flask maintenance` will).
    finished_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What went: devices, metrics, samples, and the rows of every other table (events, tokens,
    # sessions, rollups, ...), added up batch by batch.
    devices: Mapped[int] = mapped_column(default=0, server_default="0")
    metrics: Mapped[int] = mapped_column(default=0, server_default="0")
    samples: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    other_rows: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")


class PendingDeletion(db.Model):
    """Work left of a deletion: the device or account whose rows are still being removed, and its
    record. Deleted with the last of those rows. Plain ids, no foreign keys: it names what is
    being deleted while it is deleted, and only until then."""

    __tablename__ = "pending_deletions"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(sa.ForeignKey("deletion_records.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    # The account's user id (kind account) or the device's id (kind device).
    subject_id: Mapped[int] = mapped_column()
    created_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
