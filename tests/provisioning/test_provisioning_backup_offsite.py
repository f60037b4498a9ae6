"""The backup role's off-Pi copy drop-in: rsync first, then the record the
Backups page shows ("last off-box copy"), which a failed rsync never writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.provisioning import ROLES, render_template

CURRENT_MISSIONCTL = "/opt/mission-control/current/venv/bin/missionctl"


def test_the_copy_is_recorded_only_after_rsync(role_vars: Callable[..., dict[str, Any]]) -> None:
    variables = role_vars(
        "backup",
        backup_offsite_target="backup@nas.example:/srv/mc",
        backup_offsite_dir="/var/lib/mission-control/offsite",
        ansible_managed="test",
    )
    text = render_template(ROLES / "backup" / "templates" / "backup-offsite.conf.j2", variables)
    posts = [
        line.split("=", 1)[1] for line in text.splitlines() if line.startswith("ExecStartPost=")
    ]
    assert [p.split()[0] for p in posts] == ["/usr/bin/rsync", CURRENT_MISSIONCTL]
    # no "-" prefix: a failed rsync stops the unit before the record is written
    assert posts[1].split()[1:] == ["backup", "offsite-done"]
