"""A health finding: one current problem, its cause in plain words and its fix.

The host checks (``app/care/checks.py``), the sandbox (``app/care/sandbox.py``)
and the notifications domain (``app/notifications/health.py``) each produce
them; ``missionctl monitor`` turns them into notifications and ``/api/health``
lists them as repairs (``app/care/repairs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str  # warning or critical
    title: str
    #: the cause, in plain words
    body: str
    #: the command (or page) that fixes it
    fix: str = ""

    def as_repair(self) -> dict[str, str]:
        return {
            "check": self.check,
            "severity": self.severity,
            "title": self.title,
            "cause": self.body,
            "fix": self.fix,
        }
