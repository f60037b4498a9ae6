"""Credential gate (F14): find and redact eleven kinds of secret before text
reaches an agent's context window, the memory store or a log.

Public API::

    scan(text) -> list[Finding]         # non-overlapping, sorted by position
    redact(text) -> Redaction           # .text, .counts, .found
    contains_credential(text) -> bool

Each secret is replaced by a typed marker ``[REDACTED:<kind>]``. For
``key = value`` shaped secrets only the value is replaced, so the text stays
readable (``password=[REDACTED:password]``). Markers are never detected again:
redacting already-redacted text is a no-op.

Linear time by construction (see ``docs/credential-gate.md``):

* every expression is compiled through :func:`_compile`, which registers it so
  a test can check that none has a nested or an unbounded quantifier;
* every expression starts with a literal (or a small character set) so the
  regex engine only stops where a candidate can begin, and a cheap substring
  pre-check skips an expression entirely when its literal is absent;
* token bodies are bounded, possessive (``{m,n}+``: no backtracking) and the
  left word boundary is checked *after* the literal, so a run such as
  ``sk-sk-sk-...`` costs one step per occurrence instead of a rescan;
* private-key blocks are matched header by header and their ``-----END``
  line is looked up with a memoised ``str.find``, never with ``.*``;
* overlaps are resolved with a sort and a sweep (O(n log n) in the number of
  candidates), and :func:`redact` rescans its output until it is a fixed point.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "MARKER_PREFIX",
    "CredentialKind",
    "Finding",
    "Redaction",
    "contains_credential",
    "marker",
    "redact",
    "scan",
]


class CredentialKind(StrEnum):
    """The eleven kinds of credential the gate recognises."""

    API_KEY = "api_key"  # AI and SaaS provider keys with a known prefix
    BEARER_TOKEN = "bearer_token"  # noqa: S105 - Authorization header values, bare JWTs
    DATABASE_URL = "database_url"  # data-store URLs that carry a password
    AWS_KEY = "aws_key"  # access key ids (AKIA/ASIA) and secret access keys
    PRIVATE_KEY = "private_key"  # PEM / OpenSSH / PGP private key blocks
    OAUTH_TOKEN = "oauth_token"  # noqa: S105 - ya29./1//, access_token, refresh_token, id_token
    GITHUB_TOKEN = "github_token"  # noqa: S105 - ghp_ gho_ ghu_ ghs_ ghr_ github_pat_
    SLACK_TOKEN = "slack_token"  # noqa: S105 - xoxb- xoxp- xoxa- xapp- and incoming webhooks
    PASSWORD = "password"  # noqa: S105 - password assignments, JSON fields, URL userinfo
    STRIPE_KEY = "stripe_key"  # sk_live_ rk_live_ sk_test_ pk_live_ whsec_
    GENERIC_SECRET = "generic_secret"  # noqa: S105 - high-entropy value next to a secret-like key


MARKER_PREFIX = "[REDACTED:"


def marker(kind: CredentialKind) -> str:
    """The text that replaces a secret of ``kind``."""
    return f"{MARKER_PREFIX}{kind.value}]"


@dataclass(frozen=True, slots=True)
class Finding:
    """One secret: its kind and the half-open span ``text[start:end]``."""

    kind: CredentialKind
    start: int
    end: int


@dataclass(frozen=True)
class Redaction:
    """The redacted text and how many secrets of each kind were replaced."""

    text: str
    counts: dict[CredentialKind, int]

    @property
    def found(self) -> bool:
        return bool(self.counts)


# --------------------------------------------------------------------------
# Regex registry: every expression of this module is compiled here.
# --------------------------------------------------------------------------

_PATTERNS: list[re.Pattern[str]] = []


def _compile(source: str) -> re.Pattern[str]:
    pattern = re.compile(source)
    _PATTERNS.append(pattern)
    return pattern


# Resolution priorities: a lower number wins an overlap. Specific formats beat
# context-based guesses; the entropy-based generic detector comes last.
_P_PRIVATE_KEY = 0
_P_PREFIXED = 1
_P_URL = 2
_P_AUTH_HEADER = 3
_P_KEYED = 4
_P_JWT = 5
_P_GENERIC = 6

# (priority, start, end, kind)
_Candidate = tuple[int, int, int, CredentialKind]

# Flood guard. Matching is linear, but each match of an expression costs a few
# microseconds of Python to validate and resolve. Real source code and prose
# give about ten matches per MB for the busiest expression; past this many in
# one text, the input is a flood (a credential dump or an attack) and the rest
# of the text, from the next match on, is redacted as one finding. Fail-safe
# (decoys cannot push a secret out of reach) and bounded in time.
_FLOOD_MATCHES = 20_000


def _flooded(
    count: int, m: re.Match[str], text: str, out: list[_Candidate], p: int, kind: CredentialKind
) -> bool:
    """True (after redacting the rest of ``text``) when ``count`` reaches the bound."""
    if count < _FLOOD_MATCHES:
        return False
    out.append((p, m.start(), len(text), kind))
    return True


_TOKEN_CHARS = r"A-Za-z0-9_\-"  # noqa: S105 - a character class
_DIGIT = _compile(r"[0-9]")
_LETTER = _compile(r"[^\W\d_]")
_LABEL = _compile(r"[A-Za-z_.\- ]{1,256}")
_SPACE = _compile(r"\s")


def _token(prefix: str, prefix_len: int, body: str, tail: str = _TOKEN_CHARS) -> str:
    """A prefixed token with word boundaries on both sides.

    The literal ``prefix`` comes first so the engine searches for it quickly.
    The left boundary is a fixed-width look-behind placed *after* the prefix
    (a leading look-behind would disable the literal search).
    """
    return rf"{prefix}(?<![{_TOKEN_CHARS}][\s\S]{{{prefix_len}}}){body}(?![{tail}])"


def _has_digit(value: str) -> bool:
    return _DIGIT.search(value) is not None


def _entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    if n == 0:
        return 0.0
    return -sum((c / n) * math.log2(c / n) for c in Counter(value).values())


def _random_looking(value: str) -> bool:
    """A prefixed token with a digit in it, so not ``sk-learn-like-words`` nor
    ``ghp_xxxxxxxx...``. The prefix is specific enough: no entropy threshold
    (when in doubt, a token-shaped string is redacted)."""
    return _has_digit(value)


@dataclass(frozen=True, slots=True)
class _TokenRule:
    kind: CredentialKind
    pattern: re.Pattern[str]
    literals: tuple[str, ...]
    priority: int = _P_PREFIXED
    check: Callable[[str], bool] | None = _random_looking


_TOKEN_RULES: tuple[_TokenRule, ...] = (
    # --- Mission Control's own API tokens: mc_<10 lower-case id>_<43 url-safe> -----
    # (app/security/tokens.py). Exact shape, so no randomness check.
    _TokenRule(
        CredentialKind.API_KEY,
        _compile(_token("mc_", 3, r"[a-z0-9]{10}_[A-Za-z0-9_\-]{43}")),
        ("mc_",),
        check=None,
    ),
    # --- AI and SaaS provider API keys -----------------------------------
    # Anthropic sk-ant-..., OpenAI sk-..., sk-proj-..., sk-svcacct-..., OpenRouter sk-or-v1-...
    _TokenRule(
        CredentialKind.API_KEY, _compile(_token("sk-", 3, r"[A-Za-z0-9_\-]{20,200}+")), ("sk-",)
    ),
    _TokenRule(
        CredentialKind.API_KEY,
        _compile(_token("AIza", 4, r"[A-Za-z0-9_\-]{35}")),
        ("AIza",),
        check=None,
    ),
    _TokenRule(
        CredentialKind.API_KEY, _compile(_token("hf_", 3, r"[A-Za-z0-9]{30,64}+")), ("hf_",)
    ),
    _TokenRule(
        CredentialKind.API_KEY, _compile(_token("gsk_", 4, r"[A-Za-z0-9]{40,64}+")), ("gsk_",)
    ),
    _TokenRule(
        CredentialKind.API_KEY, _compile(_token("r8_", 3, r"[A-Za-z0-9]{30,64}+")), ("r8_",)
    ),
    _TokenRule(
        CredentialKind.API_KEY, _compile(_token("xai-", 4, r"[A-Za-z0-9]{60,120}+")), ("xai-",)
    ),
    _TokenRule(
        CredentialKind.API_KEY, _compile(_token("pplx-", 5, r"[A-Za-z0-9]{40,64}+")), ("pplx-",)
    ),
    _TokenRule(
        CredentialKind.API_KEY,
        _compile(_token("glpat-", 6, r"[A-Za-z0-9_\-]{20,64}+")),
        ("glpat-",),
    ),
    _TokenRule(CredentialKind.API_KEY, _compile(_token("npm_", 4, r"[A-Za-z0-9]{36}")), ("npm_",)),
    _TokenRule(
        CredentialKind.API_KEY,
        _compile(_token("pypi-AgE", 8, r"[A-Za-z0-9_\-]{50,400}+")),
        ("pypi-AgE",),
    ),
    _TokenRule(
        CredentialKind.API_KEY,
        _compile(_token(r"SG\.", 3, r"[A-Za-z0-9_\-]{16,32}+\.[A-Za-z0-9_\-]{16,64}+")),
        ("SG.",),
    ),
    _TokenRule(
        CredentialKind.API_KEY, _compile(_token("dop_v1_", 7, r"[a-f0-9]{64}")), ("dop_v1_",)
    ),
    _TokenRule(
        CredentialKind.API_KEY,
        _compile(_token("shp(?:at|ss|ca|pa)_", 6, r"[a-fA-F0-9]{32}")),
        ("shp",),
    ),
    # --- GitHub ----------------------------------------------------------
    _TokenRule(
        CredentialKind.GITHUB_TOKEN,
        _compile(_token("gh[pousr]_", 4, r"[A-Za-z0-9]{36,251}+")),
        ("gh",),
    ),
    _TokenRule(
        CredentialKind.GITHUB_TOKEN,
        _compile(_token("github_pat_", 11, r"[A-Za-z0-9_]{60,255}+")),
        ("github_pat_",),
    ),
    # --- Slack -----------------------------------------------------------
    _TokenRule(
        CredentialKind.SLACK_TOKEN,
        _compile(_token("xox[abposr]-", 5, r"[A-Za-z0-9\-]{10,250}+")),
        ("xox",),
    ),
    _TokenRule(
        CredentialKind.SLACK_TOKEN,
        _compile(_token("xapp-", 5, r"[A-Za-z0-9\-]{20,250}+")),
        ("xapp-",),
    ),
    # --- Stripe ----------------------------------------------------------
    # One rule per literal prefix: a leading character class ([srp]k_) would
    # make the engine stop at every s, r and p of ordinary prose.
    *(
        _TokenRule(
            CredentialKind.STRIPE_KEY,
            _compile(_token(f"{p}k_(?:live|test)_", 8, r"[A-Za-z0-9]{10,247}+")),
            (f"{p}k_live_", f"{p}k_test_"),
        )
        for p in "srp"
    ),
    _TokenRule(
        CredentialKind.STRIPE_KEY,
        _compile(_token("whsec_", 6, r"[A-Za-z0-9+/=]{24,128}+", tail=_TOKEN_CHARS + "+/=")),
        ("whsec_",),
    ),
    # --- AWS access key ids (base32 body) ---------------------------------
    _TokenRule(
        CredentialKind.AWS_KEY,
        _compile(_token("A[KS]IA", 4, r"[A-Z2-7]{16}", tail="A-Za-z0-9")),
        ("AKIA", "ASIA"),
        check=None,
    ),
    # --- Google OAuth access and refresh tokens ---------------------------
    _TokenRule(
        CredentialKind.OAUTH_TOKEN,
        _compile(_token(r"ya29\.", 5, r"[A-Za-z0-9_\-]{20,2048}+")),
        ("ya29.",),
    ),
    _TokenRule(
        CredentialKind.OAUTH_TOKEN,
        _compile(_token("1//0", 4, r"[A-Za-z0-9_\-]{30,512}+")),
        ("1//0",),
    ),
    # --- bare JSON Web Tokens (header.payload.signature, JWE up to 5 parts)
    _TokenRule(
        CredentialKind.BEARER_TOKEN,
        _compile(
            _token(
                "eyJ",
                3,
                r"[A-Za-z0-9_\-]{10,8192}+\.[A-Za-z0-9_\-]{10,16384}+\.[A-Za-z0-9_\-]{0,8192}+"
                r"(?:\.[A-Za-z0-9_\-]{0,16384}+)?(?:\.[A-Za-z0-9_\-]{0,8192}+)?",
                tail=_TOKEN_CHARS + ".",
            )
        ),
        ("eyJ",),
        priority=_P_JWT,
        check=None,
    ),
)

_SLACK_WEBHOOK = _compile(
    r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]{20,300}+(?![A-Za-z0-9_/\-])"
)

# --------------------------------------------------------------------------
# Private keys
# --------------------------------------------------------------------------

_PEM_BEGIN = "-----BEGIN"
_PEM_END = "-----END"
_PEM_HEADER = _compile(r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_FOOTER = _compile(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
# Body of an unterminated block: base64, header lines, JSON-escaped newlines.
_PEM_BODY = _compile(r"[A-Za-z0-9+/=\s\\:,\-]{0,16384}+")
_BASE64_RUN = _compile(r"[A-Za-z0-9+/]{16}")
_PEM_MAX_BLOCK = 65536


def _private_keys(text: str, out: list[_Candidate]) -> None:
    if _PEM_BEGIN not in text:
        return
    headers: list[re.Match[str]] = []
    for count, m in enumerate(_PEM_HEADER.finditer(text)):
        if _flooded(count, m, text, out, _P_PRIVATE_KEY, CredentialKind.PRIVATE_KEY):
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
                out.append((_P_PRIVATE_KEY, start, footer.end(), CredentialKind.PRIVATE_KEY))
                continue
        # Unterminated (truncated) block: the header plus its base64 body.
        if limit - body_start < 40:
            continue
        body = _PEM_BODY.match(text, body_start, limit)
        end = body.end() if body is not None else body_start
        if _BASE64_RUN.search(text, body_start, end):
            while end > body_start and text[end - 1].isspace():
                end -= 1
            out.append((_P_PRIVATE_KEY, start, end, CredentialKind.PRIVATE_KEY))


# --------------------------------------------------------------------------
# URLs with a password in their userinfo (scheme://user:password@host)
# --------------------------------------------------------------------------

_URL_USERINFO = _compile(r"://(?P<user>[^\s:/@\"'<>`]{0,128}+):(?P<pw>[^\s/\"'<>`]{1,256})@")
_URL_TAIL = _compile(r"[^\s\"'<>`)\]}]{0,2048}+")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_DB_SCHEMES = frozenset(
    {
        "postgres",
        "postgresql",
        "pgsql",
        "mysql",
        "mariadb",
        "mongodb",
        "redis",
        "rediss",
        "valkey",
        "amqp",
        "amqps",
        "mssql",
        "sqlserver",
        "oracle",
        "cockroachdb",
        "clickhouse",
        "couchdb",
        "couchbase",
        "neo4j",
        "bolt",
        "cassandra",
        "memcached",
        "influxdb",
        "elasticsearch",
        "opensearch",
        "nats",
        "kafka",
        "snowflake",
        "db2",
        "timescaledb",
    }
)


_TEMPLATE = _compile(
    r"\A[$<]|>\Z|\$[{(]|\{\{|%\(|%[sdr](?![A-Za-z0-9])|\A\{[A-Za-z_][A-Za-z0-9_.]{0,64}\}\Z"
)


def _is_template(value: str) -> bool:
    """``${VAR}``, ``$VAR``, ``{{ var }}``, ``{var}``, ``%(var)s``, ``%s``, ``$(cmd)``, ``<x>``."""
    return _TEMPLATE.search(value) is not None


def _database_urls(text: str, out: list[_Candidate]) -> None:
    if "://" not in text:
        return
    for count, m in enumerate(_URL_USERINFO.finditer(text)):
        if _flooded(count, m, text, out, _P_URL, CredentialKind.PASSWORD):
            break
        pw = m.group("pw")
        if _is_template(pw) or len(set(pw)) == 1 or pw.lower() in _PLACEHOLDER_VALUES:
            continue  # postgres://user:password@host in documentation
        i = m.start()
        lo = max(0, i - 32)
        while i > lo and text[i - 1] in _SCHEME_CHARS:
            i -= 1
        while i < m.start() and not text[i].isalpha():
            i += 1
        scheme = text[i : m.start()].lower()
        if scheme.split("+", 1)[0] in _DB_SCHEMES:
            tail = _URL_TAIL.match(text, m.end())
            end = tail.end() if tail is not None else m.end()
            while end > m.end() and text[end - 1] in ".,;:":
                end -= 1
            out.append((_P_URL, i, end, CredentialKind.DATABASE_URL))
        else:
            out.append((_P_URL, m.start("pw"), m.end("pw"), CredentialKind.PASSWORD))


# --------------------------------------------------------------------------
# Authorization headers and bearer tokens (matched on the lower-cased text)
# --------------------------------------------------------------------------

_AUTH_VALUE = r"(?P<v>[a-z0-9._~+/\-]{%d,4096}+={0,4})(?![a-z0-9._~+/=\-])"
_AUTH_HEADER = _compile(
    r"authorization[\"']?[ \t]{0,8}+[:=][ \t]{0,8}+[\"'`]?"
    r"(?>(?:(?P<scheme>basic|token|bearer|digest|negotiate|ntlm|aws4-hmac-sha256)[ \t]{1,8}+)?)"
    + _AUTH_VALUE
    % 8
)
_SIGNATURE_SCHEMES = frozenset({"digest", "negotiate", "ntlm", "aws4-hmac-sha256"})
_BEARER = _compile(r"bearer[ \t]{1,8}+" + _AUTH_VALUE % 16)


def _plausible_token(value: str, min_len: int) -> bool:
    """An opaque credential rather than a word, a placeholder or an env var name.

    Random tokens of this length almost always hold a digit; long ones without
    one must at least mix upper and lower case.
    """
    n = len(value)
    if n < min_len or _is_template(value) or value.isalpha() or value.isdigit():
        return False  # InvalidContinuationToken is a class name, not a token
    if not _has_digit(value) and (n < 24 or value == value.lower() or value == value.upper()):
        return False
    if _wordy(value):
        return False
    lowered = value.lower()
    if "xxxx" in lowered or "your" in lowered or "example" in lowered:
        return False
    return _entropy(value) >= 3.0


def _basic_credentials(value: str) -> bool:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return ":" in decoded and decoded.isprintable()


def _auth_headers(text: str, lowered: str, out: list[_Candidate]) -> None:
    if "authorization" in lowered:
        for count, m in enumerate(_AUTH_HEADER.finditer(lowered)):
            if _flooded(count, m, text, out, _P_AUTH_HEADER, CredentialKind.BEARER_TOKEN):
                break
            if m.start() > 0 and lowered[m.start() - 1].isalpha():
                continue  # EndpointAuthorization
            start, end = m.span("v")
            value = text[start:end].rstrip(".")
            scheme = m.group("scheme")
            if scheme in _SIGNATURE_SCHEMES:
                continue  # per-request signatures and handshakes, not reusable secrets
            if scheme is None and (
                text.startswith("(", end) or (_code_like(value) and not value.startswith("eyJ"))
            ):
                continue  # authorization = base64.decodebytes(...)
            ok = _basic_credentials(value) if scheme == "basic" else _plausible_token(value, 12)
            if ok:
                out.append((_P_AUTH_HEADER, start, start + len(value), CredentialKind.BEARER_TOKEN))
    if "bearer" in lowered:
        for count, m in enumerate(_BEARER.finditer(lowered)):
            if _flooded(count, m, text, out, _P_AUTH_HEADER, CredentialKind.BEARER_TOKEN):
                break
            if m.start() > 0 and lowered[m.start() - 1].isalnum():
                continue
            start, end = m.span("v")
            value = text[start:end].rstrip(".")
            if _plausible_token(value, 16):
                out.append((_P_AUTH_HEADER, start, start + len(value), CredentialKind.BEARER_TOKEN))


# --------------------------------------------------------------------------
# key = value secrets (matched on the lower-cased text, values taken from the
# original): passwords, AWS secret keys, OAuth tokens, generic secrets.
# --------------------------------------------------------------------------


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
        _FAMILY_PASSWORD, "pass", _compile(r"(?P<kw>pass(?:w(?:or)?d|phrase)?)" + _PASSWORD_TAIL)
    ),
    _KeyedRule(_FAMILY_PASSWORD, "pwd", _compile(r"(?P<kw>pwd)" + _PASSWORD_TAIL)),
    _KeyedRule(_FAMILY_SECRET, "secret", _compile(r"(?P<kw>secret)" + _SECRET_TAIL)),
    _KeyedRule(_FAMILY_SECRET, "token", _compile(r"(?P<kw>token)" + _SECRET_TAIL)),
    _KeyedRule(
        _FAMILY_SECRET, "key", _compile(r"(?P<kw>key)(?:" + _KEY_LOOKBEHINDS + ")" + _SECRET_TAIL)
    ),
)

_BARE_VALUE = _compile(r"[^\s\"'`,;)}\]<>]{0,4096}+")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
_KEY_WORD = _compile(r"[A-Z]{1,64}(?![a-z])|[A-Z]?[a-z]{1,64}|[0-9]{1,64}")
_QUERY_PARAM = _compile(r"&[A-Za-z_][A-Za-z0-9_.\-]{0,64}=")
_HEX = _compile(r"[0-9a-fA-F]{16,4096}")
_AWS_SECRET = _compile(r"[A-Za-z0-9/+]{40}")

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

# Values that stand for "no password here" in code, schemas and docs.
_PLACEHOLDER_VALUES = frozenset(
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


def _key_words(key: str) -> list[str]:
    return [w.lower() for w in _KEY_WORD.findall(key)]


_OAUTH_KEYS = frozenset({"accesstoken", "refreshtoken", "idtoken", "oauth", "oauth2", "oauthtoken"})
_KEY_EXCLUDED = 1
_KEY_AWS = 2
_KEY_AWS_SECRET = 4  # SecretAccessKey and friends, even without "aws"
_KEY_OAUTH = 8


@functools.lru_cache(maxsize=4096)
def _key_traits(key: str) -> int:
    """Bit flags describing a key name (cached: keys repeat a lot)."""
    words = _key_words(key)
    if words[-2:] == ["key", "id"]:
        return _KEY_EXCLUDED  # access_key_id, private_key_id: identifiers, not secrets
    if any(w in _EXCLUDED_KEY_WORDS or w.startswith(("tokeniz", "tokenis")) for w in words):
        return _KEY_EXCLUDED
    compact = "".join(words)
    traits = 0
    if "aws" in compact:
        traits |= _KEY_AWS
    if "secretaccesskey" in compact:
        traits |= _KEY_AWS_SECRET
    pairs = {f"{a}{b}" for a, b in itertools.pairwise(words)}
    if pairs.intersection(_OAUTH_KEYS) or set(words).intersection(_OAUTH_KEYS):
        traits |= _KEY_OAUTH
    return traits


def _code_like(value: str) -> bool:
    """A bare value that is an expression, not a literal."""
    if value[0] in "$%{<!*&|>[(":
        return True
    if "(" in value or "[" in value or "{" in value:
        return True
    return "." in value and all(part.isidentifier() for part in value.split("."))


def _path_or_url(value: str) -> bool:
    if "://" in value or value[1:3] == ":\\":
        return True
    if value.startswith(("/", "./", "../", "~/")):
        # /run/secrets/db_key is made of words; base64 may also start with "/".
        lengths = _word_lengths(value)
        return bool(lengths) and sum(lengths) >= 3 * len(lengths)
    stem, dot, suffix = value.rpartition(".")
    return bool(dot) and bool(stem) and suffix.lower() in _FILE_SUFFIXES


_SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "credential")


def _names_a_secret(lowered: str) -> bool:
    return any(word in lowered for word in _SECRET_WORDS)


def _plausible_password(text: str, value: str, end: int, bare: bool, spaced: bool) -> bool:
    if len(value) < 4 or not value.strip(value[0]) or "***" in value or _is_template(value):
        return False  # empty, masked or a template
    lowered = value.lower()
    if lowered in _PLACEHOLDER_VALUES:
        return False
    if not _has_digit(value) and _LABEL.fullmatch(value) and _names_a_secret(lowered):
        return False  # "FORCE_CHANGE_PASSWORD", "no-password-required", hide_password
    if not bare:
        return True
    if _code_like(value):
        return False
    variable = value.isidentifier() and not _has_digit(value)
    if variable and (spaced or text[end : end + 1] in (",", ")")):
        return False  # password = user_password, f(password=auth): a variable
    if value.isalpha():
        # "Password: must be at least 12 characters" is prose, not a password.
        line_end = text.find("\n", end, end + 200)
        line_rest = text[end : line_end if line_end != -1 else end + 200]
        return not _LETTER.search(line_rest.split("#", 1)[0])
    return True


def _word_lengths(value: str) -> list[int]:
    """Lengths of the alphabetic words of ``value`` (split at case changes and symbols)."""
    return [len(w) for w in _KEY_WORD.findall(value) if w.isalpha()]


def _wordy(value: str) -> bool:
    """``PKCS7PrivateKeyTypes``, ``RemoveRegionsFromReplication``: names, not random.

    Random strings change case or class every character or two, so their
    "words" are short; names are made of real words and few digits.
    """
    lengths = _word_lengths(value)
    if len(lengths) < 2 or sum(lengths) < 4 * len(lengths):
        return False
    return sum(ch.isdigit() for ch in value) <= len(value) // 10


def _high_entropy(value: str) -> bool:
    n = len(value)
    if n < 16 or _SPACE.search(value):
        return False
    if _HEX.fullmatch(value):
        return n >= 32 and _entropy(value) >= 3.0
    # A secret mixes character classes: letters and digits, or both cases.
    has_lower = value != value.upper()
    has_upper = value != value.lower()
    if not (has_lower or has_upper) or not (_has_digit(value) or (has_lower and has_upper)):
        return False
    if value.count(":") >= 2 or _wordy(value):
        return False  # arn:aws:secretsmanager:..., PKCS7PrivateKeyTypes: names
    lowered = value.lower()
    if "xxxx" in lowered or "your" in lowered or "placeholder" in lowered or "changeme" in lowered:
        return False
    threshold = 3.5 if n >= 20 else 3.2
    return _entropy(value) >= threshold


# Symbols of framework key alphabets that names, paths and versions lack.
_SYMBOLS = frozenset("!@#$%^&*()=+~[]{}|;,<>?")
_CALL = _compile(r"[A-Za-z_][A-Za-z0-9_.]{0,128}+\(")
# What a real template or substitution looks like, as opposed to the same
# characters inside a random key (``$(k2w9@``, ``%(x3k``, ``${q!``).
_REAL_TEMPLATE = _compile(
    r"\$\{[A-Za-z_][A-Za-z0-9_]{0,64}+[}:\-]|\{\{[ \t]{0,4}+[A-Za-z_]"
    r"|%\([A-Za-z_][A-Za-z0-9_]{0,64}+\)[sdr]|\$\([a-z][a-z_\-]{1,32}+[ )]"
    r"|\A\$[A-Za-z_][A-Za-z0-9_]{0,64}+\Z|\A<[^<>]{1,64}+>\Z"
)
_SYMBOLIC_BARE = _compile(r"[^\s\"'`]{0,4096}+")


def _symbolic_secret(value: str) -> bool:
    """A framework secret key made of letters, digits and many symbols.

    Django's ``get_random_secret_key()`` and friends draw from
    ``!@#$%^&*(-_=+)``, so such a key can contain ``$(`` or ``%(`` and look
    like a template or like code to the other checks; it is a secret when it
    is long, mixes letters, digits and at least three different symbols, has
    high entropy and holds no real template.
    """
    if len(value) < 20 or _SPACE.search(value) or _path_or_url(value):
        return False
    if len(_SYMBOLS.intersection(value)) < 3 or not _has_digit(value):
        return False
    if not _LETTER.search(value) or _wordy(value):
        return False
    return _entropy(value) >= 3.8 and _REAL_TEMPLATE.search(value) is None


def _classify_secret(traits: int, value: str, bare: bool) -> tuple[int, CredentialKind] | None:
    if _is_template(value) or _path_or_url(value) or (bare and _code_like(value)):
        return None
    if traits & (_KEY_AWS | _KEY_AWS_SECRET):
        if _AWS_SECRET.fullmatch(value) and _entropy(value) >= 3.5:
            return _P_KEYED, CredentialKind.AWS_KEY
        if traits & _KEY_AWS and _high_entropy(value):
            return _P_KEYED, CredentialKind.AWS_KEY  # session tokens
    if traits & _KEY_OAUTH:
        if _plausible_token(value, 16):
            return _P_KEYED, CredentialKind.OAUTH_TOKEN
        return None
    if _high_entropy(value):
        return _P_GENERIC, CredentialKind.GENERIC_SECRET
    return None


def _skip_markers(text: str, start: int, end: int) -> int:
    """The position after the markers that open ``text[start:end]``."""
    while start < end:
        m = _MARKER.match(text, start, end)
        if m is None:
            break
        start = m.end()
    return start


def _keyed(text: str, lowered: str, out: list[_Candidate]) -> None:
    append = out.append
    key_chars = _KEY_CHARS
    for rule in _KEYED_RULES:
        if rule.literal not in lowered:
            continue
        is_password = rule.family == _FAMILY_PASSWORD
        flood_priority = _P_KEYED if is_password else _P_GENERIC
        flood_kind = CredentialKind.PASSWORD if is_password else CredentialKind.GENERIC_SECRET
        is_pass = rule.literal == "pass"
        is_pwd = rule.literal == "pwd"
        for count, m in enumerate(rule.pattern.finditer(lowered)):
            if _flooded(count, m, text, out, flood_priority, flood_kind):
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
            traits = _key_traits(text[key_start:rest_end])
            if traits & _KEY_EXCLUDED:
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
                    append((_P_KEYED, start, end, CredentialKind.PASSWORD))
                continue
            if bare and lowered[rest_end:start] in ("=", ":=") and not _CALL.match(value):
                # KEY=value with nothing around "=" (an env file; code has
                # spaces there): a symbol-rich key runs to the next space.
                whole = _SYMBOLIC_BARE.match(text, start)
                if whole is not None and _symbolic_secret(whole.group()):
                    append((_P_GENERIC, start, whole.end(), CredentialKind.GENERIC_SECRET))
                    continue
            verdict = _classify_secret(traits, value, bare)
            if verdict is not None:
                append((verdict[0], start, end, verdict[1]))
            elif not bare and _symbolic_secret(value):
                append((_P_GENERIC, start, end, CredentialKind.GENERIC_SECRET))


# --------------------------------------------------------------------------
# Prefixed tokens and Slack webhooks (matched on the original text)
# --------------------------------------------------------------------------


def _tokens(text: str, out: list[_Candidate]) -> None:
    for rule in _TOKEN_RULES:
        if not any(literal in text for literal in rule.literals):
            continue
        for count, m in enumerate(rule.pattern.finditer(text)):
            if _flooded(count, m, text, out, rule.priority, rule.kind):
                break
            if rule.check is None or rule.check(m.group()):
                out.append((rule.priority, m.start(), m.end(), rule.kind))
    if "hooks.slack.com/" in text:
        for count, m in enumerate(_SLACK_WEBHOOK.finditer(text)):
            if _flooded(count, m, text, out, _P_PREFIXED, CredentialKind.SLACK_TOKEN):
                break
            start = m.start()
            for scheme in ("https://", "http://"):
                if text.startswith(scheme, start - len(scheme)):
                    start -= len(scheme)
                    break
            out.append((_P_PREFIXED, start, m.end(), CredentialKind.SLACK_TOKEN))


# --------------------------------------------------------------------------
# Other fixed formats: Discord webhooks, Azure SAS signatures, docker
# config.json auths, Cookie headers, password hashes, passwords on command
# lines (mysql -p, curl -u, sshpass -p, ssh-keygen -N/-P).
# --------------------------------------------------------------------------

_DISCORD_WEBHOOK = _compile(
    r"discord(?:app)?\.com/api/webhooks/[0-9]{15,22}+/[A-Za-z0-9_\-]{50,100}+(?![A-Za-z0-9_\-])"
)
# Azure shared access signature: ...&sig=<url-encoded base64 HMAC>
_SAS_SIG = _compile(r"sig=(?<=[?&;]sig=)(?P<v>[A-Za-z0-9%+/=]{20,256}+)(?![A-Za-z0-9%+/=])")
# docker/podman config.json: "auth": "<base64 of user:password>"
_DOCKER_AUTH = _compile(r"\"auth\"[ \t]{0,8}+:[ \t]{0,8}+\"(?P<v>[A-Za-z0-9+/]{8,2048}+={0,2})\"")
_COOKIE = _compile(r"cookie[\"']?[ \t]{0,8}+:[ \t]{0,8}+[\"']?")
_COOKIE_PAIR = _compile(r"(?P<name>[A-Za-z0-9_.\-]{1,128}+)=(?P<v>[^;\s\"',\\]{1,4096}+)")
_COOKIE_SPAN = 4096
# crypt(3) and PHC strings: $1$ $5$ $6$ (optionally rounds=) $2a/b/y$ $apr1$ $y$
# $7$ $argon2i/d/id$; the whole string is replaced.
_HASH_LITERALS = ("$1$", "$5$", "$6$", "$2a$", "$2b$", "$2y$", "$apr1$", "$y$", "$7$", "$argon2")
_PASSWORD_HASH = _compile(
    r"\$(?:1|5|6|2[aby]|apr1|y|7|argon2(?:id|i|d))\$[A-Za-z0-9./$=,+\-]{8,1024}+"
)
_HASH_FIELD = _compile(r"[A-Za-z0-9./+]{16,1024}")
# A flag and its value on a command line. The flag must start a word.
_FLAG = _compile(
    r"-(?<![^ \t\n]-)(?P<flag>p|u|N|P|-user)(?P<sep>[ \t]{1,8}+|=)?"
    r"(?P<v>'[^'\n]{1,256}+'|\"[^\"\n]{1,256}+\"|[^\s'\"`|;&\-][^\s'\"`|;&]{0,255}+)"
)
# Literals first (the engine then skips quickly to a candidate); the left word
# boundary is checked in Python (_command_at).
_COMMAND = _compile(
    r"(?P<cmd>mysql[a-z_\-]{0,16}+|mariadb[a-z_\-]{0,16}+|curl|sshpass|ssh-keygen)"
    r"(?![A-Za-z0-9_\-])"
)
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_COMMAND_LINE_SPAN = 512


def _flag_takes_password(cmd: str, flag: str, attached: bool) -> bool:
    """``mysql -pPW``, ``curl -u user:PW``, ``sshpass -p PW``, ``ssh-keygen -N PW``."""
    if cmd.startswith(("mysql", "mariadb")):
        return flag == "p" and attached
    if cmd == "curl":
        return flag in ("u", "-user")
    if cmd == "sshpass":
        return flag == "p" and not attached
    return flag in ("N", "P") and not attached  # ssh-keygen


def _command_line_passwords(text: str, out: list[_Candidate]) -> None:
    """Flags of the commands above, read on each command's line (bounded).

    Commands are rare, so the text is searched for them and only the rest of
    their line is read for flags; the next search starts after that line, so
    every character is read once. A flag belongs to the nearest command
    before it on the line.
    """
    if not any(cmd in text for cmd in ("mysql", "mariadb", "curl", "sshpass", "ssh-keygen")):
        return
    pos = 0
    count = 0
    while True:
        first = _COMMAND.search(text, pos)
        if first is None:
            return
        if first.start() > 0 and text[first.start() - 1] in _WORD_CHARS:
            pos = first.end()  # "libcurl", "my-mysql": not the command
            continue
        stop = text.find("\n", first.end(), first.end() + _COMMAND_LINE_SPAN)
        if stop == -1:
            stop = min(len(text), first.end() + _COMMAND_LINE_SPAN)
        pos = max(stop, first.end())
        commands = [
            (m.end(), m.group("cmd"))
            for m in _COMMAND.finditer(text, first.start(), stop)
            if m.start() == 0 or text[m.start() - 1] not in _WORD_CHARS
        ]
        ends = [end for end, _ in commands]
        for m in _FLAG.finditer(text, first.end(), stop):
            if _flooded(count, m, text, out, _P_KEYED, CredentialKind.PASSWORD):
                return
            count += 1
            flag = m.group("flag")
            attached = m.group("sep") is None
            cmd = commands[bisect.bisect_right(ends, m.start()) - 1][1]
            if not _flag_takes_password(cmd, flag, attached):
                continue
            start, end = m.span("v")
            value = text[start:end]
            if value[0] in "'\"":
                start, end, value = start + 1, end - 1, value[1:-1]
            if flag in ("u", "-user"):
                user, colon, pw = value.partition(":")
                if not colon or not pw:
                    continue  # curl -u user: prompts for the password
                start += len(user) + 1
                value = pw
            if not value or _is_template(value) or "***" in value:
                continue
            if value.lower() not in _PLACEHOLDER_VALUES:
                out.append((_P_KEYED, start, end, CredentialKind.PASSWORD))


def _password_hashes(text: str, out: list[_Candidate]) -> None:
    if not any(literal in text for literal in _HASH_LITERALS):
        return
    for count, m in enumerate(_PASSWORD_HASH.finditer(text)):
        if _flooded(count, m, text, out, _P_PREFIXED, CredentialKind.PASSWORD):
            break
        value = m.group().rstrip(",")
        last = value.rsplit("$", 1)[-1]
        if not _HASH_FIELD.fullmatch(last) and not (
            value.startswith("$2") and _HASH_FIELD.fullmatch(last[-31:])
        ):
            continue  # "$1$2" in a shell script, "$6$" in prose
        if not _has_digit(last) and last in (last.lower(), last.upper()):
            continue
        out.append((_P_PREFIXED, m.start(), m.start() + len(value), CredentialKind.PASSWORD))


_SEGMENT = _compile(r"[^_.\-]{1,4096}")


def _session_value(value: str) -> bool:
    """A random session id or signed session, not ``PART_NUMBER=ROCKET_LAUNCHER_0001``."""
    if not (_high_entropy(value) and _plausible_token(value, 16)):
        return False
    for segment in _SEGMENT.findall(value):
        if (
            len(segment) >= 4
            and segment.isalpha()
            and segment in (segment.lower(), segment.upper())
        ):
            return False  # words joined by separators
    return True


def _cookies(text: str, lowered: str, out: list[_Candidate]) -> None:
    if "cookie" not in lowered:
        return
    pos = 0
    count = 0
    while True:
        m = _COOKIE.search(lowered, pos)
        if m is None:
            return
        if _flooded(count, m, text, out, _P_AUTH_HEADER, CredentialKind.BEARER_TOKEN):
            return
        count += 1
        # One header's value: the rest of the line, bounded; the next search
        # starts after it, so every character is read once.
        line_end = text.find("\n", m.end(), m.end() + _COOKIE_SPAN)
        stop = line_end if line_end != -1 else min(len(text), m.end() + _COOKIE_SPAN)
        pos = max(stop, m.end())
        set_cookie = lowered.endswith("set-", 0, m.start())
        for pair in _COOKIE_PAIR.finditer(text, m.end(), stop):
            start, end = pair.span("v")
            value = text[start:end]
            if _session_value(value):
                out.append((_P_AUTH_HEADER, start, end, CredentialKind.BEARER_TOKEN))
            if set_cookie:
                break  # the attributes that follow (Path=, Expires=) are not cookies


def _docker_auth(value: str) -> bool:
    """base64 of ``user:password``: a printable user name, a colon, any password bytes."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    user, colon, password = raw.partition(b":")
    return bool(colon and user and password) and all(32 < c < 127 for c in user)


