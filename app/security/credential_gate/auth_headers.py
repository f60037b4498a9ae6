"""Detector: Authorization headers and bearer tokens, matched on the lower-cased
text (values taken from the original).
"""

from __future__ import annotations

import base64
import binascii

from app.security.credential_gate.heuristics import code_like, plausible_token
from app.security.credential_gate.model import P_AUTH_HEADER, Candidate, CredentialKind
from app.security.credential_gate.patterns import compiled, flooded

_AUTH_VALUE = r"(?P<v>[a-z0-9._~+/\-]{%d,4096}+={0,4})(?![a-z0-9._~+/=\-])"
_AUTH_HEADER = compiled(
    r"authorization[\"']?[ \t]{0,8}+[:=][ \t]{0,8}+[\"'`]?"
    r"(?>(?:(?P<scheme>basic|token|bearer|digest|negotiate|ntlm|aws4-hmac-sha256)[ \t]{1,8}+)?)"
    + _AUTH_VALUE
    % 8
)
_SIGNATURE_SCHEMES = frozenset({"digest", "negotiate", "ntlm", "aws4-hmac-sha256"})
_BEARER = compiled(r"bearer[ \t]{1,8}+" + _AUTH_VALUE % 16)


def _basic_credentials(value: str) -> bool:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return ":" in decoded and decoded.isprintable()


def find_auth_headers(text: str, lowered: str, out: list[Candidate]) -> None:
    if "authorization" in lowered:
        for count, m in enumerate(_AUTH_HEADER.finditer(lowered)):
            if flooded(count, m, text, out, P_AUTH_HEADER, CredentialKind.BEARER_TOKEN):
                break
            if m.start() > 0 and lowered[m.start() - 1].isalpha():
                continue  # EndpointAuthorization
            start, end = m.span("v")
            value = text[start:end].rstrip(".")
            scheme = m.group("scheme")
            if scheme in _SIGNATURE_SCHEMES:
                continue  # per-request signatures and handshakes, not reusable secrets
            if scheme is None and (
                text.startswith("(", end) or (code_like(value) and not value.startswith("eyJ"))
            ):
                continue  # authorization = base64.decodebytes(...)
            ok = _basic_credentials(value) if scheme == "basic" else plausible_token(value, 12)
            if ok:
                out.append((P_AUTH_HEADER, start, start + len(value), CredentialKind.BEARER_TOKEN))
    if "bearer" in lowered:
        for count, m in enumerate(_BEARER.finditer(lowered)):
            if flooded(count, m, text, out, P_AUTH_HEADER, CredentialKind.BEARER_TOKEN):
                break
            if m.start() > 0 and lowered[m.start() - 1].isalnum():
                continue
            start, end = m.span("v")
            value = text[start:end].rstrip(".")
            if plausible_token(value, 16):
                out.append((P_AUTH_HEADER, start, start + len(value), CredentialKind.BEARER_TOKEN))
