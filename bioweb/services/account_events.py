"""What happened to an account: sign-in, sign-out, password changed, reset requested and used,
email confirmed, export made, device and account deleted; each with its time, client address,
request id and browser. The person reads them on the account page, newest first.

`record` only adds a row to the caller's transaction (like services.events.add), so an event
commits or rolls back with what it records.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..extensions import db
from ..models import AccountEvent, AccountEventKind, utcnow
from . import Actor
from .events import Origin

USER_AGENT_LENGTH = 200
IP_LENGTH = 45
REQUEST_ID_LENGTH = 64
PAGE_SIZE = 20


def record(user_id: int, kind: AccountEventKind, origin: Origin | None) -> None:
    """Append one event of the account `user_id` (no commit: it joins the caller's transaction)."""
    origin = origin or Origin()
    db.session.add(
        AccountEvent(
            user_id=user_id,
            kind=AccountEventKind(kind).value,
            time=utcnow(),
            ip=origin.ip[:IP_LENGTH] if origin.ip else None,
            request_id=origin.request_id[:REQUEST_ID_LENGTH] if origin.request_id else None,
            user_agent=(origin.user_agent or "")[:USER_AGENT_LENGTH],
        )
    )


@dataclass(frozen=True)
class EventPage:
    events: list[AccountEvent]
    # Pass as `before` for the next (older) page; None on the last page.
    next_before: int | None


def list_events(actor: Actor, before: int | None = None, limit: int = PAGE_SIZE) -> EventPage:
    """The actor's events, newest first: `limit` of them with ids below `before` (keyset on
    (user_id, id), so any page is one index range). Reads only."""
    statement = sa.select(AccountEvent).where(AccountEvent.user_id == actor.id)
    if before is not None:
        statement = statement.where(AccountEvent.id < before)
    rows = list(db.session.scalars(statement.order_by(AccountEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return EventPage(rows, rows[-1].id if more else None)
