"""Backups over HTTP, for the UI's Backups page: list, create, verify (scope admin).

Restoring replaces the live database and stops the service meanwhile, so it is
not offered over HTTP: the page shows the command to run on the Pi. A backup is
named only by its file name, checked against the archive pattern, and looked up
in the backup folder: no path from the request reaches the filesystem.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from app.access.caller import AdminCaller
from app.access.dependencies import AdminAccess
from app.backup.archive import PREFIX, SUFFIX, BackupError, create_backup, rotate, verify_backup
from app.backup.service import BackupView, backup_view, backups
from app.core.context import Ctx
from app.core.errors import ApiError
from app.events.transaction import transaction

router = APIRouter(prefix="/api/backups", tags=["backups"])

NAME_PATTERN = rf"^{re.escape(PREFIX)}\d{{8}}T\d{{6}}Z{re.escape(SUFFIX)}$"
BackupName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=80)]

_lock = asyncio.Lock()  # one backup (or verification) at a time: they read the whole file


class BackupCreated(BaseModel):
    backup: BackupView
    rotated_out: list[str]


class BackupVerified(BaseModel):
    name: str
    ok: bool
    message: str


@router.get("", response_model=list[BackupView])
async def get_backups(_: AdminAccess, ctx: Ctx) -> list[BackupView]:
    """Scope admin. The archives in the backup folder, newest first."""
    return await backups(ctx)


@router.post("", status_code=201, response_model=BackupCreated)
async def post_backup(caller: AdminCaller, ctx: Ctx) -> BackupCreated:
    """Scope admin. An online snapshot, checked, compressed, with its checksum;
    then the same rotation as the nightly backup. 409 while another one runs,
    507 when the disk has no room (nothing is written then)."""
    settings = ctx.settings
    if _lock.locked():
        raise ApiError(409, "backup_running", "a backup is being made; wait for it to finish")
    async with _lock:
        try:
            info = await asyncio.to_thread(
                create_backup, settings.database_path, settings.backups_path
            )
        except BackupError as exc:
            raise ApiError(507, "backup_failed", str(exc)) from None
        deleted = await asyncio.to_thread(
            rotate, settings.backups_path, settings.backup_keep_daily, settings.backup_keep_weekly
        )
    async with transaction(ctx, caller.actor, caller.client) as tx:
        await tx.audit(
            "backup.create",
            f"backup:{info.path.name}",
            {"size": info.size, "rotated_out": [p.name for p in deleted]},
        )
    return BackupCreated(backup=backup_view(info), rotated_out=[p.name for p in deleted])


@router.post("/{name}/verify", response_model=BackupVerified)
async def post_verify(name: BackupName, caller: AdminCaller, ctx: Ctx) -> BackupVerified:
    """Scope admin. Checksum and integrity of one archive (a damaged one answers
    200 with ``ok: false`` and the reason; a name that is not there, 404)."""
    archive = ctx.settings.backups_path / name
    if not archive.is_file():
        raise ApiError(404, "not_found", "no such backup")
    async with _lock:
        try:
            copy = await asyncio.to_thread(verify_backup, archive)
        except BackupError as exc:
            ok, message = False, str(exc)
        else:
            await asyncio.to_thread(shutil.rmtree, copy.parent, True)
            ok, message = True, "checksum and integrity ok"
    async with transaction(ctx, caller.actor, caller.client) as tx:
        await tx.audit(
            "backup.verify", f"backup:{name}", {"ok": ok}, outcome="ok" if ok else "failed"
        )
    return BackupVerified(name=name, ok=ok, message=message)
