"""Baseline limits on what one operation may ask for: depth, aliases, tokens (and, at the edge, body size)."""

from __future__ import annotations

from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
)

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000
# Relay's wrappers add nesting without adding data: `groups { edges { node { name } } }` is two levels, not four.
CONNECTION_WRAPPERS = frozenset({"edges", "node", "nodes"})


def _depth(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    seen: frozenset[str] = frozenset(),
) -> int:
    """Deepest field nesting below a selection set, Relay wrappers not counted; fragments are followed once."""
    if selection_set is None:
        return 0
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value.startswith("__"):
                continue  # introspection is bounded by the schema itself, not by the caller
            level = 0 if selection.name.value in CONNECTION_WRAPPERS else 1
            deepest = max(deepest, level + _depth(selection.selection_set, fragments, seen))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, _depth(selection.selection_set, fragments, seen))
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                deepest = max(deepest, _depth(fragment.selection_set, fragments, seen | {selection.name.value}))
    return deepest


class DepthLimitRule(ASTValidationRule):
    """Refuses operations nested deeper than ``MAX_DEPTH`` fields (counting the root field as 1)."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
        fragments = {
            definition.name.value: definition
            for definition in self.context.document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        depth = _depth(node.selection_set, fragments)
        if depth > MAX_DEPTH:
            self.report_error(GraphQLError(f"operation is nested {depth} levels deep; the limit is {MAX_DEPTH}", node))


class AliasLimitRule(ASTValidationRule):
    """Refuses documents with more than ``MAX_ALIASES`` aliases (aliases multiply the work of one field)."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.aliases = 0

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        if node.alias is not None:
            self.aliases += 1
            if self.aliases == MAX_ALIASES + 1:
                self.report_error(GraphQLError(f"more than {MAX_ALIASES} aliases in one document", node))


LIMIT_RULES = (DepthLimitRule, AliasLimitRule)
