"""The normalised view of a text, for evasions: a secret split by a zero-width
character, wrapped onto the next line, or percent-encoded.

The text is scanned a second time in a normalised view (zero-width characters
removed, wrapped lines joined, %XX decoded), around the edits only
(:func:`edit_windows`). A finding of that view is kept when it spans an edit
(:meth:`_View.accepts`: otherwise the first scan has judged that text already);
it is mapped back onto the original text (:meth:`_View.to_original`) and
merged with the findings of the first scan (``resolve.merge_findings``). A joined line
break only counts for kinds with a recognisable format (prefixed tokens, AWS
ids, private keys): joining two lines of ordinary text must not turn a value
into a password or a generic secret.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass

from app.security.credential_gate.heuristics import has_digit, wordy
from app.security.credential_gate.model import CredentialKind
from app.security.credential_gate.patterns import LETTER, PERCENT, compiled
from app.security.credential_gate.tokens import TOKEN_RULES

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"
_ZERO_WIDTH_RUN = compiled("[" + _ZERO_WIDTH + "]{1,64}+")
_WRAP = r"[A-Za-z0-9_\-+/=]{4}"
# A line that ends inside a token (4+ token characters, optionally a
# backslash continuation) continued by a line whose first word is made of
# token characters only ("=" only as base64 padding at the end of the line).
_LINE_JOIN = compiled(
    rf"\n(?:(?<={_WRAP}\n)|(?<={_WRAP}\r\n)|(?<={_WRAP}\\\n)|(?<={_WRAP}\\\r\n))[ \t]{{0,64}}+"
    r"(?=[A-Za-z0-9_\-+/]{1,4096}+(?:={1,3}(?:[\r\n\"'`]|\Z)|[\s\"'`]|\Z))"
)
_FIELD_AFTER = compiled(r"[A-Za-z0-9_\-+/=]{1,4096}+")
# The literals that start a formatted token, made specific ("gh" is in "high").
_JOIN_PREFIXES = tuple(
    sorted(
        {literal for rule in TOKEN_RULES for literal in rule.literals} - {"gh", "shp", "xox"}
        | {f"gh{c}_" for c in "pousr"}
        | {f"shp{c}_" for c in ("at", "ss", "ca", "pa")}
        | {f"xox{c}-" for c in "abposr"}
    )
)
_JOIN_KINDS = frozenset(
    {
        CredentialKind.API_KEY,
        CredentialKind.AWS_KEY,
        CredentialKind.GITHUB_TOKEN,
        CredentialKind.OAUTH_TOKEN,
        CredentialKind.PRIVATE_KEY,
        CredentialKind.SLACK_TOKEN,
        CredentialKind.STRIPE_KEY,
    }
)
# Fail-safe bound, as for the detectors: past this many edits the rest of the
# text is one finding. Real text has a few hundred per MB.
_MAX_EDITS = 50_000
# The view is scanned around its edits only: the joined line, bounded.
_WINDOW_BACK = 2048
_WINDOW_AHEAD = 8192
_WINDOW_MERGE = 4096  # fewer, larger windows: each scan has a fixed cost
# password%3Dhunter2: the edit that made the finding may be in its key.
_EDIT_CONTEXT = 64

_REMOVED = 0
_DECODED = 1
_JOINED = 2
_RUN_MAX = 256
# A token run from its prefix to a line break (checked with fullmatch).
_RUN = compiled(r"[A-Za-z0-9_\-+/=.]{1,512}")


def _joins(text: str, limit: int) -> list[tuple[int, int, int]]:
    """The line breaks to join: each continues a token that starts with a known
    literal (a join only counts for formatted kinds, which all do).

    Led by the literals, not by the lines: from each literal, while the rest
    of its line is token characters and the next line starts with a
    random-looking word, the break is joined and the next line followed (a
    token split over several lines). Each literal and each line is read once;
    at most ``limit`` literals are followed (past that, no more joins).
    """
    starts: list[int] = []
    for literal in _JOIN_PREFIXES:
        at = text.find(literal)
        while at != -1 and len(starts) < limit:
            starts.append(at)
            at = text.find(literal, at + 1)
    starts.sort()
    out: list[tuple[int, int, int]] = []
    done = -1
    for pos in starts:
        if pos < done:
            continue  # inside a run already followed
        while True:
            newline = text.find("\n", pos, pos + _RUN_MAX + 2)
            if newline == -1:
                break
            brk = newline
            if text.startswith("\r", brk - 1):
                brk -= 1
            if text.startswith("\\", brk - 1):
                brk -= 1
            if brk <= pos or _RUN.fullmatch(text, pos, brk) is None:
                break
            join = _LINE_JOIN.match(text, newline)
            if join is None:
                break
            field = _FIELD_AFTER.match(text, join.end())
            if field is None or not _random_half(field.group()):
                break  # the next line starts with a word, not the rest of a token
            out.append((brk, join.end(), _JOINED))
            if len(out) >= limit:
                return out
            pos = join.end()
        done = pos
    return out


def _random_half(value: str) -> bool:
    """The continuation of a split token: letters with digits, or mixed case, not words."""
    if len(value) < 4:
        return False
    if has_digit(value) and LETTER.search(value) is not None:
        return True
    return len(value) >= 8 and value not in (value.lower(), value.upper()) and not wordy(value)


@dataclass(frozen=True, slots=True)
class _View:
    text: str
    edits: list[int]  # view positions: a removal before q, or the decoded char at q
    kinds: list[int]  # _REMOVED, _DECODED or _JOINED, per edit
    view_bounds: list[int]  # view positions where the offset to the original changes
    orig_bounds: list[int]  # the original positions there
    overflow: int  # original position from which the text was not normalised, or -1

    def to_original(self, i: int) -> int:
        k = bisect.bisect_right(self.view_bounds, i) - 1
        return self.orig_bounds[k] + (i - self.view_bounds[k])

    def accepts(self, start: int, end: int, kind: CredentialKind) -> bool:
        """Whether an edit made the finding ``[start, end)`` of the view.

        A removed zero-width character or a decoded ``%XX`` counts inside the
        span or in the ``_EDIT_CONTEXT`` characters before it (the key may
        have been disguised); a joined line break only strictly inside the
        span, and only for formatted kinds.
        """
        k = bisect.bisect_left(self.edits, start - _EDIT_CONTEXT)
        while k < len(self.edits) and self.edits[k] < end:
            q, edit = self.edits[k], self.kinds[k]
            k += 1
            if edit != _JOINED:
                if q >= start or "\n" not in self.text[q:start]:
                    return True  # inside, or in the key on the same line
                continue
            if q > start and kind in _JOIN_KINDS:
                return True
        return False


def _edit_spans(text: str) -> list[tuple[int, int, int]]:
    """(start, end, kind) of the first edits (at most the bound + 1), sorted."""
    limit = _MAX_EDITS + 1
    spans: list[tuple[int, int, int]] = []
    if any(ch in text for ch in _ZERO_WIDTH):
        found = itertools.islice(_ZERO_WIDTH_RUN.finditer(text), limit)
        spans.extend((m.start(), m.end(), _REMOVED) for m in found)
    if "%" in text:
        found = itertools.islice(PERCENT.finditer(text), limit)
        spans.extend((m.start(), m.end(), _DECODED) for m in found)
    spans.extend(_joins(text, limit))
    spans.sort()
    return spans


def normalised_view(text: str) -> _View | None:
    spans = _edit_spans(text)
    if not spans:
        return None
    parts: list[str] = []
    edits: list[int] = []
    kinds: list[int] = []
    view_bounds = [0]
    orig_bounds = [0]
    pos = 0
    vpos = 0
    overflow = -1
    for count, (start, end, edit) in enumerate(spans):
        if count >= _MAX_EDITS:
            overflow = start
            break
        if start < pos:
            continue
        parts.append(text[pos:start])
        vpos += start - pos
        edits.append(vpos)
        kinds.append(edit)
        if edit == _DECODED:
            parts.append(chr(int(text[start + 1 : end], 16)))
            vpos += 1
        view_bounds.append(vpos)
        orig_bounds.append(end)
        pos = end
    if overflow == -1:
        parts.append(text[pos:])
    return _View("".join(parts), edits, kinds, view_bounds, orig_bounds, overflow)


def edit_windows(view: _View) -> list[tuple[int, int, bool]]:
    """The lines of the view that hold an edit (bounded), merged; and whether
    a window holds joined line breaks only."""
    text = view.text
    n = len(text)
    out: list[tuple[int, int, bool]] = []
    for q, edit in zip(view.edits, view.kinds, strict=True):
        joined = edit == _JOINED
        if out and q < out[-1][1]:
            if not joined and out[-1][2]:
                out[-1] = (out[-1][0], out[-1][1], False)
            continue  # inside the previous window
        lo = max(0, q - _WINDOW_BACK)
        start = text.rfind("\n", lo, q) + 1 or lo
        hi = min(n, q + _WINDOW_AHEAD)
        stop = text.find("\n", q, hi)
        end = hi if stop == -1 else stop
        if out and start <= out[-1][1] + _WINDOW_MERGE:
            out[-1] = (out[-1][0], end, out[-1][2] and joined)
        else:
            out.append((start, end, joined))
    return out
