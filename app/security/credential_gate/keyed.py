"""Detector: ``key = value`` secrets, matched on the lower-cased text (values taken
from the original): passwords, AWS secret keys, OAuth tokens, generic secrets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.security.credential_gate.heuristics import (
    PLACEHOLDER_VALUES,
    code_like,
    has_digit,
    high_entropy,
    is_template,
    path_or_url,
    plausible_token,
    shannon_entropy,
    wordy,
)
from app.security.credential_gate.key_names import (
    KEY_AWS,
    KEY_AWS_SECRET,
    KEY_EXCLUDED,
    KEY_OAUTH,
    key_traits,
)
from app.security.credential_gate.model import (
    MARKER_PREFIX,
    P_GENERIC,
    P_KEYED,
    Candidate,
    CredentialKind,
)
from app.security.credential_gate.patterns import (
    LETTER,
    MARKER,
    SPACE,
    compiled,
    flooded,
)


def _assignment_tail(min_len: int, max_len: int) -> str:
    """Rest of the key name, a separator and a quoted or bare value.

    Separators: ``=``, ``:``, ``:=``, ``=>``, ``==`` and ``<key>value</key>``.
    """
    q = f"{{{min_len},{max_len}}}+"
    return (
        r"(?P<rest>[a-z0-9_.\-]{0,32}+)"
        r"(?:[\"']?\]?[ \t]{0,8}+(?::=|=>|==?|:)[ \t]{0,8}+"
        r"(?:\"(?P<dq>(?:[^\"\\\n]|\\.)" + q + r")\""
        r"|'(?P<sq>(?:[^'\\\n]|\\.)" + q + r")'"
        r"|(?P<uv>[^\s\"'`,;)}\]<>]" + q + r"))"
        r"|>(?P<xv>[^<\n]" + q + r")(?=</))"
    )


_PASSWORD_TAIL = _assignment_tail(1, 256)
_SECRET_TAIL = _assignment_tail(16, 4096)

_KEY_BASES = (
    "api",
    "private",
    "access",
    "auth",
    "signing",
    "encryption",
    "master",
    "secret",
    "client",
    "consumer",
    "subscription",
    "hmac",
    "jwt",
    "license",
    "app",
    "account",  # Azure storage connection strings: AccountKey=
    "sharedaccess",  # Azure Service Bus / Event Hubs: SharedAccessKey=
)
_KEY_LOOKBEHINDS = "|".join(f"(?<={base}{sep}key)" for base in _KEY_BASES for sep in ("", "_", "-"))

_FAMILY_PASSWORD = "password"  # noqa: S105 - a family label
_FAMILY_SECRET = "secret"  # noqa: S105 - a family label


@dataclass(frozen=True, slots=True)
class _KeyedRule:
    family: str
    literal: str
    pattern: re.Pattern[str]


_KEYED_RULES: tuple[_KeyedRule, ...] = (
    _KeyedRule(
        _FAMILY_PASSWORD, "pass", compiled(r"(?P<kw>pass(?:w(?:or)?d|phrase)?)" + _PASSWORD_TAIL)
    ),
    _KeyedRule(_FAMILY_PASSWORD, "pwd", compiled(r"(?P<kw>pwd)" + _PASSWORD_TAIL)),
    _KeyedRule(_FAMILY_SECRET, "secret", compiled(r"(?P<kw>secret)" + _SECRET_TAIL)),
    _KeyedRule(_FAMILY_SECRET, "token", compiled(r"(?P<kw>token)" + _SECRET_TAIL)),
    _KeyedRule(
        _FAMILY_SECRET, "key", compiled(r"(?P<kw>key)(?:" + _KEY_LOOKBEHINDS + ")" + _SECRET_TAIL)
    ),
)

_BARE_VALUE = compiled(r"[^\s\"'`,;)}\]<>]{0,4096}+")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
_QUERY_PARAM = compiled(r"&[A-Za-z_][A-Za-z0-9_.\-]{0,64}=")
_AWS_SECRET = compiled(r"[A-Za-z0-9/+]{40}")

_LABEL = compiled(r"[A-Za-z_.\- ]{1,256}")


_SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "credential")


def _names_a_secret(lowered: str) -> bool:
    return any(word in lowered for word in _SECRET_WORDS)


def _plausible_password(text: str, value: str, end: int, bare: bool, spaced: bool) -> bool:
    if len(value) < 4 or not value.strip(value[0]) or "***" in value or is_template(value):
        return False  # empty, masked or a template
    lowered = value.lower()
    if lowered in PLACEHOLDER_VALUES:
        return False
    if not has_digit(value) and _LABEL.fullmatch(value) and _names_a_secret(lowered):
        return False  # "FORCE_CHANGE_PASSWORD", "no-password-required", hide_password
    if not bare:
        return True
    if code_like(value):
        return False
    variable = value.isidentifier() and not has_digit(value)
    if variable and (spaced or text[end : end + 1] in (",", ")")):
        return False  # password = user_password, f(password=auth): a variable
    if value.isalpha():
        # "Password: must be at least 12 characters" is prose, not a password.
        line_end = text.find("\n", end, end + 200)
        line_rest = text[end : line_end if line_end != -1 else end + 200]
        return not LETTER.search(line_rest.split("#", 1)[0])
    return True


# Symbols of framework key alphabets that names, paths and versions lack.
_SYMBOLS = frozenset("!@#$%^&*()=+~[]{}|;,<>?")
_CALL = compiled(r"[A-Za-z_][A-Za-z0-9_.]{0,128}+\(")
# What a real template or substitution looks like, as opposed to the same
# characters inside a random key (``$(k2w9@``, ``%(x3k``, ``${q!``).
_REAL_TEMPLATE = compiled(
    r"\$\{[A-Za-z_][A-Za-z0-9_]{0,64}+[}:\-]|\{\{[ \t]{0,4}+[A-Za-z_]"
    r"|%\([A-Za-z_][A-Za-z0-9_]{0,64}+\)[sdr]|\$\([a-z][a-z_\-]{1,32}+[ )]"
    r"|\A\$[A-Za-z_][A-Za-z0-9_]{0,64}+\Z|\A<[^<>]{1,64}+>\Z"
)
_SYMBOLIC_BARE = compiled(r"[^\s\"'`]{0,4096}+")


def _symbolic_secret(value: str) -> bool:
    """A framework secret key made of letters, digits and many symbols.

    Django's ``get_random_secret_key()`` and friends draw from
    ``!@#$%^&*(-_=+)``, so such a key can contain ``$(`` or ``%(`` and look
    like a template or like code to the other checks; it is a secret when it
    is long, mixes letters, digits and at least three different symbols, has
    high entropy and holds no real template.
    """
    if len(value) < 20 or SPACE.search(value) or path_or_url(value):
        return False
    if len(_SYMBOLS.intersection(value)) < 3 or not has_digit(value):
        return False
    if not LETTER.search(value) or wordy(value):
        return False
    return shannon_entropy(value) >= 3.8 and _REAL_TEMPLATE.search(value) is None


def _classify_secret(traits: int, value: str, bare: bool) -> tuple[int, CredentialKind] | None:
    if is_template(value) or path_or_url(value) or (bare and code_like(value)):
        return None
    if traits & (KEY_AWS | KEY_AWS_SECRET):
        if _AWS_SECRET.fullmatch(value) and shannon_entropy(value) >= 3.5:
            return P_KEYED, CredentialKind.AWS_KEY
        if traits & KEY_AWS and high_entropy(value):
            return P_KEYED, CredentialKind.AWS_KEY  # session tokens
    if traits & KEY_OAUTH:
        if plausible_token(value, 16):
            return P_KEYED, CredentialKind.OAUTH_TOKEN
        return None
    if high_entropy(value):
        return P_GENERIC, CredentialKind.GENERIC_SECRET
    return None


def _skip_markers(text: str, start: int, end: int) -> int:
    """The position after the markers that open ``text[start:end]``."""
    while start < end:
        m = MARKER.match(text, start, end)
        if m is None:
            break
        start = m.end()
    return start


def find_keyed(text: str, lowered: str, out: list[Candidate]) -> None:
    append = out.append
    key_chars = _KEY_CHARS
    for rule in _KEYED_RULES:
        if rule.literal not in lowered:
            continue
        is_password = rule.family == _FAMILY_PASSWORD
        flood_priority = P_KEYED if is_password else P_GENERIC
        flood_kind = CredentialKind.PASSWORD if is_password else CredentialKind.GENERIC_SECRET
        is_pass = rule.literal == "pass"
        is_pwd = rule.literal == "pwd"
        for count, m in enumerate(rule.pattern.finditer(lowered)):
            if flooded(count, m, text, out, flood_priority, flood_kind):
                break
            kw_start = m.start()
            rest_start, rest_end = m.span("rest")
            before = lowered[kw_start - 1] if kw_start > 0 else " "
            if is_pass and rest_start - kw_start == 4:
                if before.isalnum() or rest_end > rest_start:
                    continue  # bypass, compass, passenger, pass_zero: only *_pass and PASS
            elif is_pwd and before not in "_-.":
                continue  # PWD is the working directory
            # The whole key name: walk back over key characters (bounded).
            key_start = kw_start
            lo = kw_start - 40 if kw_start > 40 else 0
            while key_start > lo and lowered[key_start - 1] in key_chars:
                key_start -= 1
            if text.endswith("://", 0, key_start):
                continue  # scheme://token:secret@host is the URL detector's job
            traits = key_traits(text[key_start:rest_end])
            if traits & KEY_EXCLUDED:
                continue
            group = m.lastgroup
            if group is None:  # pragma: no cover - every branch ends in a value group
                continue
            start, end = m.span(group)
            if text.startswith(MARKER_PREFIX, start):
                # "password=[REDACTED:password]hunter2": look past the markers.
                start = _skip_markers(text, start, len(text))
                if group == "uv":
                    rest = _BARE_VALUE.match(text, start)
                    end = rest.end() if rest is not None else start
                if start >= end:
                    continue
            value = text[start:end]
            bare = group == "uv"
            if bare:
                if "&" in value:
                    cut = _QUERY_PARAM.search(value)
                    if cut is not None:
                        value = value[: cut.start()]
                value = value.rstrip(".:")
                if not value:
                    continue
                end = start + len(value)
            elif group == "xv" and (key_start == 0 or text[key_start - 1] != "<"):
                continue  # <password>value</password> needs its opening tag
            if is_password:
                if end - start < 4:
                    continue
                quote = text[key_start - 1] if key_start > 0 else ""
                if bare and quote in ("'", '"') and value.isalpha() and text.startswith(quote, end):
                    continue  # "passwd:gecos": a label inside a string
                gap = lowered[rest_end:start]
                spaced = " " in gap or "\t" in gap
                if _plausible_password(text, value, end, bare, spaced):
                    append((P_KEYED, start, end, CredentialKind.PASSWORD))
                continue
            if bare and lowered[rest_end:start] in ("=", ":=") and not _CALL.match(value):
                # KEY=value with nothing around "=" (an env file; code has
                # spaces there): a symbol-rich key runs to the next space.
                whole = _SYMBOLIC_BARE.match(text, start)
                if whole is not None and _symbolic_secret(whole.group()):
                    append((P_GENERIC, start, whole.end(), CredentialKind.GENERIC_SECRET))
                    continue
            verdict = _classify_secret(traits, value, bare)
            if verdict is not None:
                append((verdict[0], start, end, verdict[1]))
            elif not bare and _symbolic_secret(value):
                append((P_GENERIC, start, end, CredentialKind.GENERIC_SECRET))
