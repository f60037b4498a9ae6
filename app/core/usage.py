"""Batched last-used times of tokens and sessions.

Writing a timestamp on every authenticated request would turn read traffic
into SD-card writes; instead the times are kept in memory and flushed in one
transaction every ``last_used_flush_s`` seconds and at shutdown.

A session seen since the last flush is idle-checked on the monotonic clock (a
wall-clock jump, as when a Pi without a battery clock synchronises, does not
end it); the stored ``idle_expires_at`` that takes over after the flush is
wall-clock, because it must outlive the process (docs/operations.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from app.core.clock import iso, now_iso, parse_iso
from app.core.database import Database


class UsageRecorder:
    def __init__(self, db: Database, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._monotonic = monotonic
        self._tokens: dict[int, str] = {}
        #: session id -> (wall-clock time to store, monotonic time to idle-check)
        self._sessions: dict[int, tuple[str, float]] = {}

    def token_used(self, token_id: int) -> None:
        self._tokens[token_id] = now_iso()

    def session_seen(self, session_id: int) -> None:
        self._sessions[session_id] = (now_iso(), self._monotonic())

    def session_last_seen(self, session_id: int) -> str | None:
        entry = self._sessions.get(session_id)
        return None if entry is None else entry[0]

    def session_active(self, session_id: int, idle_minutes: int) -> bool:
        """Seen since the last flush, less than ``idle_minutes`` ago (monotonic)."""
        entry = self._sessions.get(session_id)
        return entry is not None and self._monotonic() - entry[1] < idle_minutes * 60

    def forget_session(self, session_id: int) -> None:
        self._sessions.pop(session_id, None)

    async def flush(self, idle_minutes: int) -> int:
        tokens, self._tokens = self._tokens, {}
        sessions, self._sessions = self._sessions, {}
        if not tokens and not sessions:
            return 0
        async with self._db.write() as conn:
            await conn.executemany(
                "UPDATE api_tokens SET last_used_at = ? WHERE id = ?",
                [(ts, token_id) for token_id, ts in tokens.items()],
            )
            await conn.executemany(
                "UPDATE sessions SET last_seen_at = ?, idle_expires_at = ? WHERE id = ?",
                [
                    (ts, iso(parse_iso(ts) + timedelta(minutes=idle_minutes)), session_id)
                    for session_id, (ts, _) in sessions.items()
                ],
            )
        return len(tokens) + len(sessions)
