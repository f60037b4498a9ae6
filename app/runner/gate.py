"""The gate an agent's output passes before anything of it is stored (F14, F24):
the exact values of the profile's credential file and login
(:attr:`app.profiles.environment.ChildEnv.secret_values`), then everything the
credential gate recognises. The worker's own: only a run's output passes it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from app.security.credential_gate import redact

#: replaces an exact value from the profile's credential file in stored output
PROFILE_SECRET_MARKER = "[REDACTED:profile_credential]"  # noqa: S105 - a marker


def output_gate(secret_values: Iterable[str]) -> Callable[[str], str]:
    """The gate for an agent's output before anything of it is stored (transcript,
    live output): the exact credential-file values, then everything the credential
    gate recognises."""
    values = sorted((v for v in secret_values if len(v) >= 4), key=len, reverse=True)

    def gated(text: str) -> str:
        for value in values:
            text = text.replace(value, PROFILE_SECRET_MARKER)
        return redact(text).text

    return gated
