"""Bulk seeding of a benchmark database, bypassing the API.

Rows go in with one executemany per chunk inside a single transaction (SQLite) or with
COPY (PostgreSQL), so a million devices take seconds, not hours. The rows look like the
app's own: prefixed random token strings stored only as SHA-256 digests
(`security.digest`), `User.device_count` equal to the user's devices, disabled devices
with revoked tokens. The plaintext credentials that the load runs need are returned in
memory and never written anywhere.
"""

from __future__ import annotations

import base64
import random
import secrets
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bioweb import devicecodes
from bioweb.models import DeviceState, TokenKind
from bioweb.security import ACCESS_PREFIX, PAT_PREFIX, REFRESH_PREFIX, SECRET_PREFIX, digest, hash_password

CHUNK = 50_000
PAT_SCOPE = "devices:read devices:write"
DEVICE_SCOPE = "device"

DEVICE_COLUMNS = (
    "id",
    "uuid",
    "tenant_id",
    "user_id",
    "manufacturer",
    "code",
    "product_name",
    "is_test_mode",
    "state",
    "client_id",
    "client_secret_digest",
    "created_time",
    "modified_time",
    "last_active_time",
)
TOKEN_COLUMNS = (
    "id",
    "kind",
    "digest",
    "name",
    "scope",
    "user_id",
    "device_id",
    "family",
    "created_time",
    "expires_time",
    "revoked_time",
    "last_used_time",
)
USER_COLUMNS = (
    "id",
    "tenant_id",
    "email",
    "password_hash",
    "first_name",
    "last_name",
    "session_version",
    "device_count",
    "created_time",
)


@dataclass
class SeededDevice:
    """A device whose plaintext credentials the load runs use."""

    id: int
    user_id: int
    client_id: str
    client_secret: str
    access_token: str


@dataclass
class SeededUser:
    id: int
    pat: str
    device_ids: list[int] = field(default_factory=list)


@dataclass
class LoadData:
    """What `seed_load_data` created, with the plaintext credentials (memory only)."""

    users: list[SeededUser]
    devices: list[SeededDevice]  # active devices only: the ones whose credentials work


@dataclass
class ScaleData:
    """What `seed_scale_data` created: one user with many devices and one token per device."""

    user_id: int
    pat: str
    device_count: int
    token_count: int
    sample: list[SeededDevice]  # a few devices (with their access tokens) for lookups
    seconds: float = 0.0


def _token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


class _Writer:
    """Bulk row writer for one backend, inside the caller's transaction."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"

    def value(self, v: Any) -> Any:
        # SQLite: the app's UTCDateTime stores naive UTC text in SQLAlchemy's format; write
        # that directly so the raw executemany stays byte-for-byte what the ORM would write.
        if self.sqlite and isinstance(v, datetime):
            return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if self.sqlite and isinstance(v, bool):
            return int(v)
        return v

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Insert `rows` (tuples in `columns` order). Returns the row count."""
        count = 0
        if self.sqlite:
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            for chunk in _chunks(rows, CHUNK):
                self.conn.exec_driver_sql(sql, [tuple(self.value(v) for v in row) for row in chunk])
                count += len(chunk)
            return count
        raw = self.conn.connection.driver_connection  # psycopg 3 connection
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        return count

    def fix_sequences(self, *tables: str) -> None:
        """Explicit ids were inserted: move PostgreSQL's sequences past them (SQLite needs nothing)."""
        if self.sqlite:
            return
        for table in tables:
            self.conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
            )


