"""Random valid read queries over the GraphQL schema, for the differential test of the read paths.

The generator walks the schema from ``Query`` (so fields added later are exercised without changing it) and
builds documents with what real callers send: connections with ``first``/``last`` and cursors taken from
earlier answers, ``pageInfo``, ``totalCount``, ``edges { cursor node }`` and ``nodes``, nested lists and
references as deep as the depth limit allows, roll-up fields with their arguments, ``node``/``nodes`` with
IDs seen before, aliases, named and inline fragments, ``__typename``, ``@include``/``@skip``, and arguments
both inline and as variables (input objects included). Every document it returns passes the endpoint's own
validation rules; a generator bug fails loudly instead of comparing two identical validation errors.

Two documents with one response key for different fields do not merge, so each selection set, together with
the fragments spread into it, gives every field its own response key (an alias when the name is taken);
only identical argument-less leaves may repeat.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
    get_named_type,
    parse,
    validate,
)
from hypothesis import strategies as st

from programme_api.schema.limits import CONNECTION_WRAPPERS, MAX_DEPTH, MAX_TOKENS
from programme_api.schema.validation import VALIDATION_RULES

# Root fields whose answer depends on the request being answered (the audit log grows with each audited
# read, and the two apps are asked one after the other): they cannot be compared, so they are not asked.
UNCOMPARABLE_ROOT_FIELDS = frozenset({"auditEvents"})
MAX_FIELDS = 30  # per document: keeps it far below the token limit and each example fast
MAX_GENERATED_ALIASES = 12
DATETIMES = (
    "2026-01-01T00:00:00+00:00",
    "2026-03-04T19:00:00+00:00",
    "2026-06-01T12:30:00+01:00",
    "2025-06-01T00:00:00Z",
    "2027-01-01T00:00:00+00:00",
)
INSTRUMENT_CODES = ("phq9", "swemwbs", "gad7", "no-such-instrument")
MALFORMED_ID = "bm90LWFuLWlk"  # base64 of "not-an-id"
MALFORMED_CURSOR = "bm90LWEtY3Vyc29y"
LEAF_TYPES = (GraphQLScalarType, GraphQLEnumType)


def connection_type(type_: GraphQLNamedType) -> bool:
    """A Relay connection of ours: it has ``edges`` and ``pageInfo`` (the evaluation's has no ``nodes``)."""
    return isinstance(type_, GraphQLObjectType) and {"edges", "pageInfo"} <= set(type_.fields)


def global_id_type(value: str) -> str | None:
    """The type name inside one of our global IDs (the tests know the format; clients must not)."""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode().partition(":")[0] or None
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass
class Pool:
    """Values a query may carry: IDs of rows (seeded from the data set, and seen in answers), cursors seen in
    answers (by connection type), and parts of names for searches. Kept in insertion order, so a replayed
    example draws the same values."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    cursors: dict[str, list[str]] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)

    def add_id(self, value: str) -> None:
        type_name = global_id_type(value)
        if type_name is not None and value not in self.ids.setdefault(type_name, []):
            self.ids[type_name].append(value)

    def add_cursor(self, connection: str, value: str) -> None:
        if value not in self.cursors.setdefault(connection, []):
            self.cursors[connection].append(value)

    def copy(self) -> Pool:
        return Pool({k: list(v) for k, v in self.ids.items()}, {k: list(v) for k, v in self.cursors.items()},
                    list(self.words))  # fmt: skip

    def all_ids(self) -> list[str]:
        return [value for values in self.ids.values() for value in values]


@dataclass
class Field:
    """One selected field: on which type, under which response key, with its printed arguments."""

    parent: str
    name: str
    key: str
    alias: str | None = None
    arguments: list[str] = field(default_factory=list)
    directives: str = ""
    children: list[Selection] | None = None
    connection: str | None = None  # the connection type's name, when the field is a connection


@dataclass
class Fragment:
    """An inline fragment, or a spread of a named fragment (``name`` set, defined once in the document)."""

    condition: str | None
    children: list[Selection]
    directives: str = ""
    name: str | None = None


Selection = Field | Fragment


@dataclass
class GeneratedQuery:
    """A document, its variables, and the selection tree it was printed from (to read answers back)."""

    text: str
    variables: dict[str, Any]
    selections: list[Selection]

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example
        return f"GeneratedQuery(\n{self.text}\nvariables={json.dumps(self.variables)})"


class Scope:
    """The response keys of one merged selection set (its fragments included) and what each key selects."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, str] | None] = {}

    def free(self, key: str, signature: tuple[str, str] | None) -> bool:
        return key not in self.keys or (signature is not None and self.keys[key] == signature)


class Builder:
    """Builds one document from hypothesis draws; ``draw`` is a composite strategy's draw function."""

    def __init__(self, draw: Callable[[Any], Any], schema: GraphQLSchema, pool: Pool, weights: dict[str, int]):
        self.draw = draw
        self.schema = schema
        self.pool = pool
        self.weights = weights
        self.variable_definitions: list[str] = []
        self.variables: dict[str, Any] = {}
        self.fragments: list[str] = []
        self.counter = itertools.count(1)
        self.aliases = 0
        self.fields = 0
        self.relations = int(draw(st.sampled_from([4, 4, 12])))  # weight of a relation against a leaf

    # ---- choices -------------------------------------------------------------------------------------------

    def chance(self, probability: float) -> bool:
        """True with ``probability``; shrinks towards False, so a minimal example asks for less."""
        return bool(self.draw(st.integers(0, 999)) >= round(1000 * (1 - probability)))

    def pick(self, options: list[Any] | tuple[Any, ...]) -> Any:
        return self.draw(st.sampled_from(options))

    def name(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    # ---- documents -----------------------------------------------------------------------------------------

    def document(self) -> GeneratedQuery:
        query = self.schema.query_type
        assert query is not None
        roots = [name for name in query.fields if name not in UNCOMPARABLE_ROOT_FIELDS]
        # Heaviest first: hypothesis draws the first options of a list more often than the others.
        roots.sort(key=lambda name: -self.weights.get(name, 1))
        weighted = [name for name in roots for _ in range(self.weights.get(name, 1))]
        selections: list[Selection] = []
        scope = Scope()
        # Mostly one root field: one field a read path does not know sends the whole operation elsewhere.
        for _ in range(self.pick([1, 1, 1, 2, 2, 3])):
            self.add_field(selections, scope, query, self.pick(weighted), depth=0, root=True)
        if not selections or self.chance(0.1):
            self.add_typename(selections, scope)
        body = self.print_selections(selections)
        name = self.pick(["", "query ", "query Generated "])
        definitions = f"({', '.join(self.variable_definitions)})" if self.variable_definitions else ""
        if definitions and not name:
            name = "query "
        text = "\n".join([f"{name}{definitions}{body}".strip(), *self.fragments])
        return GeneratedQuery(text, dict(self.variables), selections)

    def selection_set(self, type_: GraphQLNamedType, depth: int) -> list[Selection]:
        """At least one selection on ``type_`` (an object type or an interface), fields at ``depth`` + 1."""
        selections: list[Selection] = []
        scope = Scope()
        self.fill(selections, scope, type_, depth, self.pick([1, 2, 2, 3, 3, 4]))
        if not selections:  # every pick was dropped: one plain leaf, so that there is a value to compare
            assert isinstance(type_, GraphQLObjectType | GraphQLInterfaceType)
            leaves = [name for name, f in type_.fields.items() if isinstance(get_named_type(f.type), LEAF_TYPES)]
            if leaves:
                self.add_field(selections, scope, type_, self.pick(leaves), depth)
        if not selections:
            self.add_typename(selections, scope)
        return selections

    def fill(self, selections: list[Selection], scope: Scope, type_: GraphQLNamedType, depth: int, n: int) -> None:
        assert isinstance(type_, GraphQLObjectType | GraphQLInterfaceType)
        # Relations are where read paths differ (batching, nesting, access filters): they come up more often,
        # and in some documents far more often (long walks through references and nested lists).
        fields = sorted(type_.fields.items(), key=lambda item: isinstance(get_named_type(item[1].type), LEAF_TYPES))
        names = [name for name, definition in fields
                 for _ in range(1 if isinstance(get_named_type(definition.type), LEAF_TYPES) else self.relations)]  # fmt: skip
        for _ in range(n):
            roll = self.draw(st.integers(0, 99))  # shrinks towards a plain field
            if roll >= 96:
                self.add_typename(selections, scope)
            elif roll >= 90 and self.fields < MAX_FIELDS:
                self.add_fragment(selections, scope, type_, depth, named=roll >= 93)
            else:
                self.add_field(selections, scope, type_, self.pick(names), depth)

    def add_typename(self, selections: list[Selection], scope: Scope) -> None:
        key = "__typename"
        if not scope.free(key, ("__typename", "String!")):
            return
        scope.keys[key] = ("__typename", "String!")
        selections.append(Field(parent="", name="__typename", key=key))

    def add_fragment(
        self, selections: list[Selection], scope: Scope, type_: GraphQLNamedType, depth: int, *, named: bool
    ) -> None:
        """An inline fragment or a named one, on the type itself, an interface of it, or (for an interface)
        one of its object types; its fields share ``scope`` with the selection set it is spread in."""
        assert isinstance(type_, GraphQLObjectType | GraphQLInterfaceType)
        if isinstance(type_, GraphQLInterfaceType):
            conditions: list[GraphQLNamedType] = [type_, *self.schema.get_possible_types(type_)]
        else:
            conditions = [type_, *type_.interfaces]
        condition = self.pick(conditions)
        children: list[Selection] = []
        self.fill(children, scope, condition, depth, self.draw(st.integers(1, 3)))
        if not children:
            return
        directives = self.directive() if self.chance(0.2) else ""
        if named:
            name = self.name("F")
            self.fragments.append(f"fragment {name} on {condition.name} {self.print_selections(children)}")
            selections.append(Fragment(condition.name, children, directives, name))
        else:
            inline_condition = None if condition is type_ and self.chance(0.3) else condition.name
            selections.append(Fragment(inline_condition, children, directives))

    def add_field(
        self, selections: list[Selection], scope: Scope, type_: GraphQLObjectType | GraphQLInterfaceType,
        name: str, depth: int, *, root: bool = False,
    ) -> None:  # fmt: skip
        definition = type_.fields[name]
        target = get_named_type(definition.type)
        level = 0 if name in CONNECTION_WRAPPERS else 1
        composite = not isinstance(target, LEAF_TYPES)
        if depth + level > MAX_DEPTH or (composite and depth + level + 1 > MAX_DEPTH):
            return
        if composite and not root and (self.fields >= MAX_FIELDS or not self.nest(name, depth)):
            return
        saved = (list(self.variable_definitions), dict(self.variables))
        arguments = self.arguments(type_, name, definition, target)
        directives = self.directive() if arguments is not None and self.chance(0.05) else ""
        signature = None if composite or arguments or directives else (name, str(definition.type))
        alias = None
        if arguments is not None and (
            not scope.free(name, signature) or (self.chance(0.15) and self.aliases < MAX_GENERATED_ALIASES)
        ):
            alias = self.name("a")
        if arguments is None or (alias is not None and self.aliases >= MAX_GENERATED_ALIASES):
            self.variable_definitions, self.variables = saved  # the field is dropped: so are its variables
            return
        if alias is not None:
            self.aliases += 1
        key = alias or name
        scope.keys[key] = signature
        self.fields += 1
        selected = Field(type_.name, name, key, alias, arguments, directives)
        if composite:
            selected.connection = target.name if connection_type(target) else None
            selected.children = self.selection_set(target, depth + level)
        selections.append(selected)

    def nest(self, name: str, depth: int) -> bool:
        """Whether to go one level deeper: less likely the deeper it is, always for Relay's wrappers."""
        return name in CONNECTION_WRAPPERS or self.chance(max(0.25, 0.9 - 0.08 * depth))

    def directive(self) -> str:
        kind = self.pick(["include", "skip"])
        if self.chance(0.5):
            return f" @{kind}(if: {self.pick(['true', 'false'])})"
        variable = self.name("b")
        self.variable_definitions.append(f"${variable}: Boolean!")
        self.variables[variable] = self.draw(st.booleans())
        return f" @{kind}(if: ${variable})"

    # ---- arguments -----------------------------------------------------------------------------------------

    def arguments(
        self, type_: GraphQLNamedType, name: str, definition: GraphQLField, target: GraphQLNamedType
    ) -> list[str] | None:
        """Printed arguments (inline literals or variables), or None when a required one cannot be given."""
        printed = []
        nested = type_.name != "Query"
        for argument_name, argument in definition.args.items():
            required = isinstance(argument.type, GraphQLNonNull) and argument.default_value is Undefined
            chance = {"first": 0.85 if nested else 0.5, "last": 0.3, "after": 0.5, "before": 0.3}
            if argument_name in ("last", "before") and any(given.startswith("first:") for given in printed):
                chance[argument_name] = 0.04  # both directions at once: refused, rarely worth asking
            if not required and not self.chance(chance.get(argument_name, 0.3)):
                continue
            value = self.value(argument_name, argument.type, target.name, nested=nested)
            if value is Undefined:
                if required:
                    return None
                continue
            printed.append(f"{argument_name}: {self.pass_value(argument.type, value)}")
        return printed

    def pass_value(self, type_: GraphQLInputType, value: Any) -> str:
        """The value as an inline literal, or as a variable (sometimes left to the variable's default)."""
        if not self.chance(0.35):
            return literal(type_, value)
        variable = self.name("v")
        if value is not None and not isinstance(type_, GraphQLNonNull) and self.chance(0.25):
            self.variable_definitions.append(f"${variable}: {type_} = {literal(type_, value)}")
        else:
            self.variable_definitions.append(f"${variable}: {type_}")
            self.variables[variable] = value
        return f"${variable}"

    def value(self, name: str, type_: GraphQLInputType, target: str, *, nested: bool = False) -> Any:
        """A value for an argument or input field, by its name where that says more than its type; pages
        under a parent are kept short (every parent multiplies them)."""
        nullable = not isinstance(type_, GraphQLNonNull)
        if nullable and self.chance(0.05):
            return None
        inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if name in ("first", "last"):
            if self.chance(0.03):
                return self.pick([101, -1])
            return self.pick([2, 0, 1, 3, 5] if nested else [2, 0, 1, 3, 5, 8, 25, 100])
        if name in ("after", "before"):
            return self.cursor(target)
        if name == "withinDays":
            return self.pick([0, 7, 30, 45, 365] if self.chance(0.95) else [367, -1])
        if name in ("from", "to", "startsFrom", "startsBefore"):
            return self.pick(DATETIMES)
        if name == "search":
            return self.pick([*self.pool.words, "zzz", ""])
        if name == "instrumentCode":
            return self.pick(INSTRUMENT_CODES)
        if isinstance(inner, GraphQLList):
            item = inner.of_type
            count = self.draw(st.integers(0, 3))
            values = [self.value(name, item, target) for _ in range(count)]
            return [value for value in values if value is not Undefined]
        named = get_named_type(inner)
        if isinstance(named, GraphQLInputObjectType):
            return self.input_object(named, target)
        if isinstance(named, GraphQLEnumType):
            return self.pick(list(named.values))
        if named.name == "ID":
            return self.identifier(name)
        if named.name == "Boolean":
            return self.draw(st.booleans())
        if named.name == "Int":
            return self.draw(st.integers(0, 10))
        if named.name == "String":
            return self.pick([*self.pool.words, "x"])
        if named.name == "DateTime":
            return self.pick(DATETIMES)
        return Undefined

    def input_object(self, type_: GraphQLInputObjectType, target: str) -> dict[str, Any]:
        values = {}
        for name, input_field in type_.fields.items():
            required = isinstance(input_field.type, GraphQLNonNull) and input_field.default_value is Undefined
            if required or self.chance(0.4):
                value = self.value(name, input_field.type, target)
                if value is not Undefined:
                    values[name] = value
        return values

    def identifier(self, name: str) -> str:
        """An ID of the type the argument names (``regionIds`` -> Region), else of any type; sometimes junk."""
        wanted = {"regionIds": "Region", "groupIds": "Group", "participantId": "Participant"}.get(name)
        candidates = self.pool.ids.get(wanted, []) if wanted and self.chance(0.85) else self.pool.all_ids()
        if not candidates or self.chance(0.04):
            return MALFORMED_ID
        return str(self.pick(candidates))

    def cursor(self, connection: str) -> Any:
        """A cursor of this connection type seen in an earlier answer; rarely another's or a malformed one."""
        own = self.pool.cursors.get(connection, [])
        if own and self.chance(0.93):
            return self.pick(own)
        others = [value for values in self.pool.cursors.values() for value in values]
        if others and self.chance(0.5):
            return self.pick(others)
        return MALFORMED_CURSOR if self.chance(0.3) else Undefined

    # ---- printing ------------------------------------------------------------------------------------------

    def print_selections(self, selections: list[Selection]) -> str:
        return "{ " + " ".join(self.print_selection(selection) for selection in selections) + " }"

    def print_selection(self, selection: Selection) -> str:
        if isinstance(selection, Fragment):
            if selection.name is not None:
                return f"...{selection.name}{selection.directives}"
            condition = f" on {selection.condition}" if selection.condition else ""
            return f"...{condition}{selection.directives} {self.print_selections(selection.children)}"
        text = f"{selection.alias}: {selection.name}" if selection.alias else selection.name
        if selection.arguments:
            text += f"({', '.join(selection.arguments)})"
        text += selection.directives
        if selection.children is not None:
            text += " " + self.print_selections(selection.children)
        return text


def literal(type_: GraphQLInputType, value: Any) -> str:
    """A GraphQL literal of ``value`` (in its JSON form) for ``type_``."""
    if value is None:
        return "null"
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if isinstance(inner, GraphQLList):
        return "[" + ", ".join(literal(inner.of_type, item) for item in value) + "]"
    if isinstance(inner, GraphQLInputObjectType):
        fields = ", ".join(f"{name}: {literal(inner.fields[name].type, item)}" for name, item in value.items())
        return "{" + fields + "}"
    if isinstance(inner, GraphQLEnumType):
        return str(value)
    return json.dumps(value)


def queries(schema: GraphQLSchema, pool: Pool, weights: dict[str, int]) -> st.SearchStrategy[GeneratedQuery]:
    """Valid read queries for ``schema`` using ``pool``'s IDs and cursors; root fields by ``weights``."""

    @st.composite
    def build(draw: Callable[[Any], Any]) -> GeneratedQuery:
        query = Builder(draw, schema, pool, weights).document()
        assert_valid(schema, query)
        return query

    return build()


def assert_valid(schema: GraphQLSchema, query: GeneratedQuery) -> None:
    """The endpoint's own parse and validation (depth, aliases, tokens included) must accept it."""
    document = parse(query.text, max_tokens=MAX_TOKENS)
    errors = validate(schema, document, VALIDATION_RULES)
    assert not errors, f"the generator made an invalid query: {[e.message for e in errors]}\n{query.text}"


def harvest(pool: Pool, selections: list[Selection], answer: Any) -> None:
    """Adds the IDs and cursors of an answer to ``pool``, reading it along the query that produced it."""
    for selection, value, connection in leaves(selections, answer):
        if selection.name == "id" and isinstance(value, str):
            pool.add_id(value)
        elif selection.name in CURSOR_FIELDS and connection and isinstance(value, str):
            pool.add_cursor(connection, value)


def map_cursors(selections: list[Selection], answer: Any, connections: set[str], change: Callable[[str], Any]) -> None:
    """Replaces, in place, the cursors of the given connection types in an answer by ``change(cursor)``."""
    for selection, value, connection in leaves(selections, answer, in_place=True):
        if selection.name in CURSOR_FIELDS and connection in connections and isinstance(value[0], str):
            value[0] = change(value[0])


CURSOR_FIELDS = ("cursor", "startCursor", "endCursor")


def leaves(
    selections: list[Selection], answer: Any, connection: str | None = None, *, in_place: bool = False
) -> Iterator[tuple[Field, Any, str | None]]:
    """Each leaf value of an answer with the field that selected it and the connection it is in (with
    ``in_place``, the value comes in a one-item list whose item, when changed, is written back)."""
    if isinstance(answer, list):
        for item in answer:
            yield from leaves(selections, item, connection, in_place=in_place)
        return
    if not isinstance(answer, dict):
        return
    for selection in selections:
        if isinstance(selection, Fragment):
            yield from leaves(selection.children, answer, connection, in_place=in_place)
            continue
        value = answer.get(selection.key)
        if value is None:
            continue
        if selection.children is not None:
            yield from leaves(selection.children, value, selection.connection or connection, in_place=in_place)
        elif in_place:
            box = [value]
            yield selection, box, connection
            answer[selection.key] = box[0]
        else:
            yield selection, value, connection
