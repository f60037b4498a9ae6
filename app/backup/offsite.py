"""When a backup was last copied off the Pi (the Backups page's "last off-box copy").

The backup role's optional off-Pi copy (rsync over SSH, a drop-in of
mission-control-backup.service) runs ``missionctl backup offsite-done`` after
rsync succeeded; that writes the time here. A backup that exists only on the
Pi's card does not survive the card, so the page warns when there is no copy
or the last one is older than ``monitor_backup_max_age_hours`` (the same bound
as the newest backup's age).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

MARKER = "backup-offsite.json"
MAX_MARKER_BYTES = 4096


@dataclass(frozen=True)
class OffsiteCopy:
    #: None: no copy off the Pi was ever recorded
    copied_at: datetime | None
    stale: bool
    max_age_hours: int

    @property
    def copied_at_iso(self) -> str | None:
        if self.copied_at is None:
            return None
        return self.copied_at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def marker_path(state_dir: Path) -> Path:
    return state_dir / MARKER


def record_offsite_copy(state_dir: Path, now: datetime | None = None) -> datetime:
    """Write the time of a finished off-Pi copy (atomically, 0600)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    path = marker_path(state_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    with open(tmp, "w", encoding="utf-8", opener=lambda p, f: os.open(p, f, 0o600)) as out:
        json.dump({"copied_at": moment.isoformat().replace("+00:00", "Z")}, out)
    tmp.replace(path)
    return moment


def last_offsite_copy(
    state_dir: Path, max_age_hours: int, now: datetime | None = None
) -> OffsiteCopy:
    """The last recorded copy; an unreadable or malformed record counts as none."""
    copied_at: datetime | None = None
    try:
        with marker_path(state_dir).open("rb") as handle:
            data = json.loads(handle.read(MAX_MARKER_BYTES))
        copied_at = datetime.fromisoformat(str(data["copied_at"]).replace("Z", "+00:00"))
        if copied_at.tzinfo is None:
            copied_at = None
    except (OSError, ValueError, KeyError, TypeError):
        copied_at = None
    moment = now or datetime.now(UTC)
    stale = copied_at is None or moment - copied_at > timedelta(hours=max_age_hours)
    return OffsiteCopy(copied_at=copied_at, stale=stale, max_age_hours=max_age_hours)
