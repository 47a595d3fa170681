"""The one place that turns a Principal into row filters for reads and checks for writes.

Every query that reads rows on behalf of a caller starts from ``readable(principal, Model)``: it applies the
organisation, the principal's regions, a facilitator's own groups, and the scope the rows need. Statements
built here carry an execution option (they are *checked*). A statement is accepted for execution when it is
checked, or when every tenant table it reads lies inside a checked statement (a count or a page over a
``readable`` subquery is safe by construction). Request sessions refuse anything else, in ORM and Core
execution alike (``install_guard``), and so do this module's own executors (``execute``, ``fetch_rows``,
``compile_read``), which pagination and the read paths go through: a query that forgot its filter fails
loudly instead of leaking rows.

Sessions that act for a principal are guarded: the GraphQL request's unit of work and the evaluator
exports. The authorization server (``oauth/``), the CLI and the demo loader read across tenants by design
(finding a token, a client, a user by email before any principal exists); they open their own sessions,
which are never guarded, so that reading across tenants is visible where it happens.

Declaring a hand-written filter checked is a privilege: ``trusted(statement, reason)``. Every place that
calls it is listed in one test (``tests/test_access_allow_list.py``), so a new one is reviewed before it
merges, and says in its docstring why its filter is equivalent to the rules here.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql.elements import ClauseElement, ColumnElement
from sqlalchemy.sql.selectable import TableClause

from .errors import DomainError, ErrorCode, NotFound
from .models import (
    Attendance,
    Enrolment,
    Facilitator,
    FacilitatorAssignment,
    Group,
    GroupSession,
    Organisation,
    Participant,
    Region,
    Role,
    SessionFacilitator,
)
from .principal import Principal

M = TypeVar("M")
_ACCESS_CHECKED = "access_checked"


class AccessBypassError(RuntimeError):
    """A request session ran a SELECT that did not come from ``readable``: a bug, never a caller's fault."""


def require_scope(principal: Principal, scope: str, field: str | None = None) -> None:
    if not principal.has_scope(scope):
        where = f" for {field}" if field else ""
        raise DomainError(ErrorCode.INSUFFICIENT_SCOPE, f"scope '{scope}' is required{where}", field)


def _region_ids(principal: Principal) -> frozenset[uuid.UUID] | None:
    return principal.region_ids


def _own_group_ids(principal: Principal) -> sa.Select[uuid.UUID] | None:
    """A facilitator acting as themselves sees only the groups they are assigned to."""
    if principal.role is not Role.FACILITATOR:
        return None
    return sa.select(FacilitatorAssignment.group_id).where(
        FacilitatorAssignment.organisation_id == principal.organisation_id,
        FacilitatorAssignment.facilitator_id == (principal.facilitator_id or uuid.UUID(int=0)),
    )


def group_filter(principal: Principal) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = [Group.organisation_id == principal.organisation_id]
    regions = _region_ids(principal)
    if regions is not None:
        clauses.append(Group.region_id.in_(regions))
    own = _own_group_ids(principal)
    if own is not None:
        clauses.append(Group.id.in_(own))
    return sa.and_(*clauses)


def readable_group_ids(principal: Principal) -> sa.Select[uuid.UUID]:
    return sa.select(Group.id).where(group_filter(principal))


def _by_readable_group(principal: Principal, column: Any, organisation_column: Any) -> ColumnElement[bool]:
    """Rows that belong to a readable group; cheap when the principal sees the whole organisation."""
    if _region_ids(principal) is None and _own_group_ids(principal) is None:
        return sa.and_(organisation_column == principal.organisation_id)
    return sa.and_(organisation_column == principal.organisation_id, column.in_(readable_group_ids(principal)))


def _session_filter(principal: Principal) -> ColumnElement[bool]:
    return _by_readable_group(principal, GroupSession.group_id, GroupSession.organisation_id)


