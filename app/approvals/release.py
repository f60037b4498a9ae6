"""Apply held one-owner approvals once their cooling-off period is over.

The worker calls ``release_due`` in its periodic pass (every
``MC_SCHEDULE_POLL_S``), before it starts missions' next steps: a mission whose
held approval became effective starts in the same pass, without a click.
Looking at a mission's or rule's approval (``GET .../approval``, the UI pages)
applies a due hold too, so a stopped worker delays nothing a person sees.
"""

from __future__ import annotations

from app.core.context import AppContext
from app.missions import approval as mission_approval
from app.rules import approval as rule_approval
from app.tasks import approval as task_approval


async def release_due(ctx: AppContext) -> int:
    """How many held approvals became effective."""
    return (
        await mission_approval.release_due(ctx)
        + await rule_approval.release_due(ctx)
        + await task_approval.release_due(ctx)
    )
