"""The scan: every detector over the text as written, then over its normalised
view around the edits (evasions); and the public ``scan``, ``redact`` and
``contains_credential`` built on it.
"""

from __future__ import annotations

from app.security.credential_gate.auth_headers import find_auth_headers
from app.security.credential_gate.evasions import edit_windows, normalised_view
from app.security.credential_gate.formats import find_formats
from app.security.credential_gate.keyed import find_keyed
from app.security.credential_gate.model import (
    Candidate,
    CredentialKind,
    Finding,
    Redaction,
    marker,
)
from app.security.credential_gate.private_keys import find_private_keys
from app.security.credential_gate.resolve import merge_findings, resolve_findings
from app.security.credential_gate.tokens import find_tokens
from app.security.credential_gate.urls import find_database_urls


def _scan_view(text: str) -> list[Finding]:
    """Every secret in ``text`` as written (no normalisation)."""
    # str.lower() keeps every index except for U+0130, which becomes two
    # characters; replacing it first keeps the lower-cased copy aligned.
    lowered = text.replace("\u0130", "i").lower()
    aligned = len(lowered) == len(text)
    candidates: list[Candidate] = []
    find_private_keys(text, candidates)
    find_tokens(text, candidates)
    find_database_urls(text, candidates)
    find_formats(text, lowered if aligned else None, candidates)
    if aligned:
        find_auth_headers(text, lowered, candidates)
        find_keyed(text, lowered, candidates)
    return resolve_findings(text, candidates)


def _scan_formats(text: str) -> list[Finding]:
    """Only the detectors of ``evasions._JOIN_KINDS``: what a joined line may produce."""
    candidates: list[Candidate] = []
    find_private_keys(text, candidates)
    find_tokens(text, candidates)
    return resolve_findings(text, candidates)


def _evasions(text: str, findings: list[Finding]) -> list[Finding]:
    view = normalised_view(text)
    if view is None:
        return findings
    extra: list[Finding] = []
    for lo, hi, joins_only in edit_windows(view):
        scanner = _scan_formats if joins_only else _scan_view
        for f in scanner(view.text[lo:hi]):
            f_start, f_end = f.start + lo, f.end + lo
            if view.accepts(f_start, f_end, f.kind):
                extra.append(Finding(f.kind, view.to_original(f_start), view.to_original(f_end)))
    if view.overflow != -1:
        cut = view.overflow
        findings = [f for f in findings if f.end <= cut]
        extra = [f for f in extra if f.end <= cut]
        extra.append(Finding(CredentialKind.GENERIC_SECRET, cut, len(text)))
    if not extra:
        return findings
    return merge_findings(findings, extra)


def scan(text: str) -> list[Finding]:
    """Every secret in ``text``: non-overlapping findings sorted by position."""
    if not text:
        return []
    return _evasions(text, _scan_view(text))


# redact() rescans its own output until nothing is found, so that its result
# is a fixed point (redacting it again is a no-op). One extra scan is the rule;
# more than two passes needs contrived input.
_MAX_PASSES = 8


def redact(text: str) -> Redaction:
    """Replace each secret by ``[REDACTED:<kind>]``; idempotent."""
    counts: dict[CredentialKind, int] = {}
    for _ in range(_MAX_PASSES):
        findings = scan(text)
        if not findings:
            break
        parts: list[str] = []
        pos = 0
        for finding in findings:
            parts.append(text[pos : finding.start])
            parts.append(marker(finding.kind))
            pos = finding.end
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        parts.append(text[pos:])
        text = "".join(parts)
    return Redaction(text=text, counts=counts)


def contains_credential(text: str) -> bool:
    """True when ``text`` holds at least one secret."""
    return bool(scan(text))
