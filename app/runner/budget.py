"""Live budgets: one run's spend checked against what is left, as it streams.

At the start of a run the worker computes what is left of the agent's daily
quotas and of the mission's bounds (:mod:`app.runner.accounting`, the same
figures that decide whether a run may start). Every time the runtime's stream
reports more usage, :meth:`LiveBudget.check` prices it (:mod:`app.profiles.prices`)
and compares it with what is left; the first bound reached stops the run (the
worker's guard sends it SIGTERM). The guard refreshes what is left from the
database as other runs record their spend. The overshoot is at most the turn
that crossed the bound: a model call already made cannot be unmade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.profiles.prices import Price
from app.runner.accounting import AgentQuota, AgentUsage, MissionState, Refusal
from app.runner.runtime import StreamUsage


@dataclass
class LiveBudget:
    """What one run may still spend (``None``: no such bound applies)."""

    price: Price | None
    agent_id: int
    quota: AgentQuota
    agent_tokens_left: float
    agent_cost_left: float
    mission_id: int | None = None
    mission_tokens_left: float | None = None
    mission_cost_left: float | None = None
    #: the first bound this run reached (sticky)
    exceeded: Refusal | None = None
    checks: int = 0

    @classmethod
    def start(
        cls,
        *,
        price: Price | None,
        agent_id: int,
        quota: AgentQuota,
        usage: AgentUsage,
        mission: MissionState | None,
    ) -> LiveBudget:
        budget = cls(price, agent_id, quota, 0.0, 0.0)
        budget.refresh(usage, mission)
        return budget

    def refresh(self, usage: AgentUsage, mission: MissionState | None) -> None:
        """What is left, from what other runs have recorded."""
        self.agent_tokens_left = self.quota.tokens_per_day - usage.tokens
        self.agent_cost_left = self.quota.cost_usd_per_day - usage.cost_usd
        if mission is not None:
            self.mission_id = mission.id
            self.mission_tokens_left = mission.bound_tokens - mission.spent_tokens
            self.mission_cost_left = mission.bound_cost_usd - mission.spent_cost_usd

    def cost_of(self, usage: StreamUsage) -> float:
        """The run's cost so far at the table's price (0 without a price)."""
        if self.price is None:
            return 0.0
        cost = self.price.cost(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_write=usage.cache_write_tokens,
            cache_read=usage.cache_read_tokens,
        )
        return cost if math.isfinite(cost) else float("inf")

    def cli_budget_usd(self) -> float | None:
        """The smallest cost budget left, for a runtime flag such as --max-budget-usd."""
        lefts = [self.agent_cost_left]
        if self.mission_cost_left is not None:
            lefts.append(self.mission_cost_left)
        return max(0.0, min(lefts)) if self.price is not None else None

    def check(self, usage: StreamUsage) -> Refusal | None:
        """The first bound the run's usage has reached, or None. Sticky."""
        self.checks += 1
        if self.exceeded is not None:
            return self.exceeded
        tokens, cost = usage.total, self.cost_of(usage)
        if self.mission_id is not None:
            details = {
                "mission_id": self.mission_id,
                "run_tokens": tokens,
                "run_cost_usd": round(cost, 6),
                "mission_tokens_left": self.mission_tokens_left,
                "mission_cost_left_usd": self.mission_cost_left,
            }
            if self.mission_cost_left is not None and cost >= self.mission_cost_left:
                self.exceeded = Refusal("mission_bound:cost", "mission_bound", details)
            elif self.mission_tokens_left is not None and tokens >= self.mission_tokens_left:
                self.exceeded = Refusal("mission_bound:tokens", "mission_bound", details)
        if self.exceeded is None:
            details = {
                "agent_id": self.agent_id,
                "run_tokens": tokens,
                "run_cost_usd": round(cost, 6),
                "tokens_left_today": self.agent_tokens_left,
                "cost_left_today_usd": self.agent_cost_left,
            }
            if tokens >= self.agent_tokens_left:
                self.exceeded = Refusal("quota_exceeded:tokens", "quota_exceeded", details)
            elif self.price is not None and cost >= self.agent_cost_left:
                self.exceeded = Refusal("quota_exceeded:cost", "quota_exceeded", details)
        return self.exceeded
