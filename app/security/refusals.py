"""Recording a refused request: an audit row and (throttled) a security alert."""

from __future__ import annotations

import logging

from app.core.context import AppContext

log = logging.getLogger("mission_control.security")


async def record_refusal(
    ctx: AppContext, *, actor: str, client: str, action: str, target: str, reason: str
) -> None:
    from app.events.transaction import transaction

    try:
        async with transaction(ctx, actor, client) as tx:
            await tx.audit(action, target, {"reason": reason}, outcome="refused")
            if ctx.alerts.should_alert(f"{actor}|{client}|{action}"):
                await tx.security_alert(
                    f"Refused: {action}",
                    f"{actor} from {client or 'unknown'} was refused on {target}: {reason}",
                )
    except Exception:  # recording must never turn a 401/403 into a 500
        log.exception("could not record a refused request")
