"""Keyset pagination (Relay ``first``/``after``, ``last``/``before``) for top-level and nested lists.

Cursors hold the sort key of a row, never an offset, so pages stay stable while rows are added and a page
deep in a list costs the same as the first. Nested lists are fetched for many parents in one statement
(``LATERAL`` pages on PostgreSQL, ``ROW_NUMBER() OVER (PARTITION BY parent ...)`` on SQLite), so statement
counts do not grow with list sizes.

Every function here takes a statement that is already checked (built from ``access.readable`` or another
access function) and refuses one that is not (``AccessBypassError``): pagination never vouches for a
statement itself. What it derives (a page, a count, LATERAL pages) reads the tenant tables only through
the checked statement, and runs through the access module's executors, which check that again.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any, Generic, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.types import TypeDecorator

from . import access
from .errors import DomainError, ErrorCode
from .values import value_problem

M = TypeVar("M")
# Adds per-row values (e.g. aggregates joined in) to the outermost select of a page, given that select, its
# row's columns by name and the dialect's name, so they are worked out only for the rows of the page.
RowExtension = Callable[[sa.Select[Any], Any, str], sa.Select[Any]]
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class PageRequest:
    """A validated Relay page request; ``after``/``before`` are decoded cursor keys."""

    first: int | None = None
    after: tuple[Any, ...] | None = None
    last: int | None = None
    before: tuple[Any, ...] | None = None

    @property
    def size(self) -> int:
        return self.last if self.last is not None else (self.first if self.first is not None else DEFAULT_PAGE_SIZE)

    @property
    def backwards(self) -> bool:
        return self.last is not None


@dataclass
class Page(Generic[M]):
    rows: list[M]
    ordering: Ordering
    has_next_page: bool
    has_previous_page: bool
    total_count: int | None = field(default=None)

    @cached_property
    def keys(self) -> list[tuple[Any, ...]]:
        """Sort keys of the rows (what cursors encode), worked out only when a cursor is asked for."""
        return [self.ordering.key_of(row) for row in self.rows]


@dataclass(frozen=True)
class Ordering:
    """The columns a list is sorted by; the last one must be unique (the primary key)."""

    columns: tuple[InstrumentedAttribute[Any], ...]

    def key_of(self, row: Any) -> tuple[Any, ...]:
        return tuple(getattr(row, column.key) for column in self.columns)


def _encode_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return {"u": value.hex}
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, raw),) = value.items()
        decoders: dict[str, Callable[[str], Any]] = {
            "u": uuid.UUID,
            "t": datetime.fromisoformat,
            "d": date.fromisoformat,
        }
        return decoders[tag](raw)
    return value


def encode_cursor(key: tuple[Any, ...]) -> str:
    payload = orjson.dumps([_encode_value(value) for value in key])
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str, width: int, argument: str) -> tuple[Any, ...]:
    """A cursor back into a sort key; anything malformed is the caller's error, named by argument."""
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key = tuple(_decode_value(value) for value in raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise DomainError(ErrorCode.INVALID, f"'{argument}' is not a valid cursor", argument) from exc
    if len(key) != width:
        raise DomainError(ErrorCode.INVALID, f"'{argument}' is not a cursor for this list", argument)
    return key


def page_request(
    ordering: Ordering,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> PageRequest:
    """Check Relay arguments (at most 100 rows, not ``first`` and ``last`` together) and decode cursors."""
    if first is not None and last is not None:
        raise DomainError(ErrorCode.INVALID, "give either 'first' or 'last', not both", "first")
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= MAX_PAGE_SIZE:
            raise DomainError(ErrorCode.INVALID, f"'{name}' must be between 0 and {MAX_PAGE_SIZE}", name)
    return PageRequest(
        first=first,
        after=_list_cursor(ordering, after, "after") if after else None,
        last=last,
        before=_list_cursor(ordering, before, "before") if before else None,
    )


def _list_cursor(ordering: Ordering, cursor: str, argument: str) -> tuple[Any, ...]:
    """A cursor of this list: as wide as its sort key, each value of its column's type (a cursor of another
    list is the caller's mistake, refused alike on every database, not compared in SQL)."""
    key = decode_cursor(cursor, len(ordering.columns), argument)
    for value, column in zip(key, ordering.columns, strict=True):
        expected = column_python_type(column)
        if not isinstance(value, expected) or (expected is date and isinstance(value, datetime)):
            raise DomainError(ErrorCode.INVALID, f"'{argument}' is not a cursor for this list", argument)
        if value_problem(value) is not None:  # no row of any list holds such a value
            raise DomainError(ErrorCode.INVALID, f"'{argument}' is not a cursor for this list", argument)
    return key


def column_python_type(column: Any) -> type:
    """The column's Python type, looking through type decorators (``UTCDateTime`` is a ``datetime``)."""
    type_ = column.type
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    python_type: type = type_.python_type
    return python_type


def _apply_cursors(statement: sa.Select[Any], ordering: Ordering, request: PageRequest) -> sa.Select[Any]:
    key = sa.tuple_(*ordering.columns)
    if request.after is not None:
        statement = statement.where(key > sa.tuple_(*request.after))
    if request.before is not None:
        statement = statement.where(key < sa.tuple_(*request.before))
    return statement


def sort_keys(ordering: Ordering, backwards: bool) -> list[Any]:
    return [column.desc() if backwards else column.asc() for column in ordering.columns]


def _to_page(rows: Sequence[M], ordering: Ordering, request: PageRequest) -> Page[M]:
    more = len(rows) > request.size
    window = list(rows[: request.size])
    if request.backwards:
        window.reverse()
    return Page(
        rows=window,
        ordering=ordering,
        has_next_page=more if not request.backwards else request.before is not None,
        has_previous_page=more if request.backwards else request.after is not None,
    )


def columns_only(statement: sa.Select[Any]) -> sa.Select[Any]:
    """The same query returning plain rows of the entity's columns: no ORM objects, much cheaper to build."""
    entity = statement.column_descriptions[0]["entity"]
    return statement.with_only_columns(*entity.__table__.columns)


async def fetch_page(
    session: AsyncSession,
    statement: sa.Select[M],
    ordering: Ordering,
    request: PageRequest,
    *,
    as_rows: bool = False,
    extend_rows: RowExtension | None = None,
) -> Page[M]:
    """One page of an access-filtered statement (one round trip: the extra row tells if more exist).

    With ``as_rows`` the page holds plain rows of the entity's columns (plus whatever ``extend_rows`` adds,
    e.g. per-row aggregates) instead of ORM objects.
    """
    access.require_checked(statement, "a page")
    if as_rows:
        statement = columns_only(statement)
        if extend_rows is not None:
            statement = extend_rows(statement, statement.selected_columns, _dialect(session))
    paged = _apply_cursors(statement, ordering, request)
    paged = paged.order_by(*sort_keys(ordering, request.backwards)).limit(request.size + 1)
    if as_rows:
        return _to_page(await access.fetch_rows(session, paged), ordering, request)
    rows = (await access.execute(session, paged)).scalars().all()
    return _to_page(rows, ordering, request)


async def count(session: AsyncSession, statement: sa.Select[Any]) -> int:
    """The number of rows of a checked statement."""
    access.require_checked(statement, "a count")
    counted = sa.select(sa.func.count()).select_from(statement.order_by(None).subquery())
    return int((await access.execute(session, counted)).scalar_one())


async def fetch_grouped_pages(
    session: AsyncSession,
    model: type[M],
    statement: sa.Select[M],
    parent_column: InstrumentedAttribute[Any],
    parent_ids: Sequence[Any],
    ordering: Ordering,
    request: PageRequest,
    *,
    as_rows: bool = False,
    extend_rows: RowExtension | None = None,
) -> dict[Any, Page[M]]:
    """The same page of a nested list for many parents at once, in one statement (rows: see ``fetch_page``).

    On PostgreSQL each parent's page is a ``LATERAL`` subquery with its own ``LIMIT``, so the database reads
    only the rows it returns, through the parent's index, however long the lists are; SQLite has no
    ``LATERAL`` and numbers every parent's rows with ``ROW_NUMBER()`` instead.
    """
    access.require_checked(statement, "nested pages")
    dialect = _dialect(session)
    page, query = _grouped_page_query(dialect, statement, parent_column, parent_ids, ordering, request)
    if as_rows:
        columns: list[Any] = [page.c[column.key] for column in model.__table__.columns]  # type: ignore[attr-defined]
        query = query.with_only_columns(*columns)
        if extend_rows is not None:
            query = extend_rows(query, page.c, dialect)
        items: Sequence[Any] = await access.fetch_rows(session, query)
    else:
        query = query.with_only_columns(aliased(model, page))
        items = (await access.execute(session, query)).scalars().all()
    grouped: dict[Any, list[Any]] = {parent: [] for parent in parent_ids}
    for item in items:
        grouped[getattr(item, parent_column.key)].append(item)
    return {parent: _to_page(rows, ordering, request) for parent, rows in grouped.items()}


def _dialect(session: AsyncSession) -> str:
    return str(session.get_bind().dialect.name)


def _grouped_page_query(
    dialect: str,
    statement: sa.Select[Any],
    parent_column: InstrumentedAttribute[Any],
    parent_ids: Sequence[Any],
    ordering: Ordering,
    request: PageRequest,
) -> tuple[Any, sa.Select[Any]]:
    """The pages of all parents as one query, and the derived table whose columns are a page's rows.

    PostgreSQL: ``unnest(:parent_ids) CROSS JOIN LATERAL (<page of that parent>)``, one array parameter, so
    the statement text (and the server's prepared plan) is the same whatever the number of parents.
    SQLite: every parent's rows numbered by ``ROW_NUMBER()``, the first ``size + 1`` of each kept.
    """
    if dialect == "postgresql":
        parents = (
            sa.func.unnest(
                sa.bindparam("parent_ids", list(parent_ids), type_=postgresql.ARRAY(parent_column.type), unique=True)
            )
            .table_valued("id")
            .render_derived(name="parents")
        )
        one_parent = _apply_cursors(statement.where(parent_column == parents.c.id), ordering, request)
        page = one_parent.order_by(*sort_keys(ordering, request.backwards)).limit(request.size + 1).lateral("page")
        ordered = [page.c[parent_column.key]] + [
            page.c[column.key].desc() if request.backwards else page.c[column.key].asc() for column in ordering.columns
        ]
        return page, sa.select(page).select_from(parents.join(page, sa.true())).order_by(*ordered)
    paged = _apply_cursors(statement.where(parent_column.in_(parent_ids)), ordering, request)
    position = (
        sa.func.row_number()
        .over(partition_by=parent_column, order_by=sort_keys(ordering, request.backwards))
        .label("page_position")
    )
    numbered = paged.add_columns(position).subquery()
    query = (
        sa.select(numbered)
        .where(numbered.c.page_position <= request.size + 1)
        .order_by(numbered.c[parent_column.key], numbered.c.page_position)
    )
    return numbered, query


async def grouped_counts(
    session: AsyncSession,
    statement: sa.Select[Any],
    parent_column: InstrumentedAttribute[Any],
    parent_ids: Sequence[Any],
) -> dict[Any, int]:
    """Row counts of a nested list for many parents, in one statement."""
    access.require_checked(statement, "nested counts")
    filtered = statement.where(parent_column.in_(parent_ids)).order_by(None).subquery()
    query = sa.select(filtered.c[parent_column.key], sa.func.count()).group_by(filtered.c[parent_column.key])
    counts = dict.fromkeys(parent_ids, 0)
    for parent, number in (await access.execute(session, query)).all():
        counts[parent] = int(number)
    return counts