def _of_readable_session(principal: Principal, session_column: Any) -> ColumnElement[bool]:
    """Rows of a readable session, checked per row against that one session (a primary-key probe), so the
    row's own index decides what is read; ``IN (SELECT id FROM group_sessions ...)`` would list every
    readable session of the organisation for each statement."""
    session = sa.exists().where(GroupSession.id == session_column, _session_filter(principal))
    return session.correlate_except(GroupSession)  # the session looked up, even where the outer query joins one


def _participant_filter(principal: Principal) -> ColumnElement[bool]:
    """Participants of the principal's regions; a facilitator's, only those enrolled in their groups."""
    clauses: list[ColumnElement[bool]] = [
        Participant.organisation_id == principal.organisation_id,
        Participant.erased_at.is_(None),
    ]
    regions = _region_ids(principal)
    if regions is not None:
        clauses.append(Participant.region_id.in_(regions))
    own = _own_group_ids(principal)
    if own is not None:
        clauses.append(Participant.id.in_(sa.select(Enrolment.participant_id).where(Enrolment.group_id.in_(own))))
    return sa.and_(*clauses)


def _region_filter(principal: Principal) -> ColumnElement[bool]:
    regions = _region_ids(principal)
    clause = Region.organisation_id == principal.organisation_id
    return clause if regions is None else sa.and_(clause, Region.id.in_(regions))


# For each readable model: the scope its rows need, and the row filter for a principal.
RULES: dict[type[Any], tuple[str, Callable[[Principal], ColumnElement[bool]]]] = {
    Organisation: ("programme:read", lambda p: sa.and_(Organisation.id == p.organisation_id)),
    Region: ("programme:read", _region_filter),
    Group: ("programme:read", group_filter),
    GroupSession: ("programme:read", _session_filter),
    FacilitatorAssignment: (
        "programme:read",
        lambda p: _by_readable_group(p, FacilitatorAssignment.group_id, FacilitatorAssignment.organisation_id),
    ),
    # Facilitators are people of the organisation, not of a region: every coordinator may assign them.
    Facilitator: ("programme:read", lambda p: sa.and_(Facilitator.organisation_id == p.organisation_id)),
    SessionFacilitator: (
        "programme:read",
        lambda p: sa.and_(
            SessionFacilitator.organisation_id == p.organisation_id,
            _of_readable_session(p, SessionFacilitator.session_id),
        ),
    ),
    Participant: ("participants:read", _participant_filter),
    Enrolment: (
        "participants:read",
        lambda p: _by_readable_group(p, Enrolment.group_id, Enrolment.organisation_id),
    ),
    Attendance: (
        "participants:read",
        lambda p: sa.and_(
            Attendance.organisation_id == p.organisation_id, _of_readable_session(p, Attendance.session_id)
        ),
    ),
}


def attendance_for_counts(principal: Principal) -> sa.Select[Attendance]:
    """Attendance marks of the sessions ``principal`` reads, for counting only.

    Counts need only ``programme:read`` (they name no participant), where the marks themselves need
    ``participants:read``; callers aggregate the rows (``with_only_columns(..., func.count())``) and
    return numbers, never marks.
    """
    require_scope(principal, "programme:read")
    return _mark_checked(
        sa.select(Attendance).where(
            Attendance.organisation_id == principal.organisation_id,
            _of_readable_session(principal, Attendance.session_id),
        )
    )


def register_rule(model: type[Any], scope: str, row_filter: Callable[[Principal], ColumnElement[bool]]) -> None:
    """Other domain modules (surveys, evaluation) add the rules for their own tables here."""
    RULES[model] = (scope, row_filter)


def row_filter(principal: Principal, model: type[Any]) -> ColumnElement[bool]:
    """The WHERE clause limiting ``model`` to what ``principal`` may read (scope checked first)."""
    scope, make_filter = RULES[model]
    require_scope(principal, scope)
    return make_filter(principal)