def _chunks(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    chunk: list[Sequence[Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _next_id(conn: sa.Connection, table: str) -> int:
    return int(conn.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {table}").scalar_one()) + 1


def _tenant(conn: sa.Connection, name: str, now: datetime, writer: _Writer) -> int:
    tenant_id = _next_id(conn, "tenants")
    writer.insert("tenants", ("id", "name", "created_time"), [(tenant_id, name, now)])
    return tenant_id


def seed_load_data(
    engine: sa.Engine, users: int = 100, devices_per_user: int = 100, disabled_share: float = 0.05
) -> LoadData:
    """Seed `users` users over a few tenants, each with `devices_per_user` devices.

    Every user gets one PAT (both scopes). Every device gets an access and a refresh token
    from one client-credentials grant; a disabled device's tokens are revoked, as
    `services.devices.disable_device` would leave them. Deterministic apart from the
    random credentials. One transaction.
    """
    rng = random.Random(6)
    codes = devicecodes.all_codes()
    now = datetime.now(UTC)
    password_hash = hash_password("bench password, not a secret")  # scrypt once, shared
    seeded_users: list[SeededUser] = []
    seeded_devices: list[SeededDevice] = []
    with engine.begin() as conn:
        writer = _Writer(conn)
        tenant_ids = [_tenant(conn, f"bench-tenant-{t}", now, writer) for t in range(4)]
        first_user = _next_id(conn, "users")
        first_device = _next_id(conn, "devices")
        first_token = _next_id(conn, "tokens")
        user_rows, device_rows, token_rows = [], [], []
        token_id = first_token
        device_id = first_device
        for u in range(users):
            user_id = first_user + u
            tenant_id = tenant_ids[u % len(tenant_ids)]
            joined = now - timedelta(days=730 - u)
            user_rows.append(
                (
                    user_id,
                    tenant_id,
                    f"bench{u}@example.com",
                    password_hash,
                    f"Bench{u}",
                    "User",
                    1,
                    devices_per_user,
                    joined,
                )
            )
            pat = _token(PAT_PREFIX)
            token_rows.append(
                (
                    token_id,
                    TokenKind.PERSONAL.value,
                    digest(pat),
                    "bench script",
                    PAT_SCOPE,
                    user_id,
                    None,
                    None,
                    joined,
                    None,
                    None,
                    None,
                )
            )
            token_id += 1
            user = SeededUser(user_id, pat)
            for _d in range(devices_per_user):
                entry = rng.choice(codes)
                created = joined + timedelta(minutes=rng.randrange(0, 600_000))
                created = min(created, now - timedelta(hours=1))
                active = rng.random() >= disabled_share
                secret = _token(SECRET_PREFIX)
                client_id = secrets.token_hex(8)
                device_rows.append(
                    (
                        device_id,
                        str(uuid.uuid4()),
                        tenant_id,
                        user_id,
                        "Apple",
                        entry.code,
                        entry.product_name,
                        rng.random() < 0.1,
                        int(DeviceState.ACTIVE if active else DeviceState.DISABLED),
                        client_id,
                        digest(secret),
                        created,
                        created,
                        created + (now - created) * rng.random(),
                    )
                )
                access, refresh = _token(ACCESS_PREFIX), _token(REFRESH_PREFIX)
                family = uuid.uuid4().hex
                issued = now - timedelta(minutes=rng.randrange(1, 50))
                revoked = None if active else issued
                token_rows.append(
                    (
                        token_id,
                        TokenKind.ACCESS.value,
                        digest(access),
                        "",
                        DEVICE_SCOPE,
                        user_id,
                        device_id,
                        family,
                        issued,
                        issued + timedelta(hours=1),
                        revoked,
                        None,
                    )
                )
                token_rows.append(
                    (
                        token_id + 1,
                        TokenKind.REFRESH.value,
                        digest(refresh),
                        "",
                        DEVICE_SCOPE,
                        user_id,
                        device_id,
                        family,
                        issued,
                        issued + timedelta(days=30),
                        revoked,
                        None,
                    )
                )
                token_id += 2
                user.device_ids.append(device_id)
                if active:
                    seeded_devices.append(SeededDevice(device_id, user_id, client_id, secret, access))
                device_id += 1
            seeded_users.append(user)
        writer.insert("users", USER_COLUMNS, user_rows)
        writer.insert("devices", DEVICE_COLUMNS, device_rows)
        writer.insert("tokens", TOKEN_COLUMNS, token_rows)
        writer.fix_sequences("tenants", "users", "devices", "tokens")
    return LoadData(seeded_users, seeded_devices)


def seed_scale_data(engine: sa.Engine, devices: int = 1_000_000, sample_size: int = 1000) -> ScaleData:
    """One new user (own tenant) with `devices` devices, one live access token per device,
    and a PAT; `device_count` set to match. Keeps the plaintext of `sample_size` device
    tokens (the last devices) and of the PAT. One transaction; ANALYZE on PostgreSQL (what
    autovacuum would do after a bulk load)."""
    import time

    started = time.perf_counter()
    rng = random.Random(1_000_000)
    codes = devicecodes.all_codes()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        writer = _Writer(conn)
        tenant_id = _tenant(conn, "bench-scale", now, writer)
        user_id = _next_id(conn, "users")
        first_device = _next_id(conn, "devices")
        first_token = _next_id(conn, "tokens")
        writer.insert(
            "users",
            USER_COLUMNS,
            [
                (
                    user_id,
                    tenant_id,
                    "scale@example.com",
                    hash_password("bench password, not a secret"),
                    "Scale",
                    "User",
                    1,
                    devices,
                    now,
                )
            ],
        )
        pat = _token(PAT_PREFIX)
        writer.insert(
            "tokens",
            TOKEN_COLUMNS,
            [
                (
                    first_token,
                    TokenKind.PERSONAL.value,
                    digest(pat),
                    "bench scale",
                    PAT_SCOPE,
                    user_id,
                    None,
                    None,
                    now,
                    None,
                    None,
                    None,
                )
            ],
        )
        start_time = now - timedelta(days=3 * 365)
        step = (now - start_time) / devices
        # A fixed fake secret digest: these devices never authenticate, and hashing a million
        # random secrets would only slow the seeding down.
        secret_digest = digest(_token(SECRET_PREFIX))

        def device_rows() -> Iterator[tuple[Any, ...]]:
            for i in range(devices):
                entry = codes[rng.randrange(len(codes))]
                created = start_time + step * i
                yield (
                    first_device + i,
                    str(uuid.uuid4()),
                    tenant_id,
                    user_id,
                    "Apple",
                    entry.code,
                    entry.product_name,
                    False,
                    int(DeviceState.ACTIVE),
                    secrets.token_hex(8),
                    secret_digest,
                    created,
                    created,
                    created,
                )

        writer.insert("devices", DEVICE_COLUMNS, device_rows())
        sample: list[SeededDevice] = []
        sample_from = devices - sample_size

        def token_rows() -> Iterator[tuple[Any, ...]]:
            for i in range(devices):
                access = (
                    ACCESS_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
                )
                if i >= sample_from:
                    sample.append(SeededDevice(first_device + i, user_id, "", "", access))
                yield (
                    first_token + 1 + i,
                    TokenKind.ACCESS.value,
                    digest(access),
                    "",
                    DEVICE_SCOPE,
                    user_id,
                    first_device + i,
                    None,
                    now,
                    now + timedelta(days=1),
                    None,
                    None,
                )

        writer.insert("tokens", TOKEN_COLUMNS, token_rows())
        writer.fix_sequences("tenants", "users", "devices", "tokens")
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    return ScaleData(user_id, pat, devices, devices + 1, sample, time.perf_counter() - started)
