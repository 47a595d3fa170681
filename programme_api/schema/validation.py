"""The rules a document must pass before it runs, and the codes its refusals carry.

GraphQL's own check of literal values (a string for an ``Int``, an integer past 32 bits, an unknown input
field) is a refusal of a value like any other: it answers ``INVALID`` with the argument in ``extensions.field``
(e.g. ``withinDays``, ``filter.from``) and the field's ``path``, as the scalar checks of ``inputs`` do. Every
other validation refusal (an unknown field, a missing argument, a limit) is ``GRAPHQL_VALIDATION_FAILED``.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    SKIP,
    ArgumentNode,
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLInputType,
    GraphQLSchema,
    ValidationContext,
    ValueNode,
    ValuesOfCorrectTypeRule,
    VariableDefinitionNode,
    VisitorAction,
    specified_rules,
    validate,
)
from graphql.utilities.validate_input_value import validate_input_literal

from ..domain.errors import ErrorCode
from .limits import LIMIT_RULES

VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"


class LiteralValueRule(ValuesOfCorrectTypeRule):
    """``ValuesOfCorrectTypeRule`` whose errors name the argument (or variable default) and the field."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self._response_keys: list[str] = []
        self._in_fragment = False
        self._holder: str | None = None  # the argument's name, or ``$name`` of a variable's default

    def enter_fragment_definition(self, *_args: Any) -> None:
        self._in_fragment = True

    def leave_fragment_definition(self, *_args: Any) -> None:
        self._in_fragment = False

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        self._response_keys.append((node.alias or node.name).value)

    def leave_field(self, *_args: Any) -> None:
        self._response_keys.pop()

    def enter_argument(self, node: ArgumentNode, *_args: Any) -> None:
        self._holder = node.name.value

    def enter_variable_definition(self, node: VariableDefinitionNode, *_args: Any) -> None:
        self._holder = f"${node.variable.name.value}"

    def is_valid_value_node(self, node: ValueNode, input_type: GraphQLInputType | None) -> VisitorAction:
        if input_type:

            def on_error(error: GraphQLError, path: list[str | int]) -> None:
                self.report_error(self._refusal(error, path, node))

            validate_input_literal(node, input_type, on_error, None, None, self.context.hide_suggestions)
        return SKIP

    def _refusal(self, error: GraphQLError, path: list[str | int], value: ValueNode) -> GraphQLError:
        field = ".".join(str(part) for part in [self._holder or "", *path])
        # Inside a fragment the response path depends on where the fragment is spread: the field names it then.
        response_path = None if self._in_fragment or not self._response_keys else list(self._response_keys)
        return GraphQLError(
            f"{field} has an invalid value: {error.message}",
            error.nodes or value,
            path=response_path,
            extensions={"code": ErrorCode.INVALID.value, "field": field},
        )


VALIDATION_RULES = (
    *(LiteralValueRule if rule is ValuesOfCorrectTypeRule else rule for rule in specified_rules),
    *LIMIT_RULES,
)


def validation_errors(schema: GraphQLSchema, document: DocumentNode) -> tuple[GraphQLError, ...]:
    """Every refusal of the document, each with its code (the formatter treats uncoded errors on a variable's
    definition as refusals of the variable's value, so validation must not leave any uncoded)."""
    errors = validate(schema, document, VALIDATION_RULES)
    for error in errors:
        if not (error.extensions or {}).get("code"):
            error.extensions = {**(error.extensions or {}), "code": VALIDATION_FAILED}
    return tuple(errors)
