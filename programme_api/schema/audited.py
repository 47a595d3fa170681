"""Which GraphQL fields are audited reads, and how their resolution is recorded.

``AUDITED_FIELDS`` declares, per object type, the fields whose values are health data or a participant's
personal data: every field of a survey response or a safeguarding alert (its id included: a list of them
already says who answered or who is at risk), and a participant's name and contact details. Each resolution
of one of them notes the row and the field in the request's ``ReadLog`` (``domain.audit.record_read``), so
the same rule covers root lists, ``node``/``nodes``, nested links and mutation payloads alike.
``SELF_AUDITED`` are fields whose resolvers record the read themselves (a list's rows, evaluation reads).

The SQL compiler does not record reads: its field policy leaves every one of these fields to the resolvers
(``tests/test_compiler.py`` checks the two declarations agree), so an operation that selects one is answered
by the executor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    default_field_resolver,
)

from ..domain.audit import record_read

ALL_FIELDS = None
AUDITED_FIELDS: dict[str, frozenset[str] | None] = {
    "SurveyResponse": ALL_FIELDS,
    "SafeguardingAlert": ALL_FIELDS,
    "Participant": frozenset({"preferredName", "contactEmail", "contactPhone"}),
}
SELF_AUDITED: frozenset[tuple[str, str]] = frozenset(
    {
        ("Query", "surveyResponses"),
        ("Query", "safeguardingAlerts"),
        ("Evaluation", "responses"),
        ("Evaluation", "aggregates"),
    }
)


def is_audited(type_name: str, field_name: str) -> bool:
    if (type_name, field_name) in SELF_AUDITED:
        return True
    if type_name not in AUDITED_FIELDS:
        return False
    fields = AUDITED_FIELDS[type_name]
    return fields is ALL_FIELDS or field_name in fields


def install(schema: GraphQLSchema) -> None:
    """Wrap the resolver of every audited field so that resolving it records the read (once, at start-up)."""
    for type_name in AUDITED_FIELDS:
        graphql_type = schema.get_type(type_name)
        assert isinstance(graphql_type, GraphQLObjectType), type_name
        for field_name, graphql_field in graphql_type.fields.items():
            if is_audited(type_name, field_name) and not getattr(graphql_field.resolve, "audited", False):
                graphql_field.resolve = _recording(type_name, field_name, graphql_field)


def _recording(type_name: str, field_name: str, graphql_field: GraphQLField) -> Callable[..., Any]:
    resolve = graphql_field.resolve or default_field_resolver

    def resolve_audited(source: Any, info: GraphQLResolveInfo[Any], **arguments: Any) -> Any:
        record_read(info.context.reads, type_name, (source.model.id,), (field_name,))
        return resolve(source, info, **arguments)

    resolve_audited.audited = True  # type: ignore[attr-defined]
    return resolve_audited
