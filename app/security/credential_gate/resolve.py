"""Resolution: candidates become non-overlapping findings (markers are never
secrets; lower priority numbers win overlaps), and the findings of the
normalised view are merged with those of the first scan.
"""

from __future__ import annotations

import bisect

from app.security.credential_gate.model import MARKER_PREFIX, Candidate, CredentialKind, Finding
from app.security.credential_gate.patterns import MARKER, compiled

_ALNUM = compiled(r"[A-Za-z0-9]")


def _uncovered(
    text: str, start: int, end: int, covered: list[tuple[int, int]], covered_ends: list[int]
) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` outside ``covered`` that hold a letter or digit."""
    k = bisect.bisect_right(covered_ends, start)
    pieces: list[tuple[int, int]] = []
    pos = start
    while k < len(covered) and covered[k][0] < end:
        if covered[k][0] > pos and _ALNUM.search(text, pos, covered[k][0]):
            pieces.append((pos, covered[k][0]))
        pos = max(pos, covered[k][1])
        k += 1
    if pos < end and _ALNUM.search(text, pos, end):
        pieces.append((pos, end))
    return pieces


def resolve_findings(text: str, candidates: list[Candidate]) -> list[Finding]:
    """Pick non-overlapping findings.

    Lower priority numbers win; within a priority the leftmost, then longest,
    candidate wins. The part of a candidate that overlaps a better finding or
    a ``[REDACTED:...]`` marker is cut out; what remains is kept when it holds
    a letter or digit. Markers are therefore never redacted again, and a value
    that a better finding only partly covered is still redacted in full.
    """
    covered: list[tuple[int, int]] = []  # markers and accepted findings, sorted, disjoint
    if MARKER_PREFIX in text:
        covered = [m.span() for m in MARKER.finditer(text)]
    by_priority: dict[int, list[tuple[int, int, CredentialKind]]] = {}
    for priority, start, end, kind in candidates:
        level = by_priority.get(priority)
        if level is None:
            level = by_priority[priority] = []
        # (start, -end): leftmost first, then longest, with a plain tuple sort.
        level.append((start, -end, kind))
    accepted: list[tuple[int, int, CredentialKind]] = []
    for priority in sorted(by_priority):
        level = by_priority[priority]
        level.sort()
        covered_ends = [e for _, e in covered]
        new: list[tuple[int, int, CredentialKind]] = []
        append = new.append
        last_end = 0
        for start, neg_end, kind in level:
            end = -neg_end
            if end <= last_end or end <= start:
                continue  # inside a candidate of the same priority
            clipped = start < last_end
            if clipped:
                start = last_end
            last_end = end
            k = bisect.bisect_right(covered_ends, start) if covered else 0
            if not clipped and (k == len(covered) or covered[k][0] >= end):
                append((start, end, kind))
                continue
            for piece_start, piece_end in _uncovered(text, start, end, covered, covered_ends):
                append((piece_start, piece_end, kind))
        if new:
            covered = sorted(covered + [(s, e) for s, e, _ in new])
            accepted.extend(new)
    accepted.sort()
    return [Finding(kind, start, end) for start, end, kind in accepted]


def merge_findings(first: list[Finding], normalised: list[Finding]) -> list[Finding]:
    """Overlapping findings become one; a normalised finding names the kind.

    A secret split by an evasion is often partly found by the first scan
    (``ghp_`` + 36 characters before a zero-width space, or the whole value
    as a generic secret): the finding of the normalised view, which saw the
    whole token, covers both and gives the specific kind.
    """
    tagged = sorted(
        [(f.start, f.end, 1, f.kind) for f in first]
        + [(f.start, f.end, 0, f.kind) for f in normalised]
    )
    out: list[Finding] = []
    cur_start, cur_end, cur_rank, cur_kind = tagged[0]
    for start, end, rank, kind in tagged[1:]:
        if start < cur_end:
            cur_end = max(cur_end, end)
            if rank < cur_rank:
                cur_rank, cur_kind = rank, kind
            continue
        out.append(Finding(cur_kind, cur_start, cur_end))
        cur_start, cur_end, cur_rank, cur_kind = start, end, rank, kind
    out.append(Finding(cur_kind, cur_start, cur_end))
    return out