def _formats(text: str, lowered: str | None, out: list[_Candidate]) -> None:
    if "discord" in text:
        for count, m in enumerate(_DISCORD_WEBHOOK.finditer(text)):
            if _flooded(count, m, text, out, _P_PREFIXED, CredentialKind.API_KEY):
                break
            start = m.start()
            for scheme in ("https://", "http://", "https://ptb.", "https://canary."):
                if text.startswith(scheme, start - len(scheme)):
                    start -= len(scheme)
                    break
            out.append((_P_PREFIXED, start, m.end(), CredentialKind.API_KEY))
    if "sig=" in text:
        for count, m in enumerate(_SAS_SIG.finditer(text)):
            if _flooded(count, m, text, out, _P_GENERIC, CredentialKind.GENERIC_SECRET):
                break
            value = m.group("v")
            decoded = _PERCENT.sub(lambda e: chr(int(e.group()[1:], 16)), value)
            if len(decoded) >= 20 and _plausible_token(decoded, 20):
                out.append((_P_GENERIC, m.start("v"), m.end("v"), CredentialKind.GENERIC_SECRET))
    if '"auth"' in text:
        for count, m in enumerate(_DOCKER_AUTH.finditer(text)):
            if _flooded(count, m, text, out, _P_KEYED, CredentialKind.PASSWORD):
                break
            if _docker_auth(m.group("v")):
                out.append((_P_KEYED, m.start("v"), m.end("v"), CredentialKind.PASSWORD))
    if lowered is not None:
        _cookies(text, lowered, out)
    _password_hashes(text, out)
    _command_line_passwords(text, out)


