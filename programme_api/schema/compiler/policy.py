"""The declared field policy: per (GraphQL type, field), how it is read, which scope it needs, and whether
reading it is audited.

Both read paths obey this table. The compiler answers a field only when the table says how (a column, a
global ID, a keyset connection, a reference, a list of children, a computed value) and the field carries
nothing the compiler cannot honour exactly: a strawberry permission class not declared here as equivalent,
a field extension, an audited read. ``Read.RESOLVER`` fields, and any field missing from the table, are the
executor's: an operation selecting one is answered by the resolvers.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute

from ...domain import models, programme, surveys
from ...domain.access import RULES, readable
from ...domain.pagination import Ordering
from ...domain.principal import Principal
from .operation import Unsupported

m = models


class Read(enum.Enum):
    COLUMN = "column"  # a column of the type's row, rendered as the field's scalar or enum serialiser would
    GLOBAL_ID = "global_id"  # the row's Relay ID (``relay.to_global_id``)
    CONNECTION = "connection"  # a keyset-paged Relay connection (root, or under each parent row)
    REFERENCE = "reference"  # one readable row, or null
    CHILDREN = "children"  # a short list of readable rows under each parent, in a fixed order
    COMPUTED = "computed"  # worked out in SQL from the row (counts, schedule, compliance, roll-ups)
    RESOLVER = "resolver"  # only the resolver answers it (roll-ups, audited reads, computed in Python)


@dataclass(frozen=True)
class ConnectionSpec:
    """The access-filtered statement (``build(principal, arguments)``), its order, and (nested) the parent column."""

    build: Callable[[Principal, dict[str, Any]], sa.Select[Any]]
    ordering: Ordering
    parent_column: InstrumentedAttribute[Any] | None = None


@dataclass(frozen=True)
class ReferenceSpec:
    """One readable row: the parent's ``foreign_key`` names it (at the root, the access filter alone does)."""

    model: type[Any]
    foreign_key: str


@dataclass(frozen=True)
class ChildrenSpec:
    model: type[Any]
    parent_column: InstrumentedAttribute[Any]
    order: tuple[tuple[str, bool], ...]  # (column, descending)


Spec = ConnectionSpec | ReferenceSpec | ChildrenSpec | None


@dataclass(frozen=True)
class FieldPolicy:
    read: Read
    scope: str | None
    audited: bool = False
    column: str | None = None
    spec: Spec = None
    # Permission classes whose check the compiled statement makes identically (none today): any other
    # permission class on the field sends the operation to the executor.
    permissions: frozenset[type] = field(default_factory=frozenset)


# GraphQL object types whose values are rows of one table, with the scope every row read needs.
ROW_TYPES: dict[str, type[Any]] = {
    "Organisation": m.Organisation,
    "Region": m.Region,
    "Group": m.Group,
    "GroupSession": m.GroupSession,
    "Facilitator": m.Facilitator,
    "FacilitatorAssignment": m.FacilitatorAssignment,
    "Participant": m.Participant,
    "Enrolment": m.Enrolment,
    "AttendanceRecord": m.Attendance,
    "SurveyInstrument": m.SurveyInstrument,
}


def scope_of(model: type[Any]) -> str:
    return RULES[model][0]


def _group_filter(value: Any) -> programme.GroupFilter | None:
    from ..query import GroupFilter

    return None if value is None else _input(GroupFilter, value).to_domain()


def _session_filter(value: Any) -> programme.SessionFilter | None:
    from ..query import SessionFilter

    return None if value is None else _input(SessionFilter, value).to_domain()


def _participant_filter(value: Any) -> programme.ParticipantFilter | None:
    from ..query import ParticipantFilter

    return None if value is None else _input(ParticipantFilter, value).to_domain()


def _input(cls: Any, value: dict[str, Any]) -> Any:
    """A strawberry input object from coerced GraphQL values (flat inputs of scalars, enums and lists)."""
    from .. import schema

    definition = schema.get_type_by_name(cls.__name__)
    names = {schema.config.name_converter.get_graphql_name(f): f.python_name for f in definition.fields}  # type: ignore[union-attr]
    return cls(**{names[key]: item for key, item in value.items()})


def _facilitators(principal: Principal, args: dict[str, Any]) -> sa.Select[Any]:
    """The resolver's statement (the arguments are checked by ``schema.inputs`` when read)."""
    return programme.facilitators(principal, args.get("compliance"), args["withinDays"])


def _columns(type_name: str, *names: str, scope: str) -> dict[tuple[str, str], FieldPolicy]:
    """Plain columns of a row type, named as in GraphQL; the column is the snake_case attribute."""
    return {(type_name, name): FieldPolicy(Read.COLUMN, scope, column=_snake(name)) for name in names}


def _personal(type_name: str, *names: str, scope: str) -> dict[tuple[str, str], FieldPolicy]:
    """Personal data: its reads are audited, so only the resolvers answer them."""
    return {(type_name, name): FieldPolicy(Read.RESOLVER, scope, audited=True) for name in names}


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _connection(spec: ConnectionSpec, model: type[Any]) -> FieldPolicy:
    return FieldPolicy(Read.CONNECTION, scope_of(model), spec=spec)


