"""Apply held one-owner approvals once their cooling-off period is over.

The worker calls ``release_due`` in its periodic pass (every
``MC_SCHEDULE_POLL_S``), before it starts missions' next steps: a mission whose
held approval became effective starts in the same pass, without a click.
Looking at a mission's, rule's or task's approval (``GET .../approval``, the UI
pages) applies a due hold too, so a stopped worker delays nothing a person sees.

This module is where the kinds meet: it loops over each domain's subject
through the one flow (``app.approvals.flow``); it lives with the worker, above the
domains, so the approvals package imports none of them.
"""

from __future__ import annotations

from typing import Any

from app.approvals import flow
from app.approvals.subject import Subject
from app.core.context import AppContext
from app.missions.approval import SUBJECT as MISSION
from app.rules.approval import SUBJECT as RULE
from app.tasks.approval import SUBJECT as TASK

#: every kind of work a hold can be about (``app.approvals.held.KINDS``)
SUBJECTS: tuple[Subject[Any], ...] = (MISSION, RULE, TASK)


async def release_due(ctx: AppContext) -> int:
    """How many held approvals became effective."""
    applied = 0
    for subject in SUBJECTS:
        applied += await flow.release_due(ctx, subject)
    return applied
