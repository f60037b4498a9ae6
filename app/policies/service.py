"""Changing the notification policy (F6).

Step 2 of the attack chain is "mute the owner". Three barriers answer it here:
the ``security`` category can never be muted, quieted or routed away (422
naming the field, and the attempt is recorded as a refusal with a security
alert); every accepted change, even one that changes nothing, raises a
security notification; and every change is audited with its before and after.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from app.access.caller import Caller
from app.access.refusals import record_refusal
from app.core.context import AppContext
from app.core.errors import ApiError
from app.events.transaction import transaction
from app.events.types import EventType
from app.policies.model import NotificationPolicy, NotificationPolicyFields
from app.policies.store import NOTIFICATIONS, load_notification_policy, save_notification_policy


class NotificationPolicyUpdate(NotificationPolicyFields):
    """PUT body: the whole policy and the version it replaces (409 when stale)."""

    model_config = ConfigDict(extra="forbid")

    version: int


class NotificationPolicyView(BaseModel):
    policy: NotificationPolicy
    version: int
    updated_by: str | None = None
    updated_at: str | None = None


def _policy_summary(policy: NotificationPolicy) -> dict[str, Any]:
    dumped: dict[str, Any] = policy.model_dump(mode="json")
    return dumped


async def get_notification_policy(ctx: AppContext) -> NotificationPolicyView:
    row = await ctx.db.fetch_one(
        "SELECT value, version, updated_by, updated_at FROM policies WHERE name = ?",
        (NOTIFICATIONS,),
    )
    if row is None:
        return NotificationPolicyView(policy=NotificationPolicy(), version=0)
    return NotificationPolicyView(
        policy=NotificationPolicy.model_validate_json(row["value"]),
        version=int(row["version"]),
        updated_by=str(row["updated_by"]),
        updated_at=str(row["updated_at"]),
    )


async def put_notification_policy(
    ctx: AppContext, body: NotificationPolicyUpdate, caller: Caller
) -> NotificationPolicyView:
    violations = body.security_lock_violations()
    if violations:
        fields = sorted(violations)
        await record_refusal(
            ctx,
            actor=caller.actor,
            client=caller.client,
            action="policy.notifications.update",
            target=f"policy:{NOTIFICATIONS}",
            reason="attempt to silence security notifications: " + ", ".join(fields),
        )
        raise ApiError(
            422,
            "security_locked",
            "; ".join(violations[f] for f in fields),
            [
                {"loc": ["body", field], "type": "security_locked", "message": violations[field]}
                for field in fields
            ],
        )
    policy = NotificationPolicy.model_validate(body.model_dump(exclude={"version"}))
    async with transaction(ctx, caller.actor, caller.client) as tx:
        before, current_version = await load_notification_policy(tx.conn)
        if body.version != current_version:
            raise ApiError(
                409,
                "conflict",
                "the policy was changed since you read it; reload and retry",
                {"current_version": current_version},
            )
        new_version = await save_notification_policy(
            tx.conn, policy, expected_version=current_version, actor=caller.actor
        )
        if new_version is None:
            raise ApiError(409, "conflict", "the policy was changed since you read it")
        summary = {
            "before": _policy_summary(before),
            "after": _policy_summary(policy),
            "version": new_version,
        }
        changed = summary["before"] != summary["after"]
        await tx.audit("policy.notifications.update", f"policy:{NOTIFICATIONS}", summary)
        await tx.emit(
            EventType.POLICY_CHANGED,
            "policy",
            None,
            {"name": NOTIFICATIONS, "version": new_version, "changed": changed},
        )
        await tx.security_alert(
            "Notification policy changed",
            f"{caller.actor} changed the notification policy to version {new_version}"
            f" ({'changed' if changed else 'no effective change'}): muted"
            f" {[c.value for c in policy.muted_categories]}, quiet"
            f" {[c.value for c in policy.quiet_categories]}.",
        )
    return await get_notification_policy(ctx)
