"""Recording a refused request: an audit row and (throttled) a security alert."""

from __future__ import annotations

import logging

from app.core.context import AppContext

log = logging.getLogger("mission_control.security")

#: how often counted anonymous refusals are written (rows are per minute anyway)
FLUSH_INTERVAL_S = 15.0


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


async def record_anonymous_refusal(
    ctx: AppContext, *, client: str, action: str, target: str, reason: str
) -> None:
    """A refused request without a valid credential: counted, not written one by one.

    The audit row comes per client, route and minute with a count
    (``flush_anonymous_refusals``); the security notification at most once per
    client every ``ALERT_INTERVAL_S``, whatever routes it tries."""
    from app.events.transaction import transaction

    ctx.refusals.note(client, action, target, reason)
    if not ctx.alerts.should_alert(f"anonymous|{client}"):
        return
    try:
        async with transaction(ctx, "anonymous", client) as tx:
            await tx.security_alert(
                f"Refused: {action}",
                f"a request without a valid credential from {client or 'unknown'} was refused"
                f" on {target}: {reason}; further refusals from this client are counted in the"
                " audit log, one row per route and minute",
            )
    except Exception:  # recording must never turn a 401/403 into a 500
        log.exception("could not record a refused request")


async def flush_anonymous_refusals(ctx: AppContext, everything: bool = False) -> int:
    """Write the counted anonymous refusals: one audit row per client, route and minute."""
    from datetime import UTC, datetime

    from app.security import audit

    counts = ctx.refusals.drain(everything)
    for item in counts:
        start = datetime.fromtimestamp(item.minute * item.window_s, UTC)
        minute = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        await audit.record(
            ctx.db,
            actor="anonymous",
            action=item.action,
            target=item.target,
            client=item.client,
            outcome="refused",
            summary={
                "reason": item.reason,
                "count": item.count,
                "window_start": minute,
                "window_s": item.window_s,
            },
        )
    return len(counts)


async def anonymous_refusals_job(ctx: AppContext) -> None:
    """Flush counted refusals every few seconds, and everything at shutdown."""
    import asyncio

    try:
        while True:
            await asyncio.sleep(min(FLUSH_INTERVAL_S, ctx.refusals.window_s / 4))
            try:
                await flush_anonymous_refusals(ctx)
            except Exception:
                log.exception("could not write counted refusals")
    finally:
        try:
            await flush_anonymous_refusals(ctx, everything=True)
        except Exception:
            log.exception("could not write counted refusals at shutdown")
