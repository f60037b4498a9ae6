"""The two reads that authenticate a request: a token by its public id, a session
by the hash of its cookie. The auth domain writes these rows (app/auth/store.py);
the access layer only reads them, so it needs nothing from the auth domain."""

from __future__ import annotations

from app.core.database import Database, Row


async def token_for_auth(db: Database, public_id: str) -> Row | None:
    """Every token-authenticated request: a unique-key read, done at once."""
    return await db.fetch_one_quick(
        "SELECT id, public_id, name, scope, token_hash, expires_at, revoked_at, owner_user_id"
        " FROM api_tokens WHERE public_id = ?",
        (public_id,),
    )


async def session_for_auth(db: Database, session_hash: str) -> Row | None:
    return await db.fetch_one(
        "SELECT s.id, s.user_id, s.csrf_token, s.idle_expires_at, s.absolute_expires_at,"
        " u.username, u.role, u.disabled FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.session_hash = ?",
        (session_hash,),
    )
