"""API tokens: 256-bit random, shown once, stored only as a keyed hash.

A token looks like ``mc_<public id>_<secret>``. The public id names the token
in logs and in the audit log without revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "mc"  # noqa: S105 - a label, not a secret
_TOKEN_RE = re.compile(r"^mc_([a-z0-9]{10})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewToken:
    public_id: str
    plaintext: str
    token_hash: str


def _public_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(10))


def hash_token(key: bytes, plaintext: str) -> str:
    return hmac.new(key, plaintext.encode(), hashlib.sha256).hexdigest()


def generate_token(key: bytes) -> NewToken:
    public_id = _public_id()
    plaintext = f"{TOKEN_PREFIX}_{public_id}_{secrets.token_urlsafe(32)}"
    return NewToken(public_id, plaintext, hash_token(key, plaintext))


def parse_public_id(plaintext: str) -> str | None:
    """The public id of a well-formed token, or None."""
    match = _TOKEN_RE.match(plaintext)
    return match[1] if match else None


def token_matches(key: bytes, plaintext: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(key, plaintext), stored_hash)
