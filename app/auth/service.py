"""Token and user operations shared by the HTTP API and the CLI; each is audited."""

from __future__ import annotations

import sqlite3

from app.auth import store
from app.auth.schemas import TokenCreated, TokenView, UserView
from app.core.clock import in_future
from app.core.database import Database, Row
from app.core.errors import ApiError
from app.security import audit
from app.security.passwords import RULES, PasswordPolicyError, hash_password
from app.security.principal import Scope
from app.security.tokens import generate_token


def weak_password(message: str, field: str) -> ApiError:
    """422 naming the password field, with the rule it broke and the fix."""
    return ApiError(
        422,
        "weak_password",
        message,
        [{"loc": ["body", field], "type": "weak_password", "message": f"{message}: {RULES}"}],
    )


def token_view(row: Row) -> TokenView:
    return TokenView(
        public_id=row["public_id"],
        name=row["name"],
        scope=Scope(row["scope"]),
        created_by=row["created_by"],
        owner=row["owner"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


def user_view(row: Row) -> UserView:
    return UserView(
        id=row["id"],
        username=row["username"],
        role=Scope(row["role"]),
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        password_changed_at=row["password_changed_at"],
    )


async def create_token(
    db: Database,
    key: bytes,
    *,
    name: str,
    scope: Scope,
    expires_days: int | None,
    actor: str,
    client: str,
    owner_user_id: int | None = None,
) -> TokenCreated:
    """A new token owned by ``owner_user_id``, the human it acts for.

    The CLI requires an owner (``--owner USER``) and a token made through the
    API inherits its creator's human (``Principal.human_id``). A token without
    an owner (made before owners existed, or by a test fixture) still
    authenticates, but what it proposes cannot be approved: the two-person
    checks cannot tell who is behind it (``app/auth/owners.py``)."""
    new = generate_token(key)
    expires_at = in_future(days=expires_days) if expires_days else None
    async with db.write() as conn:
        await store.insert_token(
            conn,
            public_id=new.public_id,
            name=name,
            token_hash=new.token_hash,
            scope=scope.value,
            created_by=actor,
            expires_at=expires_at,
            owner_user_id=owner_user_id,
        )
        await audit.append(
            conn,
            actor=actor,
            action="token.created",
            target=f"token:{new.public_id}",
            client=client,
            summary={
                "name": name,
                "scope": scope.value,
                "expires_at": expires_at,
                "owner_user_id": owner_user_id,
            },
        )
    row = await store.token_by_public_id(db, new.public_id)
    assert row is not None
    return TokenCreated(**token_view(row).model_dump(), token=new.plaintext)


async def revoke_token(db: Database, public_id: str, *, actor: str, client: str) -> None:
    async with db.write() as conn:
        if not await store.revoke_token(conn, public_id):
            raise ApiError(404, "not_found", "no active token with that id")
        await audit.append(
            conn, actor=actor, action="token.revoked", target=f"token:{public_id}", client=client
        )


async def create_user(
    db: Database, *, username: str, password: str, role: Scope, actor: str, client: str
) -> UserView:
    try:
        password_hash = hash_password(password)
    except PasswordPolicyError as exc:
        raise weak_password(str(exc), "password") from None
    try:
        async with db.write() as conn:
            user_id = await store.insert_user(conn, username, password_hash, role.value)
            await audit.append(
                conn,
                actor=actor,
                action="user.created",
                target=f"user:{username}",
                client=client,
                summary={"role": role.value},
            )
    except sqlite3.IntegrityError:
        raise ApiError(409, "conflict", "a user with that name exists") from None
    row = await store.user_by_id(db, user_id)
    assert row is not None
    return user_view(row)


async def reset_password(
    db: Database, *, username: str, password: str, actor: str, client: str
) -> None:
    user = await store.user_by_name(db, username)
    if user is None:
        raise ApiError(404, "not_found", "no such user")
    try:
        password_hash = hash_password(password)
    except PasswordPolicyError as exc:
        raise weak_password(str(exc), "new_password") from None
    async with db.write() as conn:
        await store.set_password(conn, int(user["id"]), password_hash)
        await store.delete_user_sessions(conn, int(user["id"]))
        await audit.append(
            conn,
            actor=actor,
            action="user.password_reset",
            target=f"user:{username}",
            client=client,
        )


async def update_user(
    db: Database,
    *,
    user_id: int,
    role: Scope | None,
    disabled: bool | None,
    actor: str,
    client: str,
) -> UserView:
    async with db.write() as conn:
        async with conn.execute("SELECT username, role FROM users WHERE id = ?", (user_id,)) as cur:
            existing = await cur.fetchone()
        if existing is None:
            raise ApiError(404, "not_found", "no such user")
        await store.update_user(conn, user_id, role=role.value if role else None, disabled=disabled)
        if await store.count_admins(conn) == 0:
            raise ApiError(409, "last_admin", "the last active admin cannot be demoted or disabled")
        if disabled:
            await store.delete_user_sessions(conn, user_id)
        await audit.append(
            conn,
            actor=actor,
            action="user.updated",
            target=f"user:{existing['username']}",
            client=client,
            summary={"role": role.value if role else None, "disabled": disabled},
        )
    row = await store.user_by_id(db, user_id)
    assert row is not None
    return user_view(row)
