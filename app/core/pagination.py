"""Pagination for every list endpoint (F9): default 50, hard maximum 200."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Generic, TypeVar

from pydantic import BaseModel

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 10_000_000

T = TypeVar("T")


class PageParams(BaseModel):
    limit: int
    offset: int


# async: FastAPI runs a plain ``def`` dependency in a thread pool, a thread hop per request
async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page, at most 200")] = (
        DEFAULT_LIMIT
    ),
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


if TYPE_CHECKING:
    from fastapi import Depends, Query

    Pagination = Annotated[PageParams, Depends(page_params)]
else:

    def __getattr__(name: str) -> object:
        """``Pagination`` is built on first use, so FastAPI is imported by the API only
        (the worker and the CLI need PageParams and Page; their memory, docs/performance.md)."""
        if name == "Pagination":
            import fastapi

            globals()["Query"] = fastapi.Query  # page_params' annotations
            globals()["Pagination"] = Annotated[PageParams, fastapi.Depends(page_params)]
            return globals()["Pagination"]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
    next_offset: int | None

    @classmethod
    def build(cls, items: list[T], total: int, params: PageParams) -> Page[T]:
        following = params.offset + len(items)
        return cls(
            items=items,
            total=total,
            limit=params.limit,
            offset=params.offset,
            next_offset=following if following < total else None,
        )


def page_json(items_json: str, count: int, total: int, params: PageParams) -> bytes:
    """The JSON of ``Page.build(items, total, params)`` serialised by pydantic, from
    the items already serialised as a JSON array of ``count`` elements."""
    following = params.offset + count
    next_offset = str(following) if following < total else "null"
    return (
        f'{{"items":{items_json},"total":{total},"limit":{params.limit},'
        f'"offset":{params.offset},"next_offset":{next_offset}}}'
    ).encode()
