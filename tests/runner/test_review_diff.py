"""The workspace diff a reviewer sees (app/runner/workspace_diff.py): what a run
added, changed and removed, without following a symlink, bounded in size."""

from __future__ import annotations

import os
from pathlib import Path

from app.runner.workspace_diff import diff, snapshot


def test_the_diff_shows_what_changed_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("same\n")
    (tmp_path / "edited.txt").write_text("one\ntwo\n")
    (tmp_path / "gone.txt").write_text("bye\n")
    before = snapshot(tmp_path)
    (tmp_path / "edited.txt").write_text("one\nthree\n")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "new.txt").write_text("hello\n")
    (tmp_path / "blob.bin").write_bytes(b"\0\1\2")
    text = diff(before, tmp_path)
    assert "kept.txt" not in text
    assert "--- a/edited.txt\n+++ b/edited.txt" in text and "-two\n+three\n" in text
    assert "--- a/gone.txt\n+++ /dev/null" in text and "-bye\n" in text
    assert "+++ b/sub/new.txt" in text and "+hello\n" in text
    assert "Binary or large file blob.bin added (0 -> 3 bytes)" in text
    assert diff(snapshot(tmp_path), tmp_path) == ""


def test_a_symlink_is_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("host secret\n")
    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(work)
    os.symlink(secret, work / "link.txt")
    assert "host secret" not in diff(before, work)


def test_the_diff_is_bounded(tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    (tmp_path / "big.txt").write_text("x\n" * 50_000)
    text = diff(before, tmp_path, limit=1_000)
    assert len(text) < 1_100 and "more characters of diff not shown" in text
