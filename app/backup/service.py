"""The archives of the backup folder as the API and the UI's Backups page show
them: name, time taken (UTC), size, whether its checksum file is there. One
function, called by both; no router calls another."""

from __future__ import annotations

import asyncio
from datetime import UTC

from pydantic import BaseModel

from app.backup.archive import BackupInfo, list_backups
from app.core.context import AppContext


class BackupView(BaseModel):
    name: str
    taken_at: str
    size: int
    checksum: bool


def backup_view(info: BackupInfo) -> BackupView:
    return BackupView(
        name=info.path.name,
        taken_at=info.taken_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        size=info.size,
        checksum=info.path.with_name(info.path.name + ".sha256").exists(),
    )


async def backups(ctx: AppContext) -> list[BackupView]:
    """The archives, newest first."""
    found = await asyncio.to_thread(list_backups, ctx.settings.backups_path)
    return [backup_view(b) for b in found]
