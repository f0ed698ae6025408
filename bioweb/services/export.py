"""Export (issue 16): everything of a person's in one ZIP, written as it is read.

`stream(user_id)` yields the bytes of a ZIP archive piece by piece: the account, devices (no
secrets: their slots' dates only, as the API shows them), metrics, each metric's samples as
CSV and as NDJSON, the devices' audit events, the account's events, grants, applications,
personal access tokens and dashboard sessions (never a digest, a secret or a session key),
with a README naming every file and a manifest.json of what went in. Nothing is held whole:
samples are read in keyset pages (by metric, then (start_date, id)) with Core statements,
each page on a pooled connection for one short read (no transaction stays open while the
client downloads; the export is therefore not one snapshot: a sample written meanwhile may or
may not be in it), and every file goes through zipfile's deflate stream into a buffer that is
handed on whenever it holds CHUNK bytes. Entries use ZIP64 and data descriptors, so a file of
any size streams without seeking back.

The CSV of a metric has the API's field names (GET /api/v1/quantity-samples) as its header and
one row per sample with the API's values as text: times RFC 3339 exactly as the API writes them,
numbers as its JSON writes them, true/false, an empty cell for null.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from ..extensions import db
from ..models import (
    AccountEventKind,
    Device,
    Event,
    Metric,
    Sample,
    SourcePriority,
    Token,
    TokenKind,
    User,
    UserSession,
    utcnow,
)
from ..readmodels import SampleView, to_builtins
from . import account_events, devices, samples
from .events import Origin

# Samples (or other rows) per read: a page's rows and their text are what the worker holds at
# once. Measured in process on PostgreSQL (300,000 samples): the worker grows 3.6 MiB at 1,000,
# 1.5 at 500, 0.8 at 250 (that one 18% slower); a PostgreSQL worker idles at about 87 MiB of
# the 90 MiB budget (bench/RESULTS.md, issue 16).
PAGE = 500
CHUNK = 64 * 1024  # bytes handed to the server at a time
DEVICE_PAGE = 500
# zlib level 1: on samples' CSV 54 MB/s against the default level's 32, for a tenth more bytes
# (their random uuids barely compress either way); an export is CPU-bound on the worker.
COMPRESS_LEVEL = 1
SAMPLE_FIELDS = tuple(name for name in SampleView.__struct_fields__ if name != "duplicate")
# Columns never exported, whatever table they are in.
SECRET_WORDS = ("digest", "secret", "password", "key")

_samples, _metrics, _devices = Sample.__table__, Metric.__table__, Device.__table__
_events, _tokens, _sessions = Event.__table__, Token.__table__, UserSession.__table__
_users, _priorities = User.__table__, SourcePriority.__table__

README = """\
bioweb export
=============

Everything bioweb keeps about your account, made {made} (UTC). Times are RFC 3339 in UTC,
as the API writes them. Nothing secret is in here: no password, no token, no client secret,
no session key (bioweb keeps only one-way hashes of those, and leaves them out too).

account.json              your account: email, name, time zone, when it was made
devices.json              your devices, as GET /api/v1/device/<id> answers (client secrets: only
                          their slots and dates)
metrics.json              your metrics, as GET /api/v1/metrics lists them (without figures)
samples/<metric id>.csv   each metric's samples, oldest first: the fields of
                          GET /api/v1/quantity-samples as columns, one row per sample, values
                          as the API writes them (empty: null)
samples/<metric id>.ndjson  the same samples as JSON, one object per line
events.ndjson             the audit trail of your devices (GET /api/v1/device/<id>/events)
account_events.ndjson     what happened to your account (sign-ins, password changes, exports)
grants.json               the apps and devices you authorized to act for you
applications.json         the OAuth applications you registered (no client secrets)
source_priorities.json    your order of devices per sample type
personal_access_tokens.json  your personal access tokens: name, scope, dates (not the tokens)
sessions.json             where you are logged in: browser, address, when
manifest.json             the list of files with how many records each holds (written last)
"""


class _Sink:
    """The unseekable file zipfile writes to: it keeps what it is given until taken."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        self.size = 0
        return out


def _json_line(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)


