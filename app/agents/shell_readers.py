"""Who may put words in front of an agent that can run commands, and who decides
that a run gets a shell: a person (docs/security-model.md, "Words before a shell
need a person" and "A shell needs a person").

Memory entries and project documents enter an agent's prompt. They are framed
there as quoted, untrusted data (``app/runner/prompt.py``), but a model can
still be talked into things, and on an agent with a shell a sentence becomes
a command. So adding to the memory of such an agent, or a document to a
project whose tasks run on one, needs an admin logged in as a person (a
session, not a token: one stolen credential must not do it); any other attempt
is refused (403), audited and raises a security notification. For other
agents ``operate`` stays enough (docs/security-model.md). When an admin does
add (or remove) such words, the owner hears of it too (:func:`alert_shell_readers`),
as for an identity change.

The same rule covers the agent itself: its identity (the first words of every
prompt) and what it can do (profile, tools, shell flag) change only by an admin
in a browser session when the agent can run commands before or after the
change. :func:`decided_by_person` is the same test for a task: a task whose run
would get a shell runs at once only when such a person created it; otherwise it
waits for approval (``app/tasks/approval.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

from app.access.caller import Caller
from app.access.refusals import record_refusal
from app.core.context import AppContext
from app.core.database import Row
from app.core.errors import ApiError
from app.events.transaction import Tx
from app.security.principal import Principal, Scope


def decided_by_person(principal: Principal | None) -> bool:
    """Whether ``principal`` is an admin logged in to the web UI as a person (a
    session, not a token, not automation): the one who may put words before a
    shell and start a shell run without a second look."""
    return principal is not None and principal.scope is Scope.ADMIN and principal.kind == "session"


def shell_agents(ctx: AppContext, rows: Iterable[Row]) -> list[int]:
    """The ids of the agents among ``rows`` that can run commands (their capability)."""
    from app.agents.service import capability_of

    return [int(row["id"]) for row in rows if capability_of(ctx.settings, row).shell]


async def require_admin_for_shell_readers(
    ctx: AppContext,
    caller: Caller,
    readers: Iterable[Row],
    *,
    action: str,
    target: str,
    what: str,
    will_run_commands: Iterable[int] = (),
) -> None:
    """When one of ``readers`` (agent rows) can run commands, or the change makes
    the agents ``will_run_commands`` able to: refuse anyone but an admin, and an
    admin's *token*: only a person logged in as an admin (a session) may, so one
    stolen token cannot put words before a shell."""
    shell = sorted({*shell_agents(ctx, readers), *will_run_commands})
    if not shell or decided_by_person(caller.principal):
        return
    admin = caller.principal.scope is Scope.ADMIN
    await record_refusal(
        ctx,
        actor=caller.actor,
        client=caller.client,
        action=action,
        target=target,
        reason="shell_token" if admin else "shell",
    )
    names = ", ".join(str(agent_id) for agent_id in shell)
    if admin:
        raise ApiError(
            403,
            "session_required",
            f"only an admin logged in to the web UI may {what} (agent {names}), not a"
            " token: it would reach an agent with shell access. Sign in to the web UI as"
            " an admin and do it there",
        )
    raise ApiError(
        403,
        "admin_required",
        f"only an admin may {what} (agent {names}): it would reach an agent with shell"
        " access. Ask an admin to sign in to the web UI and do it there",
    )


async def alert_shell_readers(
    ctx: AppContext, tx: Tx, readers: Iterable[Row], title: str, body: str
) -> bool:
    """A security notification when one of ``readers`` (agent rows) can run
    commands: what now enters its prompt changed. Returns whether one was raised."""
    shell = shell_agents(ctx, readers)
    if not shell:
        return False
    names = ", ".join(str(agent_id) for agent_id in shell)
    await tx.security_alert(
        title, f"{body} It reaches the prompt of agent {names}, which can run commands."
    )
    return True