# --------------------------------------------------------------------------
# Resolution: markers are never secrets; higher priorities win overlaps.
# --------------------------------------------------------------------------

_MARKER = _compile(
    r"\[REDACTED:(?:" + "|".join(re.escape(kind.value) for kind in CredentialKind) + r")\]"
)
_ALNUM = _compile(r"[A-Za-z0-9]")


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


def _resolve(text: str, candidates: list[_Candidate]) -> list[Finding]:
    """Pick non-overlapping findings.

    Lower priority numbers win; within a priority the leftmost, then longest,
    candidate wins. The part of a candidate that overlaps a better finding or
    a ``[REDACTED:...]`` marker is cut out; what remains is kept when it holds
    a letter or digit. Markers are therefore never redacted again, and a value
    that a better finding only partly covered is still redacted in full.
    """
    covered: list[tuple[int, int]] = []  # markers and accepted findings, sorted, disjoint
    if MARKER_PREFIX in text:
        covered = [m.span() for m in _MARKER.finditer(text)]
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


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _scan_view(text: str) -> list[Finding]:
    """Every secret in ``text`` as written (no normalisation)."""
    # str.lower() keeps every index except for U+0130, which becomes two
    # characters; replacing it first keeps the lower-cased copy aligned.
    lowered = text.replace("\u0130", "i").lower()
    aligned = len(lowered) == len(text)
    candidates: list[_Candidate] = []
    _private_keys(text, candidates)
    _tokens(text, candidates)
    _database_urls(text, candidates)
    _formats(text, lowered if aligned else None, candidates)
    if aligned:
        _auth_headers(text, lowered, candidates)
        _keyed(text, lowered, candidates)
    return _resolve(text, candidates)


