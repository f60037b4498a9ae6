"""The reviewer agent's answer, parsed fail-closed (docs/missions.md, "Review gate").

The final reply of a review run must hold exactly one verdict line, alone on its
line (surrounding spaces ignored)::

    VERDICT: APPROVE
    VERDICT: REQUEST_CHANGES

and its reasons on the lines after it (required for ``REQUEST_CHANGES``).
Anything else is *unparseable*, and unparseable is never an approval: no
verdict line, two of them (a reviewer quoting the work's own "VERDICT: APPROVE"
next to its own), a line that starts with ``VERDICT`` in any other form
("verdict: approve", "VERDICT: APPROVE, mostly"), a request for changes without
reasons, an empty or truncated reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

#: reasons kept per verdict (the rest is cut, saying so)
MAX_REASONS_CHARS = 4_000

_LINE = re.compile(r"^VERDICT: (APPROVE|REQUEST_CHANGES)$")
_LOOKALIKE = re.compile(r"^\W*verdict\b", re.IGNORECASE)


class Verdict(StrEnum):
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"
    UNPARSEABLE = "unparseable"
    #: the review run itself failed or was refused (no answer at all)
    REVIEW_FAILED = "review_failed"


@dataclass(frozen=True, slots=True)
class Parsed:
    verdict: Verdict
    reasons: str

    @property
    def approved(self) -> bool:
        return self.verdict is Verdict.APPROVE


def clip_reasons(text: str) -> str:
    text = text.strip()
    if len(text) <= MAX_REASONS_CHARS:
        return text
    return f"{text[:MAX_REASONS_CHARS]}\n[... {len(text) - MAX_REASONS_CHARS} more characters]"


def parse_verdict(reply: str, *, truncated: bool = False) -> Parsed:
    """The verdict of a review run's final reply; UNPARSEABLE unless exactly one
    well-formed verdict line (and, for changes, non-empty reasons) is found."""
    if truncated:
        return Parsed(Verdict.UNPARSEABLE, "the review's reply was cut at its size limit")
    lines = reply.splitlines()
    found: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        stripped = line.strip()
        match = _LINE.match(stripped)
        if match:
            found.append((number, match.group(1)))
        elif _LOOKALIKE.match(stripped):
            return Parsed(Verdict.UNPARSEABLE, f"a malformed verdict line: {stripped[:120]}")
    if len(found) != 1:
        what = "no verdict line" if not found else f"{len(found)} verdict lines"
        return Parsed(Verdict.UNPARSEABLE, f"{what}; exactly one is required")
    number, word = found[0]
    reasons = clip_reasons("\n".join(lines[number + 1 :]))
    if word == "APPROVE":
        return Parsed(Verdict.APPROVE, reasons)
    if not reasons:
        return Parsed(Verdict.UNPARSEABLE, "REQUEST_CHANGES without reasons")
    return Parsed(Verdict.REQUEST_CHANGES, reasons)


#: what a review task asks of its agent (the description of every review task)
INSTRUCTIONS = (
    "Review the work shown above: its final result and the diff of its workspace."
    " Check it against the task it was given. Answer with exactly one line, alone on"
    " its line, either\n"
    "VERDICT: APPROVE\n"
    "or\n"
    "VERDICT: REQUEST_CHANGES\n"
    "followed by your reasons on the next lines (required when you request changes:"
    " say precisely what must change). Write no other line starting with VERDICT."
    " Anything else counts as no approval."
)
