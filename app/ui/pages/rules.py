"""The rules pages: the list, the form builder (words from ``app/ui/rule_labels.py``)
and one rule with its firings and approval panel.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.core.context import Ctx
from app.core.pagination import Pagination
from app.events.types import Category
from app.rules import service as rules_service
from app.rules.schemas import (
    ACTION_TYPES,
    MAX_FIRINGS_PER_HOUR_CEILING,
    Op,
    RuleTaskStatus,
    TaskPriority,
    TriggerEvent,
    allowed_fields,
)
from app.security.principal import Scope
from app.ui import approval as approval_ui
from app.ui import store
from app.ui.auth import UiSession, refuse_page
from app.ui.page_kit import not_found, or_none, pager, ui_page
from app.ui.rule_labels import builder_labels, field_label

router = APIRouter(include_in_schema=False)


def rule_builder_context() -> dict[str, Any]:
    return {
        **builder_labels(),
        "events": [e.value for e in TriggerEvent],
        "fields": {
            e.value: [[f, field_label(f)] for f in sorted(allowed_fields(e))] for e in TriggerEvent
        },
        "ops": [o.value for o in Op],
        "action_types": list(ACTION_TYPES),
        "categories": [c.value for c in Category],
        "priorities": [p.value for p in TaskPriority],
        "rule_statuses": [s.value for s in RuleTaskStatus],
        "max_firings": MAX_FIRINGS_PER_HOUR_CEILING,
    }


@router.get("/ui/rules", response_class=HTMLResponse)
async def rules_page(
    request: Request, principal: UiSession, ctx: Ctx, page_params: Pagination
) -> HTMLResponse:
    items, total = await rules_service.list_rules(ctx, page_params, enabled=None, event_type=None)
    return await ui_page(
        request,
        principal,
        ctx,
        "rules.html",
        title="Rules",
        section="rules",
        rules=items,
        pager=pager(request, (total, page_params)),
    )


@router.get("/ui/rules/new", response_class=HTMLResponse)
async def rule_new_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    if not principal.scope.allows(Scope.ADMIN):
        return await refuse_page(request, ctx, principal, Scope.ADMIN)
    builder = rule_builder_context()
    return await ui_page(
        request,
        principal,
        ctx,
        "rule_new.html",
        title="New rule",
        section="rules",
        builder=builder,
        builder_json=json.dumps(
            {
                "fields": builder["fields"],
                "categories": builder["default_categories"],
                "presets": {p["id"]: p for p in builder["presets"]},
            }
        ),
        agents=await store.agent_names(ctx.db),
    )


@router.get("/ui/rules/{rule_id}", response_class=HTMLResponse)
async def rule_page(
    rule_id: int, request: Request, principal: UiSession, ctx: Ctx, page_params: Pagination
) -> HTMLResponse:
    approval = await approval_ui.rule_context(ctx, principal, rule_id)  # applies a due hold
    rule = await or_none(rules_service.get_rule(ctx, rule_id))
    if rule is None or approval is None:
        return not_found(request, principal, "rule")
    firings, total = await rules_service.list_firings(ctx, rule_id, page_params)
    return await ui_page(
        request,
        principal,
        ctx,
        "rule.html",
        title=f"Rule {rule.name}",
        section="rules",
        rule=rule,
        rule_json=json.dumps({"when": rule.when, "then": rule.then}, indent=2),
        labels=builder_labels(),
        field_label=field_label,
        firings=firings,
        pager=pager(request, (total, page_params)),
        **approval,
    )
