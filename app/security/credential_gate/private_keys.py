"""Detector: PEM, OpenSSH and PGP private key blocks, terminated or truncated."""

from __future__ import annotations

import re

from app.security.credential_gate.model import P_PRIVATE_KEY, Candidate, CredentialKind
from app.security.credential_gate.patterns import compiled, flooded

_PEM_BEGIN = "-----BEGIN"
_PEM_END = "-----END"
_PEM_HEADER = compiled(r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_FOOTER = compiled(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
# Body of an unterminated block: base64, header lines, JSON-escaped newlines.
_PEM_BODY = compiled(r"[A-Za-z0-9+/=\s\\:,\-]{0,16384}+")
_BASE64_RUN = compiled(r"[A-Za-z0-9+/]{16}")
_PEM_MAX_BLOCK = 65536


def find_private_keys(text: str, out: list[Candidate]) -> None:
    if _PEM_BEGIN not in text:
        return
    headers: list[re.Match[str]] = []
    for count, m in enumerate(_PEM_HEADER.finditer(text)):
        if flooded(count, m, text, out, P_PRIVATE_KEY, CredentialKind.PRIVATE_KEY):
            break
        headers.append(m)
    n = len(text)
    next_end = -2  # memoised text.find(_PEM_END, ...); -2 means not computed yet
    next_begin = -2
    for m in headers:
        start, body_start = m.start(), m.end()
        if next_end != -1 and next_end < body_start:
            next_end = text.find(_PEM_END, body_start)
        if next_begin != -1 and next_begin < body_start:
            next_begin = text.find(_PEM_BEGIN, body_start)
        limit = n if next_begin == -1 else next_begin
        limit = min(limit, body_start + _PEM_MAX_BLOCK)
        if next_end != -1 and next_end < limit:
            footer = _PEM_FOOTER.match(text, next_end)
            if footer is not None and _BASE64_RUN.search(text, body_start, next_end):
                out.append((P_PRIVATE_KEY, start, footer.end(), CredentialKind.PRIVATE_KEY))
                continue
        # Unterminated (truncated) block: the header plus its base64 body.
        if limit - body_start < 40:
            continue
        body = _PEM_BODY.match(text, body_start, limit)
        end = body.end() if body is not None else body_start
        if _BASE64_RUN.search(text, body_start, end):
            while end > body_start and text[end - 1].isspace():
                end -= 1
            out.append((P_PRIVATE_KEY, start, end, CredentialKind.PRIVATE_KEY))
