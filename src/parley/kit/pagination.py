"""Cursor pagination: `?limit=&after=` answered as an OpenAI-style list object."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Generic, Literal, TypeVar

from fastapi import Query
from pydantic import BaseModel

T = TypeVar("T")
S = TypeVar("S")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class PageParams(BaseModel):
    limit: int = DEFAULT_LIMIT
    after: str | None = None


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
    after: Annotated[
        str | None, Query(description="Return items after this id (the previous page's last_id).")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, after=after)


class Page(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    first_id: str | None
    last_id: str | None

    @classmethod
    def build(
        cls,
        rows: Sequence[S],
        has_more: bool,
        to_item: Callable[[S], T],
        id_of: Callable[[S], str] = lambda row: str(getattr(row, "id")),  # noqa: B009
    ) -> Page[T]:
        data = [to_item(r) for r in rows]
        ids = [id_of(r) for r in rows]
        return cls(
            data=data,
            has_more=has_more,
            first_id=ids[0] if ids else None,
            last_id=ids[-1] if ids else None,
        )
