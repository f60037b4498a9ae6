"""The prompt of one run, and the credential gate in front of it (F14, point 3).

Built from: the agent's current identity text, its latest memory entries, the
project context (``load_context``), the mission's goal and step when the task
belongs to one, and the task's title and description. Every part has a size
bound, and so has the whole.

The stores redact on the way in (task creation, memory, project documents), but
the prompt does not trust that: rows written before the gate existed, by SQL, or
by a detector that has since improved would otherwise reach the agent. So:

1. a part longer than its bound is redacted *before* it is cut (a secret cut in
   half is no longer recognisable, and half a key is still a leak);
2. the **whole** prompt is redacted just before it is returned, which is what
   the worker hands to the agent, whatever the stores hold.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from app.core.database import Database
from app.projects.service import load_context
from app.runner.claims import Claim
from app.security.credential_gate import redact

MAX_PROMPT_CHARS = 200_000
MAX_IDENTITY_CHARS = 20_000
MAX_MEMORY_ENTRIES = 20
MAX_MEMORY_ENTRY_CHARS = 2_000
MAX_CONTEXT_CHARS = 60_000
MAX_MISSION_CHARS = 10_000
MAX_TITLE_CHARS = 1_000
MAX_DESCRIPTION_CHARS = 40_000


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
    #: credentials the gate removed, per kind (both passes together)
    redacted: dict[str, int]

    @property
    def found(self) -> bool:
        return bool(self.redacted)


class _Gate:
    """Redacts and counts."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, text: str) -> str:
        result = redact(text)
        for kind, count in result.counts.items():
            self.counts[kind.value] += count
        return result.text


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {len(text) - limit} more characters not shown]"


def _bounded(gate: _Gate, text: str, limit: int) -> str:
    """``text`` cut to ``limit``; redacted first when it has to be cut."""
    if len(text) <= limit:
        return text
    return clip(gate(text), limit)


async def _identity(db: Database, claim: Claim) -> str:
    row = await db.fetch_one(
        "SELECT text FROM agent_identities WHERE agent_id = ? AND version = ?",
        (claim.agent_id, claim.identity_version),
    )
    return "" if row is None else str(row[0])


async def _memory(db: Database, agent_id: int) -> list[str]:
    rows = await db.fetch_all(
        "SELECT content FROM agent_memory WHERE agent_id = ? AND deleted_at IS NULL"
        " ORDER BY id DESC LIMIT ?",
        (agent_id, MAX_MEMORY_ENTRIES),
    )
    return [str(row[0]) for row in reversed(rows)]  # oldest first, newest last


async def _mission(db: Database, claim: Claim) -> str:
    if claim.mission_id is None:
        return ""
    row = await db.fetch_one(
        "SELECT title, goal, steps FROM missions WHERE id = ?", (claim.mission_id,)
    )
    if row is None:
        return ""
    lines = [f"Mission: {row['title']}", f"Goal: {row['goal']}"]
    try:
        steps = json.loads(row["steps"])
    except (TypeError, ValueError):
        steps = []
    if not isinstance(steps, list):
        steps = []
    index = claim.mission_step
    if index is not None and 1 <= index <= len(steps) and isinstance(steps[index - 1], dict):
        step = steps[index - 1]
        lines.append(f"This is step {index} of {len(steps)}: {step.get('title', '')}")
        instructions = step.get("instructions")
        if isinstance(instructions, str) and instructions.strip():
            lines.append(instructions)
    return "\n".join(lines)


async def build_prompt(db: Database, claim: Claim) -> Prompt:
    """The gated, bounded prompt for one run of ``claim``."""
    gate = _Gate()
    sections: list[str] = []

    identity = await _identity(db, claim)
    if identity.strip():
        sections.append("# Who you are\n" + _bounded(gate, identity, MAX_IDENTITY_CHARS))

    memory = await _memory(db, claim.agent_id)
    if memory:
        entries = [f"- {_bounded(gate, entry, MAX_MEMORY_ENTRY_CHARS)}" for entry in memory]
        sections.append("# Your memory (oldest first)\n" + "\n".join(entries))

    if claim.project_id is not None:
        context = await load_context(db, claim.project_id)
        if context.strip():
            sections.append("# Project context\n" + _bounded(gate, context, MAX_CONTEXT_CHARS))

    mission = await _mission(db, claim)
    if mission:
        sections.append("# Mission\n" + _bounded(gate, mission, MAX_MISSION_CHARS))

    task = [f"Title: {_bounded(gate, claim.title, MAX_TITLE_CHARS)}"]
    if claim.description.strip():
        task.append(_bounded(gate, claim.description, MAX_DESCRIPTION_CHARS))
    sections.append("# Your task\n" + "\n".join(task))

    # The gate in front of the agent: the whole text, whatever the parts were.
    text = clip(gate("\n\n".join(sections) + "\n"), MAX_PROMPT_CHARS)
    return Prompt(text=text, redacted=dict(gate.counts))
