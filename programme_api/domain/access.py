"""The one place that turns a Principal into row filters for reads and checks for writes.

Every query that reads rows on behalf of a caller starts from ``readable(principal, Model)``: it applies the
organisation, the principal's regions, a facilitator's own groups, and the scope the rows need. Statements
built here carry an execution option; request sessions refuse any SELECT on a tenant table without it
(``install_guard``), so a query that forgot its filter fails loudly in tests instead of leaking rows.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.util import find_tables

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
ACCESS_CHECKED = "access_checked"


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
            SessionFacilitator.session_id.in_(sa.select(GroupSession.id).where(_session_filter(p))),
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
            Attendance.organisation_id == p.organisation_id,
            Attendance.session_id.in_(sa.select(GroupSession.id).where(_session_filter(p))),
        ),
    ),
}


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
    return mark_checked(sa.select(model).where(row_filter(principal, model)))


S = TypeVar("S", bound=sa.Executable)


def mark_checked(statement: S) -> S:
    """Mark a statement built from access filters (aggregates over ``readable`` subqueries use this too)."""
    return statement.execution_options(**{ACCESS_CHECKED: True})


async def fetch_rows(session: AsyncSession, statement: sa.Executable) -> Sequence[Any]:
    """Plain rows of an access-checked statement, executed at the Core level (no ORM result processing).

    The read paths that build their answers from plain rows use this; it refuses statements that did not
    come from this module, as the request sessions' guard does for ORM execution.
    """
    if not statement.get_execution_options().get(ACCESS_CHECKED):
        raise AccessBypassError("Core execution of a statement that did not come from the access module")
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


def compile_read(statement: sa.Select[Any], dialect: sa.Dialect) -> CompiledRead:
    """The statement compiled for ``dialect`` with bind parameters (never caller values written into SQL)."""
    if not statement.get_execution_options().get(ACCESS_CHECKED):
        raise AccessBypassError("compiling a statement that did not come from the access module")
    return CompiledRead(statement.compile(dialect=dialect))


async def fetch_compiled(
    bind: AsyncEngine | AsyncConnection, read: CompiledRead, values: dict[str, Any] | None = None
) -> Sequence[Any]:
    """Run a compiled read on its own.

    On the engine (the service) it goes straight to a pooled driver connection, outside any transaction:
    one round trip, no BEGIN or COMMIT (a single statement is atomic and reads one snapshot anyway), and
    no session machinery per request. On a connection (the tests' rolled-back transaction) it runs inside
    that connection's transaction.
    """
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
    return mark_checked(sa.select(model).where(reach_filter(principal, model)))


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
    """Make this (request) session refuse SELECTs on tenant tables that did not come from ``readable``."""
    event.listen(session.sync_session, "do_orm_execute", _refuse_unchecked_selects)


def _refuse_unchecked_selects(state: ORMExecuteState) -> None:
    if not state.is_select or state.execution_options.get(ACCESS_CHECKED):
        return
    statement = state.statement
    if not isinstance(statement, sa.ClauseElement):
        return
    touched = {table.name for table in find_tables(statement)} & _TENANT_TABLES
    if touched:
        raise AccessBypassError(f"unfiltered SELECT on {', '.join(sorted(touched))}")


def _tenant_tables() -> frozenset[str]:
    from .models import Base

    return frozenset(
        name for name, table in Base.metadata.tables.items() if "organisation_id" in table.c or name == "organisations"
    )


_TENANT_TABLES = _tenant_tables()


def is_guarded(session: Session) -> bool:
    return event.contains(session, "do_orm_execute", _refuse_unchecked_selects)
