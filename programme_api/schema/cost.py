"""What an operation may cost, worked out from the validated document and its variables before anything runs.

Points in the manner of GitHub's and Shopify's GraphQL APIs, so that partner developers recognise them:

- a scalar or enum field costs 0, an object 1 (Relay's edge wrappers 0: ``edges { node }`` is one object);
- a list costs its length times the cost of one item: for a connection's ``edges``/``nodes`` the page asked
  for (``last``, else ``first``, else the default page size), for ``nodes(ids:)`` the ids given, for any
  other list of children ``UNPAGED_LIST_SIZE`` (a parent's few children);
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
    GraphQLNamedType,
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
# A list that is not a connection holds a parent's few children (a group's facilitators, a session's register):
# counted as this many; the actual cost then counts what came back.
UNPAGED_LIST_SIZE = 10


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
        # The same selection is walked once per item of a list: fields and page sizes are worked out once.
        self._fields: dict[tuple[str, tuple[int, ...]], dict[str, list[FieldNode]]] = {}
        self._arguments_of: dict[int, dict[str, Any]] = {}

    def requested(self) -> Cost:
        """The most the operation can cost and return, from the page sizes it asks for."""
        return self._requested(self.root, [self.operation.selection_set], page=None, root=True)

    def actual(self, data: Any) -> int:
        """The points of the answer that came back (its ``data``): the same rules over the lists it holds."""
        if not isinstance(data, dict):
            return 0
        selection_sets: list[SelectionSetNode | None] = [self.operation.selection_set]
        roots = sum(1 for nodes in self._collected(self.root, selection_sets).values() if _counted(nodes))
        return (MUTATION_COST * roots if self.is_mutation else 0) + self._walk(self.root, selection_sets).count(data)

    def _requested(
        self, type_: GraphQLCompositeType, selection_sets: list[SelectionSetNode | None], *, page: int | None,
        root: bool = False,
    ) -> Cost:  # fmt: skip
        if is_abstract_type(type_):
            options = [self._requested(member, selection_sets, page=page)
                       for member in self.schema.get_possible_types(type_)]  # fmt: skip
            return max(options, key=lambda cost: (cost.points, cost.nodes), default=_FREE)
        assert isinstance(type_, GraphQLObjectType)
        total = _FREE
        for nodes in self._collected(type_, selection_sets).values():
            if not _counted(nodes):
                continue
            total = total + self._requested_field(type_.fields[nodes[0].name.value], nodes, page)
            if root and self.is_mutation:
                total = total + Cost(MUTATION_COST, 0)
        return total

    def _requested_field(self, field: GraphQLField, nodes: list[FieldNode], page: int | None) -> Cost:
        named = get_named_type(field.type)
        children: list[SelectionSetNode | None] = [node.selection_set for node in nodes]
        if _is_list(field.type):
            size = self._list_size(field, nodes[0], page)
            if is_leaf_type(named):
                return Cost(0, size)
            one = Cost(_own(named), 0) + self._requested(named, children, page=None)  # type: ignore[arg-type]
            return Cost(size * one.points, size + size * one.nodes)
        if is_leaf_type(named):
            return _FREE
        inner = self._requested(named, children, page=self._page_size(field, nodes[0]))  # type: ignore[arg-type]
        return Cost(_own(named), 0) + inner

    def _walk(self, type_: GraphQLCompositeType, selection_sets: list[SelectionSetNode | None]) -> _Walk:
        """How to count the answer's objects under ``type_``: the object fields only (scalars cost nothing),
        worked out once per selection, so counting a long list is a loop over dictionaries and nothing else."""
        if is_abstract_type(type_):
            members = self.schema.get_possible_types(type_)
            return _Walk((), tuple(self._walk(member, selection_sets) for member in members))
        assert isinstance(type_, GraphQLObjectType)
        fields = []
        for response_key, nodes in self._collected(type_, selection_sets).items():
            if not _counted(nodes):
                continue
            field = type_.fields[nodes[0].name.value]
            named = get_named_type(field.type)
            if not is_leaf_type(named):
                inner = self._walk(named, [node.selection_set for node in nodes])
                counted = inner if inner.counts_anything else None
                fields.append((response_key, _own(named), counted, _is_list(field.type)))
        return _Walk(tuple(fields), None)

    def _collected(
        self, type_: GraphQLObjectType, selection_sets: list[SelectionSetNode | None]
    ) -> dict[str, list[FieldNode]]:
        key = (type_.name, tuple(id(selection_set) for selection_set in selection_sets))
        fields = self._fields.get(key)
        if fields is None:
            try:
                fields = collect(self.selection, type_, selection_sets)
            except Unsupported:
                fields = collect(Selection(self.selection.fragments, {}), type_, selection_sets)
            self._fields[key] = fields
        return fields

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
        values = self._arguments_of.get(id(node))
        if values is None:
            try:
                values = arguments(self.selection, field, node)
            except Unsupported:
                values = {}  # the executor refuses the argument before it reads anything
            self._arguments_of[id(node)] = values
        return values


Fields = tuple[tuple[str, int, "_Walk | None", bool], ...]


class _Walk:
    """Counts an answer's objects below one selection: per object field its response key, what one object
    costs, how to count below it (``None``: only scalars there) and whether it is a list; for an interface or
    union, the costliest of its members' walks."""

    __slots__ = ("fields", "members")

    def __init__(self, fields: Fields, members: tuple[_Walk, ...] | None) -> None:
        self.fields = fields
        self.members = members

    @property
    def counts_anything(self) -> bool:
        return bool(self.fields) or any(member.counts_anything for member in self.members or ())

    def count(self, value: Any) -> int:
        if not isinstance(value, dict):
            return 0
        if self.members is not None:
            return max((member.count(value) for member in self.members), default=0)
        total = 0
        for key, own, inner, is_list in self.fields:
            item = value.get(key)
            if item is None:
                continue
            if not is_list:
                total += own if inner is None else own + inner.count(item)
            elif isinstance(item, list):
                if inner is None:
                    total += own * (len(item) - item.count(None))
                else:
                    total += sum(own + inner.count(each) for each in item if each is not None)
        return total


class _SchemaHolder:
    """``coerce_variables`` takes strawberry's schema (it reads ``_schema``); this hands it graphql-core's."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self._schema = schema


def _counted(nodes: list[FieldNode]) -> bool:
    """Introspection (``__schema``, ``__type``, ``__typename``) is bounded by the schema: it costs nothing."""
    return not nodes[0].name.value.startswith("__")


def _own(type_: GraphQLNamedType) -> int:
    """An object costs 1; Relay's edge wrapper costs nothing (``edges { node }`` is one object)."""
    return 0 if type_.name.endswith("Edge") else 1


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)
