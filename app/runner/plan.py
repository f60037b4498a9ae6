"""How a claimed run is planned before anything starts: its profile, the one
effective capability, the price and live budget, the limits, the private
workspace, the command line, the environment and login, the prompt (or the
session a follow-up resumes). A plan that cannot be made is a :class:`PlanError`
with the escalation it opens; the worker (app/runner/worker.py) runs the plan."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.capability.model import Capability, agent_capability, run_capability
from app.core.clock import utcnow
from app.core.database import Database
from app.core.settings import Settings
from app.profiles.catalog import Catalog
from app.profiles.environment import ChildEnv, CredentialError
from app.profiles.login import Login
from app.profiles.prices import PriceTable
from app.profiles.profiles import Limits, Profile, ProfileError, render_argv
from app.runner import accounting
from app.runner.accounting import AgentQuota
from app.runner.budget import LiveBudget
from app.runner.claims import Claim
from app.runner.prompt import Prompt, build_follow_up_prompt, build_prompt
from app.runner.runtime import ResumableRuntime, Runtime, StreamReader, runtime_env
from app.runner.sandbox import RunRights


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Everything one run needs, decided before it starts."""

    profile: Profile
    argv: list[str]
    env: ChildEnv
    cwd: Path
    limits: Limits
    prompt: Prompt
    #: the run's one effective capability (flags and sandbox rights come from it)
    capability: Capability
    budget: LiveBudget
    runtime: Runtime
    model: str
    #: where this agent's CLI sessions are kept between runs (follow-up turns)
    session_store: Path
    #: the session a follow-up resumes
    resume_session_id: str | None = None
    #: the profile's subscription login (app/profiles/login.py)
    login: Login | None = None

    @property
    def rights(self) -> RunRights:
        return RunRights(
            shell=self.capability.shell,
            write=self.capability.write,
            exec_allow=tuple(self.profile.exec_allow),
            read_files=self.login.paths if self.login is not None else (),
        )

    def stream(self) -> StreamReader:
        """The runtime's live reader of this run's output."""
        return self.runtime.reader(self.capability)

    def prepare_home(self, home: Path) -> None:
        """The runtime's own configuration in the run's fresh HOME, and the session a
        follow-up resumes. A login is linked first: a runtime configures its CLI for
        the login it finds there."""
        if self.login is not None:
            self.login.link_into(home)
        self.runtime.prepare_home(home, self.profile.options, model=self.model)
        if self.resume_session_id is not None:
            runtime = self.runtime
            if not isinstance(runtime, ResumableRuntime) or not runtime.restore_session(
                home, self.resume_session_id, self.session_store
            ):
                raise WorkspaceError("the session to resume is no longer kept")

    def keeper(self, stream: StreamReader) -> Callable[[Path], None]:
        """After the run: keep its CLI session, so that a reply can resume it."""

        def keep(home: Path) -> None:
            runtime = self.runtime
            if isinstance(runtime, ResumableRuntime) and stream.session_id:
                private_dir(self.session_store.parent)
                private_dir(self.session_store)
                runtime.save_session(home, stream.session_id, self.session_store)

        return keep


