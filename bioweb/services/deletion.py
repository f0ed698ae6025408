"""Deleting for real (issue 16): a disabled device with its data, or a whole account.

Both go in two steps.

1. **At once**, in one transaction: the subject is gone for every reader and every credential
   of it is dead. A device is marked deleted (`deleted_time`; every device read passes it by),
   its credential generation moves (its signed tokens die) and its client secrets are emptied
   (its client id then fails at /token like an unknown one). An account's email address is
   rewritten to a tombstone (`deleted-<id>-<random>@deleted.invalid`: the address can sign up
   again at once), its password and name are wiped, and each of its devices is handled as
   above. Then the rows of AT_ONCE tables that belong to the subject are deleted whole: tokens
   (PATs, refresh tokens), authorization codes, grants (a grant's access tokens die with its
   row), applications the person registered (with the grants other people gave them),
   dashboard sessions, source priorities. Its metrics are marked deleted like a deleted
   metric. A `deletion_records` row (anonymous: kind, times, counts) and a `pending_deletions`
   row (the work left) are written.
2. **In bounded batches** (DELETE_BATCH rows per transaction, so other writers interleave,
   SQLite included), for at most DELETE_BUDGET_SECONDS in the request and then by
   `flask --app app maintenance` (purge_pending): each metric's samples and rollups through
   services.metrics.purge_metric (the one batch deleter of samples), then every other row that
   belongs to the subject, table by table, children first, then the subject's row (and an
   account's tenant when nobody else is in it). The record gets its counts as batches commit,
   and its finished_time with the last one.

Which rows belong to a subject is read from the foreign keys of the models (`ownership`): a
row belongs to it when one of its foreign keys points at the subject or at a row that belongs
to it. Tables added later are covered without a change here.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa

from ..errors import Conflict, NotFound
from ..extensions import db
from ..models import (
    AccountEventKind,
    DeletionKind,
    DeletionRecord,
    Device,
    DeviceState,
    Metric,
    PendingDeletion,
    Tenant,
    User,
    utcnow,
)
from ..security import check_password
from . import Actor, account_events, accounts, devices, metrics
from .events import Origin

DELETE_BATCH = metrics.DELETE_BATCH
DELETE_BUDGET_SECONDS = metrics.DELETE_BUDGET_SECONDS
# Deleted whole in the first transaction: what grants access, and what a calculation reads.
AT_ONCE = ("tokens", "authorization_codes", "grants", "applications", "user_sessions", "source_priorities")
# Removed by services.metrics.purge_metric, with their metric.
WITH_METRICS = ("quantity_samples", "quantity_rollups", "quantity_hour_rollups")
# Never deleted as someone's: shared (tenants go only when empty), or this module's own.
NOT_OWNED = ("tenants", "deletion_records", "pending_deletions")
TOMBSTONE_DOMAIN = "deleted.invalid"  # RFC 2606: no address there can ever receive mail
UNUSABLE_PASSWORD = "!"  # no hash: check_password is always False

_users, _devices, _metrics = User.__table__, Device.__table__, Metric.__table__
_records, _pending = DeletionRecord.__table__, PendingDeletion.__table__


@dataclass(frozen=True, slots=True)
class Deletion:
    """What a deletion request did: its anonymous record, and whether every row went already
    (False: `flask maintenance` finishes)."""

    record_id: int
    finished: bool


def _count(result: sa.Result[Any]) -> int:
    return cast("sa.CursorResult[Any]", result).rowcount


def ownership(root: sa.Table, root_id: int) -> dict[str, sa.ColumnElement[bool]]:
    """Table name -> the condition of its rows that belong to the row `root_id` of `root`
    (users or devices): directly or through rows that do, by foreign keys, the root included."""
    conditions: dict[str, sa.ColumnElement[bool]] = {root.name: root.c.id == root_id}
    for table in db.metadata.sorted_tables:  # parents before children
        if table.name in conditions or table.name in NOT_OWNED:
            continue
        parts: list[sa.ColumnElement[bool]] = []
        for fk in sorted(table.foreign_keys, key=lambda fk: fk.parent.name):
            parent = fk.column.table
            if parent is table or parent.name not in conditions:
                continue
            if parent is root:
                parts.append(fk.parent == root_id)
            else:
                parts.append(fk.parent.in_(sa.select(fk.column).where(conditions[parent.name])))
        if parts:
            conditions[table.name] = sa.or_(*parts)
    return conditions


def _delete_rows(table: sa.Table, condition: sa.ColumnElement[bool], limit: int | None) -> int:
    """Delete rows of `table` matching `condition`: at most `limit` (chosen by primary key), or
    all of them. No commit. Returns how many went."""
    if limit is None:
        return _count(db.session.execute(sa.delete(table).where(condition)))
    key = list(table.primary_key.columns)
    chosen = sa.select(*key).where(condition).limit(limit)
    if len(key) == 1:
        where = key[0].in_(chosen.scalar_subquery())
    else:
        where = sa.tuple_(*key).in_(chosen)
    return _count(db.session.execute(sa.delete(table).where(where)))


def _add(record_id: int, **amounts: int) -> None:
    """Add to the record's counts (in the caller's transaction)."""
    values = {name: _records.c[name] + amount for name, amount in amounts.items() if amount}
    if values:
        db.session.execute(sa.update(_records).where(_records.c.id == record_id).values(values))


def _end_access(conditions: dict[str, sa.ColumnElement[bool]]) -> int:
    """Delete the AT_ONCE rows that belong to the subject, children first (no commit)."""
    removed = 0
    for table in reversed(db.metadata.sorted_tables):
        if table.name in AT_ONCE and table.name in conditions:
            removed += _delete_rows(table, conditions[table.name], None)
    return removed


def _kill_devices(condition: sa.ColumnElement[bool]) -> None:
    """Mark devices deleted and end every credential of theirs: disabled, generation moved (their
    signed tokens die), client secrets emptied (their client ids fail at /token). No commit."""
    now = utcnow()
    db.session.execute(
        sa.update(_devices)
        .where(condition)
        .values(
            state=DeviceState.DISABLED,
            credential_generation=_devices.c.credential_generation + 1,
            client_secret_digest="",
            client_secret2_digest="",
            client_secret_expires_time=None,
            client_secret2_expires_time=None,
            deleted_time=sa.func.coalesce(_devices.c.deleted_time, now),
            modified_time=now,
        )
    )


def _start(kind: DeletionKind, subject_id: int, conditions: dict[str, sa.ColumnElement[bool]]) -> int:
    """The at-once part shared by both kinds, after the subject is marked: credentials and
    access rows gone, metrics marked deleted, the record and the pending work written. Returns
    the record's id. No commit."""
    now = utcnow()
    removed = _end_access(conditions)
    db.session.execute(
        sa.update(_metrics)
        .where(conditions["metrics"], _metrics.c.deleted_time.is_(None))
        .values(deleted_time=now, modified_time=now)
    )
    record = DeletionRecord(kind=kind.value, requested_time=now, other_rows=removed)
    db.session.add(record)
    db.session.flush()
    db.session.add(
        PendingDeletion(record_id=record.id, kind=kind.value, subject_id=subject_id, created_time=now)
    )
    return record.id


