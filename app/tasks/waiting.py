""" "Waiting for you": a run that ends asking the person for input (docs/missions.md).

The convention (every work prompt states it, ``app/runner/prompt.py``): an agent
that needs the person's input ends its final reply with a line that starts with
``QUESTION:``; the text from there to the end of the reply is the question. A
succeeded run whose reply holds such a line (the last one counts) opens one
``agent_question`` escalation about the run: it is on the dashboard's "Waiting
for you" panel and a notification. Replying to the run (a follow-up turn,
``POST /api/conversations/{id}/follow-up``) resolves it in the same transaction
that queues the reply. The reply text is already through the output gate (it is
the stored transcript).
"""

from __future__ import annotations

import re
from typing import Protocol

from app.core.database import Database, Row
from app.escalations import store as escalations_store
from app.events.transaction import Tx
from app.events.types import EventType
from app.security.principal import Scope

KIND = "agent_question"
#: what is kept of a question in the escalation
MAX_QUESTION_CHARS = 1_000
#: the escalation kinds the dashboard lists as waiting for the person
WAITING_KINDS = (KIND, "review_waiting", "mission_waiting")
#: the sentence every work prompt ends with
CONVENTION = (
    "If you cannot finish without the person's input, end your reply with a line that"
    " starts with QUESTION: followed by your question; the person's answer comes back"
    " as the next turn."
)

_QUESTION = re.compile(r"^QUESTION:[ \t]*(.*)", re.MULTILINE | re.DOTALL)


class _Run(Protocol):
    @property
    def conversation_id(self) -> int: ...
    @property
    def task_id(self) -> int: ...
    @property
    def agent_id(self) -> int: ...
    @property
    def title(self) -> str: ...


def question_of(reply: str) -> str | None:
    """The question a final reply ends with, or None (no line starts with QUESTION:)."""
    starts = [m.start() for m in re.finditer(r"^QUESTION:", reply, re.MULTILINE)]
    if not starts:
        return None
    match = _QUESTION.match(reply, starts[-1])
    text = match.group(1).strip() if match else ""
    if not text:
        return None
    return text if len(text) <= MAX_QUESTION_CHARS else text[:MAX_QUESTION_CHARS] + " [...]"


async def question_asked(tx: Tx, run: _Run, transcript: str) -> int | None:
    """Open the "waiting for you" item when the run's reply asks a question."""
    question = question_of(transcript)
    if question is None:
        return None
    async with tx.conn.execute("SELECT name FROM agents WHERE id = ?", (run.agent_id,)) as cur:
        agent = await cur.fetchone()
    who = f"agent {agent[0]}" if agent else f"agent #{run.agent_id}"
    return await tx.escalate(
        KIND,
        "conversation",
        run.conversation_id,
        f"{who} asks you (run {run.conversation_id} of '{run.title[:80]}'): {question}",
        {"task_id": run.task_id, "conversation_id": run.conversation_id},
    )


async def replied(tx: Tx, conversation_id: int) -> list[int]:
    """A reply to the run was queued: its open question is answered."""
    async with tx.conn.execute(
        "SELECT id FROM escalations WHERE kind = ? AND subject_type = 'conversation'"
        " AND subject_id = ? AND status IN ('open', 'acknowledged')",
        (KIND, conversation_id),
    ) as cursor:
        ids = [int(r[0]) for r in await cursor.fetchall()]
    closed = []
    for escalation_id in ids:
        if await escalations_store.resolve(
            tx.conn, escalation_id, tx.actor, "answered with a follow-up turn", None
        ):
            await tx.emit(
                EventType.ESCALATION_RESOLVED,
                "escalation",
                escalation_id,
                {"kind": KIND, "by": tx.actor},
                min_scope=Scope.OPERATE,
            )
            closed.append(escalation_id)
    return closed


async def waiting_items(db: Database, limit: int = 10) -> list[Row]:
    """Open items that wait for the person, newest first, with where to answer them."""
    marks = ",".join("?" for _ in WAITING_KINDS)
    return await db.fetch_all(
        "SELECT id, kind, subject_type, subject_id, reason, created_at FROM escalations"
        f" WHERE kind IN ({marks}) AND status IN ('open', 'acknowledged')"
        " ORDER BY id DESC LIMIT ?",
        (*WAITING_KINDS, limit),
    )
