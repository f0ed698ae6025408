"""Bulk seeding of a benchmark database, bypassing the API.

Rows go in with one executemany per chunk inside a single transaction (SQLite) or with
COPY (PostgreSQL), so a million devices take seconds, not hours. The rows look like the
app's own: prefixed random token strings stored only as SHA-256 digests
(`security.digest`), `User.device_count` equal to the user's devices, disabled devices
with revoked tokens. The plaintext credentials that the load runs need are returned in
memory and never written anywhere.
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bioweb import devicecodes
from bioweb.models import Device, DeviceState, Tenant, Token, TokenKind, User, search_key
from bioweb.security import PAT_PREFIX, SECRET_PREFIX, digest, hash_password
from bioweb.signing import TokenSigner

CHUNK = 50_000
# The servers under test sign and verify device access tokens with this key (made per run)
# and this issuer (bioweb's default base URL); the seed signs the tokens the load presents.
TOKEN_KEYS = "bench:" + secrets.token_urlsafe(32)
ISSUER = "http://127.0.0.1:8000"
SIGNER = TokenSigner(TOKEN_KEYS, ISSUER, ISSUER + "/api/v1")
SECRET_KEY = "bench-" + secrets.token_hex(16)
# Settings of every app the harness builds in its own process (it must never write instance/).
APP_CONFIG = {"SECRET_KEY": SECRET_KEY, "BIOWEB_TOKEN_KEYS": TOKEN_KEYS, "RATELIMIT_ENABLED": False}


def server_env(database_url: str) -> dict[str, str]:
    """The environment of a bioweb process the harness starts (gunicorn, `flask db`): the same
    keys as APP_CONFIG, so it accepts the seeded tokens and never writes instance/."""
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY,
        "BIOWEB_TOKEN_KEYS": TOKEN_KEYS,
        "RATELIMIT_ENABLED": "false",
    }


def device_access_token(device_id: int, user_id: int, tenant_id: int, client_id: str) -> str:
    """A signed access token for a seeded device (generation 1), as /token would mint it."""
    return SIGNER.sign(
        client_id=client_id,
        scope=DEVICE_SCOPE,
        device_id=device_id,
        user_id=user_id,
        tenant_id=tenant_id,
        generation=1,
        secret_slot=1,
        expires_in=24 * 3600,
    )


PAT_SCOPE = "devices:read devices:write samples:read samples:write"
DEVICE_SCOPE = "device"


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


Row = dict[str, Any]


def _filler(column: sa.Column[Any]) -> Callable[[], Any]:
    """What a row that leaves `column` out gets: the model's Python-side default (called per
    row when it is a function, e.g. a fresh uuid), else NULL. So a column the seed does not
    know about is still written as the ORM would write it."""
    default = column.default
    if isinstance(default, sa.ColumnDefault) and default.is_callable:
        return lambda: default.arg(None)  # SQLAlchemy wraps it to take an execution context
    value = default.arg if isinstance(default, sa.ColumnDefault) else None
    return lambda: value


class _Writer:
    """Bulk row writer for one backend, inside the caller's transaction. Rows are dicts keyed
    by column name; the column list comes from the model's table, never restated here."""

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

    def insert(self, model: type[Any], rows: Iterable[Row]) -> int:
        """Insert `rows` into `model`'s table; returns the row count.

        Every column of the table is written: from the row, else from `_filler`. A column
        whose only default is the database's own (server_default) is written only when the
        first row names it, so the database can fill it in. A row naming anything that is
        not written raises ValueError, so a renamed or dropped column cannot go unnoticed.
        """
        table: sa.Table = model.__table__
        rows = iter(rows)
        first = next(rows, None)
        if first is None:
            return 0
        names = [
            c.name
            for c in table.columns
            if c.name in first or c.server_default is None or c.default is not None
        ]
        written = set(names)
        fillers = {c.name: _filler(c) for c in table.columns}

        def ordered(row: Row) -> tuple[Any, ...]:
            if not row.keys() <= written:
                raise ValueError(f"{table.name}: cannot write {sorted(row.keys() - written)}")
            return tuple(row[name] if name in row else fillers[name]() for name in names)

        def all_rows() -> Iterator[tuple[Any, ...]]:
            yield ordered(first)
            for row in rows:
                yield ordered(row)

        count = 0
        if self.sqlite:
            sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            for chunk in _chunks(all_rows(), CHUNK):
                self.conn.exec_driver_sql(sql, [tuple(self.value(v) for v in row) for row in chunk])
                count += len(chunk)
            return count
        raw = self.conn.connection.driver_connection  # psycopg 3 connection
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                for row in all_rows():
                    copy.write_row(row)
                    count += 1
        return count

    def fix_sequences(self, *models: type[Any]) -> None:
        """Explicit ids were inserted: move PostgreSQL's sequences past them (SQLite needs nothing)."""
        if self.sqlite:
            return
        for table in (model.__tablename__ for model in models):
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


def _next_id(conn: sa.Connection, model: type[Any]) -> int:
    return int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(model.id), 0)))) + 1


def _tenant(conn: sa.Connection, name: str, now: datetime, writer: _Writer) -> int:
    tenant_id = _next_id(conn, Tenant)
    writer.insert(Tenant, [{"id": tenant_id, "name": name, "created_time": now}])
    return tenant_id