# --------------------------------------------------------------------------
# Evasions: a secret split by a zero-width character, wrapped onto the next
# line, or percent-encoded. The text is scanned a second time in a normalised
# view (zero-width characters removed, wrapped lines joined, %XX decoded),
# around the edits only. A finding of that view is kept when it spans an edit
# (otherwise the first scan has judged that text already); it is mapped back
# onto the original text and merged with the findings of the first scan.
# A joined line break only counts for kinds with a recognisable format
# (prefixed tokens, AWS ids, private keys): joining two lines of ordinary text
# must not turn a value into a password or a generic secret.
# --------------------------------------------------------------------------

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"
_ZERO_WIDTH_RUN = _compile("[" + _ZERO_WIDTH + "]{1,64}+")
_PERCENT = _compile(r"%[2-7][0-9A-Fa-f]")
_WRAP = r"[A-Za-z0-9_\-+/=]{4}"
# A line that ends inside a token (4+ token characters, optionally a
# backslash continuation) continued by a line whose first word is made of
# token characters only ("=" only as base64 padding at the end of the line).
_LINE_JOIN = _compile(
    rf"\n(?:(?<={_WRAP}\n)|(?<={_WRAP}\r\n)|(?<={_WRAP}\\\n)|(?<={_WRAP}\\\r\n))[ \t]{{0,64}}+"
    r"(?=[A-Za-z0-9_\-+/]{1,4096}+(?:={1,3}(?:[\r\n\"'`]|\Z)|[\s\"'`]|\Z))"
)
_FIELD_AFTER = _compile(r"[A-Za-z0-9_\-+/=]{1,4096}+")
# The literals that start a formatted token, made specific ("gh" is in "high").
_JOIN_PREFIXES = tuple(
    sorted(
        {literal for rule in _TOKEN_RULES for literal in rule.literals} - {"gh", "shp", "xox"}
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
_RUN = _compile(r"[A-Za-z0-9_\-+/=.]{1,512}")


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
    if _has_digit(value) and _LETTER.search(value) is not None:
        return True
    return len(value) >= 8 and value not in (value.lower(), value.upper()) and not _wordy(value)


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
        found = itertools.islice(_PERCENT.finditer(text), limit)
        spans.extend((m.start(), m.end(), _DECODED) for m in found)
    spans.extend(_joins(text, limit))
    spans.sort()
    return spans


def _normalised(text: str) -> _View | None:
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


def _windows(view: _View) -> list[tuple[int, int, bool]]:
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


def _scan_formats(text: str) -> list[Finding]:
    """Only the detectors of ``_JOIN_KINDS``: what a joined line may produce."""
    candidates: list[_Candidate] = []
    _private_keys(text, candidates)
    _tokens(text, candidates)
    return _resolve(text, candidates)


def _evasions(text: str, findings: list[Finding]) -> list[Finding]:
    view = _normalised(text)
    if view is None:
        return findings
    extra: list[Finding] = []
    for lo, hi, joins_only in _windows(view):
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
    return _merge(findings, extra)


def _merge(first: list[Finding], normalised: list[Finding]) -> list[Finding]:
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
