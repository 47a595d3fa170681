"""A validated query operation built into one SELECT whose single value is the response's ``data`` JSON.

Every list, reference and connection is a subquery correlated to its parent row (so a parent that appears
twice gets its own, identical, answer each time), over the same access-filtered statements the resolvers
use (``policy.FIELDS``). Leaves are rendered as the schema's serialisers render them (``dialect.py``).
Connections are keyset pages as ``domain/pagination.py`` makes them: ``size + 1`` rows in sort order, the
extra row telling whether there are more; cursors encode the sort key; ``totalCount`` counts the filtered list.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
)

from ...domain import models, programme
from ...domain.access import readable
from ...domain.errors import DomainError
from ...domain.pagination import columns_only
from ..relay import from_global_id
from .dialect import JsonDialect, constant, text
from .operation import Fallback, QueryOperation, Selection, Unsupported, collect_fields, named_type
from .page import Page, page_request_check
from .params import Request, Slots
from .policy import ROW_TYPES, ChildrenSpec, ConnectionSpec, Read, ReferenceSpec, honoured, policy_of, scope_of

Rows = Any  # a derived table whose columns are one table's row


class Builder:
    """Builds one statement for one query operation, one access shape and one structure of variables."""

    def __init__(self, schema: Any, request: Request, dialect: JsonDialect, sa_dialect: sa.Dialect) -> None:
        self.schema = schema
        self.request = request
        self.selection: Selection = request.selection
        self.dialect = dialect
        self.slots = Slots(sa_dialect)
        self.names = itertools.count()

    def alias(self) -> str:
        return f"j{next(self.names)}"

    def data(self, query: QueryOperation) -> Any:
        root: GraphQLObjectType = self.schema._schema.query_type
        selected = collect_fields(self.selection, root, [query.definition.selection_set])
        return self.object(root, None, selected)

    def selected(self, type_: GraphQLObjectType, nodes: list[FieldNode]) -> dict[str, list[FieldNode]]:
        return collect_fields(self.selection, type_, [node.selection_set for node in nodes])

    def object(self, type_: GraphQLObjectType, rows: Rows | None, selected: dict[str, list[FieldNode]]) -> Any:
        return self.dialect.object([(key, self.field(type_, rows, nodes)) for key, nodes in selected.items()])

    # ---- fields ------------------------------------------------------------------------------------------

    def field(self, type_: GraphQLObjectType, rows: Rows | None, nodes: list[FieldNode]) -> Any:
        name = nodes[0].name.value
        if name == "__typename":
            return text(type_.name)
        policy = policy_of(type_.name, name)
        if policy is None or policy.read is Read.RESOLVER:
            raise Unsupported(f"{type_.name}.{name} is read by its resolver")
        if policy.audited:
            raise Unsupported(f"{type_.name}.{name} is an audited read")
        if policy.scope is not None and not self.request.principal.has_scope(policy.scope):
            raise Unsupported(f"{type_.name}.{name} needs {policy.scope}: the executor reports it")
        honoured(self.schema, type_.name, name, policy.permissions)
        definition = type_.fields[name]
        spec = policy.spec
        if policy.read is Read.CONNECTION and isinstance(spec, ConnectionSpec):
            return self.connection(named_type(definition.type), spec, definition, nodes, rows)
        if (type_.name, name) == ("Query", "node"):
            return self.node(definition, nodes)
        if policy.read is Read.REFERENCE and isinstance(spec, ReferenceSpec) and rows is None and not spec.foreign_key:
            return self.reference(named_type(definition.type), spec, nodes, None)
        if rows is None:
            raise Unsupported(f"{type_.name}.{name} needs a row")
        if policy.read is Read.COLUMN and policy.column is not None:
            return self.leaf(definition.type, rows.c[policy.column])
        if policy.read is Read.GLOBAL_ID:
            return self.dialect.global_id(type_.name, rows.c.id)
        if policy.read is Read.REFERENCE and isinstance(spec, ReferenceSpec):
            return self.reference(named_type(definition.type), spec, nodes, rows)
        if policy.read is Read.CHILDREN and isinstance(spec, ChildrenSpec):
            return self.children(named_type(definition.type), spec, nodes, rows)
        if (type_.name, name) == ("GroupSession", "attendanceCounts"):
            return self.attendance_counts(named_type(definition.type), nodes, rows)
        if (type_.name, name) == ("Participant", "consecutiveAbsences"):
            return self.consecutive_absences(rows)
        if (type_.name, name) == ("Consent", "inForce"):
            return self.dialect.boolean(rows.c.withdrawn_at.is_(None))
        if (type_.name, name) == ("SurveyInstrument", "shipped"):
            return self.dialect.boolean(rows.c.organisation_id.is_(None))
        if (type_.name, name) == ("Enrolment", "attendance"):
            return self.enrolment_attendance(named_type(definition.type), nodes, rows)
        if (type_.name, name) == ("Group", "attendanceRate"):
            return self.attendance_rate(definition, nodes[0], rows)
        if (type_.name, name) == ("Region", "totals"):
            return self.region_totals(named_type(definition.type), definition, nodes, rows)
        if (type_.name, name) == ("Group", "schedule"):
            return self.schedule(named_type(definition.type), nodes, rows)
        if (type_.name, name) == ("Facilitator", "complianceState"):
            return self.compliance_state(definition, nodes[0], rows)
        raise Unsupported(f"{type_.name}.{name}")

    def declared(self, type_: GraphQLObjectType, name: str) -> None:
        """A field of an object the compiler works out whole (counts, schedule, totals): declared in the policy,
        and with nothing on it the compiler would not apply."""
        policy = policy_of(type_.name, name)
        if policy is None or policy.read is Read.RESOLVER:
            raise Unsupported(f"{type_.name}.{name} is read by its resolver")
        honoured(self.schema, type_.name, name, policy.permissions)

    def leaf(self, type_: GraphQLOutputType, column: Any) -> Any:
        """A column rendered as the field's scalar or enum serialiser would render it."""
        if isinstance(type_, GraphQLNonNull):
            return self.leaf(type_.of_type, column)
        if isinstance(type_, GraphQLList):
            raise Unsupported("list of leaves")
        if isinstance(type_, GraphQLEnumType):
            names = {getattr(d.value, "value", d.value): name for name, d in type_.values.items()}
            return sa.case(*((column == constant(str(stored)), text(name)) for stored, name in names.items()))
        if isinstance(type_, GraphQLScalarType):
            if type_.name in ("String", "ID", "Int"):
                return column
            if type_.name == "Boolean":
                return sa.case((column.is_(None), sa.null()), else_=self.dialect.boolean(column))
            if type_.name == "DateTime":
                return self.dialect.datetime(column)
            if type_.name == "Date":
                return self.dialect.date(column)
            if type_.name == "Time":
                return self.dialect.time(column)
        raise Unsupported(f"scalar {type_}")

    # ---- lists and references ------------------------------------------------------------------------------

    def readable_rows(self, model: type[Any]) -> sa.Select[Any]:
        """``readable(principal, model)`` with its values as slots filled per request."""
        statement = columns_only(readable(self.request.principal, model))
        return self.slots.domain(statement, lambda r: columns_only(readable(r.principal, model)))  # type: ignore[no-any-return]

    def reference(
        self, type_: GraphQLObjectType, spec: ReferenceSpec, nodes: list[FieldNode], parent: Rows | None
    ) -> Any:
        """The readable row the parent names (at the root: the one row the access filter leaves)."""
        model = spec.model
        target = self.readable_rows(model)
        if parent is not None:
            target = target.where(model.id == parent.c[spec.foreign_key]).correlate(parent)
        row = target.subquery(self.alias())
        found = sa.select(self.object(type_, row, self.selected(type_, nodes))).select_from(row)
        return self.dialect.embed(found.scalar_subquery())

    def children(self, type_: GraphQLObjectType, spec: ChildrenSpec, nodes: list[FieldNode], parent: Rows) -> Any:
        statement = self.readable_rows(spec.model).where(spec.parent_column == parent.c.id).correlate(parent)
        return self.listed(type_, spec.model, statement, spec.order, nodes)

    def listed(
        self,
        type_: GraphQLObjectType,
        model: type[Any],
        statement: sa.Select[Any],
        order: tuple[tuple[str, bool], ...],
        nodes: list[FieldNode],
    ) -> Any:
        """The rows of ``statement`` (one table's columns) as an array of ``type_`` objects in ``order``."""
        table = model.__table__
        in_table = [table.c[key].desc() if descending else table.c[key].asc() for key, descending in order]
        rows = self.dialect.in_order(statement.order_by(*in_table)).subquery(self.alias())
        in_rows = [rows.c[key].desc() if descending else rows.c[key].asc() for key, descending in order]
        items = self.dialect.array(self.object(type_, rows, self.selected(type_, nodes)), in_rows)
        return self.dialect.embed(sa.select(items).select_from(rows).scalar_subquery())

    def enrolment_attendance(self, type_: GraphQLObjectType, nodes: list[FieldNode], enrolment: Rows) -> Any:
        """The participant's readable marks at readable sessions of the enrolment's group, as the resolver
        picks them (the participant's marks, each kept when its session is readable and of that group)."""
        attendance, session = models.Attendance, models.GroupSession
        of_the_group = (
            self.readable_rows(session)
            .where(session.id == attendance.session_id, session.group_id == enrolment.c.group_id)
            .exists()
            .correlate_except(session)
        )
        statement = (
            self.readable_rows(attendance)
            .where(attendance.participant_id == enrolment.c.participant_id, of_the_group)
            .correlate(enrolment)
        )
        statement = self.dialect.per_row(statement)  # a participant's few marks: each session looked up
        return self.listed(type_, attendance, statement, (("recorded_at", False), ("id", False)), nodes)

    def period(self, definition: Any, node: FieldNode, request: Request) -> programme.Period:
        """The roll-up's period as the resolver works it out from ``from``/``to``, for each request."""
        args = request.arguments(definition, node)
        return programme.period_of(args.get("from"), args.get("to"))

    def attendance_rate(self, definition: Any, node: FieldNode, group: Rows) -> Any:
        """``programme.attendance_rates`` of this one group: its readable held sessions in the period (the
        session index on the group and start), each session's marks counted by an aggregate of that session
        (``programme.held_session_tallies``); the rate as ``programme.attendance_rate`` rounds it."""

        def tallies(request: Request) -> sa.Select[Any]:
            period = self.period(definition, node, request)
            return programme.held_session_tallies(request.principal, period, self.dialect.name)

        statement = self.slots.domain(tallies(self.request), tallies)
        statement = statement.where(models.GroupSession.group_id == group.c.id).correlate(group)
        sessions = statement.subquery(self.alias())
        present, recorded = programme.attendance_rate_sums(sessions)
        sums = sa.select(present.label("present"), recorded.label("recorded")).select_from(sessions)
        counts = sums.subquery(self.alias())
        rate = rate_of(sa.func.coalesce(counts.c.present, 0), sa.func.coalesce(counts.c.recorded, 0))
        return sa.select(rate).select_from(counts).scalar_subquery()

    def region_totals(self, type_: GraphQLObjectType, definition: Any, nodes: list[FieldNode], region: Rows) -> Any:
        """``programme.region_totals`` of this one region: one count per selected total, each over the groups
        of the region the caller may read (and their held sessions in the period, and those sessions' marks)."""
        pairs: list[tuple[str, Any]] = []
        for key, field_nodes in self.selected(type_, nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                pairs.append((key, text(type_.name)))
                continue
            self.declared(type_, name)
            total = _snake(name)

            def count(request: Request, total: str = total) -> tuple[sa.Select[Any], Any]:
                period = self.period(definition, nodes[0], request)
                return programme.region_total_statements(request.principal, period)[total]

            statement, region_id = count(self.request)
            statement = self.slots.domain(statement, functools.partial(_first, count))
            statement = statement.where(region_id == region.c.id).correlate(region)
            pairs.append((key, statement.scalar_subquery()))
        return self.dialect.object(pairs)

    def attendance_counts(self, type_: GraphQLObjectType, nodes: list[FieldNode], session: Rows) -> Any:
        """The session's tallies by status (``programme.attendance_tallies``) plus its drop-in headcount."""
        tallies = programme.attendance_tallies(session.c)
        values = {column.name.removeprefix("attendance_"): column for column in tallies.selected_columns}
        values["dropins"] = session.c.dropin_count
        pairs: list[tuple[str, Any]] = []
        for key, field_nodes in self.selected(type_, nodes).items():
            name = field_nodes[0].name.value
            if name != "__typename":
                self.declared(type_, name)
            pairs.append((key, text(type_.name) if name == "__typename" else values[name]))
        if not any(_reads(value, models.Attendance.__table__) for _key, value in pairs):
            # Only the session's own columns (``dropins``): no aggregate over its marks, which would find no
            # row, and so no object, for a session without marks.
            return self.dialect.object(pairs)
        if self.dialect.name == "sqlite":
            # Each count its own correlated count, as ``programme.with_attendance_counts`` reads them on
            # SQLite: values of the object, not an object inside a subquery (which costs SQLite's parser
            # stack twice over at the deepest point of a dashboard).
            statuses = {f"attendance_{status.value}": status for status in models.AttendanceStatus}
            counted = {
                id(column): tallies.with_only_columns(sa.func.count())
                .where(models.Attendance.status == statuses[column.name])
                .scalar_subquery()
                for column in tallies.selected_columns
            }
            return self.dialect.object([(key, counted.get(id(value), value)) for key, value in pairs])
        return self.dialect.embed(tallies.with_only_columns(self.dialect.object(pairs)).scalar_subquery())

    def node(self, definition: Any, nodes: list[FieldNode]) -> Any:
        """``node(id)``: one branch per row type the caller may read, picked by the ID's type (a parameter).

        An ID of any other type (health data, whose reads are audited), or one that does not decode, is the
        executor's to answer."""
        node = nodes[0]
        kinds = {
            name: model
            for name, model in ROW_TYPES.items()
            if name != "FacilitatorAssignment" and self.request.principal.has_scope(scope_of(model))
        }
        decoded = functools.partial(_node_id, definition, node, frozenset(kinds))
        type_name = self.slots.value(lambda r: decoded(r)[0], sa.Text)
        row_id = self.slots.value(lambda r: decoded(r)[1], sa.Uuid)
        branches = []
        for name, model in kinds.items():
            graphql_type = self.schema._schema.get_type(name)
            row = self.readable_rows(model).where(model.id == row_id).subquery(self.alias())
            found = sa.select(self.object(graphql_type, row, self.selected(graphql_type, nodes))).select_from(row)
            branches.append((type_name == constant(name), self.dialect.embed(found.scalar_subquery())))
        return sa.case(*branches, else_=sa.null())

    def consecutive_absences(self, participant: Rows) -> Any:
        """``programme.consecutive_absences`` for this participant: absences (excused or not) at held sessions
        after the last session they were present at, over the attendance rows the caller may read.

        One pass over the participant's readable marks (the attendance index on the participant), each mark's
        session found by its key in a subquery of its own (``when``: its start, for a present mark or a held
        session; a lookup per mark, never a join PostgreSQL could answer by hashing every session of the
        caller's regions); the last presence is a window over those rows, so each mark is looked up once."""
        attendance, session = models.Attendance, models.GroupSession
        present = constant(models.AttendanceStatus.PRESENT.value)
        held = constant(models.SessionStatus.HELD.value)
        when = (
            self.readable_rows(session)
            .with_only_columns(session.starts_at)
            .where(session.id == attendance.session_id, sa.or_(attendance.status == present, session.status == held))
            .correlate_except(session)
            .scalar_subquery()
        )
        marks = self.dialect.per_row(
            self.readable_rows(attendance)
            .with_only_columns(attendance.status.label("status"), when.label("at"))
            .where(attendance.participant_id == participant.c.id)
            .correlate(participant)
            .offset(sa.literal_column("0"))  # kept a subquery of its own: its lookups are not repeated above it
        ).subquery(self.alias())
        seen = sa.func.max(sa.case((marks.c.status == present, marks.c.at))).over()
        rows = sa.select(marks.c.status, marks.c.at, seen.label("seen")).subquery(self.alias())
        absences = sa.select(sa.func.count()).where(
            rows.c.status != present,
            rows.c.at.is_not(None),
            sa.or_(rows.c.seen.is_(None), rows.c.at > rows.c.seen),
        )
        return absences.scalar_subquery()

    def schedule(self, type_: GraphQLObjectType, nodes: list[FieldNode], group: Rows) -> Any:
        """``Group.schedule``: null without a frequency, else the schedule columns with the resolver's defaults."""
        columns = {
            "frequency": (group.c.schedule_frequency, None),
            "weekday": (group.c.schedule_weekday, sa.literal_column("0")),
            "weekOfMonth": (group.c.schedule_week_of_month, None),
            "startTime": (group.c.schedule_start_time, constant("00:00:00")),
            "durationMinutes": (group.c.schedule_duration_minutes, sa.literal_column("0")),
            "anchorDate": (group.c.schedule_anchor_date, constant(date.min.isoformat())),
        }
        pairs: list[tuple[str, Any]] = []
        for key, field_nodes in self.selected(type_, nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                pairs.append((key, text(type_.name)))
                continue
            self.declared(type_, name)
            column, default = columns[name]
            value = self.leaf(type_.fields[name].type, column)
            pairs.append((key, value if default is None else sa.func.coalesce(value, default)))
        return sa.case((group.c.schedule_frequency.is_(None), sa.null()), else_=self.dialect.object(pairs))

    def compliance_state(self, definition: Any, node: FieldNode, facilitator: Rows) -> Any:
        """``programme.compliance_state`` on today's date (a parameter, worked out per request as the resolver
        does), rendered as the enum's name."""
        today = self.slots.value(lambda _r: programme.today(), sa.Date)
        horizon = self.slots.value(
            lambda r: programme.today() + timedelta(days=r.arguments(definition, node)["withinDays"]), sa.Date
        )
        expires, trained = facilitator.c.background_check_expires_on, facilitator.c.training_completed_on
        enum_type = named_leaf(definition.type)
        names = {getattr(d.value, "value", d.value): name for name, d in enum_type.values.items()}
        state = programme.ComplianceState
        return sa.case(
            (sa.or_(expires.is_(None), expires < today), text(names[state.CHECK_EXPIRED.value])),
            (trained.is_(None), text(names[state.TRAINING_MISSING.value])),
            (expires <= horizon, text(names[state.CHECK_EXPIRING.value])),
            else_=text(names[state.COMPLIANT.value]),
        )

    # ---- connections ---------------------------------------------------------------------------------------

    def connection(
        self,
        connection_type: GraphQLObjectType,
        spec: ConnectionSpec,
        definition: Any,
        nodes: list[FieldNode],
        parent: Rows | None,
    ) -> Any:
        """A keyset page of the list as the connection's selected fields."""
        node = nodes[0]
        args = self.request.arguments(definition, node)
        self.slots.check(functools.partial(page_request_check, spec.ordering, definition, node))
        statement = columns_only(spec.build(self.request.principal, args))
        statement = self.slots.domain(
            statement, lambda r: columns_only(spec.build(r.principal, r.arguments(definition, node)))
        )
        if spec.parent_column is not None:
            if parent is None:
                raise Unsupported("a nested list needs a parent row")
            statement = statement.where(spec.parent_column == parent.c.id).correlate(parent)
        selected = self.selected(connection_type, nodes)
        for field_nodes in selected.values():
            if field_nodes[0].name.value != "__typename":
                honoured(self.schema, connection_type.name, field_nodes[0].name.value, frozenset())
        wanted = {field_nodes[0].name.value for field_nodes in selected.values()}
        page = (
            Page(self, spec.ordering, definition, node, args, statement)
            if wanted - {"totalCount", "__typename"}
            else None
        )
        pairs: list[tuple[str, Any]] = []
        reads_rows = False
        for key, field_nodes in selected.items():
            name = field_nodes[0].name.value
            if page is not None and name in ("nodes", "edges", "pageInfo"):
                reads_rows = reads_rows or page.reads_rows(connection_type, name, field_nodes)
            if name == "__typename":
                value: Any = text(connection_type.name)
            elif name == "totalCount":
                counted = statement.order_by(None).subquery(self.alias())
                value = sa.select(sa.func.count()).select_from(counted).scalar_subquery()
            elif page is not None and name in ("nodes", "edges", "pageInfo"):
                value = page.field(connection_type, name, field_nodes)
            else:
                raise Unsupported(f"{connection_type.name}.{name}")
            pairs.append((key, value))
        found = sa.select(self.dialect.object(pairs))
        if page is not None and reads_rows:
            # Every value that reads the page's rows aggregates them (arrays, counts), so this is one row.
            # Values known without the rows (``pageInfo { hasPreviousPage }`` with no cursor) read from no
            # table: selected from the rows alone they would make a row per row of the page.
            found = found.select_from(page.rows)
        return self.dialect.embed(found.scalar_subquery())


def _integer(value: int) -> Any:
    return sa.literal_column(str(value), sa.Integer)


# Python's ``round(present / recorded, 4)`` rounds the float nearest the quotient, so a quotient exactly halfway
# between two results, (2k + 1) / 20000, goes the way its nearest float lies: up when that float is above it.
# m / ulp(m) = (2k + 1) * 2**(47 - e) / 625 for m in [2**e, 2**(e + 1)), so the float lies above m when
# (2k + 1) * 2**(47 - e) mod 625 > 312 (when 625 divides 2k + 1, m is a float: halves to even). Per binade e:
# the smallest k in it, and 2**(47 - e) mod 625.
_BINADES = [(next(k for k in range(10000) if (2 * k + 1) * 2**j >= 20000), pow(2, 47 + j, 625)) for j in range(1, 17)]


def rate_of(present: Any, recorded: Any) -> Any:
    """``programme.attendance_rate`` in SQL, on integers alone so that both databases give Python's float:
    k = floor(10^4 * present / recorded), one more when the quotient is above k + 1/2, and at exactly k + 1/2
    as ``round`` decides it (``_BINADES``); then k / 10^4 as a float, null when nothing was recorded."""
    p, r = sa.type_coerce(present, sa.BigInteger), sa.type_coerce(recorded, sa.BigInteger)
    k = (p * _integer(10000)) // r
    odd = k * _integer(2) + _integer(1)
    above = p * _integer(20000) - odd * r
    shift = sa.case(*((k >= _integer(lowest), _integer(power)) for lowest, power in _BINADES), else_=_integer(1))
    at_half = sa.case(
        (odd % _integer(625) == _integer(0), k % _integer(2)),
        ((odd * shift) % _integer(625) > _integer(312), _integer(1)),
        else_=_integer(0),
    )
    rounded = k + sa.case((above > _integer(0), _integer(1)), (above < _integer(0), _integer(0)), else_=at_half)
    return sa.case(
        (r == _integer(0), sa.null()), else_=sa.cast(rounded, sa.Float) / sa.literal_column("10000.0", sa.Float)
    )


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _reads(expression: Any, rows: Any) -> bool:
    """Whether ``expression`` reads a column of ``rows`` (outside a subquery of its own)."""
    return any(getattr(element, "table", None) is rows for element in sa.sql.visitors.iterate(expression))


def _node_id(definition: Any, node: FieldNode, kinds: frozenset[str], request: Request) -> tuple[str, uuid.UUID]:
    try:
        type_name, row_id = from_global_id(request.arguments(definition, node)["id"])
    except DomainError as exc:
        raise Fallback("an ID that does not decode") from exc
    if type_name not in kinds:
        raise Fallback(f"node of type {type_name!r}")
    return type_name, row_id


def named_leaf(type_: Any) -> GraphQLEnumType:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if not isinstance(type_, GraphQLEnumType):
        raise Unsupported(f"not an enum: {type_}")
    return type_


def _first(build: Any, request: Request) -> Any:
    return build(request)[0]
