"""Turning access-filtered statements into connections and batched lookups, for every list in the schema."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from ..domain.access import readable
from ..domain.pagination import Ordering, count, fetch_grouped_pages, fetch_page, grouped_counts, page_request
from ..domain.principal import Principal
from .context import Info
from .relay import Connection, connection_from_page

M = TypeVar("M")
N = TypeVar("N")
StatementBuilder = Callable[[Principal], sa.Select[M]]


async def top_level_connection(
    info: Info,
    build: StatementBuilder[M],
    ordering: Ordering,
    convert: Callable[[M], N],
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[N]:
    """A page of a root list; ``totalCount`` costs one more statement, and only when asked for."""
    ctx = info.context
    request = page_request(ordering, first, after, last, before)

    async def fetch(session: AsyncSession, principal: Principal) -> Any:
        return await fetch_page(session, build(principal), ordering, request)

    async def total(session: AsyncSession, principal: Principal) -> int:
        return await count(session, build(principal))

    page = await ctx.run(fetch)
    return connection_from_page(page, convert, lambda: ctx.run(total))


async def nested_connection(
    info: Info,
    relation: Hashable,
    model: type[M],
    build: StatementBuilder[M],
    parent_column: InstrumentedAttribute[Any],
    parent_id: uuid.UUID,
    ordering: Ordering,
    convert: Callable[[M], N],
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[N]:
    """A page of a list under a parent, batched across all parents in the response (one statement each)."""
    ctx = info.context
    request = page_request(ordering, first, after, last, before)

    async def load_pages(parent_ids: list[uuid.UUID]) -> list[Any]:
        async def fetch(session: AsyncSession, principal: Principal) -> Any:
            return await fetch_grouped_pages(
                session, model, build(principal), parent_column, parent_ids, ordering, request
            )

        pages = await ctx.run(fetch)
        return [pages[parent] for parent in parent_ids]

    async def load_counts(parent_ids: list[uuid.UUID]) -> list[int]:
        async def fetch(session: AsyncSession, principal: Principal) -> dict[Any, int]:
            return await grouped_counts(session, build(principal), parent_column, parent_ids)

        counts = await ctx.run(fetch)
        return [counts[parent] for parent in parent_ids]

    page = await ctx.load(("page", relation, request), load_pages, parent_id)
    return connection_from_page(page, convert, lambda: ctx.load(("count", relation, request), load_counts, parent_id))


async def load_by_id(info: Info, model: type[M], row_id: uuid.UUID) -> M | None:
    """One readable row by id, batched with every other lookup of the same model in the request."""
    ctx = info.context

    async def batch(ids: list[uuid.UUID]) -> list[M | None]:
        async def fetch(session: AsyncSession, principal: Principal) -> dict[uuid.UUID, M]:
            rows = (await session.execute(readable(principal, model).where(model.id.in_(ids)))).scalars()  # type: ignore[attr-defined]
            return {row.id: row for row in rows}  # type: ignore[attr-defined]

        found = await ctx.run(fetch)
        return [found.get(row_id) for row_id in ids]

    return await ctx.load(("by_id", model), batch, row_id)


async def load_node(info: Info, model: type[M], row_id: uuid.UUID, convert: Callable[[M], N]) -> N | None:
    """``load_by_id`` as a GraphQL object: every to-one link answers null for a missing or unreadable row."""
    row = await load_by_id(info, model, row_id)
    return None if row is None else convert(row)


async def load_children(
    info: Info,
    relation: Hashable,
    build: StatementBuilder[M],
    parent_column: InstrumentedAttribute[Any],
    parent_id: uuid.UUID,
    order_by: Sequence[Any] = (),
) -> list[M]:
    """All (bounded) children of a parent, e.g. a group's facilitators, batched across parents."""
    ctx = info.context

    async def batch(parent_ids: list[uuid.UUID]) -> list[list[M]]:
        async def fetch(session: AsyncSession, principal: Principal) -> dict[Any, list[M]]:
            statement = build(principal).where(parent_column.in_(parent_ids)).order_by(*order_by)
            grouped: dict[Any, list[M]] = {parent: [] for parent in parent_ids}
            for row in (await session.execute(statement)).scalars():
                grouped[getattr(row, parent_column.key)].append(row)
            return grouped

        grouped = await ctx.run(fetch)
        return [grouped[parent] for parent in parent_ids]

    return await ctx.load(("children", relation), batch, parent_id)


async def load_rollup(
    info: Info,
    relation: Hashable,
    compute: Callable[[AsyncSession, Principal, list[uuid.UUID]], Any],
    parent_id: uuid.UUID,
) -> Any:
    """A per-parent aggregate computed for all parents of the response in one go."""
    ctx = info.context

    async def batch(parent_ids: list[uuid.UUID]) -> list[Any]:
        results = await ctx.run(compute, parent_ids)
        return [results[parent] for parent in parent_ids]

    return await ctx.load(("rollup", relation), batch, parent_id)
