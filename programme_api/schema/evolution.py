"""Schema evolution: which changes to the published schema would break a partner app.

Partner apps are generated from ``schema.graphql`` (codegen, Relay, gql), so a change that removes or
narrows something they may use breaks them. graphql-core's ``find_breaking_changes`` finds those changes;
the one kind allowed is removing a field or enum value that the earlier schema already marked deprecated,
because deprecation is how a partner was told to stop using it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from graphql import (
    BreakingChange,
    BreakingChangeType,
    DocumentNode,
    EnumValueNode,
    FieldNode,
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    build_schema,
    find_breaking_changes,
    get_named_type,
    visit,
)


@dataclass(frozen=True)
class Change:
    description: str
    allowed: bool

    def __str__(self) -> str:
        verdict = "allowed: it was deprecated" if self.allowed else "BREAKING"
        return f"{verdict}: {self.description}"


def compare(published_sdl: str, current: GraphQLSchema) -> list[Change]:
    """Every breaking change from the published schema to ``current``, each marked allowed or not."""
    published = build_schema(published_sdl)
    retired = _deprecated_and_removed(published, current)
    return [
        Change(change.description, _names_one_of(change, retired))
        for change in find_breaking_changes(published, current)
    ]


def breaking(changes: list[Change]) -> list[Change]:
    return [change for change in changes if not change.allowed]


def _deprecated_and_removed(published: GraphQLSchema, current: GraphQLSchema) -> set[str]:
    """``Type.name`` of every field and enum value deprecated in ``published`` and gone from ``current``."""
    retired: set[str] = set()
    for name, old in published.type_map.items():
        new = current.type_map.get(name)
        if isinstance(old, GraphQLObjectType | GraphQLInterfaceType):
            kept = new.fields if isinstance(new, GraphQLObjectType | GraphQLInterfaceType) else {}
            retired |= {f"{name}.{field}" for field, value in old.fields.items()
                        if value.deprecation_reason is not None and field not in kept}  # fmt: skip
        elif isinstance(old, GraphQLEnumType):
            kept_values = new.values if isinstance(new, GraphQLEnumType) else {}
            retired |= {f"{name}.{member}" for member, value in old.values.items()
                        if value.deprecation_reason is not None and member not in kept_values}  # fmt: skip
    return retired


def _names_one_of(change: BreakingChange, retired: set[str]) -> bool:
    """Whether a removal names a retired member (graphql-core describes it as ``... Type.name was removed.``)."""
    if change.type not in (BreakingChangeType.FIELD_REMOVED, BreakingChangeType.VALUE_REMOVED_FROM_ENUM):
        return False
    named = set(re.findall(r"\b(\w+\.\w+)\b", change.description))
    return bool(named & retired)


def deprecated_uses(schema: GraphQLSchema, document: DocumentNode) -> tuple[str, ...]:
    """``Type.field`` (and ``Enum.VALUE`` written literally) of every deprecated member a valid document uses,
    so the operator can see which partners still rely on something before it is removed."""
    type_info = TypeInfo(schema)
    used: dict[str, None] = {}

    class Finder(Visitor):
        def enter_field(self, node: FieldNode, *_args: Any) -> None:
            field, parent = type_info.get_field_def(), type_info.get_parent_type()
            if field is not None and parent is not None and field.deprecation_reason is not None:
                used[f"{parent.name}.{node.name.value}"] = None

        def enter_enum_value(self, node: EnumValueNode, *_args: Any) -> None:
            enum = get_named_type(type_info.get_input_type())
            if isinstance(enum, GraphQLEnumType):
                value = enum.values.get(node.value)
                if value is not None and value.deprecation_reason is not None:
                    used[f"{enum.name}.{node.value}"] = None

    visit(document, TypeInfoVisitor(type_info, Finder()))
    return tuple(used)
