"""The human a test's tokens act for (every token has an owning user)."""

from __future__ import annotations

from app.auth import service, store
from app.core.database import Database
from app.security.principal import Scope

OWNER = "test-owner"
OWNER_PASSWORD = "correct horse battery staple"


async def owner_id(db: Database, name: str = OWNER) -> int:
    """The id of user ``name`` (role read, so it is never the last admin), made once."""
    row = await store.user_by_name(db, name)
    if row is not None:
        return int(row["id"])
    created = await service.create_user(
        db, username=name, password=OWNER_PASSWORD, role=Scope.READ, actor="test", client="test"
    )
    return created.id
