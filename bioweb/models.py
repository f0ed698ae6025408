"""The data: tenants, users, their devices and every kind of bearer token."""

from __future__ import annotations

import enum
import uuid as uuid_mod
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

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
    REFRESH = "refresh"  # a refresh token of a grant that acts for a person
    # Device access tokens are signed (bioweb/signing.py) and have no row.


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
    # Bumped when the password changes: sessions carry it, so older sessions stop working.
    session_version: Mapped[int] = mapped_column(default=1)
    # Kept beside the devices so `count` on a list of a million devices is one row read.
    device_count: Mapped[int] = mapped_column(default=0)
    created_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tenant: Mapped[Tenant] = relationship()

    # Flask-Login's user protocol.
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class Device(db.Model):
    __tablename__ = "devices"
    __table_args__ = (
        # One index per sort field of the list, each ending in id: keyset pages at any depth.
        sa.Index("ix_devices_user_id_id", "user_id", "id"),
        sa.Index("ix_devices_user_created", "user_id", "created_time", "id"),
        sa.Index("ix_devices_user_modified", "user_id", "modified_time", "id"),
        sa.Index("ix_devices_user_last_active", "user_id", "last_active_time", "id"),
        sa.Index("ix_devices_user_manufacturer", "user_id", "manufacturer", "id"),
        sa.Index("ix_devices_user_code", "user_id", "code", "id"),
        sa.Index("ix_devices_user_state", "user_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(sa.String(36), unique=True, default=lambda: str(uuid_mod.uuid4()))
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenants.id"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    manufacturer: Mapped[str] = mapped_column(sa.String(40))
    code: Mapped[str] = mapped_column(sa.String(40))
    product_name: Mapped[str] = mapped_column(sa.String(120))
    is_test_mode: Mapped[bool] = mapped_column(default=False)
    state: Mapped[int] = mapped_column(sa.SmallInteger, default=DeviceState.ACTIVE)
    client_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    client_secret_digest: Mapped[str] = mapped_column(sa.String(64))
    # Moved by disable, re-authorize and the revocation of a device access token: every
    # signed token carries the generation it was minted under and dies when it moves.
    credential_generation: Mapped[int] = mapped_column(default=1, server_default="1")
    # When the device last got a token at /token, to the hour: /token writes only when the
    # hour changes (activity and the hourly audit row), so a device asking every minute
    # costs one write an hour.
    last_token_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_active_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

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
    # Every access and refresh token descending from one client-credentials grant shares a
    # family; reuse of a rotated refresh token revokes the whole family.
    family: Mapped[str | None] = mapped_column(sa.String(32), index=True)
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
    TOKEN_ISSUED = "token.issued"  # one row per device and hour in which it got tokens
    AUTH_FAILED = "client_auth.failed"  # aggregated per device and hour


class Event(db.Model):
    """An append-only audit record of something that happened to a device.

    Frequent kinds are aggregated: one row per device, kind and hour (`bucket`), so a busy
    or attacked device cannot flood the table. A failed client authentication counts every
    time (`count`); token.issued is written once an hour, when the device first gets a token
    in it (so /token stays free of writes), and its `count` stays 1. Other kinds have no
    bucket and one row each.
    """

    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_device_id_id", "device_id", "id"),
        sa.UniqueConstraint("device_id", "kind", "bucket", name="uq_events_device_kind_bucket"),
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
    count: Mapped[int] = mapped_column(default=1)
    last_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
