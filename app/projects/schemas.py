"""Bodies of the project endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ProjectName = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,79}$")
]
Description = Annotated[str, StringConstraints(max_length=4000)]
DocTitle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
DocBody = Annotated[str, StringConstraints(max_length=200_000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectCreate(Strict):
    name: ProjectName
    description: Description = ""


class ProjectUpdate(Strict):
    version: Annotated[int, Field(ge=0, le=2**53)]
    name: ProjectName | None = None
    description: Description | None = None


class ProjectView(BaseModel):
    id: int
    name: str
    description: str
    version: int
    created_at: str
    updated_at: str


class DocumentCreate(Strict):
    title: DocTitle
    body: DocBody


class DocumentView(BaseModel):
    id: int
    project_id: int
    title: str
    body: str
    redacted: bool = False
    #: who added it (None: added before attribution was recorded)
    created_by: str | None = None
    created_at: str
    updated_at: str
