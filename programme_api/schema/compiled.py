"""Compiled reads: the hot read path, shaped level by level from plain rows instead of field by field.

graphql-core resolves every field value through its own machinery (an awaitable check, a completion step and,
for async fields, a task), and the ORM builds an object per row; for a dashboard of a few hundred rows that
is most of the time a request takes. Here a validated query is walked once per *level*: each nested list or
lookup is one access-filtered statement for all parents (the same statements as the DataLoaders, built from
the same ``access`` filters and domain queries), rows stay plain column tuples, and plain fields are read and
serialised with the schema's own scalar and enum serialisers, so the answer is identical to the full
executor's. Anything this path does not know (mutations, input-object filters, fields it has no batch rule
for) raises ``Unsupported`` and the operation runs through the full executor instead; so does any expected
error, so that errors are always shaped in one place.
"""

from __future__ import annotations

import functools
import inspect
import operator
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    coerce_input_value,
    get_named_type,
    get_operation_ast,
    type_from_ast,
    value_from_ast,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from strawberry.utils.str_converters import to_camel_case

from ..domain import models, programme
from ..domain.access import fetch_rows, readable
from ..domain.pagination import (
    Ordering,
    Page,
    RowExtension,
    columns_only,
    count,
    encode_cursor,
    fetch_grouped_pages,
    fetch_page,
    grouped_counts,
    page_request,
)
from ..domain.principal import Principal
from .context import RequestContext
from .read_shapes import SPECS, ChildrenSpec, ReferenceSpec, Spec
from .relay import to_global_id
from .types import programme as programme_types


class Unsupported(Exception):
    """The operation needs the full executor (this path only knows the common read shapes)."""


# GraphQL object types whose values on this path are plain rows of one table.
ROW_TYPES: dict[str, type[Any]] = {
    "Organisation": models.Organisation,
    "Region": models.Region,
    "Group": models.Group,
    "GroupSession": models.GroupSession,
    "Facilitator": models.Facilitator,
    "FacilitatorAssignment": models.FacilitatorAssignment,
    "Participant": models.Participant,
    "Enrolment": models.Enrolment,
    "AttendanceRecord": models.Attendance,
}
NODE_ROW_TYPES = frozenset(ROW_TYPES) - {"FacilitatorAssignment"}


@dataclass
class Selection:
    """What picks the fields of an operation: its fragments and coerced variables."""

    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]