def _cell(value: Any) -> Any:
    """A value as the API's JSON writes it, as CSV text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()  # what orjson writes for an aware datetime, without quotes
    return orjson.dumps(value).decode()


def _safe_columns(table: sa.Table) -> list[sa.Column[Any]]:
    return [c for c in table.columns if not any(word in c.name for word in SECRET_WORDS)]


def _pages(statement: Callable[[Any], sa.Select[Any]], key: Callable[[Any], Any]) -> Iterator[Sequence[Any]]:
    """Keyset pages: statement(after) for after=None, then for the key of each page's last row,
    each page read on its own pooled connection."""
    after = None
    while True:
        with db.engine.connect() as conn:
            rows = conn.execute(statement(after)).all()
        if rows:
            yield rows
        if len(rows) < PAGE:
            return
        after = key(rows[-1])


def _user_devices(user_id: int) -> Iterator[Sequence[Any]]:
    """The person's (not deleted) devices, by id, DEVICE_PAGE at a time."""
    after = 0
    while True:
        with db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_devices)
                .where(
                    _devices.c.user_id == user_id, _devices.c.deleted_time.is_(None), _devices.c.id > after
                )
                .order_by(_devices.c.id)
                .limit(DEVICE_PAGE)
            ).all()
        if rows:
            yield rows
        if len(rows) < DEVICE_PAGE:
            return
        after = rows[-1].id


_METRIC_COLUMNS = [c for c in _metrics.columns if c.name not in ("deleted_time",)]


def _user_metrics(user_id: int) -> Sequence[Any]:
    """The person's live metrics (their rows: a few per device, so held while the export runs)."""
    with db.engine.connect() as conn:
        return conn.execute(
            sa.select(*_METRIC_COLUMNS)
            .where(_metrics.c.user_id == user_id, _metrics.c.deleted_time.is_(None))
            .order_by(_metrics.c.id)
        ).all()


# The API's columns of a sample, without the metric (each file is one metric's).
_SAMPLE_COLUMNS = tuple(c for c in samples.SAMPLE_COLUMNS if c.name != "metric_id")


def _sample_pages(metric_id: int) -> Iterator[Sequence[Any]]:
    """A metric's samples in (start_date, id) order, PAGE at a time (the API's order)."""
    base = sa.select(*_SAMPLE_COLUMNS).where(_samples.c.metric_id == metric_id)
    order = (_samples.c.start_date, _samples.c.id)

    def statement(after: Any) -> sa.Select[Any]:
        query = base
        if after is not None:
            position = sa.tuple_(
                sa.literal(after[0], _samples.c.start_date.type), sa.literal(after[1], _samples.c.id.type)
            )
            query = query.where(sa.tuple_(*order) > position)
        return query.order_by(*order).limit(PAGE)

    return _pages(statement, lambda row: (row.start_date, row.id))


def _csv_page(metric: Any, rows: Sequence[Any]) -> bytes:
    """Samples (rows of _SAMPLE_COLUMNS) as CSV rows of SAMPLE_FIELDS, values as the API's JSON
    writes them."""
    ids = (str(metric.id), str(metric.device_id))
    buffer = io.StringIO()
    csv.writer(buffer).writerows(
        (
            sample_uuid,
            *ids,
            metric.sample_type,
            "" if quantity is None else orjson.dumps(quantity).decode(),
            metric.quantity_type,
            start.isoformat(),
            end.isoformat(),
            motion,
            "" if location is None else str(location),
            location_other,
            "true" if is_null else "false",
            "" if client_id is None else client_id,
            str(version),
            received.isoformat(),
        )
        for _, sample_uuid, quantity, start, end, motion, location, location_other, is_null, client_id, version, received in rows
    )
    return buffer.getvalue().encode()