class PlanError(Exception):
    """A run that cannot start: why, the escalation it opens, and whether it counts
    against the profile's circuit breaker."""

    def __init__(self, reason: str, *, escalation: str, breaker_failure: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.escalation = escalation
        self.breaker_failure = breaker_failure


class WorkspaceError(Exception):
    pass


def effective_limits(
    limits: Limits,
    *,
    mission_step_minutes: int | None,
    ceiling_minutes: int,
    term_grace_s: float | None = None,
) -> Limits:
    """The profile's limits, with the wall clock cut to the mission's step bound (and
    the configured ceiling) when the task belongs to a mission (F17)."""
    wall = limits.wall_clock_seconds
    if mission_step_minutes is not None:
        wall = min(wall, mission_step_minutes * 60.0, ceiling_minutes * 60.0)
    update: dict[str, Any] = {"wall_clock_seconds": wall}
    if term_grace_s is not None:
        update["term_grace_seconds"] = term_grace_s
    return limits.model_copy(update=update)


def private_dir(path: Path) -> None:
    """Create ``path`` 0700, or accept it only if it is a real directory of ours."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise WorkspaceError(f"{path} is not a directory (a symlink?)")
    if info.st_uid != os.geteuid():
        raise WorkspaceError(f"{path} is not owned by the worker's user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)


def workspace_for(state_dir: Path, *, project_id: int | None, agent_id: int) -> Path:
    """``state_dir/workspaces/project-<id>`` (or ``agent-<id>``), created 0700. A symlink
    planted in place of a workspace (by an earlier agent) is refused, never followed."""
    root = state_dir.absolute()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    base = root / "workspaces"
    private_dir(base)
    name = f"project-{project_id}" if project_id is not None else f"agent-{agent_id}"
    path = base / name
    private_dir(path)
    return path


def quota_of(claim: Claim) -> AgentQuota:
    return AgentQuota(
        tokens_per_day=claim.quota_tokens_per_day,
        cost_usd_per_day=claim.quota_cost_usd_per_day,
        runs_per_day=claim.quota_runs_per_day,
    )


@dataclass(frozen=True)
class Planner:
    """What the worker knows that a plan needs (loaded once at start)."""

    catalog: Catalog
    runtimes: Mapping[str, Runtime]
    prices: PriceTable
    settings: Settings
    db: Database
    term_grace_s: float | None
    run_tmp_root: Path

    async def plan(self, claim: Claim) -> RunPlan:
        profile = self.catalog.get(claim.profile)
        if profile is None:  # checked at claim time; the catalog does not change
            raise PlanError(
                f"unknown_profile:{claim.profile}",
                escalation="profile_error",
                breaker_failure=False,
            )
        step_minutes = None
        mission = None
        async with self.db.read() as conn:
            if claim.mission_id is not None:
                mission = await accounting.mission_state(conn, claim.mission_id)
            usage_today = await accounting.agent_usage_today(conn, claim.agent_id, utcnow())
        if mission is not None:
            step_minutes = mission.bound_step_minutes
        traits = profile.traits(claim.profile)
        capability = run_capability(
            agent_capability(
                traits, shell_access=claim.shell_access, allowed_tools=claim.allowed_tools
            ),
            traits,
            task_needs_shell=claim.needs_shell,
        )
        runtime = self.runtimes[profile.runtime]
        price = self.prices.lookup(claim.model, fallback=profile.price_fallback)
        if price is None and runtime.needs_price:
            raise PlanError(
                f"no_price: the model '{claim.model}' has no entry in the price table"
                f" ({self.prices.path}); without one its spend could not be checked while"
                " it runs. Add it to the table or pick a listed model.",
                escalation="profile_error",
                breaker_failure=False,
            )
        budget = LiveBudget.start(
            price=price,
            agent_id=claim.agent_id,
            quota=quota_of(claim),
            usage=usage_today,
            mission=mission,
        )
        limits = effective_limits(
            profile.limits,
            mission_step_minutes=step_minutes,
            ceiling_minutes=self.settings.mission_max_step_minutes,
            term_grace_s=self.term_grace_s,
        )
        try:
            cwd = await asyncio.to_thread(
                workspace_for,
                self.settings.state_dir,
                project_id=claim.project_id,
                agent_id=claim.agent_id,
            )
            await asyncio.to_thread(private_dir, self.run_tmp_root)
        except (WorkspaceError, OSError) as exc:
            raise PlanError(
                f"workspace_error: {exc}", escalation="workspace_error", breaker_failure=False
            ) from None
        try:
            argv = render_argv(
                profile,
                workspace=cwd,
                model=claim.model,
                max_turns=self.settings.runner_max_turns,
                python=sys.executable,
            )
            argv = runtime.command_line(
                argv,
                capability,
                max_turns=self.settings.runner_max_turns,
                max_budget_usd=budget.cli_budget_usd(),
            )
        except ProfileError as exc:
            raise PlanError(
                f"profile_error: {exc}", escalation="profile_error", breaker_failure=False
            ) from None
        try:
            env = runtime_env(runtime, self.catalog.child_env(profile))
            login = await asyncio.to_thread(self.catalog.login, profile)
            if login is not None:
                env = env.with_secrets(login.secret_values)
        except CredentialError as exc:
            # the host's configuration is broken: every run of the profile would fail
            raise PlanError(
                f"credential_error: {exc}", escalation="profile_error", breaker_failure=True
            ) from None
        resume = None
        if claim.follows_conversation_id is not None:
            resume = claim.resume_session_id
            if resume is None or not isinstance(runtime, ResumableRuntime):
                raise PlanError(
                    f"follow_up_unavailable: run {claim.follows_conversation_id} of this agent"
                    " left no session to resume, or its runtime cannot resume one",
                    escalation="follow_up_unavailable",
                    breaker_failure=False,
                )
            argv = [*argv, *runtime.resume_args(resume)]
            prompt = build_follow_up_prompt(claim)
        else:
            prompt = await build_prompt(self.db, claim)
        return RunPlan(
            profile,
            argv,
            env,
            cwd,
            limits,
            prompt,
            capability,
            budget,
            runtime,
            claim.model,
            self.settings.state_dir.absolute() / "sessions" / f"agent-{claim.agent_id}",
            resume,
            login,
        )
