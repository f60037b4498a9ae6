"""What a profile may configure per runtime: its ``options`` keys and the files of a
subscription login (docs/capability.md, "Subscription logins").

One table per fact: the profiles loader checks a profile's ``options`` against
:data:`RUNTIME_OPTIONS` when the file is loaded (an unknown key or a wrong value is
refused then, naming the key and the fix, not when a run starts), and the runtime
adapters read their options through :func:`check_options` too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_PROVIDER_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_ENV_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
WIRE_APIS = ("responses",)


def _provider(value: str) -> bool:
    return bool(_PROVIDER_RE.match(value))


def _env_name(value: str) -> bool:
    return bool(_ENV_RE.match(value))


def _base_url(value: str) -> bool:
    if not value.startswith(("http://", "https://")):
        return False
    if any(ch in value for ch in "\n\r\x00 \t"):
        return False
    host = value.split("/")[2] if value.count("/") >= 2 else ""
    return bool(host) and "@" not in host


def _wire_api(value: str) -> bool:
    return value in WIRE_APIS


@dataclass(frozen=True, slots=True)
class Option:
    """One option key: its check and what a good value looks like."""

    check: Callable[[str], bool]
    rule: str


_PROVIDER = Option(_provider, "a short lower-case name (a-z, 0-9, '_', '-'; up to 32)")
_BASE_URL = Option(
    _base_url, "an http(s) URL without spaces or user:password (e.g. http://127.0.0.1:11434/v1)"
)
_ENV_KEY = Option(
    _env_name, "an upper-case environment variable name the profile's env_allow lists"
)

#: the options each runtime reads; every value is a string
RUNTIME_OPTIONS: dict[str, dict[str, Option]] = {
    "claude-code": {},
    "gemini": {},
    "generic": {},
    "codex": {
        "provider": _PROVIDER,
        "base_url": _BASE_URL,
        "env_key": _ENV_KEY,
        "wire_api": Option(_wire_api, f"one of: {', '.join(WIRE_APIS)}"),
    },
    "opencode": {"provider": _PROVIDER, "base_url": _BASE_URL, "env_key": _ENV_KEY},
}

#: keys that need another key: (runtime, key) -> the keys it needs
_NEEDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("codex", "provider"): ("base_url",),
    ("codex", "base_url"): ("provider",),
    ("codex", "env_key"): ("provider",),
    ("opencode", "provider"): ("base_url",),
    ("opencode", "base_url"): ("provider",),
    ("opencode", "env_key"): ("provider",),
}
#: keys a runtime cannot run without
_REQUIRED: dict[str, tuple[str, ...]] = {"opencode": ("provider", "base_url")}

#: where each CLI keeps its subscription login, relative to HOME (the login
#: directory holds the same paths): Claude Code's ``claude login``, Codex's
#: ``codex login``, Gemini CLI's Google sign-in, opencode's ``opencode auth login``
LOGIN_FILES: dict[str, tuple[str, ...]] = {
    "claude-code": (".claude/.credentials.json",),
    "codex": (".codex/auth.json",),
    "gemini": (".gemini/oauth_creds.json",),
    "opencode": (".local/share/opencode/auth.json",),
}


def check_options(runtime: str, options: Mapping[str, Any]) -> dict[str, str]:
    """``options`` checked for ``runtime``; raises ``ValueError`` naming the key and
    the fix (never echoing a value: an option is not a secret, but it is not needed)."""
    known = RUNTIME_OPTIONS.get(runtime, {})
    checked: dict[str, str] = {}
    for key, value in options.items():
        option = known.get(key)
        if option is None:
            names = ", ".join(sorted(known)) or "none"
            raise ValueError(
                f"option {key!r} is not an option of the {runtime} runtime (its options:"
                f" {names}); remove it or correct its name"
            )
        if not isinstance(value, str) or not option.check(value):
            got = "" if isinstance(value, str) else f" (got {type(value).__name__})"
            raise ValueError(f"option {key!r} must be {option.rule}{got}; correct its value")
        checked[key] = value
    for key in checked:
        for needed in _NEEDS.get((runtime, key), ()):
            if needed not in checked:
                raise ValueError(
                    f"option {key!r} of the {runtime} runtime needs option {needed!r} too; add it"
                )
    for needed in _REQUIRED.get(runtime, ()):
        if needed not in checked:
            raise ValueError(
                f"the {runtime} runtime needs option {needed!r}"
                f" ({known[needed].rule}); add it under [profiles.<name>.options]"
            )
    return checked
