"""Detector: prefixed tokens (provider API keys, GitHub, Slack, Stripe, AWS
access key ids, Google OAuth, bare JWTs) and Slack webhooks, matched on the
original text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from app.security.credential_gate.heuristics import has_digit
from app.security.credential_gate.model import P_JWT, P_PREFIXED, Candidate, CredentialKind
from app.security.credential_gate.patterns import compiled, flooded

_TOKEN_CHARS = r"A-Za-z0-9_\-"  # noqa: S105 - a character class


def _token(prefix: str, prefix_len: int, body: str, tail: str = _TOKEN_CHARS) -> str:
    """A prefixed token with word boundaries on both sides.

    The literal ``prefix`` comes first so the engine searches for it quickly.
    The left boundary is a fixed-width look-behind placed *after* the prefix
    (a leading look-behind would disable the literal search).
    """
    return rf"{prefix}(?<![{_TOKEN_CHARS}][\s\S]{{{prefix_len}}}){body}(?![{tail}])"


def _random_looking(value: str) -> bool:
    """A prefixed token with a digit in it, so not ``sk-learn-like-words`` nor
    ``ghp_xxxxxxxx...``. The prefix is specific enough: no entropy threshold
    (when in doubt, a token-shaped string is redacted)."""
    return has_digit(value)


@dataclass(frozen=True, slots=True)
class _TokenRule:
    kind: CredentialKind
    pattern: re.Pattern[str]
    literals: tuple[str, ...]
    priority: int = P_PREFIXED
    check: Callable[[str], bool] | None = _random_looking


TOKEN_RULES: tuple[_TokenRule, ...] = (
    # --- Mission Control's own API tokens: mc_<10 lower-case id>_<43 url-safe> -----
    # (app/security/tokens.py). Exact shape, so no randomness check.
    _TokenRule(
        CredentialKind.API_KEY,
        compiled(_token("mc_", 3, r"[a-z0-9]{10}_[A-Za-z0-9_\-]{43}")),
        ("mc_",),
        check=None,
    ),
    # --- AI and SaaS provider API keys -----------------------------------
    # Anthropic sk-ant-..., OpenAI sk-..., sk-proj-..., sk-svcacct-..., OpenRouter sk-or-v1-...
    _TokenRule(
        CredentialKind.API_KEY, compiled(_token("sk-", 3, r"[A-Za-z0-9_\-]{20,200}+")), ("sk-",)
    ),
    _TokenRule(
        CredentialKind.API_KEY,
        compiled(_token("AIza", 4, r"[A-Za-z0-9_\-]{35}")),
        ("AIza",),
        check=None,
    ),
    _TokenRule(
        CredentialKind.API_KEY, compiled(_token("hf_", 3, r"[A-Za-z0-9]{30,64}+")), ("hf_",)
    ),
    _TokenRule(
        CredentialKind.API_KEY, compiled(_token("gsk_", 4, r"[A-Za-z0-9]{40,64}+")), ("gsk_",)
    ),
    _TokenRule(
        CredentialKind.API_KEY, compiled(_token("r8_", 3, r"[A-Za-z0-9]{30,64}+")), ("r8_",)
    ),
    _TokenRule(
        CredentialKind.API_KEY, compiled(_token("xai-", 4, r"[A-Za-z0-9]{60,120}+")), ("xai-",)
    ),
    _TokenRule(
        CredentialKind.API_KEY, compiled(_token("pplx-", 5, r"[A-Za-z0-9]{40,64}+")), ("pplx-",)
    ),
    _TokenRule(
        CredentialKind.API_KEY,
        compiled(_token("glpat-", 6, r"[A-Za-z0-9_\-]{20,64}+")),
        ("glpat-",),
    ),
    _TokenRule(CredentialKind.API_KEY, compiled(_token("npm_", 4, r"[A-Za-z0-9]{36}")), ("npm_",)),
    _TokenRule(
        CredentialKind.API_KEY,
        compiled(_token("pypi-AgE", 8, r"[A-Za-z0-9_\-]{50,400}+")),
        ("pypi-AgE",),
    ),
    _TokenRule(
        CredentialKind.API_KEY,
        compiled(_token(r"SG\.", 3, r"[A-Za-z0-9_\-]{16,32}+\.[A-Za-z0-9_\-]{16,64}+")),
        ("SG.",),
    ),
    _TokenRule(
        CredentialKind.API_KEY, compiled(_token("dop_v1_", 7, r"[a-f0-9]{64}")), ("dop_v1_",)
    ),
    _TokenRule(
        CredentialKind.API_KEY,
        compiled(_token("shp(?:at|ss|ca|pa)_", 6, r"[a-fA-F0-9]{32}")),
        ("shp",),
    ),
    # --- GitHub ----------------------------------------------------------
    _TokenRule(
        CredentialKind.GITHUB_TOKEN,
        compiled(_token("gh[pousr]_", 4, r"[A-Za-z0-9]{36,251}+")),
        ("gh",),
    ),
    _TokenRule(
        CredentialKind.GITHUB_TOKEN,
        compiled(_token("github_pat_", 11, r"[A-Za-z0-9_]{60,255}+")),
        ("github_pat_",),
    ),
    # --- Slack -----------------------------------------------------------
    _TokenRule(
        CredentialKind.SLACK_TOKEN,
        compiled(_token("xox[abposr]-", 5, r"[A-Za-z0-9\-]{10,250}+")),
        ("xox",),
    ),
    _TokenRule(
        CredentialKind.SLACK_TOKEN,
        compiled(_token("xapp-", 5, r"[A-Za-z0-9\-]{20,250}+")),
        ("xapp-",),
    ),
    # --- Stripe ----------------------------------------------------------
    # One rule per literal prefix: a leading character class ([srp]k_) would
    # make the engine stop at every s, r and p of ordinary prose.
    *(
        _TokenRule(
            CredentialKind.STRIPE_KEY,
            compiled(_token(f"{p}k_(?:live|test)_", 8, r"[A-Za-z0-9]{10,247}+")),
            (f"{p}k_live_", f"{p}k_test_"),
        )
        for p in "srp"
    ),
    _TokenRule(
        CredentialKind.STRIPE_KEY,
        compiled(_token("whsec_", 6, r"[A-Za-z0-9+/=]{24,128}+", tail=_TOKEN_CHARS + "+/=")),
        ("whsec_",),
    ),
    # --- AWS access key ids (base32 body) ---------------------------------
    _TokenRule(
        CredentialKind.AWS_KEY,
        compiled(_token("A[KS]IA", 4, r"[A-Z2-7]{16}", tail="A-Za-z0-9")),
        ("AKIA", "ASIA"),
        check=None,
    ),
    # --- Google OAuth access and refresh tokens ---------------------------
    _TokenRule(
        CredentialKind.OAUTH_TOKEN,
        compiled(_token(r"ya29\.", 5, r"[A-Za-z0-9_\-]{20,2048}+")),
        ("ya29.",),
    ),
    _TokenRule(
        CredentialKind.OAUTH_TOKEN,
        compiled(_token("1//0", 4, r"[A-Za-z0-9_\-]{30,512}+")),
        ("1//0",),
    ),
    # --- bare JSON Web Tokens (header.payload.signature, JWE up to 5 parts)
    _TokenRule(
        CredentialKind.BEARER_TOKEN,
        compiled(
            _token(
                "eyJ",
                3,
                r"[A-Za-z0-9_\-]{10,8192}+\.[A-Za-z0-9_\-]{10,16384}+\.[A-Za-z0-9_\-]{0,8192}+"
                r"(?:\.[A-Za-z0-9_\-]{0,16384}+)?(?:\.[A-Za-z0-9_\-]{0,8192}+)?",
                tail=_TOKEN_CHARS + ".",
            )
        ),
        ("eyJ",),
        priority=P_JWT,
        check=None,
    ),
)

_SLACK_WEBHOOK = compiled(
    r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]{20,300}+(?![A-Za-z0-9_/\-])"
)


def find_tokens(text: str, out: list[Candidate]) -> None:
    for rule in TOKEN_RULES:
        if not any(literal in text for literal in rule.literals):
            continue
        for count, m in enumerate(rule.pattern.finditer(text)):
            if flooded(count, m, text, out, rule.priority, rule.kind):
                break
            if rule.check is None or rule.check(m.group()):
                out.append((rule.priority, m.start(), m.end(), rule.kind))
    if "hooks.slack.com/" in text:
        for count, m in enumerate(_SLACK_WEBHOOK.finditer(text)):
            if flooded(count, m, text, out, P_PREFIXED, CredentialKind.SLACK_TOKEN):
                break
            start = m.start()
            for scheme in ("https://", "http://"):
                if text.startswith(scheme, start - len(scheme)):
                    start -= len(scheme)
                    break
            out.append((P_PREFIXED, start, m.end(), CredentialKind.SLACK_TOKEN))