def _reference(model: type[Any], foreign_key: str) -> FieldPolicy:
    return FieldPolicy(Read.REFERENCE, scope_of(model), spec=ReferenceSpec(model, foreign_key))


def _children(model: type[Any], parent: InstrumentedAttribute[Any], *order: tuple[str, bool]) -> FieldPolicy:
    return FieldPolicy(Read.CHILDREN, scope_of(model), spec=ChildrenSpec(model, parent, order))


def _resolver(scope: str | None, audited: bool = False) -> FieldPolicy:
    return FieldPolicy(Read.RESOLVER, scope, audited=audited)


P, R = "programme:read", "participants:read"
FIELDS: dict[tuple[str, str], FieldPolicy] = {
    # The root lists.
    ("Query", "regions"): _connection(
        ConnectionSpec(lambda p, _a: readable(p, m.Region), programme.REGION_ORDER), m.Region
    ),
    ("Query", "groups"): _connection(
        ConnectionSpec(lambda p, a: programme.groups(p, _group_filter(a.get("filter"))), programme.GROUP_ORDER), m.Group
    ),
    ("Query", "sessions"): _connection(
        ConnectionSpec(lambda p, a: programme.sessions(p, _session_filter(a.get("filter"))), programme.SESSION_ORDER),
        m.GroupSession,
    ),
    ("Query", "participants"): _connection(
        ConnectionSpec(
            lambda p, a: programme.participants(p, _participant_filter(a.get("filter"))), programme.PARTICIPANT_ORDER
        ),
        m.Participant,
    ),
    ("Query", "facilitators"): _connection(ConnectionSpec(_facilitators, programme.FACILITATOR_ORDER), m.Facilitator),
    ("Query", "viewer"): _resolver(None),
    ("Query", "organisation"): FieldPolicy(Read.REFERENCE, P, spec=ReferenceSpec(m.Organisation, "")),
    # node(id) of a row type below is compiled; an ID of another type (health data, audited through node
    # too) sends the request to the executor.
    ("Query", "node"): FieldPolicy(Read.COMPUTED, None),
    ("Query", "nodes"): _resolver(None, audited=True),
    ("Query", "surveyInstruments"): _connection(
        ConnectionSpec(lambda p, _a: surveys.instruments(p), surveys.INSTRUMENT_ORDER), m.SurveyInstrument
    ),
    ("Query", "surveyResponses"): _resolver("surveys:read", audited=True),
    ("Query", "safeguardingAlerts"): _resolver("surveys:read", audited=True),
    ("Query", "evaluation"): _resolver("evaluation:read", audited=True),
    # Organisation and regions.
    ("Organisation", "id"): FieldPolicy(Read.GLOBAL_ID, P),
    **_columns("Organisation", "slug", "name", "timezone", "suppressionThreshold", scope=P),
    **_columns("Organisation", "defaultConsentFormVersion", "version", scope=P),
    ("Region", "id"): FieldPolicy(Read.GLOBAL_ID, P),
    **_columns("Region", "slug", "name", "version", scope=P),
    ("Region", "groups"): _connection(
        ConnectionSpec(lambda p, _a: programme.groups(p), programme.GROUP_ORDER, m.Group.region_id), m.Group
    ),
    ("Region", "totals"): FieldPolicy(Read.COMPUTED, P),  # a roll-up over a period
    **_columns("RegionTotals", "activeGroups", "sessionsHeld", "uniqueAttendees", scope=P),
    # Groups, sessions and facilitators.
    ("Group", "id"): FieldPolicy(Read.GLOBAL_ID, P),
    **_columns("Group", "name", "topic", "deliveryMode", "venue", "capacity", "status", "version", scope=P),
    ("Group", "schedule"): FieldPolicy(Read.COMPUTED, P),
    ("Group", "region"): _reference(m.Region, "region_id"),
    ("Group", "facilitators"): _children(
        m.FacilitatorAssignment, m.FacilitatorAssignment.group_id, ("role", True), ("created_at", False), ("id", False)
    ),
    ("Group", "sessions"): _connection(
        ConnectionSpec(lambda p, _a: programme.sessions(p), programme.SESSION_ORDER, m.GroupSession.group_id),
        m.GroupSession,
    ),
    ("Group", "attendanceRate"): FieldPolicy(Read.COMPUTED, P),
    # Enrolments in one status, ordered by when they were made: the resolvers answer them.
    ("Group", "roster"): _resolver(R),
    ("Group", "waitlist"): _resolver(R),
    ("GroupSession", "id"): FieldPolicy(Read.GLOBAL_ID, P),
    **_columns("GroupSession", "startsAt", "endsAt", "status", "cancellationReason", "dropinCount", "version", scope=P),
    ("GroupSession", "group"): _reference(m.Group, "group_id"),
    ("GroupSession", "attendanceCounts"): FieldPolicy(Read.COMPUTED, P),
    ("GroupSession", "facilitatorsPresent"): _resolver(P),
    ("GroupSession", "attendance"): _children(
        m.Attendance, m.Attendance.session_id, ("recorded_at", False), ("id", False)
    ),
    ("Facilitator", "id"): FieldPolicy(Read.GLOBAL_ID, P),
    **_columns("Facilitator", "displayName", "trainingCompletedOn", "backgroundCheckExpiresOn", "version", scope=P),
    ("Facilitator", "complianceState"): FieldPolicy(Read.COMPUTED, P),
    **_columns("Facilitator", "archivedAt", scope=P),
    ("Facilitator", "checks"): FieldPolicy(Read.RESOLVER, P),
    ("Facilitator", "assignments"): _children(
        m.FacilitatorAssignment, m.FacilitatorAssignment.facilitator_id, ("created_at", False), ("id", False)
    ),
    **_columns("FacilitatorAssignment", "role", scope=P),
    ("FacilitatorAssignment", "facilitator"): _reference(m.Facilitator, "facilitator_id"),
    ("FacilitatorAssignment", "group"): _reference(m.Group, "group_id"),
    # People: personal data behind participants:read.
    ("Participant", "id"): FieldPolicy(Read.GLOBAL_ID, R),
    **_columns("Participant", "reference", "version", scope=R),
    **_personal("Participant", "preferredName", "contactEmail", "contactPhone", scope=R),
    ("Participant", "enrolments"): _children(
        m.Enrolment, m.Enrolment.participant_id, ("requested_at", False), ("id", False)
    ),
    ("Participant", "consents"): FieldPolicy(
        Read.CHILDREN,
        R,
        spec=ChildrenSpec(
            m.Consent, m.Consent.participant_id, (("given_at", False), ("created_at", False), ("id", False))
        ),
    ),
    ("Participant", "consecutiveAbsences"): FieldPolicy(Read.COMPUTED, R),
    ("Enrolment", "id"): FieldPolicy(Read.GLOBAL_ID, R),
    **_columns("Enrolment", "status", "requestedAt", "activatedAt", "leftAt", "version", scope=R),
    ("Enrolment", "group"): _reference(m.Group, "group_id"),
    ("Enrolment", "participant"): _reference(m.Participant, "participant_id"),
    ("Enrolment", "attendance"): FieldPolicy(Read.COMPUTED, R),
    ("AttendanceRecord", "id"): FieldPolicy(Read.GLOBAL_ID, R),
    **_columns("AttendanceRecord", "status", "recordedAt", scope=R),
    ("AttendanceRecord", "session"): _reference(m.GroupSession, "session_id"),
    ("AttendanceRecord", "participant"): _reference(m.Participant, "participant_id"),
    ("Consent", "id"): FieldPolicy(Read.GLOBAL_ID, R),
    **_columns("Consent", "purpose", "formVersion", "givenAt", "withdrawnAt", scope=R),
    ("Consent", "inForce"): FieldPolicy(Read.COMPUTED, R),
    # Survey instruments: shipped ones and the caller's organisation's own.
    ("SurveyInstrument", "id"): FieldPolicy(Read.GLOBAL_ID, P),
    **_columns("SurveyInstrument", "code", "version", "name", "wordingLicensed", scope=P),
    ("SurveyInstrument", "shipped"): FieldPolicy(Read.COMPUTED, P),
    ("SurveyInstrument", "definition"): _resolver(P),  # a JSON document, rendered by its scalar
    # The objects computed from a row.
    **_columns(
        "Schedule", "frequency", "weekday", "weekOfMonth", "startTime", "durationMinutes", "anchorDate", scope=P
    ),
    **_columns("AttendanceCounts", "present", "excused", "unexcused", "dropins", scope=P),
}


def policy_of(type_name: str, field_name: str) -> FieldPolicy | None:
    """The declared policy of a field; connection, edge and page-info fields are structural (no entry)."""
    return FIELDS.get((type_name, field_name))


@functools.cache
def _strawberry_field(schema: Any, type_name: str, field_name: str) -> Any:
    definition = schema.get_type_by_name(type_name)
    if definition is None:
        raise Unsupported(type_name)
    for candidate in definition.fields:
        if schema.config.name_converter.get_graphql_name(candidate) == field_name:
            return candidate
    raise Unsupported(f"{type_name}.{field_name}")


def honoured(schema: Any, type_name: str, field_name: str, declared: frozenset[type]) -> None:
    """Refuse a field whose permission classes or extensions the compiled statement would not apply."""
    found = _strawberry_field(schema, type_name, field_name)
    permissions = set(getattr(found, "permission_classes", None) or ())
    if not permissions <= declared:
        raise Unsupported(f"{type_name}.{field_name} has permission classes the compiler does not apply")
    if found.extensions and not permissions:
        raise Unsupported(f"{type_name}.{field_name} has field extensions")
