"""The one bound on ids accepted anywhere, in paths and bodies."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

#: Largest id accepted anywhere (SQLite integers are 64-bit; stay well inside).
MAX_ID = 2**53

Id = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]
