"""The regex registry, the flood guard and the expressions several detectors share.

Every expression of the package is made by :func:`compiled`, which compiles it and
registers it in ``_PATTERNS`` so a test can check that none has a nested or an
unbounded quantifier (``docs/credential-gate.md``).
"""

from __future__ import annotations

import re

from app.security.credential_gate.model import Candidate, CredentialKind

_PATTERNS: list[re.Pattern[str]] = []


def compiled(source: str) -> re.Pattern[str]:
    pattern = re.compile(source)
    _PATTERNS.append(pattern)
    return pattern


# Flood guard. Matching is linear, but each match of an expression costs a few
# microseconds of Python to validate and resolve. Real source code and prose
# give about ten matches per MB for the busiest expression; past this many in
# one text, the input is a flood (a credential dump or an attack) and the rest
# of the text, from the next match on, is redacted as one finding. Fail-safe
# (decoys cannot push a secret out of reach) and bounded in time.
_FLOOD_MATCHES = 20_000


def flooded(
    count: int, m: re.Match[str], text: str, out: list[Candidate], p: int, kind: CredentialKind
) -> bool:
    """True (after redacting the rest of ``text``) when ``count`` reaches the bound."""
    if count < _FLOOD_MATCHES:
        return False
    out.append((p, m.start(), len(text), kind))
    return True


DIGIT = compiled(r"[0-9]")
LETTER = compiled(r"[^\W\d_]")
SPACE = compiled(r"\s")
# A redaction marker: never a secret, skipped by the detectors and the resolution.
MARKER = compiled(
    r"\[REDACTED:(?:" + "|".join(re.escape(kind.value) for kind in CredentialKind) + r")\]"
)
# A percent-encoded printable character (%20 to %7F).
PERCENT = compiled(r"%[2-7][0-9A-Fa-f]")
