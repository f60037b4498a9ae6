"""Bodies of the agent endpoints. Unknown fields are refused everywhere."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.capability.model import Tool

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ProfileName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
IdentityText = Annotated[str, StringConstraints(max_length=20_000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    RETIRED = "retired"


class Quotas(Strict):
    tokens_per_day: Annotated[int, Field(ge=0, le=100_000_000)]
    cost_usd_per_day: Annotated[float, Field(ge=0, le=10_000)]
    runs_per_day: Annotated[int, Field(ge=0, le=100_000)]


class AgentCreate(Strict):
    name: Name
    role: ShortText
    model: ShortText
    profile: ProfileName = "demo"
    shell_access: bool = False
    allowed_tools: Annotated[list[Tool], Field(max_length=len(Tool))] = []
    quotas: Quotas | None = None
    identity: IdentityText = ""
    think_interval_minutes: Annotated[int, Field(ge=5, le=10_080)] | None = None

    @model_validator(mode="after")
    def _shell_is_explicit(self) -> AgentCreate:
        if Tool.SHELL in self.allowed_tools and not self.shell_access:
            raise ValueError("the shell tool needs shell_access: true, set explicitly")
        return self


class AgentUpdate(Strict):
    """A change to an agent. Identity is not here: it has its own endpoint (F7)."""

    version: Annotated[int, Field(ge=0, le=2**53)]
    role: ShortText | None = None
    model: ShortText | None = None
    profile: ProfileName | None = None
    shell_access: bool | None = None
    allowed_tools: Annotated[list[Tool], Field(max_length=len(Tool))] | None = None
    quotas: Quotas | None = None
    think_interval_minutes: Annotated[int, Field(ge=5, le=10_080)] | None = None


class CapabilityView(BaseModel):
    """What the agent can do with its profile (app/capability/model.py)."""

    tools: list[Tool]
    shell: bool
    write: bool
    badge: str
    basis: str


class AgentView(BaseModel):
    id: int
    name: str
    role: str
    model: str
    status: AgentStatus
    profile: str
    shell_access: bool
    allowed_tools: list[Tool]
    capability: CapabilityView
    quotas: Quotas
    think_interval_minutes: int | None
    identity_version: int
    version: int
    created_at: str
    updated_at: str


class IdentityChange(Strict):
    text: IdentityText
    reason: Reason = ""
    expected_version: int = Field(description="the identity version this change is based on")


class IdentityRevert(Strict):
    to_version: Annotated[int, Field(ge=1, le=2**53)]
    reason: Reason = ""


class IdentityVersion(BaseModel):
    version: int
    text: str
    reason: str
    created_by: str
    created_at: str


class IdentityDiff(BaseModel):
    from_version: int
    to_version: int
    diff: str


class MemoryCreate(Strict):
    content: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


class MemoryView(BaseModel):
    id: int
    agent_id: int
    content: str
    redacted: bool = False
    created_by: str
    created_at: str
