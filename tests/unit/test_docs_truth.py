"""Docs that name code and tests stay true to the tree.

The findings table of ``docs/security-model.md`` names, for each control, the code that
implements it and the tests that fail without it; a renamed or deleted file would leave
the table lying. Code and docs name a control or a design document, never a number of a
tracker that is not part of the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECURITY_MODEL = ROOT / "docs" / "security-model.md"
TABLE_HEADING = "## Findings and the control that answers each"
# Every finding of the audit (shared/threat-model.md) has a row.
AUDIT_FINDINGS = {f"F{n}" for n in range(1, 31)}
PATH_IN_BACKTICKS = re.compile(r"`((?:app|tests|systemd|nginx|provisioning|scripts)/[^`\s]+)`")
# Released migrations are checksummed: their text can never change, comments included.
RELEASED_MIGRATION_COMMENTS = {"app/migrations/0003_health_samples.sql"}
TRACKER_NUMBER = re.compile(r"\b(?:issues?|tracker)\s*#?\d+\b", re.IGNORECASE)
SCANNED = ("app", "docs", "tests", "scripts", "provisioning", "systemd", "nginx", "bench")
SCANNED_FILES = ("README.md", "Makefile")
TEXT_SUFFIXES = {
    ".py",
    ".md",
    ".sql",
    ".sh",
    ".j2",
    ".yml",
    ".yaml",
    ".toml",
    ".html",
    ".js",
    ".css",
    ".service",
    ".timer",
    ".conf",
    ".ini",
    ".cfg",
    ".env",
    "",
}


def control_rows() -> dict[str, tuple[str, str]]:
    """Finding id -> (code column, test column) of the findings table."""
    text = SECURITY_MODEL.read_text(encoding="utf-8")
    assert TABLE_HEADING in text, "the findings table's heading moved"
    rows: dict[str, tuple[str, str]] = {}
    for line in text.split(TABLE_HEADING, 1)[1].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"F\d+", cells[0]):
            rows[cells[0]] = (cells[2], cells[3])
    return rows


def resolve(pattern: str) -> list[Path]:
    """A path named in the table; ``*`` patterns and ``path::name`` allowed."""
    path = pattern.split("::", 1)[0].rstrip("/")
    if any(ch in path for ch in "*?["):
        return sorted(ROOT.glob(path))
    candidate = ROOT / path
    return [candidate] if candidate.exists() else []


def test_every_audit_finding_has_a_row() -> None:
    assert set(control_rows()) >= AUDIT_FINDINGS, sorted(AUDIT_FINDINGS - set(control_rows()))


@pytest.mark.parametrize("finding", sorted(control_rows(), key=lambda f: int(f[1:])))
def test_each_control_names_code_and_tests_that_exist(finding: str) -> None:
    code, tests = control_rows()[finding]
    test_paths = PATH_IN_BACKTICKS.findall(tests)
    assert any(p.startswith("tests/") for p in test_paths), f"{finding} names no test"
    for named in PATH_IN_BACKTICKS.findall(code) + test_paths:
        assert resolve(named), f"{finding} names {named}, which does not exist"
    for named in test_paths:
        if "::" in named:
            file, name = named.split("::", 1)
            assert f"def {name}(" in (ROOT / file).read_text(encoding="utf-8"), named


def scanned_files() -> list[Path]:
    files = [ROOT / name for name in SCANNED_FILES]
    for top in SCANNED:
        for path in (ROOT / top).rglob("*"):
            if (
                path.is_file()
                and path.suffix in TEXT_SUFFIXES
                and "corpora" not in path.parts
                and "__pycache__" not in path.parts
            ):
                files.append(path)
    return files


def test_no_tracker_numbers_in_code_or_docs() -> None:
    found = []
    for path in scanned_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative in RELEASED_MIGRATION_COMMENTS or path == Path(__file__):
            continue
        for number, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        ):
            if TRACKER_NUMBER.search(line):
                found.append(f"{relative}:{number}: {line.strip()[:80]}")
    assert not found, "name the control or the design doc instead:\n" + "\n".join(found)
