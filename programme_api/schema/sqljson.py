"""Reads answered by PostgreSQL in one statement that returns the response's ``data`` as JSON text.

For the common read shapes most of a request's time went on turning rows into Python values and those back
into JSON. Here a validated query is compiled into a single SQL statement in which PostgreSQL builds the
nested result itself (``json_build_object`` and ``json_agg``), and the service passes the text through.

Access is unchanged: every table is read through ``access.readable`` (or the same domain builders the
resolvers use), each nested list or reference being that statement correlated to its parent row, so the
rows a caller can reach are exactly those of the other paths. Values are rendered in SQL the way the
schema's serialisers render them (enum names, ISO timestamps in UTC, opaque Relay IDs), and tests compare
whole answers with the full executor's. Anything this path does not know (cursors and ``pageInfo``,
roll-ups, computed fields, other databases) raises ``Unsupported``; the level-by-level path
(``compiled.py``) or the full executor answers instead.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import orjson
import sqlalchemy as sa
from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..domain import programme
from ..domain.access import CompiledRead, compile_read, fetch_compiled, readable
from ..domain.pagination import columns_only, page_request, sort_keys
from ..domain.principal import Principal
from ..domain.tenancy import bound_read
from .compiled import (
    ROW_TYPES,
    QueryOperation,
    Selection,
    Unsupported,
    arguments,
    collect_fields,
    named_type,
    strawberry_field,
)
from .read_shapes import SPECS, ChildrenSpec, ListSpec, ReferenceSpec

JSON = postgresql.JSON()
MAX_FIELDS_PER_OBJECT = 50  # json_build_object takes at most 100 arguments
_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
Rows = Any  # a derived table (subquery) whose columns are one table's row


CACHE_SIZE = 512
_cache: OrderedDict[Hashable, CompiledRead | None] = OrderedDict()


async def execute_json(
    bind: AsyncEngine | AsyncConnection, principal: Principal, schema: Any, query: QueryOperation
) -> str:
    """The ``data`` of a query operation as JSON text, or ``Unsupported``.

    The compiled statement is kept per document text, operation, variables, principal and day (builders
    may compare with today's date), so a repeated read costs one round trip and no building; an operation
    found unsupported is remembered too, so the fall-back costs nothing extra next time.
    """
    if bind.dialect.name != "postgresql":
        raise Unsupported("JSON is built in PostgreSQL only")
    if principal.evaluation_project_id is not None:
        raise Unsupported("evaluators read across organisations: their binding needs a lookup first")
    name = query.definition.name.value if query.definition.name else None
    key = (query.source, name, _canonical(query.variables), principal, programme.today())
    if key in _cache:
        _cache.move_to_end(key)
        read = _cache[key]
    else:
        try:
            read = _build(bind.dialect, principal, schema, query)
        except Unsupported:
            read = None
        _remember(key, read)
    if read is None:
        raise Unsupported("not compiled to one statement")
    (row,) = await fetch_compiled(bind, read)
    return str(row[0])


def _canonical(variables: dict[str, Any] | None) -> bytes:
    return orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)


def _remember(key: Hashable, read: CompiledRead | None) -> None:
    _cache[key] = read
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)


def _build(dialect: sa.Dialect, principal: Principal, schema: Any, query: QueryOperation) -> CompiledRead:
    """The operation as one statement returning the ``data`` object as text (nothing is sent here)."""
    selection = query.selection(schema)
    root: GraphQLObjectType = schema._schema.query_type
    selected = collect_fields(selection, root, [query.definition.selection_set])
    for nodes in selected.values():
        name = nodes[0].name.value
        if name != "__typename" and not isinstance(SPECS.get(("Query", name)), ListSpec):
            raise Unsupported(f"Query.{name}")
    data = Builder(selection, principal).object(root, None, selected)
    statement = sa.select(sa.cast(data, sa.Text))  # the text as PostgreSQL wrote it, not parsed here
    return compile_read(bound_read(statement, principal), dialect)


class Builder:
    """Builds one statement's JSON expressions for one principal (derived tables get unique names)."""

    def __init__(self, plan: Selection, principal: Principal) -> None:
        self.plan = plan
        self.principal = principal
        self.names = itertools.count()

    def alias(self) -> str:
        return f"j{next(self.names)}"

    def object(self, type_: GraphQLObjectType, rows: Rows | None, selected: dict[str, list[FieldNode]]) -> Any:
        """``json_build_object`` of the selected fields of ``type_`` for the row ``rows`` stands at."""
        if len(selected) > MAX_FIELDS_PER_OBJECT:
            raise Unsupported("too many fields in one object")
        pairs: list[Any] = []
        for key, nodes in selected.items():
            pairs += [_text(key), self.field(type_, rows, nodes)]
        return sa.func.json_build_object(*pairs, type_=JSON)

    def selection(self, type_: GraphQLObjectType, nodes: list[FieldNode]) -> dict[str, list[FieldNode]]:
        return collect_fields(self.plan, type_, [node.selection_set for node in nodes])

    def field(self, type_: GraphQLObjectType, rows: Rows | None, nodes: list[FieldNode]) -> Any:
        name = nodes[0].name.value
        if name == "__typename":
            return _text(type_.name)
        field = type_.fields[name]
        spec = SPECS.get((type_.name, name))
        args = arguments(self.plan, field, nodes[0])
        if isinstance(spec, ListSpec):
            return self.connection(named_type(field.type), spec, args, nodes, rows)
        if isinstance(spec, ReferenceSpec):
            return self.reference(named_type(field.type), spec, nodes, rows)
        if isinstance(spec, ChildrenSpec):
            return self.children(named_type(field.type), spec, nodes, rows)
        if (type_.name, name) == ("GroupSession", "attendanceCounts"):
            return self.attendance_counts(named_type(field.type), nodes, rows)
        if rows is None or type_.name not in ROW_TYPES:
            raise Unsupported(f"{type_.name}.{name}")
        if name == "id":
            return global_id(type_.name, rows.c.id)
        definition = strawberry_field(type_.name, name)
        if definition.base_resolver is not None or definition.python_name not in rows.c:
            raise Unsupported(f"{type_.name}.{name}")
        return leaf(field.type, rows.c[definition.python_name])

    def connection(
        self,
        connection_type: GraphQLObjectType,
        spec: ListSpec,
        args: dict[str, Any],
        nodes: list[FieldNode],
        parent: Rows | None,
    ) -> Any:
        """One page (``first``/``last``) of the list as ``{edges: [{node}], nodes, totalCount}``."""
        if args.get("after") is not None or args.get("before") is not None:
            raise Unsupported("cursors")
        ordering = spec.ordering
        request = page_request(ordering, args.get("first"), None, args.get("last"), None)
        statement = spec.build(self.principal, args)
        if spec.parent_column is not None:
            assert parent is not None
            statement = statement.where(spec.parent_column == parent.c.id).correlate(parent)
        statement = columns_only(statement)
        page = statement.order_by(*sort_keys(ordering, request.backwards)).limit(request.size).lateral(self.alias())
        edge_type = named_type(connection_type.fields["edges"].type)
        node_type = named_type(edge_type.fields["node"].type)
        in_order = [page.c[column.key] for column in ordering.columns]
        pairs: list[Any] = []
        for key, field_nodes in self.selection(connection_type, nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                value: Any = _text(connection_type.name)
            elif name == "totalCount":
                value = sa.select(sa.func.count()).select_from(statement.order_by(None).subquery()).scalar_subquery()
            elif name == "nodes":
                value = _aggregate(page, self.object(node_type, page, self.selection(node_type, field_nodes)), in_order)
            elif name == "edges":
                value = _aggregate(page, self.edge(edge_type, node_type, page, field_nodes), in_order)
            else:
                raise Unsupported(f"{connection_type.name}.{name}")
            pairs += [_text(key), value]
        return sa.func.json_build_object(*pairs, type_=JSON)

    def edge(
        self, edge_type: GraphQLObjectType, node_type: GraphQLObjectType, page: Rows, nodes: list[FieldNode]
    ) -> Any:
        pairs: list[Any] = []
        for key, field_nodes in self.selection(edge_type, nodes).items():
            name = field_nodes[0].name.value
            if name == "node":
                value = self.object(node_type, page, self.selection(node_type, field_nodes))
            elif name == "__typename":
                value = _text(edge_type.name)
            else:
                raise Unsupported(f"{edge_type.name}.{name}")
            pairs += [_text(key), value]
        return sa.func.json_build_object(*pairs, type_=JSON)

    def reference(self, type_: GraphQLObjectType, spec: ReferenceSpec, nodes: list[FieldNode], parent: Rows) -> Any:
        if parent is None:
            raise Unsupported("a reference needs a parent row")
        model = spec.model
        target = columns_only(readable(self.principal, model).where(model.id == parent.c[spec.foreign_key]))
        target = target.correlate(parent)
        row = target.lateral(self.alias())
        return sa.select(self.object(type_, row, self.selection(type_, nodes))).select_from(row).scalar_subquery()

    def children(self, type_: GraphQLObjectType, spec: ChildrenSpec, nodes: list[FieldNode], parent: Rows) -> Any:
        if parent is None:
            raise Unsupported("a list of children needs a parent row")
        statement = columns_only(readable(self.principal, spec.model)).where(spec.parent_column == parent.c.id)
        statement = statement.correlate(parent)
        rows = statement.lateral(self.alias())
        return _aggregate(rows, self.object(type_, rows, self.selection(type_, nodes)), spec.order_by(rows))

    def attendance_counts(self, type_: GraphQLObjectType, nodes: list[FieldNode], session: Rows) -> Any:
        """The session's tallies by status (``programme.attendance_tallies``) plus its drop-in headcount."""
        if session is None:
            raise Unsupported("attendance counts need a session row")
        tallies = programme.attendance_tallies(session.c)
        values = {column.name.removeprefix("attendance_"): column for column in tallies.selected_columns}
        values["dropins"] = session.c.dropin_count
        pairs: list[Any] = []
        for key, field_nodes in self.selection(type_, nodes).items():
            name = field_nodes[0].name.value
            pairs += [_text(key), _text(type_.name) if name == "__typename" else values[name]]
        return tallies.with_only_columns(sa.func.json_build_object(*pairs, type_=JSON)).scalar_subquery()


def _aggregate(rows: Rows, item: Any, order: list[Any]) -> Any:
    """A JSON array of ``item`` over ``rows`` in ``order`` (an empty array, not null, when there are none)."""
    items = sa.func.json_agg(aggregate_order_by(item, *order), type_=JSON)
    return sa.select(sa.func.coalesce(items, sa.literal_column("'[]'::json"))).select_from(rows).scalar_subquery()


def _constant(value: str) -> Any:
    """A string constant of this module's own (a format, an enum's stored value), written into the SQL.

    Constants as bound parameters cost per row: PostgreSQL cannot fold them into the functions that use
    them once it switches a prepared statement to a generic plan.
    """
    return sa.literal_column("'" + value.replace("'", "''") + "'", sa.Text)


def _text(value: str) -> Any:
    """A name known at compile time (a response key or type name), inlined so the statement text is stable."""
    if not _NAME.match(value.removesuffix(":")):
        raise Unsupported(f"unexpected name {value!r}")
    return sa.literal_column(f"'{value}'::text")


def global_id(type_name: str, row_id: Any) -> Any:
    """``schema.relay.to_global_id`` in SQL: URL-safe base64 of ``Type:uuid``, without padding.

    ``replace`` rather than ``translate`` (several times cheaper per row); PostgreSQL's base64 breaks lines
    after 76 characters, which a name of up to 20 characters before a UUID never reaches.
    """
    if len(type_name) > 20:
        raise Unsupported(f"global IDs of {type_name}")
    c = _constant
    raw = sa.func.encode(sa.cast(_text(type_name + ":").concat(sa.cast(row_id, sa.Text)), sa.LargeBinary), c("base64"))
    return sa.func.rtrim(sa.func.replace(sa.func.replace(raw, c("+"), c("-")), c("/"), c("_")), c("="))


def leaf(type_: GraphQLOutputType, column: Any) -> Any:
    """A column rendered as the field's scalar or enum serialiser would render it."""
    if isinstance(type_, GraphQLNonNull):
        return leaf(type_.of_type, column)
    if isinstance(type_, GraphQLList):
        raise Unsupported("list of leaves")
    if isinstance(type_, GraphQLEnumType):
        names = {_stored(definition.value): name for name, definition in type_.values.items()}
        return sa.case(*((column == _constant(stored), _text(name)) for stored, name in names.items()))
    if isinstance(type_, GraphQLScalarType):
        if type_.name in ("String", "ID", "Int", "Boolean", "Float"):
            return column
        if type_.name == "DateTime":
            return iso_datetime(column)
        if type_.name == "Date":
            return sa.func.to_char(column, _constant("YYYY-MM-DD"))
    raise Unsupported(f"scalar {type_}")


def _stored(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def iso_datetime(column: Any) -> Any:
    """``datetime.isoformat()`` of a UTC instant: seconds, microseconds only when there are some, ``+00:00``."""
    utc = sa.func.timezone(_constant("UTC"), column)
    whole = sa.func.date_trunc(_constant("second"), column) == column
    return sa.case(
        (whole, sa.func.to_char(utc, _constant('YYYY-MM-DD"T"HH24:MI:SS"+00:00"'))),
        else_=sa.func.to_char(utc, _constant('YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')),
    )
