"""The Backups page's "last off-box copy": recorded by ``missionctl backup
offsite-done`` (run by the backup role's off-Pi copy after rsync succeeded),
shown with a warning when there is none or it is older than the backup bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from app.backup.offsite import last_offsite_copy, marker_path, record_offsite_copy
from app.core.context import AppContext
from tests.support.api import login
from tests.support.cli import missionctl

HTML = {"Accept": "text/html"}


async def backups_page(client: httpx.AsyncClient) -> str:
    page = await client.get("/ui/backups", headers=HTML)
    assert page.status_code == 200, page.text
    return page.text


async def test_the_page_warns_without_a_copy_and_when_it_is_old(
    client: httpx.AsyncClient, ctx: AppContext, admin_user: str
) -> None:
    await login(client, admin_user)
    state = ctx.settings.state_dir
    assert 'id="offsite-none"' in await backups_page(client)

    record_offsite_copy(state)
    fresh = await backups_page(client)
    assert 'id="offsite-last"' in fresh and "just now" in fresh
    assert 'id="offsite-stale"' not in fresh and 'id="offsite-none"' not in fresh

    hours = ctx.settings.monitor_backup_max_age_hours
    record_offsite_copy(state, datetime.now(UTC) - timedelta(hours=hours + 1))
    old = await backups_page(client)
    assert 'id="offsite-stale"' in old and f"older than {hours} h" in old

    marker_path(state).write_text("not json")  # a damaged record counts as none
    assert 'id="offsite-none"' in await backups_page(client)


def test_missionctl_records_the_copy(tmp_path: Path) -> None:
    done = missionctl(tmp_path, "backup", "offsite-done")
    assert done.returncode == 0, done.stderr
    marker = marker_path(tmp_path / "state")
    assert marker.stat().st_mode & 0o777 == 0o600
    copy = last_offsite_copy(tmp_path / "state", 36)
    assert copy.copied_at is not None and not copy.stale
    assert abs((datetime.now(UTC) - copy.copied_at).total_seconds()) < 120
