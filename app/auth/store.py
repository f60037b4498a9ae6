"""SQL for users, API tokens and sessions. Every query is parameterised."""

from __future__ import annotations

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database, Row
from app.core.pagination import PageParams

USER_COLUMNS = "id, username, role, disabled, created_at, updated_at, password_changed_at"
API_TOKENS_COLUMNS = (
    "id, public_id, name, scope, created_by, created_at, expires_at, revoked_at, last_used_at,"
    " owner_user_id,"
    " (SELECT username FROM users WHERE users.id = api_tokens.owner_user_id) AS owner"
)


# users ---------------------------------------------------------------------
async def insert_user(
    conn: aiosqlite.Connection, username: str, password_hash: str, role: str
) -> int:
    now = now_iso()
    cursor = await conn.execute(
        "INSERT INTO users (username, password_hash, role, created_at, updated_at,"
        " password_changed_at) VALUES (?, ?, ?, ?, ?, ?)",
        (username, password_hash, role, now, now, now),
    )
    return int(cursor.lastrowid or 0)


async def user_by_name(db: Database, username: str) -> Row | None:
    return await db.fetch_one(
        f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = ?",
        (username,),
    )


async def user_by_id(db: Database, user_id: int) -> Row | None:
    return await db.fetch_one(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,))


async def list_users(db: Database, page: PageParams) -> tuple[list[Row], int]:
    rows = await db.fetch_all(
        f"SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT ? OFFSET ?",
        (page.limit, page.offset),
    )
    total = await db.fetch_one("SELECT count(*) FROM users")
    return rows, int(total[0]) if total else 0


async def count_admins(conn: aiosqlite.Connection) -> int:
    async with conn.execute(
        "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0"
    ) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def count_users(db: Database) -> int:
    row = await db.fetch_one("SELECT count(*) FROM users")
    return int(row[0]) if row else 0


async def update_user(
    conn: aiosqlite.Connection, user_id: int, *, role: str | None, disabled: bool | None
) -> None:
    if role is not None:
        await conn.execute(
            "UPDATE users SET role = ?, updated_at = ? WHERE id = ?", (role, now_iso(), user_id)
        )
    if disabled is not None:
        await conn.execute(
            "UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?",
            (int(disabled), now_iso(), user_id),
        )


async def set_password(conn: aiosqlite.Connection, user_id: int, password_hash: str) -> None:
    now = now_iso()
    await conn.execute(
        "UPDATE users SET password_hash = ?, password_changed_at = ?, updated_at = ? WHERE id = ?",
        (password_hash, now, now, user_id),
    )


# tokens --------------------------------------------------------------------
async def insert_token(
    conn: aiosqlite.Connection,
    *,
    public_id: str,
    name: str,
    token_hash: str,
    scope: str,
    created_by: str,
    expires_at: str | None,
    owner_user_id: int | None,
) -> int:
    cursor = await conn.execute(
        "INSERT INTO api_tokens (public_id, name, token_hash, scope, created_by, created_at,"
        " expires_at, owner_user_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (public_id, name, token_hash, scope, created_by, now_iso(), expires_at, owner_user_id),
    )
    return int(cursor.lastrowid or 0)


async def token_by_public_id(db: Database, public_id: str) -> Row | None:
    return await db.fetch_one(
        f"SELECT {API_TOKENS_COLUMNS} FROM api_tokens WHERE public_id = ?", (public_id,)
    )


async def list_tokens(db: Database, page: PageParams) -> tuple[list[Row], int]:
    rows = await db.fetch_all(
        f"SELECT {API_TOKENS_COLUMNS} FROM api_tokens ORDER BY id LIMIT ? OFFSET ?",
        (page.limit, page.offset),
    )
    total = await db.fetch_one("SELECT count(*) FROM api_tokens")
    return rows, int(total[0]) if total else 0


async def revoke_token(conn: aiosqlite.Connection, public_id: str) -> bool:
    cursor = await conn.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE public_id = ? AND revoked_at IS NULL",
        (now_iso(), public_id),
    )
    return cursor.rowcount > 0


# sessions ------------------------------------------------------------------
async def insert_session(
    conn: aiosqlite.Connection,
    *,
    session_hash: str,
    user_id: int,
    csrf_token: str,
    client: str,
    idle_expires_at: str,
    absolute_expires_at: str,
) -> int:
    now = now_iso()
    cursor = await conn.execute(
        "INSERT INTO sessions (session_hash, user_id, csrf_token, client, created_at,"
        " last_seen_at, idle_expires_at, absolute_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (session_hash, user_id, csrf_token, client, now, now, idle_expires_at, absolute_expires_at),
    )
    return int(cursor.lastrowid or 0)


async def delete_session(conn: aiosqlite.Connection, session_id: int) -> None:
    await conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


async def delete_user_sessions(conn: aiosqlite.Connection, user_id: int) -> None:
    await conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))


async def purge_expired_sessions(conn: aiosqlite.Connection) -> int:
    now = now_iso()
    cursor = await conn.execute(
        "DELETE FROM sessions WHERE absolute_expires_at < ? OR idle_expires_at < ?", (now, now)
    )
    return cursor.rowcount
