"""Token, user and own-session operations of the HTTP API and the CLI; each is audited.

A route hands its one ``caller: Caller`` (``app/access/caller.py``) to the functions
that take it, as every domain's service does. The CLI (``missionctl token`` and
``user``, the first run) and test fixtures act without a principal, so
``create_token``, ``revoke_token``, ``create_user`` and ``reset_password`` take the
``actor`` and ``client`` strings (such as ``cli:root`` and ``cli``) and the
caller-taking functions (``..._as``) wrap them: the audit row is the same either
way (docs/CONTRIBUTING-domain.md, "Transactions"). Logging in is not here: before
authentication there is no principal (``app/auth/router.py``, ``login``).
"""

from __future__ import annotations

import asyncio
import sqlite3

from app.access.caller import Caller
from app.auth import store
from app.auth.caller_audit import append_as
from app.auth.initial import holds_initial_password, remove_initial_password
from app.auth.schemas import PasswordChange, TokenCreated, TokenView, UserView
from app.core.clock import in_future
from app.core.context import AppContext
from app.core.database import Database, Row
from app.core.errors import ApiError
from app.security import audit
from app.security.passwords import RULES, PasswordPolicyError, hash_password, verify_password
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


async def create_token_as(
    db: Database,
    key: bytes,
    *,
    name: str,
    scope: Scope,
    expires_days: int | None,
    caller: Caller,
) -> TokenCreated:
    """A token made over HTTP belongs to the caller's human: the logged-in user, or
    the owner of the calling token. A token without an owner cannot make one (403
    ``owner_required``): the new one would have none."""
    owner = caller.principal.human_id
    if owner is None:
        raise ApiError(
            403,
            "owner_required",
            "the calling token has no owning user, so the new token would have none: "
            "create tokens from a logged-in session or with `missionctl token create --owner USER`",
        )
    return await create_token(
        db,
        key,
        name=name,
        scope=scope,
        expires_days=expires_days,
        actor=caller.actor,
        client=caller.client,
        owner_user_id=owner,
    )


async def revoke_token(db: Database, public_id: str, *, actor: str, client: str) -> None:
    async with db.write() as conn:
        if not await store.revoke_token(conn, public_id):
            raise ApiError(404, "not_found", "no active token with that id")
        await audit.append(
            conn, actor=actor, action="token.revoked", target=f"token:{public_id}", client=client
        )


async def revoke_token_as(db: Database, public_id: str, caller: Caller) -> None:
    await revoke_token(db, public_id, actor=caller.actor, client=caller.client)


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


async def create_user_as(
    db: Database, *, username: str, password: str, role: Scope, caller: Caller
) -> UserView:
    return await create_user(
        db,
        username=username,
        password=password,
        role=role,
        actor=caller.actor,
        client=caller.client,
    )


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


async def reset_password_as(db: Database, *, username: str, password: str, caller: Caller) -> None:
    await reset_password(
        db, username=username, password=password, actor=caller.actor, client=caller.client
    )


async def update_user(
    db: Database,
    *,
    user_id: int,
    role: Scope | None,
    disabled: bool | None,
    caller: Caller,
) -> UserView:
    """An admin changes a user's role or disables the account (no CLI command does)."""
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
        await append_as(
            conn,
            caller,
            "user.updated",
            target=f"user:{existing['username']}",
            summary={"role": role.value if role else None, "disabled": disabled},
        )
    row = await store.user_by_id(db, user_id)
    assert row is not None
    return user_view(row)


# --- the caller's own session and password ------------------------------------------


async def log_out(ctx: AppContext, caller: Caller) -> None:
    """End the caller's session (a cookie caller; a token has none to end)."""
    session_id = caller.principal.session_id
    if session_id is None:
        return
    async with ctx.db.write() as conn:
        await store.delete_session(conn, session_id)
        await append_as(conn, caller, "auth.logout")
    ctx.usage.forget_session(session_id)


async def change_own_password(ctx: AppContext, caller: Caller, body: PasswordChange) -> None:
    """The logged-in user's new password; every session of the user ends. When the
    old one was the first run's generated password, its file goes too
    (``app/auth/initial.py``)."""
    principal = caller.principal
    if principal.user_id is None:
        raise ApiError(400, "not_a_user", "only a logged-in user can change a password")
    user = await store.user_by_name(ctx.db, principal.name)
    if user is None or not verify_password(user["password_hash"], body.current_password):
        raise ApiError(403, "wrong_password", "the current password is wrong")
    try:
        new_hash = hash_password(body.new_password)
    except PasswordPolicyError as exc:
        raise weak_password(str(exc), "new_password") from None
    generated = await asyncio.to_thread(
        holds_initial_password, ctx.settings.state_dir, body.current_password
    )
    async with ctx.db.write() as conn:
        await store.set_password(conn, principal.user_id, new_hash)
        await store.delete_user_sessions(conn, principal.user_id)
        await append_as(
            conn,
            caller,
            "user.password_changed",
            target=f"user:{principal.name}",
            summary={"initial_password_file_removed": True} if generated else None,
        )
    if generated:  # the first-run password is no longer in use: its file goes too
        await asyncio.to_thread(remove_initial_password, ctx.settings.state_dir)