def delete_device(actor: Actor, device_id: int, origin: Origin | None = None) -> Deletion:
    """Delete one of the actor's devices with its metrics, samples, rollups, events and every
    grant and token of it. Only a disabled device: Conflict for an active one ("disable it
    first"); NotFound for another user's, a missing or an already deleted device. At once it is
    gone and its credentials dead; its rows go in batches for up to DELETE_BUDGET_SECONDS here,
    the rest by purge_pending. Commits."""
    device = devices.get_device(actor, device_id)
    if device.state != DeviceState.DISABLED:
        raise Conflict(
            f"Device {device_id} is active: disable it first (DELETE /api/v1/device/{device_id}), "
            "then delete it with its data."
        )
    taken = db.session.execute(
        sa.update(_devices)
        .where(_devices.c.id == device.id, _devices.c.deleted_time.is_(None))
        .values(deleted_time=utcnow())
    )
    if _count(taken) != 1:  # a concurrent deletion got there first
        db.session.rollback()
        raise NotFound(f"You have no device with id {device_id}.")
    _kill_devices(_devices.c.id == device.id)
    db.session.execute(
        sa.update(_users).where(_users.c.id == device.user_id).values(device_count=_users.c.device_count - 1)
    )
    record_id = _start(DeletionKind.DEVICE, device.id, ownership(_devices, device.id))
    account_events.record(actor.id, AccountEventKind.DEVICE_DELETED, origin)
    db.session.commit()
    return Deletion(record_id, _finish_in_request(record_id))


