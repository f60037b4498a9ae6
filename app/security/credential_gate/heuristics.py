"""Judging a candidate value: entropy, digits, templates, placeholders, names
made of words, code, paths; shared by the detector modules.
"""

from __future__ import annotations

import math
from collections import Counter

from app.security.credential_gate.patterns import DIGIT, SPACE, compiled

# The words of a key name or a value: split at case changes, digits and symbols.
KEY_WORD = compiled(r"[A-Z]{1,64}(?![a-z])|[A-Z]?[a-z]{1,64}|[0-9]{1,64}")
_HEX = compiled(r"[0-9a-fA-F]{16,4096}")


def has_digit(value: str) -> bool:
    return DIGIT.search(value) is not None


def shannon_entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    if n == 0:
        return 0.0
    return -sum((c / n) * math.log2(c / n) for c in Counter(value).values())


_TEMPLATE = compiled(
    r"\A[$<]|>\Z|\$[{(]|\{\{|%\(|%[sdr](?![A-Za-z0-9])|\A\{[A-Za-z_][A-Za-z0-9_.]{0,64}\}\Z"
)


def is_template(value: str) -> bool:
    """``${VAR}``, ``$VAR``, ``{{ var }}``, ``{var}``, ``%(var)s``, ``%s``, ``$(cmd)``, ``<x>``."""
    return _TEMPLATE.search(value) is not None


# Values that stand for "no password here" in code, schemas and docs.
PLACEHOLDER_VALUES = frozenset(
    {
        "any",
        "bool",
        "boolean",
        "bytes",
        "default",
        "dict",
        "empty",
        "example",
        "false",
        "hidden",
        "int",
        "masked",
        "nil",
        "none",
        "null",
        "object",
        "optional",
        "pass",
        "passwd",
        "password",
        "redacted",
        "required",
        "secret",
        "secretbytes",
        "secretstr",
        "str",
        "string",
        "text",
        "true",
        "undefined",
        "unknown",
        "your_password",
        "yourpassword",
        "your-password",
    }
)

_FILE_SUFFIXES = frozenset(
    {"pem", "key", "json", "txt", "yaml", "yml", "crt", "p12", "pfx", "env", "toml", "ini", "gpg"}
)


def _word_lengths(value: str) -> list[int]:
    """Lengths of the alphabetic words of ``value`` (split at case changes and symbols)."""
    return [len(w) for w in KEY_WORD.findall(value) if w.isalpha()]


def wordy(value: str) -> bool:
    """``PKCS7PrivateKeyTypes``, ``RemoveRegionsFromReplication``: names, not random.

    Random strings change case or class every character or two, so their
    "words" are short; names are made of real words and few digits.
    """
    lengths = _word_lengths(value)
    if len(lengths) < 2 or sum(lengths) < 4 * len(lengths):
        return False
    return sum(ch.isdigit() for ch in value) <= len(value) // 10


def high_entropy(value: str) -> bool:
    n = len(value)
    if n < 16 or SPACE.search(value):
        return False
    if _HEX.fullmatch(value):
        return n >= 32 and shannon_entropy(value) >= 3.0
    # A secret mixes character classes: letters and digits, or both cases.
    has_lower = value != value.upper()
    has_upper = value != value.lower()
    if not (has_lower or has_upper) or not (has_digit(value) or (has_lower and has_upper)):
        return False
    if value.count(":") >= 2 or wordy(value):
        return False  # arn:aws:secretsmanager:..., PKCS7PrivateKeyTypes: names
    lowered = value.lower()
    if "xxxx" in lowered or "your" in lowered or "placeholder" in lowered or "changeme" in lowered:
        return False
    threshold = 3.5 if n >= 20 else 3.2
    return shannon_entropy(value) >= threshold


def plausible_token(value: str, min_len: int) -> bool:
    """An opaque credential rather than a word, a placeholder or an env var name.

    Random tokens of this length almost always hold a digit; long ones without
    one must at least mix upper and lower case.
    """
    n = len(value)
    if n < min_len or is_template(value) or value.isalpha() or value.isdigit():
        return False  # InvalidContinuationToken is a class name, not a token
    if not has_digit(value) and (n < 24 or value == value.lower() or value == value.upper()):
        return False
    if wordy(value):
        return False
    lowered = value.lower()
    if "xxxx" in lowered or "your" in lowered or "example" in lowered:
        return False
    return shannon_entropy(value) >= 3.0


def code_like(value: str) -> bool:
    """A bare value that is an expression, not a literal."""
    if value[0] in "$%{<!*&|>[(":
        return True
    if "(" in value or "[" in value or "{" in value:
        return True
    return "." in value and all(part.isidentifier() for part in value.split("."))


def path_or_url(value: str) -> bool:
    if "://" in value or value[1:3] == ":\\":
        return True
    if value.startswith(("/", "./", "../", "~/")):
        # /run/secrets/db_key is made of words; base64 may also start with "/".
        lengths = _word_lengths(value)
        return bool(lengths) and sum(lengths) >= 3 * len(lengths)
    stem, dot, suffix = value.rpartition(".")
    return bool(dot) and bool(stem) and suffix.lower() in _FILE_SUFFIXES