def readable(principal: Principal, model: type[M]) -> sa.Select[M]:
    """``SELECT model WHERE <what principal may read>``: the start of every caller-facing query."""
    statement: sa.Select[M] = _readable(principal, cast(Any, model))  # classes hash; mypy cannot see it
    return statement


@functools.lru_cache(maxsize=4096)
def _readable(principal: Principal, model: type[Any]) -> sa.Select[Any]:
    """Built once per principal and model: statements are immutable, and composing the filters anew on
    every request costs more than running the query (measured ~0.7 ms for a region-bound session list)."""
    return _mark_checked(sa.select(model).where(row_filter(principal, model)))


S = TypeVar("S", bound=sa.Executable)


def _mark_checked(statement: S) -> S:
    """Mark a statement built here from the rules (private: elsewhere, ``trusted`` names the exception)."""
    return statement.execution_options(**{_ACCESS_CHECKED: True})


def trusted(statement: S, reason: str) -> S:
    """Declare a hand-written filter equivalent to the access rules, for the few reads the rules cannot express
    (an organisation-wide uniqueness check, an evaluator's project filter, the caller's own idempotency record).

    ``reason`` says why the filter is safe; it is required so that the call site reads as a decision. Every
    caller is on the allow-list in ``tests/test_access_allow_list.py``: a new one fails CI until reviewed.
    """
    if not reason.strip():
        raise ValueError("a trusted statement needs the reason its filter is equivalent to the access rules")
    return _mark_checked(statement)


def _is_marked(element: object) -> bool:
    return isinstance(element, sa.Executable) and bool(element.get_execution_options().get(_ACCESS_CHECKED))


def unchecked_tenant_tables(statement: object) -> frozenset[str]:
    """The tenant tables ``statement`` reads outside any checked statement: empty when it is safe to run.

    Walks the statement's parts (select list, FROM, joins, WHERE, subqueries, CTEs, unions) and stops at a
    checked statement, whose rows are already filtered: so ``SELECT count(*) FROM (<readable>)`` or a page of
    ``<readable>`` as a LATERAL subquery is accepted, while the same around ``SELECT participants`` is not.
    """
    if _is_marked(statement) or not isinstance(statement, ClauseElement):
        return frozenset()
    found: set[str] = set()
    stack: list[Any] = [statement]
    seen: set[int] = set()
    while stack:
        element = stack.pop()
        if id(element) in seen or _is_marked(element):
            continue
        seen.add(id(element))
        if isinstance(element, TableClause):
            if element.name in _TENANT_TABLES:
                found.add(element.name)
            continue
        stack.extend(element.get_children())
    return frozenset(found)


def is_checked(statement: object) -> bool:
    return not unchecked_tenant_tables(statement)


def require_checked(statement: object, what: str) -> None:
    """Refuse ``statement`` unless it is checked or reads tenant tables only through checked statements."""
    touched = unchecked_tenant_tables(statement)
    if touched:
        raise AccessBypassError(f"{what}: unfiltered read of {', '.join(sorted(touched))}")


async def execute(session: AsyncSession, statement: sa.Executable) -> Result[*tuple[Any, ...]]:
    """Run a checked statement on ``session`` (refused otherwise, whether or not the session is guarded)."""
    require_checked(statement, "execution outside the access module")
    return await session.execute(statement)


async def fetch_rows(session: AsyncSession, statement: sa.Executable) -> Sequence[Any]:
    """Plain rows of a checked statement, executed at the Core level (no ORM result processing).

    The read paths that build their answers from plain rows use this; it refuses statements that are not
    checked, as the request sessions' guard does.
    """
    require_checked(statement, "Core execution")
    connection = await session.connection()
    return (await connection.execute(statement)).all()


