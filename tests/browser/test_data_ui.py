"""Memory and project documents in real Chromium: listed with who added each and
when, framed as data, added and removed through the page's forms, and versioned
with the identity's diff (docs/security-model.md, "Memory and documents"). These
are the steps ``FORMS`` of ``tests/browser/test_forms.py`` names for the memory
removal and the project forms. An operator sees no removal button and the server
refuses it (tests/api/test_data_versions.py).

No worker runs in this module.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.browser import Console, Server
from tests.support.ui import Stored, confirm, id_from_url, log_in

pytest.importorskip("playwright.sync_api")

UI_WORKER = False


def diff_text(page: Any) -> list[str]:
    return page.locator("pre.diff span").all_inner_texts()


def test_memory_is_listed_diffed_and_removed(
    browser: Any, server: Server, console: Console
) -> None:
    stored = Stored(server.root / "mc.db")
    page = browser.new_page()
    log_in(page, "alice")
    page.goto("/ui/agents")
    page.get_by_label("Name", exact=True).fill("scribe")
    page.get_by_label("Role").fill("notes")
    page.get_by_label("Identity (system prompt)").fill("Take notes.")
    page.get_by_role("button", name="Create agent").click()
    page.wait_for_url(re.compile(r"/ui/agents/\d+$"))
    agent_id = id_from_url(page)

    for text in ("Prefers short notes.", "Deploys on Fridays."):
        page.get_by_label("Add a memory entry").fill(text)
        page.get_by_role("button", name="Add", exact=True).click()
        page.locator("#memory-list li", has_text=text).wait_for()
    first, second = (
        int(row["id"])
        for row in stored.rows(
            "SELECT id FROM agent_memory WHERE agent_id = ? ORDER BY id", (agent_id,)
        )
    )
    entry = page.locator(f"#memory-{first}")
    assert f"#{first} added by user:alice" in entry.inner_text()
    assert "untrusted data" in page.locator("#memory-framing").inner_text()

    page.get_by_role("link", name="Memory versions and their changes").click()
    page.wait_for_url(re.compile(rf"/ui/agents/{agent_id}/memory$"))
    assert page.locator("#h-versions + p + .table-wrap tbody tr").count() == 2
    lines = diff_text(page)
    assert "+Deploys on Fridays." in lines and "+Prefers short notes." not in lines
    assert any(line.startswith(f"+## memory #{second} · added by user:alice") for line in lines)

    page.goto(f"/ui/agents/{agent_id}")
    page.get_by_role("button", name=f"Remove entry #{first}").click()
    confirm(page)
    page.locator(f"#memory-{first}").wait_for(state="detached")
    assert stored.value("SELECT deleted_at FROM agent_memory WHERE id = ?", (first,)) is not None
    assert (
        stored.value(
            "SELECT reason FROM data_versions WHERE subject = 'agent_memory' AND subject_id = ?"
            " AND version = 3",
            (agent_id,),
        )
        == f"removed entry #{first}"
    )
    page.goto(f"/ui/agents/{agent_id}/memory")
    assert "-Prefers short notes." in diff_text(page)
    console.assert_clean()


def test_project_documents_are_added_diffed_and_removed(
    browser: Any, server: Server, console: Console
) -> None:
    stored = Stored(server.root / "mc.db")
    page = browser.new_page()
    log_in(page, "alice")
    page.goto("/ui/projects")
    page.get_by_label("Name", exact=True).fill("garden")
    page.get_by_label("Description").fill("The garden robot.")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url(re.compile(r"/ui/projects/\d+$"))
    project_id = id_from_url(page)
    assert stored.value("SELECT name FROM projects WHERE id = ?", (project_id,)) == "garden"

    page.get_by_label("Document title").fill("Runbook")
    page.get_by_label("Document text").fill("Water at dawn.\nNever at noon.")
    page.get_by_role("button", name="Add document").click()
    page.locator("#document-list li", has_text="Runbook").wait_for()
    row = stored.one(
        "SELECT id, title, body, created_by FROM project_documents WHERE project_id = ?",
        (project_id,),
    )
    assert (row["title"], row["body"], row["created_by"]) == (
        "Runbook",
        "Water at dawn.\nNever at noon.",
        "user:alice",
    )
    document = page.locator(f"#document-{row['id']}")
    assert f"#{row['id']} added by user:alice" in document.inner_text()
    assert "+Never at noon." in diff_text(page)

    # an operator sees the documents but no way to remove one
    other = browser.new_page()
    log_in(other, "bob")
    other.goto(f"/ui/projects/{project_id}")
    other.locator(f"#document-{row['id']}").wait_for()
    assert other.get_by_role("button", name=re.compile("Remove document")).count() == 0
    other.close()

    log_in(page, "alice")
    page.goto(f"/ui/projects/{project_id}")
    page.get_by_role("button", name=f"Remove document #{row['id']}").click()
    confirm(page)
    page.locator(f"#document-{row['id']}").wait_for(state="detached")
    assert (
        stored.value("SELECT deleted_at FROM project_documents WHERE id = ?", (row["id"],))
        is not None
    )
    lines = diff_text(page)
    assert "-Water at dawn." in lines and "-Never at noon." in lines
    audit = stored.value(
        "SELECT actor FROM audit_log WHERE action = 'project.document_deleted' AND target = ?",
        (f"project:{project_id}",),
    )
    assert audit == "user:alice"
    console.assert_clean()