def seed_load_data(
    engine: sa.Engine, users: int = 100, devices_per_user: int = 100, disabled_share: float = 0.05
) -> LoadData:
    """Seed `users` users over a few tenants, each with `devices_per_user` devices.

    Every user gets one PAT (both scopes). Every active device gets a signed access token
    (no row: device tokens are stored nowhere); a disabled device's generation has moved on,
    as `services.devices.disable_device` leaves it. Deterministic apart from the random
    credentials. One transaction.
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
        first_user = _next_id(conn, User)
        first_device = _next_id(conn, Device)
        first_token = _next_id(conn, Token)
        user_rows: list[Row] = []
        device_rows: list[Row] = []
        token_rows: list[Row] = []
        token_id = first_token
        device_id = first_device
        for u in range(users):
            user_id = first_user + u
            tenant_id = tenant_ids[u % len(tenant_ids)]
            joined = now - timedelta(days=730 - u)
            user_rows.append(
                {
                    "id": user_id,
                    "tenant_id": tenant_id,
                    "email": f"bench{u}@example.com",
                    "password_hash": password_hash,
                    "first_name": f"Bench{u}",
                    "last_name": "User",
                    "session_version": 1,
                    "device_count": devices_per_user,
                    "created_time": joined,
                    # Confirmed, as every account that registers devices must be (issue 16).
                    "email_confirmed_time": joined,
                }
            )
            pat = _token(PAT_PREFIX)
            token_rows.append(
                {
                    "id": token_id,
                    "kind": TokenKind.PERSONAL.value,
                    "digest": digest(pat),
                    "name": "bench script",
                    "scope": PAT_SCOPE,
                    "user_id": user_id,
                    "created_time": joined,
                }
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
                    {
                        "id": device_id,
                        "uuid": str(uuid.uuid4()),
                        "tenant_id": tenant_id,
                        "user_id": user_id,
                        "manufacturer": "Apple",
                        "code": entry.code,
                        "code_key": search_key(entry.code),
                        "product_name": entry.product_name,
                        "product_key": search_key(entry.product_name),
                        "is_test_mode": rng.random() < 0.1,
                        "state": int(DeviceState.ACTIVE if active else DeviceState.DISABLED),
                        "client_id": client_id,
                        "client_secret_digest": digest(secret),
                        "credential_generation": 1 if active else 2,
                        "created_time": created,
                        "modified_time": created,
                        "last_active_time": created + (now - created) * rng.random(),
                    }
                )
                access = device_access_token(device_id, user_id, tenant_id, client_id)
                user.device_ids.append(device_id)
                if active:
                    seeded_devices.append(SeededDevice(device_id, user_id, client_id, secret, access))
                device_id += 1
            seeded_users.append(user)
        writer.insert(User, user_rows)
        writer.insert(Device, device_rows)
        writer.insert(Token, token_rows)
        writer.fix_sequences(Tenant, User, Device, Token)
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
        user_id = _next_id(conn, User)
        first_device = _next_id(conn, Device)
        first_token = _next_id(conn, Token)
        writer.insert(
            User,
            [
                {
                    "id": user_id,
                    "tenant_id": tenant_id,
                    "email": "scale@example.com",
                    "password_hash": hash_password("bench password, not a secret"),
                    "first_name": "Scale",
                    "last_name": "User",
                    "session_version": 1,
                    "device_count": devices,
                    "created_time": now,
                    "email_confirmed_time": now,
                }
            ],
        )
        pat = _token(PAT_PREFIX)
        writer.insert(
            Token,
            [
                {
                    "id": first_token,
                    "kind": TokenKind.PERSONAL.value,
                    "digest": digest(pat),
                    "name": "bench scale",
                    "scope": PAT_SCOPE,
                    "user_id": user_id,
                    "created_time": now,
                }
            ],
        )
        start_time = now - timedelta(days=3 * 365)
        step = (now - start_time) / devices
        # A fixed fake secret digest: these devices never authenticate, and hashing a million
        # random secrets would only slow the seeding down.
        secret_digest = digest(_token(SECRET_PREFIX))

        client_ids = [secrets.token_hex(8) for _ in range(devices)]

        def device_rows() -> Iterator[Row]:
            for i in range(devices):
                entry = codes[rng.randrange(len(codes))]
                created = start_time + step * i
                yield {
                    "id": first_device + i,
                    "uuid": str(uuid.uuid4()),
                    "tenant_id": tenant_id,
                    "user_id": user_id,
                    "manufacturer": "Apple",
                    "code": entry.code,
                    "code_key": search_key(entry.code),
                    "product_name": entry.product_name,
                    "product_key": search_key(entry.product_name),
                    "is_test_mode": False,
                    "state": int(DeviceState.ACTIVE),
                    "client_id": client_ids[i],
                    "client_secret_digest": secret_digest,
                    "credential_generation": 1,
                    "created_time": created,
                    "modified_time": created,
                    "last_active_time": created,
                }

        writer.insert(Device, device_rows())
        # Device access tokens have no rows; the sample (the last devices) gets signed ones.
        sample = [
            SeededDevice(
                first_device + i,
                user_id,
                client_ids[i],
                "",
                device_access_token(first_device + i, user_id, tenant_id, client_ids[i]),
            )
            for i in range(max(0, devices - sample_size), devices)
        ]
        writer.fix_sequences(Tenant, User, Device, Token)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    return ScaleData(user_id, pat, devices, devices + 1, sample, time.perf_counter() - started)
