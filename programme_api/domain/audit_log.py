"""Reading the audit log: an organisation's events, newest first, narrowed by actor, action, target and time.

Admins read it through GraphQL (``auditEvents``, scope ``admin``, their own organisation only) and operators
through the CLI (``programme-api audit list``); both use ``filtered`` so they narrow alike. A read audit names
many rows in one event (``details.ids``), so a target id matches the event's own target or any id it lists.
Pages are keyset pages like every other list, but newest first: the cursor is ``(occurred_at, id)`` and the
comparisons run the other way round.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from . import access
from .access import readable
from .models import ActorType, AuditEvent
from .pagination import Ordering, Page, PageRequest
from .principal import Principal

ORDER = Ordering((AuditEvent.occurred_at, AuditEvent.id))  # cursor keys; the list runs the other way
access.register_rule(AuditEvent, "admin", lambda p: AuditEvent.organisation_id == p.organisation_id)


@dataclass(frozen=True)
class AuditFilter:
    """Conditions on events; all given ones must hold. ``occurred_from`` is inclusive, ``occurred_before`` not."""

    actor_id: str | None = None
    actor_type: ActorType | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    occurred_from: datetime | None = None
    occurred_before: datetime | None = None


class ListedIds(FunctionElement[Any]):
    """The ids an event's ``details.ids`` lists, as a one-column table of text values (``value``)."""

    inherit_cache = True
    name = "listed_ids"


@compiles(ListedIds, "postgresql")
def _listed_ids_postgresql(element: ListedIds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_array_elements_text(({compiler.process(element.clauses, **kw)}) -> 'ids')"


@compiles(ListedIds, "sqlite")
def _listed_ids_sqlite(element: ListedIds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_each({compiler.process(element.clauses, **kw)}, '$.ids')"


def _names_target(target_id: str) -> sa.ColumnElement[bool]:
    listed = ListedIds(AuditEvent.details).table_valued("value").alias("listed")
    return sa.or_(
        AuditEvent.target_id == target_id,
        sa.exists(sa.select(sa.literal(1)).select_from(listed).where(listed.c.value == target_id)),
    )


def filtered(statement: sa.Select[Any], where: AuditFilter) -> sa.Select[Any]:
    """``statement`` (over audit events) narrowed by ``where``."""
    conditions: list[sa.ColumnElement[bool]] = []
    if where.actor_id is not None:
        conditions.append(AuditEvent.actor_id == where.actor_id)
    if where.actor_type is not None:
        conditions.append(AuditEvent.actor_type == where.actor_type)
    if where.action is not None:
        conditions.append(AuditEvent.action == where.action)
    if where.target_type is not None:
        conditions.append(AuditEvent.target_type == where.target_type)
    if where.target_id is not None:
        conditions.append(_names_target(where.target_id))
    if where.occurred_from is not None:
        conditions.append(AuditEvent.occurred_at >= where.occurred_from)
    if where.occurred_before is not None:
        conditions.append(AuditEvent.occurred_at < where.occurred_before)
    return statement.where(*conditions) if conditions else statement


def events(principal: Principal, where: AuditFilter | None = None) -> sa.Select[AuditEvent]:
    """The events of the principal's organisation it may read (scope ``admin``), narrowed by ``where``."""
    return filtered(readable(principal, AuditEvent), where or AuditFilter())


async def newest_first(session: AsyncSession, statement: sa.Select[AuditEvent], request: PageRequest) -> Page[Any]:
    """One keyset page, newest first: ``first``/``after`` go back in time, ``last``/``before`` forward."""
    key = sa.tuple_(*ORDER.columns)
    if request.after is not None:
        statement = statement.where(key < _key_values(request.after))
    if request.before is not None:
        statement = statement.where(key > _key_values(request.before))
    order = [column.asc() if request.backwards else column.desc() for column in ORDER.columns]
    paged = statement.order_by(*order).limit(request.size + 1)
    rows: Sequence[AuditEvent] = (await session.execute(paged)).scalars().all()
    more = len(rows) > request.size
    window = list(rows[: request.size])
    if request.backwards:
        window.reverse()
    return Page(
        rows=window,
        ordering=ORDER,
        has_next_page=more if not request.backwards else request.before is not None,
        has_previous_page=more if request.backwards else request.after is not None,
    )


def _key_values(values: tuple[Any, ...]) -> Any:
    """A cursor's key as bound values typed like the columns (timestamps stored the way the column stores them)."""
    return sa.tuple_(*(sa.literal(value, column.type) for column, value in zip(ORDER.columns, values, strict=True)))


async def list_for_operator(
    session: AsyncSession, organisation_id: uuid.UUID, where: AuditFilter, limit: int | None
) -> list[dict[str, Any]]:
    """The CLI's listing (the operator runs the process: no principal), newest first, as plain JSON values."""
    statement = filtered(sa.select(AuditEvent).where(AuditEvent.organisation_id == organisation_id), where)
    statement = statement.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    if limit is not None:
        statement = statement.limit(limit)
    return [as_json(event) for event in (await session.execute(statement)).scalars()]


def as_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "occurred_at": event.occurred_at.isoformat(),
        "actor_type": event.actor_type.value,
        "actor_id": event.actor_id,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "request_id": event.request_id,
        "details": event.details,
    }
