"""A keyset page of a connection, as ``domain/pagination.py`` makes it, inside the compiled statement.

``size + 1`` rows in sort order (the extra row tells whether there are more), numbered by their position;
``nodes``/``edges`` aggregate the page's rows in display order, ``pageInfo`` is worked out from the positions
and the row count, cursors encode the sort key exactly as ``pagination.encode_cursor`` does.
"""

from __future__ import annotations

import functools
import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from graphql import FieldNode, GraphQLObjectType

from ...domain.errors import DomainError
from ...domain.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Ordering,
    column_python_type,
    decode_cursor,
    page_request,
    sort_keys,
)
from .dialect import text
from .operation import Fallback, Unsupported, named_type
from .params import Request
from .policy import honoured

if TYPE_CHECKING:
    from .build import Builder

POSITION = "compiler_position"


class Page:
    """One page of a connection: ``size + 1`` rows in sort order, numbered, with the window's row count."""

    def __init__(
        self,
        builder: Builder,
        ordering: Ordering,
        definition: Any,
        node: FieldNode,
        args: dict[str, Any],
        statement: sa.Select[Any],
    ) -> None:
        self.builder = builder
        self.dialect = builder.dialect
        self.ordering = ordering
        self.backwards = args.get("last") is not None
        self.after, self.before = args.get("after") is not None, args.get("before") is not None
        argument = "last" if self.backwards else "first"
        if args.get(argument) is None:
            self.size: Any = sa.literal_column(str(DEFAULT_PAGE_SIZE), sa.Integer)
        else:
            self.size = builder.slots.value(functools.partial(_page_size, definition, node, argument), sa.Integer)
        keyed = statement
        for name, later in (("after", True), ("before", False)):
            if args.get(name) is not None:
                key = [
                    builder.slots.value(
                        functools.partial(_cursor_value, definition, node, name, index, ordering.columns), column.type
                    )
                    for index, column in enumerate(ordering.columns)
                ]
                columns = sa.tuple_(*ordering.columns)
                keyed = keyed.where(columns > sa.tuple_(*key) if later else columns < sa.tuple_(*key))
        sort = sort_keys(ordering, self.backwards)
        position = sa.func.row_number().over(order_by=sort).label(POSITION)
        window = keyed.add_columns(position).order_by(*sort).limit(self.size + 1)
        # Rows reach the aggregate in fetch order; SQLite aggregates in row order, so a backwards page there
        # is put in display order by one more layer.
        self.rows_in_display_order = not self.backwards or self.dialect.name == "postgresql"
        self.rows = window.subquery(builder.alias())
        if not self.rows_in_display_order:
            reordered = sa.select(*self.rows.c).order_by(self.rows.c[POSITION].desc())
            self.rows = self.dialect.in_order(reordered).subquery(builder.alias())
        self.in_page = self.rows.c[POSITION] <= self.size
        self.display = [self.rows.c[POSITION].desc() if self.backwards else self.rows.c[POSITION].asc()]

    def field(self, connection_type: GraphQLObjectType, name: str, nodes: list[FieldNode]) -> Any:
        edge_type = named_type(connection_type.fields["edges"].type)
        node_type = named_type(edge_type.fields["node"].type)
        if name == "nodes":
            item = self.builder.object(node_type, self.rows, self.builder.selected(node_type, nodes))
            return self.dialect.array(item, self.display, self.in_page)
        if name == "edges":
            return self.dialect.array(self.edge(edge_type, node_type, nodes), self.display, self.in_page)
        return self.page_info(named_type(connection_type.fields["pageInfo"].type), nodes)

    def reads_rows(self, connection_type: GraphQLObjectType, name: str, nodes: list[FieldNode]) -> bool:
        """Whether the field's value reads the page's rows: lists and counts do; page flags known from the
        arguments alone (``hasPreviousPage`` of a page without ``after``) do not."""
        if name != "pageInfo":
            return True
        known = {"hasNextPage"} if self.backwards else {"hasPreviousPage"}
        info_type = named_type(connection_type.fields["pageInfo"].type)
        selected = {field_nodes[0].name.value for field_nodes in self.builder.selected(info_type, nodes).values()}
        return bool(selected - known - {"__typename"})

    def cursor(self) -> Any:
        return self.dialect.cursor([(self.rows.c[column.key], _kind(column)) for column in self.ordering.columns])

    def edge(self, edge_type: GraphQLObjectType, node_type: GraphQLObjectType, nodes: list[FieldNode]) -> Any:
        pairs: list[tuple[str, Any]] = []
        for key, field_nodes in self.builder.selected(edge_type, nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                value: Any = text(edge_type.name)
            else:
                honoured(self.builder.schema, edge_type.name, name, frozenset())
                if name == "cursor":
                    value = self.cursor()
                elif name == "node":
                    value = self.builder.object(node_type, self.rows, self.builder.selected(node_type, field_nodes))
                else:
                    raise Unsupported(f"{edge_type.name}.{name}")
            pairs.append((key, value))
        return self.dialect.object(pairs)

    def page_info(self, info_type: GraphQLObjectType, nodes: list[FieldNode]) -> Any:
        """Relay's page info exactly as ``pagination._to_page`` and ``relay.connection_from_page`` give it."""
        rows = self.rows
        more = self.dialect.boolean(sa.func.count() > self.size)
        first_fetched = sa.func.max(sa.case((sa.and_(rows.c[POSITION] == 1, self.in_page), self.cursor())))
        last_fetched = self.dialect.last_fetched(
            self.cursor(), rows.c[POSITION], self.in_page, ascending=self.rows_in_display_order
        )
        if self.backwards:
            values = {
                "hasNextPage": self.dialect.constant_boolean(self.before),
                "hasPreviousPage": more,
                "startCursor": last_fetched,
                "endCursor": first_fetched,
            }
        else:
            values = {
                "hasNextPage": more,
                "hasPreviousPage": self.dialect.constant_boolean(self.after),
                "startCursor": first_fetched,
                "endCursor": last_fetched,
            }
        pairs: list[tuple[str, Any]] = []
        for key, field_nodes in self.builder.selected(info_type, nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                pairs.append((key, text(info_type.name)))
                continue
            honoured(self.builder.schema, info_type.name, name, frozenset())
            pairs.append((key, values[name]))
        return self.dialect.object(pairs)


def _kind(column: Any) -> str:
    python_type = column_python_type(column)
    if python_type is uuid.UUID:
        return "u"
    if python_type is datetime:
        return "t"
    if python_type is date:
        return "d"
    if python_type is str:
        return "s"
    if python_type is int:
        return "i"
    raise Unsupported(f"cursors over {python_type}")


def page_request_check(ordering: Ordering, definition: Any, node: FieldNode, request: Request) -> None:
    """The executor's checks of the paging arguments (``pagination.page_request``), made for every request."""
    args = request.arguments(definition, node)
    try:
        page_request(ordering, args.get("first"), args.get("after"), args.get("last"), args.get("before"))
    except DomainError as exc:
        raise Fallback(exc.message) from exc


def _page_size(definition: Any, node: FieldNode, argument: str, request: Request) -> int:
    size = request.arguments(definition, node)[argument]
    if not 0 <= size <= MAX_PAGE_SIZE:
        raise Fallback(f"'{argument}' out of range")
    return int(size)


def _cursor_value(
    definition: Any, node: FieldNode, argument: str, index: int, columns: tuple[Any, ...], request: Request
) -> Any:
    """One value of a cursor's sort key; a cursor that is not this list's is the executor's to refuse."""
    try:
        key = decode_cursor(request.arguments(definition, node)[argument], len(columns), argument)
    except DomainError as exc:
        raise Fallback(str(exc)) from exc
    expected = column_python_type(columns[index])
    value = key[index]
    mistaken = (expected is date and isinstance(value, datetime)) or (expected is int and isinstance(value, bool))
    if not isinstance(value, expected) or mistaken:
        raise Fallback(f"'{argument}' is a cursor of another list")
    if isinstance(value, datetime) and value.tzinfo is None:
        raise Fallback(f"'{argument}' holds a time without a zone")
    return value
