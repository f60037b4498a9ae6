"""The backups page (scope admin): the archives (``app/backup/service.py``, the same
list as ``GET /api/backups``), the last off-box copy and the restore commands.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.backup.offsite import last_offsite_copy
from app.backup.service import backups as backup_list
from app.core.context import Ctx
from app.security.principal import Scope
from app.ui.auth import UiSession, refuse_page
from app.ui.page_kit import ui_page

router = APIRouter(include_in_schema=False)


@router.get("/ui/backups", response_class=HTMLResponse)
async def backups_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    if not principal.scope.allows(Scope.ADMIN):
        return await refuse_page(request, ctx, principal, Scope.ADMIN)
    settings = ctx.settings
    appliance = settings.listen_uds is not None
    return await ui_page(
        request,
        principal,
        ctx,
        "backups.html",
        title="Backups",
        section="backups",
        backups=await backup_list(ctx),
        folder=str(settings.backups_path.absolute()),
        max_age_hours=settings.monitor_backup_max_age_hours,
        offsite=last_offsite_copy(settings.state_dir, settings.monitor_backup_max_age_hours),
        keep={"daily": settings.backup_keep_daily, "weekly": settings.backup_keep_weekly},
        missionctl=(
            str(settings.release_root / "current" / "venv" / "bin" / "missionctl")
            if appliance
            else ".venv/bin/missionctl"
        ),
        appliance=appliance,
    )
