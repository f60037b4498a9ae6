"""The rule builder speaks English and never defaults a notification to the
``security`` category (which can be neither muted nor quieted)."""

from __future__ import annotations

import json
import re
from html import unescape

import httpx

from app.rules.schemas import Op, TriggerEvent, allowed_fields
from app.ui.rule_labels import (
    EVENT_LABELS,
    FIELD_LABELS,
    OP_LABELS,
    PRESETS,
    default_category,
)
from tests.support.api import login


def test_every_event_field_and_operator_has_a_label() -> None:
    assert {e.value for e in TriggerEvent} <= set(EVENT_LABELS)
    assert {f for e in TriggerEvent for f in allowed_fields(e)} <= set(FIELD_LABELS)
    assert {o.value for o in Op} <= set(OP_LABELS)


def test_no_event_defaults_to_the_security_category() -> None:
    categories = {e.value: default_category(e.value) for e in TriggerEvent}
    assert "security" not in categories.values()
    assert categories["task.status_changed"] == "task"
    assert categories["conversation.failed"] == "runner"
    assert categories["mission.failed"] == "mission"


async def test_the_builder_page_shows_labels_and_presets(
    client: httpx.AsyncClient, admin_user: str
) -> None:
    await login(client, admin_user)
    html = (await client.get("/ui/rules/new")).text
    assert '<option value="task.status_changed">A task changes status' in html
    assert '<option value="eq">is</option>' in html
    selected = re.search(r'name="then\.0\.category"[^>]*>(.*?)</select>', html, re.S)
    assert selected is not None
    assert re.search(r'<option value="(\w+)" selected>', selected.group(1)).group(1) != "security"  # type: ignore[union-attr]
    data = json.loads(unescape(re.search(r'data-fields="([^"]*)"', html).group(1)))  # type: ignore[union-attr]
    assert set(data["presets"]) == {p["id"] for p in PRESETS}
    assert ["payload.to", "new status"] in data["fields"]["task.status_changed"]
    for label in ("Notify me when a task fails", "Review every finished task"):
        assert 'data-preset="' in html and label in html