@dataclass(frozen=True)
class CompiledRead:
    """An access-checked SELECT compiled once for the driver, its caller values left as bind parameters.

    A large statement costs more to build and to look up in SQLAlchemy's statement cache than to run; a read
    whose text depends only on a document and an access shape is compiled once (``compile_read``) and each
    execution supplies its values (``bound``). The text never changes with the values, so PostgreSQL keeps
    one prepared statement for it.
    """

    compiled: sa.engine.Compiled
    origin: object = dataclasses.field(default=None, repr=False, compare=False)

    def bound(self, values: dict[str, Any] | None = None) -> tuple[str, tuple[Any, ...]]:
        """The SQL and its positional driver parameters: ``values`` by parameter name, the rest as built."""
        state = self.compiled.construct_expanded_state(values or {})  # type: ignore[attr-defined]
        processors = {**self.compiled._bind_processors, **state.processors}  # type: ignore[attr-defined]
        parameters = tuple(
            processors[name](state.parameters[name]) if name in processors else state.parameters[name]
            for name in state.positiontup or ()
        )
        return state.statement, parameters

    @property
    def sql(self) -> str:
        return self.bound()[0]

    @property
    def parameters(self) -> tuple[Any, ...]:
        return self.bound()[1]


# Only ``compile_read`` makes reads the executors below accept: SQL text written elsewhere is refused.
_COMPILED_HERE = object()


def compile_read(
    statement: sa.Select[Any],
    dialect: sa.Dialect,
    rearrange: Callable[[sa.Select[Any]], sa.Select[Any]] | None = None,
) -> CompiledRead:
    """The statement compiled for ``dialect`` with bind parameters (never caller values written into SQL).

    ``rearrange`` rewrites the checked statement for a database's limits without changing what it reads (the
    SQLite read compiler moves self-contained subqueries to the top of the statement as common table
    expressions): it applies after the check, so the parts it moves keep the check they passed in place.
    """
    require_checked(statement, "compiling a read")
    if rearrange is not None:
        statement = rearrange(statement)
    return CompiledRead(statement.compile(dialect=dialect), _COMPILED_HERE)


def _require_compiled_here(read: CompiledRead) -> None:
    if read.origin is not _COMPILED_HERE:
        raise AccessBypassError("SQL text that was not compiled from a checked statement by compile_read")


async def fetch_compiled(
    bind: AsyncEngine | AsyncConnection, read: CompiledRead, values: dict[str, Any] | None = None
) -> Sequence[Any]:
    """Run a compiled read on its own.

    On the engine (the service) it goes straight to a pooled driver connection, outside any transaction:
    one round trip, no BEGIN or COMMIT (a single statement is atomic and reads one snapshot anyway), and
    no session machinery per request. On a connection (the tests' rolled-back transaction) it runs inside
    that connection's transaction.
    """
    _require_compiled_here(read)
    sql, parameters = read.bound(values)
    if isinstance(bind, AsyncConnection):
        return (await bind.exec_driver_sql(sql, parameters)).all()
    pooled = await bind.raw_connection()
    try:
        rows: Sequence[Any] = await pooled.driver_connection.fetch(sql, *parameters)  # type: ignore[union-attr]
    finally:
        pooled.close()  # back to the pool; nothing was begun, so there is nothing to roll back
    return rows


async def cursor_batches(connection: AsyncConnection, read: CompiledRead, size: int) -> AsyncIterator[Sequence[Any]]:
    """A compiled read's rows, ``size`` at a time, from a server-side cursor of the driver (PostgreSQL) in
    the connection's open transaction: for bulk reads, without SQLAlchemy's per-row result processing."""
    _require_compiled_here(read)
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    sql, parameters = read.bound()
    cursor = await driver.cursor(sql, *parameters)
    while batch := await cursor.fetch(size):
        yield batch


async def get_readable(session: AsyncSession, principal: Principal, model: type[M], row_id: uuid.UUID, what: str) -> M:
    """One row by id, or ``NotFound``: unknown and other tenants' IDs answer exactly alike."""
    row = (await session.execute(readable(principal, model).where(model.id == row_id))).scalar_one_or_none()  # type: ignore[attr-defined]
    if row is None:
        raise NotFound(what)
    return row


