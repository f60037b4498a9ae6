"""What the key of a ``key = value`` pair says: metadata (``token_url``,
``max_tokens``: not a secret), an AWS secret, an OAuth token.
"""

from __future__ import annotations

import functools
import itertools

from app.security.credential_gate.heuristics import KEY_WORD

# A key containing one of these words names metadata, not a secret
# (token_url, password_min_length, max_tokens, secret_name, next_page_token...).
_EXCLUDED_KEY_WORDS = frozenset(
    {
        "arn",
        "cancel",
        "cancellation",
        "changed",
        "cmd",
        "command",
        "completion",
        "continuation",
        "count",
        "cursor",
        "dir",
        "directory",
        "disabled",
        "enabled",
        "endpoint",
        "env",
        "expiration",
        "expire",
        "expires",
        "expiry",
        "field",
        "file",
        "filename",
        "format",
        "hash",
        "hashed",
        "header",
        "hint",
        "input",
        "label",
        "last",
        "len",
        "length",
        "limit",
        "location",
        "manager",
        "mgr",
        "max",
        "min",
        "name",
        "next",
        "num",
        "output",
        "page",
        "pagination",
        "param",
        "path",
        "pattern",
        "placeholder",
        "policy",
        "prefix",
        "prompt",
        "provider",
        "ref",
        "regex",
        "required",
        "reset",
        "rule",
        "rules",
        "script",
        "size",
        "source",
        "storage",
        "store",
        "strength",
        "sync",
        "timeout",
        "tokens",
        "total",
        "ttl",
        "type",
        "updated",
        "uri",
        "used",
        "url",
        "usage",
        "validation",
        "validator",
        "var",
        "version",
    }
)


def _key_words(key: str) -> list[str]:
    return [w.lower() for w in KEY_WORD.findall(key)]


_OAUTH_KEYS = frozenset({"accesstoken", "refreshtoken", "idtoken", "oauth", "oauth2", "oauthtoken"})
KEY_EXCLUDED = 1
KEY_AWS = 2
KEY_AWS_SECRET = 4  # SecretAccessKey and friends, even without "aws"
KEY_OAUTH = 8


@functools.lru_cache(maxsize=4096)
def key_traits(key: str) -> int:
    """Bit flags describing a key name (cached: keys repeat a lot)."""
    words = _key_words(key)
    if words[-2:] == ["key", "id"]:
        return KEY_EXCLUDED  # access_key_id, private_key_id: identifiers, not secrets
    if any(w in _EXCLUDED_KEY_WORDS or w.startswith(("tokeniz", "tokenis")) for w in words):
        return KEY_EXCLUDED
    compact = "".join(words)
    traits = 0
    if "aws" in compact:
        traits |= KEY_AWS
    if "secretaccesskey" in compact:
        traits |= KEY_AWS_SECRET
    pairs = {f"{a}{b}" for a, b in itertools.pairwise(words)}
    if pairs.intersection(_OAUTH_KEYS) or set(words).intersection(_OAUTH_KEYS):
        traits |= KEY_OAUTH
    return traits
