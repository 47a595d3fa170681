"""The query operation being answered: its fragments, coerced variables, selected fields and arguments.

Everything here follows graphql-core's own rules (fragments expanded, ``@skip``/``@include`` applied, variables
coerced as the executor coerces them), so the compiler sees exactly the fields the executor would resolve.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    VariableNode,
    get_operation_ast,
    value_from_ast,
)
from graphql.execution.values import get_variable_values


class Unsupported(Exception):
    """The operation (or this request of it) must be answered by the executor; the message says why."""


class Fallback(Exception):
    """This request's values need the executor (a bad cursor, a page size out of range): it reports the error."""


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
        """The query to answer, or None for a mutation (which only the executor runs)."""
        operation = get_operation_ast(document, name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return None
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        return cls(source, operation, fragments, variables)

    @property
    def name(self) -> str | None:
        return self.definition.name.value if self.definition.name else None


@dataclass(frozen=True)
class Selection:
    """What picks the fields of an operation: its fragments and coerced variables."""

    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]


def coerce_variables(schema: Any, operation: OperationDefinitionNode, raw: dict[str, Any]) -> dict[str, Any]:
    """Variables as the executor sees them (graphql-core's own coercion: defaults, required ones, input types);
    a request whose variables do not coerce is the executor's to refuse."""
    outcome = get_variable_values(schema._schema, operation.variable_definitions or (), raw)
    if isinstance(outcome, list):
        raise Unsupported("variables do not coerce: " + "; ".join(error.message for error in outcome))
    return dict(outcome.coerced)


def structure_of(value: Any) -> Any:
    """The facts of a variable value that can change a compiled statement's text, and nothing else.

    Null or not (a missing cursor, an absent filter), booleans (``@include``/``@skip``), enum members (a
    filter's state picks a different condition), whether a list is empty, and the same inside input
    objects. Strings, numbers, IDs and cursors never appear: they are bind parameters.
    """
    if value is None or isinstance(value, bool | enum.Enum):
        return value
    if isinstance(value, dict):
        return tuple(sorted((key, structure_of(item)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        first = [type(item).__name__ if isinstance(item, enum.Enum) else structure_of(item) for item in value[:1]]
        return ("list", bool(value), tuple(first))
    return type(value).__name__


def arguments(selection: Selection, field: Any, node: FieldNode) -> dict[str, Any]:
    """Argument values of one field by their GraphQL names, as the executor coerces them."""
    given = {argument.name.value: argument.value for argument in node.arguments or ()}
    values: dict[str, Any] = {}
    for name, argument in field.args.items():
        value_node = given.get(name)
        if isinstance(value_node, VariableNode) and value_node.name.value not in selection.variables:
            del given[name]  # a variable not given: the argument takes its default, as in the executor
        if name in given:
            value = value_from_ast(given[name], argument.type, selection.variables)
            if value is Undefined:
                raise Unsupported(f"argument {name} does not coerce")
        else:
            value = None if argument.default_value is Undefined else argument.default_value
        values[name] = value
    return values


def collect_fields(
    selection: Selection, type_: GraphQLObjectType, selection_sets: Iterable[SelectionSetNode | None]
) -> dict[str, list[FieldNode]]:
    """Fields selected on ``type_`` by response key: fragments expanded, @skip/@include applied."""
    fields: dict[str, list[FieldNode]] = {}

    def visit(selection_set: SelectionSetNode | None, seen: frozenset[str]) -> None:
        for item in selection_set.selections if selection_set else ():
            if not included(selection, item):
                continue
            if isinstance(item, FieldNode):
                key = item.alias.value if item.alias else item.name.value
                fields.setdefault(key, []).append(item)
            elif isinstance(item, InlineFragmentNode):
                if applies(type_, item.type_condition.name.value if item.type_condition else None):
                    visit(item.selection_set, seen)
            elif isinstance(item, FragmentSpreadNode) and item.name.value not in seen:
                fragment = selection.fragments[item.name.value]
                if applies(type_, fragment.type_condition.name.value):
                    visit(fragment.selection_set, seen | {item.name.value})

    for selection_set in selection_sets:
        visit(selection_set, frozenset())
    return fields


def applies(type_: GraphQLObjectType, condition: str | None) -> bool:
    return condition is None or condition == type_.name or any(i.name == condition for i in type_.interfaces)


def included(selection: Selection, item: Any) -> bool:
    for directive in item.directives or ():
        if directive.name.value not in ("skip", "include"):
            raise Unsupported(f"directive @{directive.name.value}")
        condition = bool(value_from_ast(directive.arguments[0].value, _BOOLEAN, selection.variables))
        if (directive.name.value == "skip") == condition:
            return False
    return True


_BOOLEAN = GraphQLNonNull(GraphQLBoolean)


def named_type(type_: Any) -> GraphQLObjectType:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    if not isinstance(type_, GraphQLObjectType):
        raise Unsupported(f"abstract or leaf type {type_}")
    return type_