def reach_filter(principal: Principal, model: type[Any]) -> sa.ColumnElement[bool]:
    """The model's row filter for ``principal`` without the rule's read scope: how writes find their targets.

    A write finds rows with the same filters as reads (organisation, regions, a facilitator's own groups), so a
    foreign or out-of-region ID is NOT_FOUND exactly as on reads; the read scope is not demanded because each
    write has already required its own write scope (``attendance:write`` must not need ``participants:read``).
    """
    _read_scope, make_filter = RULES[model]
    return make_filter(principal)


def in_reach(principal: Principal, model: type[M]) -> sa.Select[M]:
    """``SELECT model`` limited to the rows ``principal`` reaches."""
    return _mark_checked(sa.select(model).where(reach_filter(principal, model)))


async def get_in_reach(
    session: AsyncSession,
    principal: Principal,
    model: type[M],
    row_id: uuid.UUID,
    what: str,
    field: str | None = None,
    *,
    lock: bool = False,
) -> M:
    """One row within reach, or NOT_FOUND. ``lock`` takes a row lock (PostgreSQL) to serialise writers."""
    statement = in_reach(principal, model).where(model.id == row_id)  # type: ignore[attr-defined]
    if lock:
        statement = statement.with_for_update()
    row = (await session.execute(statement)).scalar_one_or_none()
    if row is None:
        raise NotFound(what, field)
    return row


def install_guard(session: AsyncSession) -> None:
    """Make this (request) session refuse SELECTs on tenant tables that are not checked.

    ORM execution is checked as the session runs it; Core execution (``connection.execute`` on the
    session's connection, which the ORM hook never sees) by a ``before_execute`` listener put on each
    connection the session begins a transaction on and taken off when that transaction ends, so other
    users of a pooled connection are not affected. Driver-level SQL text is not inspected: the only reads
    sent that way are compiled by ``compile_read``, which refuses unchecked statements.
    """
    sync_session = session.sync_session
    event.listen(sync_session, "do_orm_execute", _refuse_unchecked_selects)
    event.listen(sync_session, "after_begin", _guard_connection)
    event.listen(sync_session, "after_transaction_end", _unguard_connections)
    transaction = sync_session.get_transaction()
    if transaction is not None:  # already begun: guard the connection it holds now
        _guard_connection(sync_session, transaction, sync_session.connection())


def _refuse_unchecked_selects(state: ORMExecuteState) -> None:
    if state.is_select:
        require_checked(state.statement, "ORM execution")


_GUARDED_CONNECTIONS = "access_guarded_connections"


def _guard_connection(session: Session, _transaction: SessionTransaction, connection: Connection) -> None:
    guarded: list[Connection] = session.info.setdefault(_GUARDED_CONNECTIONS, [])
    if not event.contains(connection, "before_execute", _refuse_unchecked_core):
        event.listen(connection, "before_execute", _refuse_unchecked_core)
        guarded.append(connection)


def _unguard_connections(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return  # a savepoint or subtransaction: the connection stays in the request's unit of work
    for connection in session.info.pop(_GUARDED_CONNECTIONS, []):
        if event.contains(connection, "before_execute", _refuse_unchecked_core):
            event.remove(connection, "before_execute", _refuse_unchecked_core)


def _refuse_unchecked_core(
    _connection: Connection, statement: Any, _multiparams: Any, _params: Any, _options: Any
) -> None:
    if getattr(statement, "is_select", False):
        require_checked(statement, "Core execution on a guarded connection")


def _tenant_tables() -> frozenset[str]:
    from .models import Base

    return frozenset(
        name for name, table in Base.metadata.tables.items() if "organisation_id" in table.c or name == "organisations"
    )


_TENANT_TABLES = _tenant_tables()


def is_guarded(session: Session) -> bool:
    return event.contains(session, "do_orm_execute", _refuse_unchecked_selects) and event.contains(
        session, "after_begin", _guard_connection
    )
