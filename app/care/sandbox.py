"""The agents' filesystem sandbox in ``/api/health``: a summary and repairs.

Each worker probes the sandbox at start (``app/runner/sandbox.py``) and puts the
result in the ``sandbox`` key of its ``worker_heartbeats`` state. Here the live
workers' results become ``runner_sandbox`` (the least safe of them) and, when runs
are not confined, an entry of the ``repairs`` list with the fix.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.core.clock import iso, utcnow
from app.core.findings import Finding

#: least safe first
_ORDER = ("refused", "incomplete", "unconfined", "off", "enforced")

_LANDLOCK_FIX = (
    "enable Landlock: add 'landlock' to the lsm= list of the kernel command line (on a"
    " Raspberry Pi: /boot/firmware/cmdline.txt, e.g. lsm=landlock,lockdown,yama,integrity,"
    "apparmor), reboot, then check with 'sudo -u mission-control missionctl runner"
    " sandbox-check'"
)


def _live(workers: list[dict[str, Any]], stale_minutes: int) -> list[dict[str, Any]]:
    since = iso(utcnow() - timedelta(minutes=stale_minutes))
    return [w for w in workers if str(w.get("seen_at", "")) >= since]


def _sandbox(worker: dict[str, Any]) -> dict[str, Any] | None:
    state = worker.get("state")
    value = state.get("sandbox") if isinstance(state, dict) else None
    return value if isinstance(value, dict) else None


def sandbox_summary(workers: list[dict[str, Any]], stale_minutes: int) -> dict[str, Any]:
    """``{"status", "enforced", "reason"}`` of the least safe live worker
    (``unknown`` when no live worker reported one)."""
    found = [s for s in map(_sandbox, _live(workers, stale_minutes)) if s is not None]
    if not found:
        return {"status": "unknown", "enforced": False, "reason": "no live worker reported it"}

    def rank(item: dict[str, Any]) -> int:
        status = item.get("status")
        return _ORDER.index(status) if status in _ORDER else 0

    worst = min(found, key=rank)
    return {
        "status": worst.get("status"),
        "enforced": worst.get("status") == "enforced",
        "mode": worst.get("mode"),
        "landlock_abi": worst.get("landlock_abi"),
        "reason": worst.get("reason"),
    }


def sandbox_findings(workers: list[dict[str, Any]], stale_minutes: int) -> list[Finding]:
    summary = sandbox_summary(workers, stale_minutes)
    status, reason = summary["status"], summary.get("reason") or ""
    if status == "refused":
        return [
            Finding(
                "runner_sandbox",
                "critical",
                "Agent runs refused: the filesystem sandbox is unavailable",
                "MC_RUNNER_SANDBOX=required, but the worker could not confine agents with"
                f" Landlock ({reason}). Queued tasks wait until it can.",
                _LANDLOCK_FIX,
            )
        ]
    if status == "incomplete":
        return [
            Finding(
                "runner_sandbox",
                "critical",
                "Agent sandbox incomplete",
                f"{reason}. Agents may reach files they should not.",
                "'missionctl runner sandbox-check' shows which check failed; report it",
            )
        ]
    if status == "unconfined":
        return [
            Finding(
                "runner_sandbox",
                "warning",
                "Agent runs are not confined: unconfined filesystem",
                "Agents run with the worker's file access (the database included), because"
                f" the Landlock sandbox is unavailable: {reason}.",
                _LANDLOCK_FIX + "; then set MC_RUNNER_SANDBOX=required",
            )
        ]
    if status == "off":
        return [
            Finding(
                "runner_sandbox",
                "warning",
                "Agent sandbox switched off",
                "MC_RUNNER_SANDBOX=off: agents run with the worker's file access, the"
                " database included.",
                "remove MC_RUNNER_SANDBOX=off (or set it to required) and restart the worker",
            )
        ]
    return []
