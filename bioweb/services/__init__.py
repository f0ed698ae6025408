"""Use cases. Each public function takes the acting user explicitly, owns its transaction
(one commit), and raises AppError subclasses for anything a client can fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Actor(Protocol):
    """Who acts: a models.User (the dashboard, the CLI), or a Principal (a bearer token)."""

    @property
    def id(self) -> int: ...

    @property
    def tenant_id(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Principal:
    """The actor behind a bearer token (an Actor): the user it acts for, its scopes, and for
    a device's own token the device row the check already read (so a device reading itself
    costs no second query, and services can hold it to its own device)."""

    id: int
    tenant_id: int
    scope: str
    device: Any = None  # a devices row (sa.Row) for a device access token, else None
    token_id: int | None = None  # the PAT's id, for a personal access token
    grant_id: int | None = None  # the grant, for an access token of the authorization-code flow
