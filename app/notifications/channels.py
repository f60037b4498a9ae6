"""The notification channels file: names and apprise URLs (docs/notifications.md).

Read only by the notifier process (``missionctl notify run|check|hosts``); the
API process never opens it and never imports this module (a channel URL holds
the secret: a topic, a bot token, a password).

The file is TOML, one ``[[channel]]`` table per channel::

    [[channel]]
    name = "phone"                 # what the UI shows
    url = "ntfys://my-secret-topic"
    # allow_plaintext = true       # only for a receiver on a network you trust
    # hosts = ["ntfy.example.net"] # when the host cannot be told from the URL

Controls (each refused with a message naming the file and the fix):

* the file is opened without following a symlink; it must be owned by root (or
  by the user running the notifier, for development) and must not be writable
  by its group or others, nor readable by others;
* names are short plain words, unique; URLs parse as an apprise service;
* a channel that would send in the clear to a host other than loopback is
  refused unless it says ``allow_plaintext = true``.

Errors and ``repr`` never show a URL; only the channel name and service kind.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_CHANNELS = 16
MAX_FILE_BYTES = 64 * 1024


class ChannelsError(Exception):
    """The channels file is unusable; the message is safe to show (no URL)."""


@dataclass(frozen=True)
class Channel:
    name: str
    #: the apprise URL: a secret, never logged, shown or stored
    url: str = field(repr=False)
    #: the apprise service kind, e.g. "ntfy", "Telegram", "JSON" (no secret)
    service: str
    #: the host names this channel contacts (for the egress allow-list)
    hosts: tuple[str, ...]
    encrypted: bool


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def silence_libraries() -> None:
    """apprise's and urllib3's own log lines can hold a URL's host, path, topic or
    token (even at DEBUG): they never reach the journal. The warnings of each
    call are read from its result and reduced to a reason (``delivery.ApprisePort``)."""
    for name in ("apprise", "urllib3", "requests"):
        logging.getLogger(name).propagate = False


def _plugin(url: str) -> Any:
    import apprise

    silence_libraries()
    return apprise.Apprise.instantiate(url, asset=quiet_asset(), suppress_exceptions=True)


def quiet_asset() -> Any:
    """An apprise asset that keeps nothing on disk and hides secrets in its own logs."""
    import apprise

    return apprise.AppriseAsset(
        storage_mode=apprise.PersistentStoreMode.MEMORY, secure_logging=True
    )


def endpoint(plugin: Any) -> tuple[str | None, bool]:
    """The host a plugin contacts and whether it speaks TLS to it."""
    url = None
    if getattr(plugin, "mode", None) == "cloud":
        url = getattr(plugin, "cloud_notify_url", None)
    url = url or getattr(type(plugin), "notify_url", None)
    if isinstance(url, str) and url.startswith("https://"):
        return (None if "{" in url else urlsplit(url).hostname), True
    smtp = getattr(plugin, "smtp_host", None)
    host = smtp or getattr(plugin, "host", None)
    return (str(host).lower() if host else None), bool(getattr(plugin, "secure", False))


def _channel(entry: object, index: int) -> Channel:
    where = f"channel {index + 1}"
    if not isinstance(entry, dict):
        raise ChannelsError(f"{where}: expected a [[channel]] table")
    unknown = sorted(set(entry) - {"name", "url", "allow_plaintext", "hosts"})
    if unknown:
        raise ChannelsError(
            f"{where}: unknown keys {unknown}; allowed: name, url, hosts, allow_plaintext"
        )
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ChannelsError(
            f"{where}: name must be 1-32 characters of a-z, 0-9, '-' or '_' (e.g. \"phone\")"
        )
    where = f"channel {name!r}"
    url = entry.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ChannelsError(f"{where}: url is missing (an apprise URL, e.g. ntfys://topic)")
    plugin = _plugin(url.strip())
    if plugin is None:
        raise ChannelsError(
            f"{where}: the url is not a valid apprise URL (see https://appriseit.com/services/)"
        )
    host, encrypted = endpoint(plugin)
    hosts_given = entry.get("hosts")
    if hosts_given is not None:
        if not isinstance(hosts_given, list) or not all(
            isinstance(h, str) and h.strip() for h in hosts_given
        ):
            raise ChannelsError(f"{where}: hosts must be a list of host names")
        hosts = tuple(h.strip().lower() for h in hosts_given)
    elif host:
        hosts = (host,)
    else:
        raise ChannelsError(
            f'{where}: cannot tell which host this service contacts; add hosts = ["..."]'
        )
    plaintext = entry.get("allow_plaintext", False)
    if not isinstance(plaintext, bool):
        raise ChannelsError(f"{where}: allow_plaintext must be true or false")
    if not encrypted and not plaintext and not all(_is_loopback(h) for h in hosts):
        raise ChannelsError(
            f"{where}: this URL sends in the clear to {', '.join(hosts)}; use the TLS form"
            " of the service (e.g. ntfys://, jsons://, mailtos://) or set allow_plaintext = true"
            " for a receiver on a network you trust"
        )
    return Channel(name, url.strip(), str(plugin.service_name), hosts, encrypted)


def check_file_safe(path: Path, st: os.stat_result) -> None:
    """Refuse a file others could change or read (it holds the channels' secrets)."""
    if not stat.S_ISREG(st.st_mode):
        raise ChannelsError(f"{path} is not a regular file")
    if st.st_uid not in (0, os.geteuid()):
        raise ChannelsError(
            f"{path} is owned by uid {st.st_uid}; it must belong to root:"
            f" sudo chown root:mission-control-notify {path}"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_IROTH):
        raise ChannelsError(
            f"{path} has mode {stat.S_IMODE(st.st_mode):04o}: others may read it or others"
            f" may change it; fix: sudo chmod 0640 {path}"
        )


def load_channels(path: Path) -> list[Channel]:
    """The configured channels; none when the file does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ChannelsError(f"{path} cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        check_file_safe(path, os.fstat(handle.fileno()))
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise ChannelsError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # the parser's message quotes no value, only what it expected and where
        raise ChannelsError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"channel"})
    if unknown:
        raise ChannelsError(f"{path}: unknown keys {unknown}; only [[channel]] tables")
    entries = data.get("channel", [])
    if not isinstance(entries, list):
        raise ChannelsError(f"{path}: channel must be [[channel]] tables")
    if len(entries) > MAX_CHANNELS:
        raise ChannelsError(f"{path}: at most {MAX_CHANNELS} channels")
    channels = [_channel(entry, i) for i, entry in enumerate(entries)]
    names = [c.name for c in channels]
    if len(set(names)) != len(names):
        raise ChannelsError(f"{path}: channel names must be unique")
    return channels


def url_secrets(path: Path, min_part_chars: int) -> set[str]:
    """The secret parts of every channel URL in the file (for the support bundle's
    redaction of known values); empty when the file cannot be read. No check of
    the file's mode here: redaction must work on a file that is refused."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return set()
    found: set[str] = set()
    entries = data.get("channel", [])
    for entry in entries if isinstance(entries, list) else []:
        url = entry.get("url") if isinstance(entry, dict) else None
        if not isinstance(url, str):
            continue
        parts = urlsplit(url.strip())
        found.add(url.strip())
        pieces = [*parts.path.split("/"), parts.netloc.rpartition("@")[0], parts.query]
        pieces += parts.netloc.rpartition("@")[0].split(":")
        found.update(p for p in pieces if len(p) >= min_part_chars)
    return found
