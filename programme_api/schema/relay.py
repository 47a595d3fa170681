"""Relay building blocks: opaque global IDs, the Node interface, and keyset connections."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import strawberry

from ..domain.errors import DomainError, ErrorCode
from ..domain.pagination import Page, encode_cursor

NodeT = TypeVar("NodeT")


def to_global_id(type_name: str, row_id: uuid.UUID) -> strawberry.ID:
    """An opaque ID naming the type and the row; clients must treat it as a string, not parse it."""
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{row_id}".encode()).decode().rstrip("="))


def from_global_id(global_id: str, field: str = "id") -> tuple[str, uuid.UUID]:
    """Type name and row id of a global ID; anything malformed is a NOT_FOUND, like an unknown ID."""
    try:
        decoded = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
        type_name, _, raw = decoded.partition(":")
        return type_name, uuid.UUID(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise DomainError(ErrorCode.NOT_FOUND, f"no object with id {global_id!r}", field) from exc


def expect_global_id(global_id: str, type_name: str, field: str) -> uuid.UUID:
    """The row id of an ID that must name ``type_name`` (an ID of another type is simply not found)."""
    found_type, row_id = from_global_id(global_id, field)
    if found_type != type_name:
        raise DomainError(ErrorCode.NOT_FOUND, f"no {type_name} with id {global_id!r}", field)
    return row_id


@strawberry.interface(description="An object with a globally unique, opaque ID, fetchable with `node(id:)`.")
class Node:
    id: strawberry.ID


@strawberry.type(description="Where a page sits in its list (Relay PageInfo).")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="One item of a list and the cursor to continue after it.")
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type(description="A page of a list: keyset cursors, at most 100 items per page, 20 by default.")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo
    counter: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="The number of items in the whole list (all pages), with the same filters.")
    async def total_count(self) -> int:
        return await self.counter()

    @strawberry.field(description="The items of this page, without cursors (shortcut for `edges { node }`).")
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]


def connection_from_page(
    page: Page[Any], convert: Callable[[Any], NodeT], counter: Callable[[], Awaitable[int]]
) -> Connection[NodeT]:
    edges = [Edge(cursor=encode_cursor(key), node=convert(row)) for row, key in zip(page.rows, page.keys, strict=True)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        counter=counter,
    )
