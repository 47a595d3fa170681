"""The one check of scalar input values: every argument and input field, on queries and mutations alike.

Values arrive already coerced by GraphQL (an ``Int`` is a 32-bit integer, a ``DateTime`` a parsed time), which
is not yet enough: a time without an offset, a year-1 date, a NUL character or a megabyte of text all coerce,
then fail deep inside date arithmetic or the database as an unexpected error. ``problem`` walks the
values of one field's arguments (through input objects and lists) and finds the first that breaks a rule:

- integers within ``INT_BOUNDS`` (by argument or input field name);
- text (``String``, ``ID``, and strings inside ``JSON``) without NUL and at most ``TEXT_LIMITS`` characters
  (``DEFAULT_MAX_TEXT`` for the rest);
- ``DateTime`` with a UTC offset, ``DateTime`` and ``Date`` within the years ``MIN_YEAR``-``MAX_YEAR``
  (``domain.values``).

``install`` puts the check in front of the resolver of every field that takes arguments: a query field
refuses with a top-level ``INVALID`` error (its ``path`` is the field's, ``extensions.field`` the argument's,
e.g. ``filter.search``); a mutation answers its payload with one ``userErrors`` entry (``input.name``) and
runs nothing. The compiled read path checks the same values (``compiler.params.Request.arguments``) and
leaves a refused request to the executor, so both paths answer alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    default_field_resolver,
    get_named_type,
)

from ..domain.errors import DomainError, ErrorCode
from ..domain.idempotency import MAX_KEY_LENGTH
from ..domain.pagination import MAX_PAGE_SIZE
from ..domain.programme import MAX_EXPIRY_WINDOW_DAYS
from ..domain.surveys import MAX_NOTE
from ..domain.values import DEFAULT_MAX_TEXT, MAX_YEAR, MIN_YEAR, value_problem

# By argument or input field name: the same name means the same thing on every field.
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "first": (0, MAX_PAGE_SIZE),
    "last": (0, MAX_PAGE_SIZE),
    "withinDays": (0, MAX_EXPIRY_WINDOW_DAYS),
}
MAX_SEARCH = 200
TEXT_LIMITS: dict[str, int] = {
    "search": MAX_SEARCH,
    "idempotencyKey": MAX_KEY_LENGTH,
    "note": MAX_NOTE,
}
MAX_JSON_DEPTH = 20

DATETIME_DESCRIPTION = (
    f"Date with time (ISO 8601) and a UTC offset (`Z` or `+01:00`), in the years {MIN_YEAR} to {MAX_YEAR}."
)
DATE_DESCRIPTION = f"Date (ISO 8601, `2026-03-01`), in the years {MIN_YEAR} to {MAX_YEAR}."

Problem = tuple[str, str]  # (the argument's path, e.g. "filter.search"; what is wrong with it)


def problem(arguments: Mapping[str, GraphQLArgument], values: Mapping[str, Any]) -> Problem | None:
    """The first rule one field's coerced argument values break, or None."""
    for name, value in values.items():
        argument = arguments.get(name)
        if argument is not None:
            found = _check(value, argument.type, name, name)
            if found is not None:
                return found
    return None


def _check(value: Any, type_: Any, name: str, path: str) -> Problem | None:
    if value is None:
        return None
    if isinstance(type_, GraphQLNonNull):
        return _check(value, type_.of_type, name, path)
    if isinstance(type_, GraphQLList):
        items = value if isinstance(value, list | tuple) else [value]
        for index, item in enumerate(items):
            found = _check(item, type_.of_type, name, f"{path}.{index}")
            if found is not None:
                return found
        return None
    if isinstance(type_, GraphQLInputObjectType):
        if isinstance(value, Mapping):
            for key, item in value.items():
                field = type_.fields.get(key)
                if field is not None:
                    found = _check(item, field.type, key, f"{path}.{key}")
                    if found is not None:
                        return found
        return None
    if isinstance(type_, GraphQLScalarType) and type_.name == "JSON":
        return _json(value, path, 0)
    if isinstance(value, int) and not isinstance(value, bool) and name in INT_BOUNDS:
        low, high = INT_BOUNDS[name]
        if not low <= value <= high:
            return path, f"'{path}' must be between {low} and {high}"
        return None
    message = value_problem(value, TEXT_LIMITS.get(name, DEFAULT_MAX_TEXT))
    return None if message is None else (path, f"'{path}' {message}")


def _json(value: Any, path: str, depth: int) -> Problem | None:
    """Text anywhere inside a JSON value (keys included) keeps the text rules; nesting is bounded."""
    if depth > MAX_JSON_DEPTH:
        return path, f"'{path}' is nested more than {MAX_JSON_DEPTH} levels deep"
    if isinstance(value, str):
        message = value_problem(value)
        return None if message is None else (path, f"'{path}' {message}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _json(str(key), path, depth + 1) or _json(item, path, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for item in value:
            found = _json(item, path, depth + 1)
            if found is not None:
                return found
    return None


def install(schema: Any) -> None:
    """Check the arguments of every field that has any before its resolver runs (once, at start-up); and
    say in the date scalars' descriptions what they accept."""
    graphql_schema = schema._schema
    for type_name, description in (("DateTime", DATETIME_DESCRIPTION), ("Date", DATE_DESCRIPTION)):
        scalar = graphql_schema.get_type(type_name)
        if isinstance(scalar, GraphQLScalarType):
            scalar.description = description
    mutation_type = graphql_schema.mutation_type
    for graphql_type in graphql_schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        for graphql_field in graphql_type.fields.values():
            if graphql_field.args and not getattr(graphql_field.resolve, "checks_inputs", False):
                refusal = _payload_refusal(schema, graphql_field) if graphql_type is mutation_type else None
                graphql_field.resolve = _checking(graphql_field, refusal)


def _payload_refusal(schema: Any, graphql_field: GraphQLField) -> Callable[[DomainError], Any] | None:
    """For a mutation: its payload's own way to answer a refusal as one user error (``MutationPayload`` and
    the outcomes payloads, which also fill their deprecated string-coded ``userErrors``, refuse themselves)."""
    from .mutations.common import MutationPayload
    from .mutations.outcomes import OutcomesPayload

    definition = schema.get_type_by_name(get_named_type(graphql_field.type).name)
    origin: Any = getattr(definition, "origin", None)
    if isinstance(origin, type) and issubclass(origin, MutationPayload | OutcomesPayload):
        return lambda error: origin.refused(error, {error.field: error.field} if error.field else None)
    return None


def _checking(graphql_field: GraphQLField, refusal: Callable[[DomainError], Any] | None) -> Callable[..., Any]:
    resolve = graphql_field.resolve or default_field_resolver
    arguments = graphql_field.args

    def resolve_checked(source: Any, info: GraphQLResolveInfo[Any], **values: Any) -> Any:
        found = problem(arguments, values)
        if found is None:
            return resolve(source, info, **values)
        path, message = found
        error = DomainError(ErrorCode.INVALID, message, path)
        if refusal is None:
            raise error
        info.context.failed = True  # nothing ran, but the request's unit of work must not commit
        return refusal(error)

    resolve_checked.checks_inputs = True  # type: ignore[attr-defined]
    return resolve_checked
