"""The diff of a run's workspace, for its reviewer (docs/missions.md, "Review gate").

Before a run of a task under review the worker takes a :func:`snapshot` of the
workspace; after it, :func:`diff` compares the workspace with it and writes a
unified diff of what the run added, changed and removed. No program runs in the
workspace (no ``git``: an agent-written ``.git/config`` could name a command for
git to run); the files are read directly, symlinks are never followed, and
everything is bounded: files walked, bytes read per file and in all, and the
size of the diff. The caller passes the result through the output gate (it is
agent output) before it is stored.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILES = 2_000
#: a file larger than this is compared by digest and shown as "changed (N bytes)"
MAX_TEXT_BYTES = 200_000
#: contents kept in memory per snapshot, in all
MAX_SNAPSHOT_BYTES = 8_000_000
MAX_DIFF_CHARS = 24_000
_SKIPPED_DIRS = frozenset({".git", "__pycache__", "node_modules", ".venv"})


@dataclass(frozen=True, slots=True)
class _File:
    size: int
    digest: str
    #: the text, when small enough and UTF-8; None otherwise
    text: str | None


@dataclass(slots=True)
class Snapshot:
    files: dict[str, _File] = field(default_factory=dict)
    #: the walk stopped at MAX_FILES
    partial: bool = False


def _read(path: Path, size: int, budget: list[int]) -> _File:
    # O_NOFOLLOW: a file swapped for a symlink after the lstat is refused, not followed
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        data = handle.read(MAX_TEXT_BYTES + 1) if size <= MAX_TEXT_BYTES else b""
        digest = hashlib.sha256(data)
        if size > MAX_TEXT_BYTES:
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                digest.update(chunk)
    text: str | None = None
    if data and len(data) <= MAX_TEXT_BYTES and budget[0] >= len(data) and b"\0" not in data:
        try:
            text = data.decode("utf-8")
            budget[0] -= len(data)
        except UnicodeDecodeError:
            text = None
    elif not data and size == 0:
        text = ""
    return _File(size, digest.hexdigest(), text)


def snapshot(root: Path) -> Snapshot:
    """Every regular file under ``root`` (relative path -> size, digest, text)."""
    result = Snapshot()
    budget = [MAX_SNAPSHOT_BYTES]
    for directory, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(directory) / name
            try:
                info = path.lstat()
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue  # symlinks, sockets, fifos: never opened
            if len(result.files) >= MAX_FILES:
                result.partial = True
                return result
            try:
                result.files[str(path.relative_to(root))] = _read(path, info.st_size, budget)
            except OSError:
                continue
    return result


def _one(name: str, old: _File | None, new: _File | None) -> str:
    if old is not None and new is not None and old.digest == new.digest:
        return ""
    old_text = "" if old is None else old.text
    new_text = "" if new is None else new.text
    if old_text is None or new_text is None:
        sizes = f"{old.size if old else 0} -> {new.size if new else 0} bytes"
        what = "added" if old is None else "removed" if new is None else "changed"
        return f"Binary or large file {name} {what} ({sizes})\n"
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else f"a/{name}",
        tofile="/dev/null" if new is None else f"b/{name}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def diff(before: Snapshot, root: Path, *, limit: int = MAX_DIFF_CHARS) -> str:
    """A unified diff from ``before`` to the workspace now, at most ``limit``
    characters (saying how much was cut); "" when nothing changed."""
    after = snapshot(root)
    parts: list[str] = []
    for name in sorted(set(before.files) | set(after.files)):
        part = _one(name, before.files.get(name), after.files.get(name))
        if part:
            parts.append(part)
    if before.partial or after.partial:
        parts.append(f"[the workspace has more than {MAX_FILES} files; the rest is not shown]\n")
    text = "".join(parts)
    if len(text) > limit:
        text = f"{text[:limit]}\n[... {len(text) - limit} more characters of diff not shown]\n"
    return text
