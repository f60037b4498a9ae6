"""One line diff for every versioned text: an agent's identity, its memory, a
project's documents (docs/security-model.md, F7 and "Memory and documents")."""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable

from app.core.errors import ApiError


def unified(old: str, new: str, from_version: int, to_version: int) -> str:
    """A unified diff of two texts, labelled ``v<from>`` and ``v<to>``. Lines are
    compared without their line ends, so a last line without a newline shows as one
    changed line rather than being glued to the next."""
    return "\n".join(
        difflib.unified_diff(
            old.splitlines(),
            new.splitlines(),
            fromfile=f"v{from_version}",
            tofile=f"v{to_version}",
            lineterm="",
        )
    )


async def version_diff(
    load: Callable[[int], Awaitable[str | None]], from_version: int, to_version: int, what: str
) -> str:
    """The diff between two stored versions (0 is the empty text); ``load`` returns a
    version's text or None, which is a 404 naming ``what``."""
    texts: list[str] = []
    for version in (from_version, to_version):
        if version == 0:
            texts.append("")
            continue
        text = await load(version)
        if text is None:
            raise ApiError(404, "not_found", f"no {what} version {version}")
        texts.append(text)
    return unified(texts[0], texts[1], from_version, to_version)
