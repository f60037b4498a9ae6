"""The one effective capability of an agent and of a run (docs/capability.md).

Three inputs, one answer:

* the **profile** (root-owned host configuration): which runtime dialect the
  program speaks and whether it can run commands at all (``commands``:
  ``never``, ``per-agent`` or ``always``);
* the **agent** (admin-set): its ``allowed_tools`` and ``shell_access``;
* the **task**: whether it declares that it needs a shell (``needs_shell``).

:func:`agent_capability` is what an agent *can* do with its profile: pre-flight,
rule approval ("reaches a shell"), the security alerts and the UI badge use it.
:func:`run_capability` narrows it to one run: the runtime's command-line flags and
the kernel sandbox (execute and write rights) are derived from it. Nothing else
decides these facts; every caller imports them from here.

This module knows no domain and no I/O: callers pass the profile's traits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

CommandsPolicy = Literal["never", "per-agent", "always"]
COMMANDS_POLICIES: tuple[CommandsPolicy, ...] = ("never", "per-agent", "always")


class Tool(StrEnum):
    """The tools an agent may be given (mapped to each runtime's own tool names)."""

    READ_FILES = "read_files"
    WRITE_FILES = "write_files"
    WEB_SEARCH = "web_search"
    WEB_FETCH = "web_fetch"
    SHELL = "shell"


@dataclass(frozen=True, slots=True)
class ProfileTraits:
    """What a profile's program can do at all (from the root-owned profiles file)."""

    name: str
    runtime: str
    commands: CommandsPolicy


@dataclass(frozen=True, slots=True)
class Capability:
    """The tools granted, and the two rights the kernel enforces beside them."""

    tools: frozenset[Tool]
    #: may execute commands (the shell tool; programs beyond the agent's own)
    shell: bool
    #: may change files in its workspace
    write: bool
    #: why the answer is what it is (shown to people, never used to decide)
    basis: str

    @property
    def badge(self) -> str:
        """A short label for the UI."""
        if self.shell:
            return "shell"
        if self.write:
            return "edits files"
        return "read-only"

    def as_dict(self) -> dict[str, object]:
        return {
            "tools": sorted(t.value for t in self.tools),
            "shell": self.shell,
            "write": self.write,
            "badge": self.badge,
            "basis": self.basis,
        }


def parse_tools(values: Iterable[object]) -> frozenset[Tool]:
    """The known tools among ``values`` (stored JSON); unknown names are dropped."""
    known = {t.value: t for t in Tool}
    return frozenset(known[v] for v in values if isinstance(v, str) and v in known)


def agent_capability(
    profile: ProfileTraits | None,
    *,
    shell_access: bool,
    allowed_tools: Iterable[object],
) -> Capability:
    """What an agent can do with its profile.

    A profile that is unknown here (``None``) is treated as able to run commands:
    approvals and alerts fail closed. A profile with ``commands = "always"`` makes
    every agent using it a shell agent, whatever its own settings say; one with
    ``never`` takes the shell away. Otherwise the agent has a shell when its
    ``shell_access`` is set or it lists the shell tool (the worse of the two).
    """
    tools = set(parse_tools(allowed_tools))
    wants_shell = shell_access or Tool.SHELL in tools
    if profile is None:
        shell, basis = True, "unknown profile: treated as able to run commands"
    elif profile.commands == "always":
        shell, basis = True, f"profile '{profile.name}' always runs commands"
    elif profile.commands == "never":
        shell, basis = False, f"profile '{profile.name}' never runs commands"
    else:
        shell = wants_shell
        basis = "agent has shell access" if shell else "agent has no shell access"
    if shell:
        tools.add(Tool.SHELL)
    else:
        tools.discard(Tool.SHELL)
    return Capability(
        tools=frozenset(tools), shell=shell, write=Tool.WRITE_FILES in tools, basis=basis
    )


def run_capability(
    agent: Capability, profile: ProfileTraits, *, task_needs_shell: bool
) -> Capability:
    """The capability of one run: the agent's, with the shell only when the task
    declares that it needs one (least privilege). A profile that always runs commands
    cannot be narrowed: its runs keep the shell."""
    if not agent.shell or task_needs_shell or profile.commands == "always":
        return agent
    return Capability(
        tools=agent.tools - {Tool.SHELL},
        shell=False,
        write=agent.write,
        basis="the task does not declare needs_shell",
    )
