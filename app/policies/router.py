"""Notification policy endpoints (F6). HTTP only; the rules are in the service."""

from __future__ import annotations

from fastapi import APIRouter

from app.access.caller import AdminCaller
from app.access.dependencies import ReadAccess
from app.core.context import Ctx
from app.policies import service
from app.policies.service import NotificationPolicyUpdate, NotificationPolicyView

router = APIRouter(prefix="/api/policies", tags=["policies"])


@router.get("/notifications", response_model=NotificationPolicyView)
async def get_notification_policy(_: ReadAccess, ctx: Ctx) -> NotificationPolicyView:
    """Scope read. The current notification policy and its version."""
    return await service.get_notification_policy(ctx)


@router.put("/notifications", response_model=NotificationPolicyView)
async def put_notification_policy(
    body: NotificationPolicyUpdate, caller: AdminCaller, ctx: Ctx
) -> NotificationPolicyView:
    """Admin only. Replace the policy (send the ``version`` you read; 409 when stale).

    The ``security`` category can never be muted, quieted or routed away from
    the webhook (422 ``security_locked`` naming the field; the attempt is
    recorded and raises a security alert). Every change raises a security
    notification and is audited with its before and after.
    """
    return await service.put_notification_policy(ctx, body, caller)
