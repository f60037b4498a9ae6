"""``missionctl notify check`` and ``missionctl notify hosts``: the channels file
checked the way the notifier reads it (provisioning runs ``check`` before it
restarts the notifier, and ``hosts`` for the unit's egress allow-list)."""

from __future__ import annotations

import sys
from pathlib import Path

from app.core.settings import Settings
from app.notifications.channels import Channel, ChannelsError, load_channels


def _load(settings: Settings, file: str | None, command: str) -> list[Channel] | None:
    path = Path(file) if file else settings.notify_channels_path
    try:
        return load_channels(path)
    except ChannelsError as exc:
        print(f"missionctl notify {command}: {exc}", file=sys.stderr)
        return None


def check(settings: Settings, file: str | None) -> int:
    """0 when the file is usable; prints each channel's name and service, never its URL."""
    channels = _load(settings, file, "check")
    if channels is None:
        return 1
    if not channels:
        print("no channel: alerts stay on the Pi")
    for channel in channels:
        clear = "" if channel.encrypted else " (plain text)"
        print(f"{channel.name}: {channel.service} via {', '.join(channel.hosts)}{clear}")
    return 0


def hosts(settings: Settings, file: str | None) -> int:
    channels = _load(settings, file, "hosts")
    if channels is None:
        return 1
    for host in sorted({h for c in channels for h in c.hosts}):
        print(host)
    return 0