@dataclass
class Plan(Selection):
    """One operation being answered, with the request it runs in."""

    context: RequestContext

    async def run(self, work: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return await self.context.run(work, *args)


@dataclass(frozen=True, slots=True)
class Shaped:
    """A value a batch rule has already shaped for the response (connections shape their own items)."""

    value: Any


BatchRule = Callable[[Plan, Sequence[Any], list[FieldNode], dict[str, Any]], Awaitable[list[Any]]]
BATCH_RULES: dict[tuple[str, str], BatchRule] = {}


def rule(type_name: str, field_name: str) -> Callable[[BatchRule], BatchRule]:
    def register(function: BatchRule) -> BatchRule:
        BATCH_RULES[(type_name, field_name)] = function
        return function

    return register


@dataclass(frozen=True)
class QueryOperation:
    """A validated document's query operation with all that answering it needs, found once per request."""

    source: str
    definition: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any] | None

    @classmethod
    def of(
        cls, document: DocumentNode, source: str, name: str | None, variables: dict[str, Any] | None
    ) -> QueryOperation | None:
        """The query to answer, or None for a mutation (which only the full executor runs)."""
        operation = get_operation_ast(document, name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return None
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        return cls(source, operation, fragments, variables)

    def selection(self, schema: Any) -> Selection:
        return Selection(self.fragments, coerce_variables(schema, self.definition, self.variables or {}))


async def execute_compiled(context: RequestContext, schema: Any, query: QueryOperation) -> dict[str, Any]:
    """The ``data`` of a query operation, or ``Unsupported`` when the full executor must answer it."""
    selection = query.selection(schema)
    plan = Plan(selection.fragments, selection.variables, context)
    root: GraphQLObjectType = schema._schema.query_type
    data: dict[str, Any] = {}
    for key, nodes in collect_fields(plan, root, [query.definition.selection_set]).items():
        name = nodes[0].name.value
        if name == "__typename":
            data[key] = root.name
            continue
        field = root.fields.get(name)
        root_rule = BATCH_RULES.get(("Query", name))
        if field is None or root_rule is None:
            raise Unsupported(f"Query.{name}")
        (value,) = await root_rule(plan, [None], nodes, arguments(plan, field, nodes[0]))
        data[key] = value.value if isinstance(value, Shaped) else value
    return data


def coerce_variables(schema: Any, operation: OperationDefinitionNode, raw: dict[str, Any]) -> dict[str, Any]:
    """Variables as the executor would see them (the document is already validated)."""
    values: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        type_ = type_from_ast(schema._schema, definition.type)
        if name in raw:
            values[name] = coerce_input_value(raw[name], type_)  # type: ignore[arg-type]
        elif definition.default_value is not None:
            values[name] = value_from_ast(definition.default_value, type_)  # type: ignore[arg-type]
        if values.get(name) is Undefined:
            raise Unsupported(f"variable ${name} does not coerce; the full executor reports why")
    return values


def arguments(plan: Selection, field: Any, node: FieldNode) -> dict[str, Any]:
    """Argument values by their GraphQL names; input objects are left to the full executor."""
    given = {argument.name.value: argument.value for argument in node.arguments or ()}
    values: dict[str, Any] = {}
    for name, argument in field.args.items():
        if name in given:
            value = value_from_ast(given[name], argument.type, plan.variables)
            if value is Undefined:
                raise Unsupported(f"argument {name} does not coerce")
        else:
            value = None if argument.default_value is Undefined else argument.default_value
        if value is not None and _is_input_object(argument.type):
            raise Unsupported(f"input object argument {name}")
        values[name] = value
    return values


def _is_input_object(type_: Any) -> bool:
    return isinstance(get_named_type(type_), GraphQLInputObjectType)


def collect_fields(
    plan: Selection, type_: GraphQLObjectType, selection_sets: Iterable[SelectionSetNode | None]
) -> dict[str, list[FieldNode]]:
    """Fields selected on ``type_`` by response key: fragments expanded, @skip/@include applied."""
    fields: dict[str, list[FieldNode]] = {}

    def visit(selection_set: SelectionSetNode | None, seen: frozenset[str]) -> None:
        for selection in selection_set.selections if selection_set else ():
            if not included(plan, selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if applies(type_, selection.type_condition.name.value if selection.type_condition else None):
                    visit(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                fragment = plan.fragments[selection.name.value]
                if applies(type_, fragment.type_condition.name.value):
                    visit(fragment.selection_set, seen | {selection.name.value})

    for selection_set in selection_sets:
        visit(selection_set, frozenset())
    return fields


def applies(type_: GraphQLObjectType, condition: str | None) -> bool:
    return condition is None or condition == type_.name or any(i.name == condition for i in type_.interfaces)


def included(plan: Selection, selection: Any) -> bool:
    for directive in selection.directives or ():
        if directive.name.value not in ("skip", "include"):
            raise Unsupported(f"directive @{directive.name.value}")
        condition = bool(value_from_ast(directive.arguments[0].value, _BOOLEAN, plan.variables))
        if (directive.name.value == "skip") == condition:
            return False
    return True


_BOOLEAN = GraphQLNonNull(GraphQLBoolean)


_SERIALIZERS: dict[str, Callable[[Any], Any]] = {}
_PLAIN_SCALARS: dict[str, type] = {"String": str, "ID": str, "Int": int, "Boolean": bool}


def leaf_serializer(type_: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    """The type's own serialiser, short-cut where the value is already what it would return.

    Enums map the domain value straight to the GraphQL name; plain scalars pass values of exactly their
    Python type through. Anything else (and any surprise) goes through the schema's serialiser, so output
    is always what the full executor would produce.
    """
    cached = _SERIALIZERS.get(type_.name)
    if cached is not None:
        return cached
    serialize = type_.serialize
    if isinstance(type_, GraphQLEnumType):
        names = {definition.value: name for name, definition in type_.values.items()}

        def by_name(value: Any) -> Any:
            name = names.get(value)
            return name if name is not None else serialize(value)

        cached = by_name
    elif type_.name in _PLAIN_SCALARS:
        plain = _PLAIN_SCALARS[type_.name]

        def passthrough(value: Any) -> Any:
            return value if type(value) is plain else serialize(value)

        cached = passthrough
    else:
        cached = serialize
    _SERIALIZERS[type_.name] = cached
    return cached


async def complete(plan: Plan, type_: GraphQLOutputType, values: list[Any], nodes: list[FieldNode]) -> list[Any]:
    """Turn resolved values into response values: serialise leaves, shape objects, walk lists."""
    if isinstance(type_, GraphQLNonNull):
        return await complete(plan, type_.of_type, values, nodes)
    if isinstance(type_, GraphQLList):
        flat = [item for value in values if value is not None for item in value]
        done = iter(await complete(plan, type_.of_type, flat, nodes))
        return [None if value is None else [next(done) for _ in value] for value in values]
    if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
        serialize = leaf_serializer(type_)
        return [None if value is None else serialize(value) for value in values]
    if isinstance(type_, GraphQLObjectType):
        present = [value for value in values if value is not None]
        shaped = iter(await shape(plan, type_, present, nodes))
        return [None if value is None else next(shaped) for value in values]
    raise Unsupported(f"abstract type {type_}")


async def shape(
    plan: Plan, type_: GraphQLObjectType, sources: list[Any], nodes: list[FieldNode]
) -> list[dict[str, Any]]:
    """Response objects for many sources of one type at once: one batch per selected field."""
    results: list[dict[str, Any]] = [{} for _ in sources]
    if not sources:
        return results
    for key, field_nodes in collect_fields(plan, type_, [node.selection_set for node in nodes]).items():
        name = field_nodes[0].name.value
        if name == "__typename":
            values: list[Any] = [type_.name] * len(sources)
        else:
            field = type_.fields[name]
            raw = await resolve(plan, type_, name, field, sources, field_nodes)
            shaped = raw and isinstance(raw[0], Shaped)
            values = [item.value for item in raw] if shaped else await complete(plan, field.type, raw, field_nodes)
        for result, value in zip(results, values, strict=True):
            result[key] = value
    return results


async def resolve(
    plan: Plan, type_: GraphQLObjectType, name: str, field: Any, sources: list[Any], nodes: list[FieldNode]
) -> list[Any]:
    """Raw values of one field for all sources: a batch rule, a plain attribute, or a pure resolver."""
    batch = BATCH_RULES.get((type_.name, name))
    if batch is not None:
        return await batch(plan, sources, nodes, arguments(plan, field, nodes[0]))
    definition = strawberry_field(type_.name, name)
    if type_.name in NODE_ROW_TYPES and name == "id":
        return [to_global_id(type_.name, source.id) for source in sources]
    if definition.base_resolver is None:
        return list(map(operator.attrgetter(definition.python_name), sources))
    resolver = definition.base_resolver
    if resolver.is_async or "info" in inspect.signature(resolver.wrapped_func).parameters:
        raise Unsupported(f"{type_.name}.{name}")
    kwargs = {_python_argument(definition, key): value for key, value in arguments(plan, field, nodes[0]).items()}
    wrap = (lambda row: SimpleNamespace(model=row)) if type_.name in ROW_TYPES else (lambda source: source)
    return [resolver.wrapped_func(wrap(source), **kwargs) for source in sources]


@functools.cache
def strawberry_field(type_name: str, field_name: str) -> Any:
    """The strawberry definition behind a GraphQL field (looked up once per field per process)."""
    from . import schema

    definition = schema.get_type_by_name(type_name)
    if definition is None:
        raise Unsupported(type_name)
    for field in definition.fields:  # type: ignore[union-attr]
        if schema.config.name_converter.get_graphql_name(field) == field_name:
            return field
    raise Unsupported(f"{type_name}.{field_name}")


def _python_argument(definition: Any, graphql_name: str) -> str:
    for argument in definition.arguments:
        if (argument.graphql_name or to_camel_case(argument.python_name)) == graphql_name:
            return str(argument.python_name)
    return graphql_name


# ---- connections ---------------------------------------------------------------------------------------------


async def shape_connections(
    plan: Plan,
    connection_type: GraphQLObjectType,
    pages: list[Page[Any]],
    nodes: list[FieldNode],
    counts: Callable[[], Awaitable[list[int]]],
) -> list[dict[str, Any]]:
    """Connections (edges, nodes, pageInfo, totalCount) for many pages at once; their items shaped together."""
    results: list[dict[str, Any]] = [{} for _ in pages]
    edge_type = named_type(connection_type.fields["edges"].type)
    node_type = named_type(edge_type.fields["node"].type)
    all_rows = [row for page in pages for row in page.rows]
    for key, field_nodes in collect_fields(plan, connection_type, [node.selection_set for node in nodes]).items():
        name = field_nodes[0].name.value
        if name == "__typename":
            values: list[Any] = [connection_type.name] * len(pages)
        elif name == "totalCount":
            values = await counts()
        elif name == "pageInfo":
            values = _page_infos(plan, connection_type, pages, field_nodes)
        elif name == "nodes":
            values = _split(pages, await shape(plan, node_type, all_rows, field_nodes))
        elif name == "edges":
            values = _split(pages, await _edges(plan, edge_type, node_type, pages, all_rows, field_nodes))
        else:
            raise Unsupported(f"{connection_type.name}.{name}")
        for result, value in zip(results, values, strict=True):
            result[key] = value
    return results


async def _edges(
    plan: Plan,
    edge_type: GraphQLObjectType,
    node_type: GraphQLObjectType,
    pages: list[Page[Any]],
    rows: list[Any],
    nodes: list[FieldNode],
) -> list[dict[str, Any]]:
    edges: list[dict[str, Any]] = [{} for _ in rows]
    for key, field_nodes in collect_fields(plan, edge_type, [node.selection_set for node in nodes]).items():
        name = field_nodes[0].name.value
        if name == "cursor":
            values: list[Any] = [encode_cursor(key) for page in pages for key in page.keys]
        elif name == "node":
            values = await shape(plan, node_type, rows, field_nodes)
        elif name == "__typename":
            values = [edge_type.name] * len(rows)
        else:
            raise Unsupported(f"{edge_type.name}.{name}")
        for edge, value in zip(edges, values, strict=True):
            edge[key] = value
    return edges


def _page_infos(
    plan: Plan, connection_type: GraphQLObjectType, pages: list[Page[Any]], nodes: list[FieldNode]
) -> list[dict[str, Any]]:
    info_type = named_type(connection_type.fields["pageInfo"].type)
    selected = collect_fields(plan, info_type, [node.selection_set for node in nodes])
    infos = []
    for page in pages:
        cursors = [encode_cursor(page.keys[0]), encode_cursor(page.keys[-1])] if page.keys else [None, None]
        values = {
            "hasNextPage": page.has_next_page,
            "hasPreviousPage": page.has_previous_page,
            "startCursor": cursors[0],
            "endCursor": cursors[1],
            "__typename": info_type.name,
        }
        infos.append({key: values[field_nodes[0].name.value] for key, field_nodes in selected.items()})
    return infos


def _split(pages: list[Page[Any]], items: list[Any]) -> list[list[Any]]:
    iterator = iter(items)
    return [[next(iterator) for _ in page.rows] for page in pages]


def named_type(type_: Any) -> GraphQLObjectType:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    assert isinstance(type_, GraphQLObjectType)
    return type_


def _connection_type(plan: Plan, parent: str, field_name: str) -> GraphQLObjectType:
    from . import schema

    parent_type = schema._schema.get_type(parent)
    assert isinstance(parent_type, GraphQLObjectType)
    return named_type(parent_type.fields[field_name].type)


# Fields answered from extra columns of their parent's own query, when the parent rows are fetched by a
# connection: (type, field) -> the labelled columns to add.
ROW_COLUMNS: dict[tuple[str, str], RowExtension] = {
    ("GroupSession", "attendanceCounts"): programme.with_attendance_counts,
}


def row_columns(plan: Plan, connection_type: GraphQLObjectType, nodes: list[FieldNode]) -> RowExtension | None:
    """Extra columns the connection's items need, given what the query selects on them."""
    edge_type = named_type(connection_type.fields["edges"].type)
    node_type = named_type(edge_type.fields["node"].type)
    item_sets: list[SelectionSetNode | None] = []
    for key_nodes in collect_fields(plan, connection_type, [node.selection_set for node in nodes]).values():
        name = key_nodes[0].name.value
        if name == "nodes":
            item_sets += [node.selection_set for node in key_nodes]
        elif name == "edges":
            for edge_nodes in collect_fields(plan, edge_type, [node.selection_set for node in key_nodes]).values():
                if edge_nodes[0].name.value == "node":
                    item_sets += [node.selection_set for node in edge_nodes]
    selected = {field_nodes[0].name.value for field_nodes in collect_fields(plan, node_type, item_sets).values()}
    makers = [ROW_COLUMNS[(node_type.name, name)] for name in sorted(selected) if (node_type.name, name) in ROW_COLUMNS]
    if not makers:
        return None

    def extend(query: sa.Select[Any], row: Any, dialect: str) -> sa.Select[Any]:
        for make in makers:
            query = make(query, row, dialect)
        return query

    return extend


def top_level_connection(
    field_name: str,
    build: Callable[[Principal, dict[str, Any]], sa.Select[Any]],
    ordering: Ordering,
) -> BatchRule:
    """A root list (``regions``, ``groups``, ...): one statement for the page, one for ``totalCount``."""

    async def run(plan: Plan, _sources: Sequence[Any], nodes: list[FieldNode], args: dict[str, Any]) -> list[Any]:
        request = page_request(ordering, args.get("first"), args.get("after"), args.get("last"), args.get("before"))

        extra = row_columns(plan, _connection_type(plan, "Query", field_name), nodes)

        async def fetch(session: AsyncSession, principal: Principal) -> Page[Any]:
            return await fetch_page(session, build(principal, args), ordering, request, as_rows=True, extend_rows=extra)

        async def total(session: AsyncSession, principal: Principal) -> int:
            return await count(session, build(principal, args))

        async def counts() -> list[int]:
            return [await plan.run(total)]

        page = await plan.run(fetch)
        shaped = await shape_connections(plan, _connection_type(plan, "Query", field_name), [page], nodes, counts)
        return [Shaped(value) for value in shaped]

    return run


def nested_connection(
    parent: str,
    field_name: str,
    build: Callable[[Principal, dict[str, Any]], sa.Select[Any]],
    parent_column: InstrumentedAttribute[Any],
    ordering: Ordering,
) -> BatchRule:
    """A list under each parent (``region.groups``): one statement for all parents' pages, one for counts."""
    model: type[Any] = parent_column.class_  # type: ignore[assignment]  # a mapped class, never an alias here

    async def run(plan: Plan, sources: Sequence[Any], nodes: list[FieldNode], args: dict[str, Any]) -> list[Any]:
        request = page_request(ordering, args.get("first"), args.get("after"), args.get("last"), args.get("before"))
        parent_ids = [source.id for source in sources]

        extra = row_columns(plan, _connection_type(plan, parent, field_name), nodes)

        async def fetch(session: AsyncSession, principal: Principal) -> dict[Any, Page[Any]]:
            statement = build(principal, args)
            return await fetch_grouped_pages(
                session, model, statement, parent_column, parent_ids, ordering, request,
                as_rows=True, extend_rows=extra,
            )  # fmt: skip

        async def totals(session: AsyncSession, principal: Principal) -> dict[Any, int]:
            return await grouped_counts(session, build(principal, args), parent_column, parent_ids)

        async def counts() -> list[int]:
            found = await plan.run(totals)
            return [found[parent_id] for parent_id in parent_ids]

        pages = await plan.run(fetch)
        connection_type = _connection_type(plan, parent, field_name)
        shaped = await shape_connections(plan, connection_type, [pages[pid] for pid in parent_ids], nodes, counts)
        return [Shaped(value) for value in shaped]

    return run


def to_one(model: type[Any], foreign_key: str) -> BatchRule:
    """A reference (``group.region``): the readable rows for all parents' keys in one statement."""

    async def run(plan: Plan, sources: Sequence[Any], _nodes: list[FieldNode], _args: dict[str, Any]) -> list[Any]:
        keys = list({getattr(source, foreign_key) for source in sources})

        async def fetch(session: AsyncSession, principal: Principal) -> dict[Any, Any]:
            statement = columns_only(readable(principal, model).where(model.id.in_(keys)))
            return {row.id: row for row in await fetch_rows(session, statement)}

        found = await plan.run(fetch)
        return [found.get(getattr(source, foreign_key)) for source in sources]

    return run


def children(
    model: type[Any], parent_column: InstrumentedAttribute[Any], order_by: tuple[Any, ...], key: str = "id"
) -> BatchRule:
    """A short list under each parent (``group.facilitators``), all parents in one statement."""

    async def run(plan: Plan, sources: Sequence[Any], _nodes: list[FieldNode], _args: dict[str, Any]) -> list[Any]:
        parent_ids = list({getattr(source, key) for source in sources})

        async def fetch(session: AsyncSession, principal: Principal) -> dict[Any, list[Any]]:
            statement = columns_only(readable(principal, model)).where(parent_column.in_(parent_ids))
            grouped: dict[Any, list[Any]] = {parent_id: [] for parent_id in parent_ids}
            for row in await fetch_rows(session, statement.order_by(*order_by)):
                grouped[getattr(row, parent_column.key)].append(row)
            return grouped

        grouped = await plan.run(fetch)
        return [grouped[getattr(source, key)] for source in sources]

    return run


def rollup(
    compute: Callable[
        [Plan, dict[str, Any]], Callable[[AsyncSession, Principal, list[Any]], Awaitable[dict[Any, Any]]]
    ],
    convert: Callable[[Any, Any], Any] = lambda value, _source: value,
) -> BatchRule:
    """A per-parent aggregate (attendance counts, region totals) for all parents at once."""

    async def run(plan: Plan, sources: Sequence[Any], _nodes: list[FieldNode], args: dict[str, Any]) -> list[Any]:
        parent_ids = list({source.id for source in sources})
        found = await plan.run(compute(plan, args), parent_ids)
        return [convert(found[source.id], source) for source in sources]

    return run


def from_row_columns(probe: str, convert: Callable[[Any], Any], fallback: BatchRule) -> BatchRule:
    """A field whose values came as extra columns of the parent rows (``ROW_COLUMNS``); parents fetched
    another way (by id, say) get it from the field's batched query instead."""

    async def run(plan: Plan, sources: Sequence[Any], nodes: list[FieldNode], args: dict[str, Any]) -> list[Any]:
        if all(hasattr(source, probe) for source in sources):
            return [convert(source) for source in sources]
        return await fallback(plan, sources, nodes, args)

    return run


def _period_of(args: dict[str, Any]) -> programme.Period:
    return programme_types._period(args.get("from"), args.get("to"))


def _rule_for(type_name: str, field_name: str, spec: Spec) -> BatchRule:
    """The batch rule for a field of the shared table (``read_shapes.SPECS``)."""
    if isinstance(spec, ReferenceSpec):
        return to_one(spec.model, spec.foreign_key)
    if isinstance(spec, ChildrenSpec):
        return children(spec.model, spec.parent_column, tuple(spec.order_by(spec.model.__table__)))
    if spec.parent_column is None:
        return top_level_connection(field_name, spec.build, spec.ordering)
    return nested_connection(type_name, field_name, spec.build, spec.parent_column, spec.ordering)


def _register() -> None:
    """The batch rules: every resolver-backed field this path answers (all others fall back)."""
    for (type_name, field_name), spec in SPECS.items():
        rule(type_name, field_name)(_rule_for(type_name, field_name, spec))
    attendance_counts_by_query = rollup(
        lambda _plan, _args: programme.attendance_counts,
        lambda counts, row: programme_types.AttendanceCounts(
            present=counts.present, excused=counts.excused, unexcused=counts.unexcused, dropins=row.dropin_count
        ),
    )
    rule("GroupSession", "attendanceCounts")(
        from_row_columns(
            "attendance_present",
            lambda row: programme_types.AttendanceCounts(
                present=row.attendance_present,
                excused=row.attendance_excused,
                unexcused=row.attendance_unexcused,
                dropins=row.dropin_count,
            ),
            fallback=attendance_counts_by_query,
        )
    )
    rule("Region", "totals")(
        rollup(
            lambda _plan, args: lambda s, p, ids: programme.region_totals(s, p, ids, _period_of(args)),
            lambda totals, _row: programme_types.RegionTotals(
                active_groups=totals.active_groups,
                sessions_held=totals.sessions_held,
                unique_attendees=totals.unique_attendees,
            ),
        )
    )
    rule("Group", "attendanceRate")(
        rollup(lambda _plan, args: lambda s, p, ids: programme.attendance_rates(s, p, ids, _period_of(args)))
    )
    rule("Participant", "consecutiveAbsences")(rollup(lambda _plan, _args: programme.consecutive_absences))


_register()
