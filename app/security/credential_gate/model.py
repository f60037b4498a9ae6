"""The gate's vocabulary: the kinds of credential, a finding, a redaction, the
``[REDACTED:<kind>]`` marker, and the candidate tuples the detectors produce
with their resolution priorities.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


# Resolution priorities: a lower number wins an overlap. Specific formats beat
# context-based guesses; the entropy-based generic detector comes last.
P_PRIVATE_KEY = 0
P_PREFIXED = 1
P_URL = 2
P_AUTH_HEADER = 3
P_KEYED = 4
P_JWT = 5
P_GENERIC = 6

# (priority, start, end, kind)
Candidate = tuple[int, int, int, CredentialKind]
