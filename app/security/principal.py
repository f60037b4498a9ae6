"""Who is calling, and with which scope (F25)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    READ = "read"
    OPERATE = "operate"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Scope) -> bool:
        return self.rank >= needed.rank


_RANK = {Scope.READ: 1, Scope.OPERATE: 2, Scope.ADMIN: 3}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user session or an API token."""

    kind: str  # "session" or "token"
    scope: Scope
    name: str  # username or token name, safe to log
    user_id: int | None = None
    token_id: int | None = None
    token_public_id: str | None = None
    session_id: int | None = None
    csrf_token: str | None = None
    owner_user_id: int | None = None  # a token's owning human

    @property
    def human_id(self) -> int | None:
        """The person behind this caller: a session's user, a token's owner."""
        return self.user_id if self.kind == "session" else self.owner_user_id

    @property
    def actor(self) -> str:
        """How the audit log names this caller (never a secret)."""
        if self.kind == "token":
            return f"token:{self.token_public_id}"
        return f"user:{self.name}"

    @property
    def is_human(self) -> bool:
        return self.kind == "session" or self.user_id is not None