def delete_account(user: User, password: str, origin: Origin | None = None) -> Deletion:
    """Delete the person's account and everything it owns, once `password` (entered again) is
    theirs: accounts.WrongPassword otherwise. At once: the email address is free (rewritten to a
    tombstone, so it can sign up again), every session, PAT, grant, application and device
    credential ends, and nothing of the account is readable; its rows go in batches for up to
    DELETE_BUDGET_SECONDS here, the rest by purge_pending. Commits."""
    if not check_password(user.password_hash, password):
        raise accounts.WrongPassword(
            "current_password: that is not your password.",
            {"current_password": ["That is not your password."]},
        )
    user_id = user.id
    account_events.record(user_id, AccountEventKind.ACCOUNT_DELETED, origin)
    db.session.execute(
        sa.update(_users)
        .where(_users.c.id == user_id)
        .values(
            email=f"deleted-{user_id}-{secrets.token_hex(8)}@{TOMBSTONE_DOMAIN}",
            password_hash=UNUSABLE_PASSWORD,
            first_name="",
            last_name="",
            session_version=_users.c.session_version + 1,
            device_count=0,
        )
    )
    _kill_devices(_devices.c.user_id == user_id)
    record_id = _start(DeletionKind.ACCOUNT, user_id, ownership(_users, user_id))
    db.session.commit()
    db.session.expire_all()
    return Deletion(record_id, _finish_in_request(record_id))


def _finish_in_request(record_id: int) -> bool:
    job = db.session.execute(sa.select(_pending).where(_pending.c.record_id == record_id)).first()
    return job is None or _work(job, time.monotonic() + DELETE_BUDGET_SECONDS)


def _work(job: Any, deadline: float) -> bool:
    """Remove the rows of one pending deletion, a batch per transaction, until `deadline`.
    True when the subject's last row is gone (the pending row too, the record finished)."""
    root = _users if job.kind == DeletionKind.ACCOUNT else _devices
    conditions = ownership(root, job.subject_id)
    record_id = job.record_id

    def counted(table: str, rows: int) -> None:
        if table == "quantity_samples":
            _add(record_id, samples=rows)
        else:
            _add(record_id, other_rows=rows)

    # Metrics marked at once; a metric a racing writer created since is marked now.
    now = utcnow()
    db.session.execute(
        sa.update(_metrics)
        .where(conditions["metrics"], _metrics.c.deleted_time.is_(None))
        .values(deleted_time=now, modified_time=now)
    )
    db.session.commit()
    metric_ids = db.session.scalars(sa.select(_metrics.c.id).where(conditions["metrics"])).all()
    for metric_id in metric_ids:
        if time.monotonic() > deadline or not metrics.purge_metric(metric_id, deadline, counted):
            return False
        _add(record_id, metrics=1)
        db.session.commit()
    for table in reversed(db.metadata.sorted_tables):  # children first
        if table is root or table.name not in conditions or table.name in WITH_METRICS:
            continue
        while True:
            removed = _delete_rows(table, conditions[table.name], DELETE_BATCH)
            if table is _devices:
                _add(record_id, devices=removed)
            else:
                _add(record_id, other_rows=removed)
            db.session.commit()
            if removed < DELETE_BATCH:
                break
            if time.monotonic() > deadline:
                return False
    tenant_id = None
    if root is _users:
        tenant_id = db.session.scalar(sa.select(_users.c.tenant_id).where(_users.c.id == job.subject_id))
    try:
        gone = _delete_rows(root, root.c.id == job.subject_id, None)
        _add(record_id, devices=gone if root is _devices else 0, other_rows=gone if root is _users else 0)
        db.session.execute(sa.delete(_pending).where(_pending.c.id == job.id))
        db.session.execute(
            sa.update(_records).where(_records.c.id == record_id).values(finished_time=utcnow())
        )
        db.session.commit()
    except sa.exc.IntegrityError:
        # A row written since its table's last batch still points at the subject: the next
        # run takes it.
        db.session.rollback()
        return False
    if tenant_id is not None:
        _drop_empty_tenant(tenant_id)
    return True


def _drop_empty_tenant(tenant_id: int) -> None:
    """Delete a tenant nobody is in any more (not the shared default one). Commits."""
    tenants = Tenant.__table__
    empty = ~sa.exists().where(_users.c.tenant_id == tenants.c.id)
    try:
        db.session.execute(
            sa.delete(tenants).where(
                tenants.c.id == tenant_id, tenants.c.name != accounts.DEFAULT_TENANT, empty
            )
        )
        db.session.commit()
    except sa.exc.IntegrityError:  # a sign-up joined it meanwhile, or rows still point at it
        db.session.rollback()


def purge_pending(budget_seconds: float = 300.0) -> tuple[int, int]:
    """Finish the deletions their requests left (for `flask maintenance`), oldest first, within
    `budget_seconds`. Returns (finished, still pending). Commits per batch."""
    deadline = time.monotonic() + budget_seconds
    jobs = db.session.execute(sa.select(_pending).order_by(_pending.c.id)).all()
    finished = 0
    for job in jobs:
        if time.monotonic() > deadline or not _work(job, deadline):
            break
        finished += 1
    return finished, len(jobs) - finished
