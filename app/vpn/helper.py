"""The API's side of the root helper's protocol (scripts/mc-vpn-helper).

The API holds no privilege and no network: to list, add or revoke a WireGuard
peer it writes one request line (``list``, ``add NAME``, ``revoke NAME``) to the
helper's unix socket and reads one JSON answer. The helper checks who is calling
(SO_PEERCRED uid and the caller's unit) and the name again; this side checks the
name first, so a bad one never leaves the process (fail closed on both sides).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

#: A peer's name: the same rule as mc-vpn's check_name and the helper's NAME
#: (tests/api/test_vpn_api.py keeps the three equal).
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,30}$"
NAME_RULE = "1-31 of a-z 0-9 -, starting with a letter or digit"
_NAME = re.compile(NAME_PATTERN)

MAX_ANSWER = 256 * 1024
TIMEOUT_S = 90.0


class HelperError(Exception):
    """The helper refused or could not be reached; ``code`` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


async def ask(socket_path: Path, *words: str) -> dict[str, Any]:
    """One request to the helper; its answer when ``ok``, else ``HelperError``."""
    if not words or words[0] not in ("list", "add", "revoke"):
        raise HelperError("bad_request", "commands: list, add NAME, revoke NAME")
    if words[0] != "list" and (len(words) != 2 or not valid_name(words[1])):
        raise HelperError("bad_name", f"name: use {NAME_RULE}")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(socket_path), limit=MAX_ANSWER), 5.0
        )
    except (OSError, TimeoutError):
        raise HelperError(
            "helper_unavailable",
            "the VPN helper is not reachable (is mission-control-vpn-helper.socket"
            " running on the Pi?)",
        ) from None
    try:
        writer.write((" ".join(words) + "\n").encode("ascii"))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), TIMEOUT_S)
    except (OSError, TimeoutError, ValueError):
        raise HelperError("helper_failed", "the VPN helper did not answer in time") from None
    finally:
        writer.close()
    try:
        answer = json.loads(line)
    except ValueError:
        raise HelperError("helper_failed", "the VPN helper's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise HelperError("helper_failed", "the VPN helper's answer is not an object")
    if answer.get("ok") is not True:
        raise HelperError(str(answer.get("error", "failed")), str(answer.get("message", "")))
    return answer
