"""Reading the audit log: one query, used by the API and the UI page."""

from __future__ import annotations

import json

from app.audit.schemas import AuditRecord
from app.core.database import Database
from app.core.pagination import Page, PageParams

# A NULL filter matches every row, so the statement is one constant string.
_FILTER = "(? IS NULL OR action LIKE ? ESCAPE '\\') AND (? IS NULL OR actor = ?)"
_LIST = (
    "SELECT id, ts, actor, action, target, client, outcome, summary, hash FROM audit_log"
    f" WHERE {_FILTER} ORDER BY id DESC LIMIT ? OFFSET ?"
)
_COUNT = f"SELECT count(*) FROM audit_log WHERE {_FILTER}"


def _prefix_pattern(prefix: str) -> str:
    """A LIKE pattern matching ``prefix`` literally at the start."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def list_records(
    db: Database, page: PageParams, *, action: str | None, actor: str | None
) -> Page[AuditRecord]:
    """Newest first, filtered by action prefix and exact actor."""
    pattern = _prefix_pattern(action) if action else None
    params = (pattern, pattern, actor or None, actor or None)
    rows = await db.fetch_all(_LIST, (*params, page.limit, page.offset))
    total_row = await db.fetch_one(_COUNT, params)
    items = [AuditRecord(**{**dict(r), "summary": json.loads(r["summary"])}) for r in rows]
    return Page[AuditRecord].build(items, int(total_row[0]) if total_row else 0, page)
