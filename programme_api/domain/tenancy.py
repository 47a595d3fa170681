"""Binding a unit of work to a tenant, for PostgreSQL's row-level security backstop (migration 0002).

The access module filters every query by organisation; row-level security is the second line, for the query
that forgot. ``bind_tenant`` sets ``app.organisation_id`` for the current transaction only
(``set_config(..., true)``, the function form of ``SET LOCAL``), so it cannot leak into the next request
that reuses the connection, behind PgBouncer in transaction mode included. The request edge calls it right
after opening the request's session, before any other statement; a commit ends the binding, so a request
that commits and continues must bind again. On SQLite it does nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from . import access
from .models import EvaluationProjectOrganisation
from .principal import Principal

SETTING = "app.organisation_id"
# Built once: composing ``func.set_config`` anew costs more than the round trip it makes (measured ~0.3 ms).
_BIND = sa.text(f"SELECT set_config('{SETTING}', :organisations, true)")


def setting_value(organisation_id: uuid.UUID, also: Iterable[uuid.UUID] = ()) -> str:
    members = dict.fromkeys([organisation_id, *also])
    return ",".join(str(uuid.UUID(str(member))) for member in members)


async def bind_tenant(session: AsyncSession, organisation_id: uuid.UUID, *, also: Iterable[uuid.UUID] = ()) -> None:
    """Limit this transaction to ``organisation_id`` (plus ``also``: the other organisations of an
    evaluation project the caller may read across)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(_BIND, {"organisations": setting_value(organisation_id, also)})


def bound_read(statement: sa.Select[Any], organisation_id: uuid.UUID) -> sa.Select[Any]:
    """``statement`` binding its own transaction to ``organisation_id`` before it reads anything.

    For a read sent as one statement in autocommit (``access.fetch_compiled``), where there is no
    transaction to bind beforehand. The binding is a materialised CTE the statement selects from:
    PostgreSQL produces the CTE's row (running ``set_config``) before it works out the select list, whose
    subqueries read the tables, so the policies see the binding. PostgreSQL only.
    """
    binding = (
        sa.select(sa.func.set_config(SETTING, setting_value(organisation_id), True).label("bound"))
        .cte("tenant_binding")
        .prefix_with("MATERIALIZED")
    )
    return statement.select_from(binding)


async def bind_principal(session: AsyncSession, principal: Principal) -> None:
    """Bind the transaction to the caller's organisation and, for an evaluator, the project's other members.

    Trusted filter (the member lookup): it runs before the binding (unbound transactions see every row)
    and reads only the member organisations of the evaluation project the principal's token is bound to,
    the same list the evaluator's rule (``evaluation.evaluator_rows``) reads through.
    """
    also: list[uuid.UUID] = []
    if principal.evaluation_project_id is not None and session.get_bind().dialect.name == "postgresql":
        members = sa.select(EvaluationProjectOrganisation.organisation_id).where(
            EvaluationProjectOrganisation.evaluation_project_id == principal.evaluation_project_id
        )
        trusted = access.trusted(members, reason="the member organisations of the caller's own evaluation project")
        also = list((await session.execute(trusted)).scalars())
    await bind_tenant(session, principal.organisation_id, also=also)
