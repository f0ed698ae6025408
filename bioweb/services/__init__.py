"""Use cases. Each public function takes the acting user explicitly, owns its transaction
(one commit), and raises AppError subclasses for anything a client can fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Actor(Protocol):
    """Who acts: a models.User, or the user behind a bearer token (tokens.UserRef)."""

    @property
    def id(self) -> int: ...

    @property
    def tenant_id(self) -> int: ...


@dataclass(frozen=True)
class Page:
    """One keyset page: the rows, how many there are in all, and the cursor for the next page."""

    results: list[Any]
    count: int
    next_id: int | None
