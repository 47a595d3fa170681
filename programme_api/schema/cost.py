"""What an operation may cost, worked out from the validated document and its variables before anything runs.

Points in the manner of GitHub's and Shopify's GraphQL APIs, so that partner developers recognise them:

- a scalar or enum field costs 0, an object 1 (Relay's edge wrappers 0: ``edges { node }`` is one object);
- a list costs its length times the cost of one item: for a connection's ``edges``/``nodes`` the page asked
  for (``last``, else ``first``, else the default page size), for ``nodes(ids:)`` the ids given, for any
  other list of children the default page size (they are small, bounded lists);
- each mutation field costs 10 besides what its payload selects;
- introspection (``__schema``, ``__type``, ``__typename``) is bounded by the schema and costs nothing.

The possible nodes of an operation are the items all its lists may return, multiplied through their nesting
(GitHub's node limit): scalar lists count here although they cost no points.

The same walk over the answer's ``data`` gives the actual cost (lists as long as they came back, null objects
nothing), whichever path answered. Fields are collected as the executor collects them (the compiler's
``operation`` module: fragments expanded, ``@skip``/``@include`` applied); for an interface the costliest of
its object types counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLCompositeType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    OperationType,
    SelectionSetNode,
    get_named_type,
    get_operation_ast,
    is_abstract_type,
    is_leaf_type,
)

from ..domain.pagination import DEFAULT_PAGE_SIZE
from .compiler.operation import Selection, Unsupported, arguments, coerce_variables
from .compiler.operation import collect_fields as collect

MUTATION_COST = 10
# Rows a list that is not a connection may hold (a group's facilitators, a session's register) are few.
UNPAGED_LIST_SIZE = DEFAULT_PAGE_SIZE
_UNKNOWN: Any = object()  # walking the document, not an answer


@dataclass(frozen=True)
class Cost:
    """Points and possible nodes of one operation."""

    points: int
    nodes: int

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.points + other.points, self.nodes + other.nodes)


_FREE = Cost(0, 0)


class CostAnalysis:
    """One operation of a validated document with its variables, ready to be costed (before and after)."""

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, variables: dict[str, Any]
    ) -> None:
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            raise ValueError("no such operation in the document")
        self.schema = schema
        self.operation = operation
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        try:
            coerced = coerce_variables(_SchemaHolder(schema), operation, variables)
        except Unsupported:
            coerced = {}  # the executor refuses the variables before it reads anything
        self.selection = Selection(fragments, coerced)
        root = schema.get_root_type(operation.operation)
        assert root is not None  # a validated operation has its root type
        self.root = root
        self.is_mutation = operation.operation is OperationType.MUTATION

    def requested(self) -> Cost:
        """The most the operation can cost and return, from the page sizes it asks for."""
        return self._selections(self.root, [self.operation.selection_set], _UNKNOWN, page=None, root=True)

    def actual(self, data: Any) -> int:
        """The points of the answer that came back (its ``data``)."""
        if not isinstance(data, dict):
            return 0
        return self._selections(self.root, [self.operation.selection_set], data, page=None, root=True).points

    def _selections(
        self,
        type_: GraphQLCompositeType,
        selection_sets: list[SelectionSetNode | None],
        value: Any,
        *,
        page: int | None,
        root: bool = False,
    ) -> Cost:
        if is_abstract_type(type_):
            options = [
                self._selections(member, selection_sets, value, page=page)
                for member in self.schema.get_possible_types(type_)
            ]
            return max(options, key=lambda cost: (cost.points, cost.nodes), default=_FREE)
        assert isinstance(type_, GraphQLObjectType)
        try:
            fields = collect(self.selection, type_, selection_sets)
        except Unsupported:
            fields = collect(Selection(self.selection.fragments, {}), type_, selection_sets)
        total = _FREE
        for key, nodes in fields.items():
            name = nodes[0].name.value
            if name.startswith("__"):
                continue
            field = type_.fields[name]
            item = value if value is _UNKNOWN else (value.get(key) if isinstance(value, dict) else None)
            cost = self._field(field, nodes, item, page)
            if root and self.is_mutation:
                cost = cost + Cost(MUTATION_COST, 0)
            total = total + cost
        return total

    def _field(self, field: GraphQLField, nodes: list[FieldNode], value: Any, page: int | None) -> Cost:
        named = get_named_type(field.type)
        children: list[SelectionSetNode | None] = [node.selection_set for node in nodes]
        if _is_list(field.type):
            size = self._list_size(field, nodes[0], page)
            if value is _UNKNOWN:
                if is_leaf_type(named):
                    return Cost(0, size)
                one = self._item(named, children, _UNKNOWN, None)  # type: ignore[arg-type]
                return Cost(size * one.points, size + size * one.nodes)
            if is_leaf_type(named) or not isinstance(value, list):
                return _FREE
            total = _FREE
            for item in value:
                if item is not None:
                    total = total + self._item(named, children, item, None)  # type: ignore[arg-type]
            return total
        if is_leaf_type(named) or value is None:
            return _FREE
        return self._item(named, children, value, self._page_size(field, nodes[0]))  # type: ignore[arg-type]

    def _item(
        self, type_: GraphQLCompositeType, children: list[SelectionSetNode | None], value: Any, page: int | None
    ) -> Cost:
        own = 0 if type_.name.endswith("Edge") else 1
        return Cost(own, 0) + self._selections(type_, children, value, page=page)

    def _list_size(self, field: GraphQLField, node: FieldNode, page: int | None) -> int:
        if page is not None and node.name.value in ("edges", "nodes"):
            return page
        if "ids" in field.args:
            ids = self._arguments(field, node).get("ids")
            return len(ids) if isinstance(ids, list) else UNPAGED_LIST_SIZE
        return UNPAGED_LIST_SIZE

    def _page_size(self, field: GraphQLField, node: FieldNode) -> int | None:
        """A connection's page: ``last``, else ``first``, else the default; None for any other object."""
        if "first" not in field.args:
            return None
        values = self._arguments(field, node)
        for name in ("last", "first"):
            size = values.get(name)
            if isinstance(size, int):
                return max(size, 0)
        return DEFAULT_PAGE_SIZE

    def _arguments(self, field: GraphQLField, node: FieldNode) -> dict[str, Any]:
        try:
            return arguments(self.selection, field, node)
        except Unsupported:
            return {}  # the executor refuses the argument before it reads anything


class _SchemaHolder:
    """``coerce_variables`` takes strawberry's schema (it reads ``_schema``); this hands it graphql-core's."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self._schema = schema


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)