def _ndjson_page(metric: Any, rows: Sequence[Any]) -> bytes:
    """Samples as JSON lines: the API's sample objects (without `duplicate`). Appended to one
    buffer line by line: joining a list of orjson's outputs held each at its allocation size
    (about 10 KB a line, 20 MB a page), not its length."""
    out = bytearray()
    for (
        _,
        sample_uuid,
        quantity,
        start,
        end,
        motion,
        location,
        location_other,
        is_null,
        client_id,
        version,
        received,
    ) in rows:
        out += orjson.dumps(
            {
                "uuid": sample_uuid,
                "metric_id": metric.id,
                "device_id": metric.device_id,
                "sample_type": metric.sample_type,
                "quantity": quantity,
                "quantity_type": metric.quantity_type,
                "start_date": start,
                "end_date": end,
                "sample_motion_context": motion,
                "sample_sensor_location": location,
                "sample_sensor_location_other": location_other,
                "is_null": is_null,
                "client_sample_id": client_id,
                "client_sample_version": version,
                "received_time": received,
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
    return bytes(out)


def csv_text(rows: Iterable[Iterable[Any]]) -> str:
    """Rows as CSV text (RFC 4180: CRLF, quotes where needed), cells as the API writes values."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return buffer.getvalue()


class _Archive:
    """The ZIP being written: files go in one after another; `pieces` yields what is ready."""

    def __init__(self) -> None:
        self.sink = _Sink()
        self.zip = zipfile.ZipFile(
            self.sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL
        )
        self.counts: dict[str, int] = {}

    def file(self, name: str, parts: Iterable[bytes | tuple[bytes, int]]) -> Iterator[bytes]:
        """Write one file from `parts` (bytes, or (bytes, records in them)); yield the archive's
        bytes whenever CHUNK of them are ready."""
        records = 0
        with self.zip.open(name, "w", force_zip64=True) as out:
            for part in parts:
                if isinstance(part, tuple):
                    part, counted = part
                    records += counted
                out.write(part)
                if self.sink.size >= CHUNK:
                    yield self.sink.take()
        self.counts[name] = records
        if self.sink.size >= CHUNK:
            yield self.sink.take()

    def close(self) -> bytes:
        self.zip.close()
        return self.sink.take()


def _json_array(rows: Iterable[dict[str, Any]]) -> Iterator[tuple[bytes, int]]:
    """A JSON array written element by element."""
    yield b"[", 0
    first = True
    for row in rows:
        yield (b"" if first else b",") + b"\n" + orjson.dumps(row), 1
        first = False
    yield b"\n]\n", 0


def _plain(row: Any, columns: Iterable[sa.Column[Any]]) -> dict[str, Any]:
    return {c.name: getattr(row, c.name) for c in columns}


def record_export(user_id: int, origin: Origin | None) -> None:
    """Note in the account's events that an export was made. Commits."""
    account_events.record(user_id, AccountEventKind.EXPORT_MADE, origin)
    db.session.commit()


def stream(user_id: int) -> Iterator[bytes]:
    """The person's export as ZIP bytes, in pieces of about CHUNK (see the module docstring)."""
    archive = _Archive()
    made = utcnow()
    yield from archive.file("README.txt", [README.format(made=made.isoformat()).encode()])
    with db.engine.connect() as conn:
        account = conn.execute(sa.select(_users).where(_users.c.id == user_id)).one()
    account_fields = ("id", "email", "first_name", "last_name", "tenant_id", "time_zone", "created_time")
    extra = [name for name in ("email_confirmed_time",) if name in _users.c]
    yield from archive.file(
        "account.json",
        [(orjson.dumps({name: getattr(account, name) for name in (*account_fields, *extra)}), 1)],
    )

    def device_rows() -> Iterator[dict[str, Any]]:
        for page in _user_devices(user_id):
            for row in page:
                yield to_builtins(devices._detail(row))

    yield from archive.file("devices.json", _json_array(device_rows()))
    metric_rows = _user_metrics(user_id)
    yield from archive.file("metrics.json", _json_array(_plain(row, _METRIC_COLUMNS) for row in metric_rows))
    header = csv_text([SAMPLE_FIELDS]).encode()
    for metric in metric_rows:

        def csv_parts(metric: Any = metric) -> Iterator[bytes | tuple[bytes, int]]:
            yield header
            for page in _sample_pages(metric.id):
                yield _csv_page(metric, page), len(page)

        def ndjson_parts(metric: Any = metric) -> Iterator[bytes | tuple[bytes, int]]:
            for page in _sample_pages(metric.id):
                yield _ndjson_page(metric, page), len(page)

        yield from archive.file(f"samples/{metric.id}.csv", csv_parts())
        yield from archive.file(f"samples/{metric.id}.ndjson", ndjson_parts())

    event_columns = [c for c in _events.columns]

    def event_parts() -> Iterator[tuple[bytes, int]]:
        for page in _user_devices(user_id):
            ids = [row.id for row in page]

            def statement(after: Any, ids: list[int] = ids) -> sa.Select[Any]:
                query = sa.select(*event_columns).where(_events.c.device_id.in_(ids))
                if after is not None:
                    query = query.where(sa.tuple_(_events.c.device_id, _events.c.id) > sa.tuple_(*after))
                return query.order_by(_events.c.device_id, _events.c.id).limit(PAGE)

            for rows in _pages(statement, lambda row: (row.device_id, row.id)):
                out = bytearray()
                for row in rows:
                    out += _json_line(_plain(row, event_columns))
                yield bytes(out), len(rows)

    yield from archive.file("events.ndjson", event_parts())
    tables = db.metadata.tables
    if "account_events" in tables:
        yield from archive.file("account_events.ndjson", _by_user_ndjson(tables["account_events"], user_id))
    if "grants" in tables:
        yield from archive.file("grants.json", _json_array(_by_user(tables["grants"], user_id)))
    if "applications" in tables:
        yield from archive.file("applications.json", _json_array(_by_user(tables["applications"], user_id)))
    yield from archive.file("source_priorities.json", _json_array(_by_user(_priorities, user_id)))
    token_columns = [
        c
        for c in (
            _tokens.c.id,
            _tokens.c.name,
            _tokens.c.scope,
            _tokens.c.created_time,
            _tokens.c.expires_time,
            _tokens.c.revoked_time,
            _tokens.c.last_used_time,
        )
    ]
    with db.engine.connect() as conn:
        pats = conn.execute(
            sa.select(*token_columns)
            .where(_tokens.c.user_id == user_id, _tokens.c.kind == TokenKind.PERSONAL.value)
            .order_by(_tokens.c.id)
        ).all()
        session_columns = [
            _sessions.c.id,
            _sessions.c.created_time,
            _sessions.c.last_seen_time,
            _sessions.c.expires_time,
            _sessions.c.user_agent,
            _sessions.c.ip,
        ]
        session_rows = conn.execute(
            sa.select(*session_columns).where(_sessions.c.user_id == user_id).order_by(_sessions.c.id)
        ).all()
    yield from archive.file(
        "personal_access_tokens.json", _json_array(_plain(r, token_columns) for r in pats)
    )
    yield from archive.file("sessions.json", _json_array(_plain(r, session_columns) for r in session_rows))
    manifest = {"made": made, "user_id": user_id, "files": archive.counts}
    yield from archive.file("manifest.json", [orjson.dumps(manifest, option=orjson.OPT_INDENT_2)])
    yield archive.close()


def _by_user(table: sa.Table, user_id: int) -> Iterator[dict[str, Any]]:
    """The rows of `table` whose user_id is the person's, by primary key, secret-looking columns
    left out."""
    columns = _safe_columns(table)
    keys = list(table.primary_key.columns)
    if len(keys) > 1:  # a small table keyed by several columns (source priorities): one read
        with db.engine.connect() as conn:
            rows = conn.execute(sa.select(*columns).where(table.c.user_id == user_id).order_by(*keys)).all()
        for row in rows:
            yield _plain(row, columns)
        return
    key = keys[0]

    def statement(after: Any) -> sa.Select[Any]:
        query = sa.select(*columns).where(table.c.user_id == user_id)
        if after is not None:
            query = query.where(key > after)
        return query.order_by(key).limit(PAGE)

    for rows in _pages(statement, lambda row: getattr(row, key.name)):
        for row in rows:
            yield _plain(row, columns)


def _by_user_ndjson(table: sa.Table, user_id: int) -> Iterator[tuple[bytes, int]]:
    for row in _by_user(table, user_id):
        yield _json_line(row), 1


def filename(now: datetime | None = None) -> str:
    return f"bioweb-export-{(now or utcnow()):%Y-%m-%d}.zip"
