"""Statements reach the database only through the access module: unchecked ones are refused everywhere.

Pagination and counting take a checked statement and refuse anything else (they never vouch for a statement
themselves); reads derived from a checked statement are accepted by structure; the request session refuses
unchecked SELECTs in Core execution as well as ORM execution; compiled SQL text is accepted only from
``compile_read``.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from programme_api.domain import access
from programme_api.domain.access import AccessBypassError, CompiledRead, install_guard, readable
from programme_api.domain.models import Group, Participant, Region
from programme_api.domain.pagination import (
    Ordering,
    PageRequest,
    count,
    fetch_grouped_pages,
    fetch_page,
    grouped_counts,
)
from programme_api.domain.principal import Principal

from .factories import make_organisation, make_participant, make_region, principal_for

BY_REFERENCE = Ordering((Participant.reference, Participant.id))


async def two_organisations(db: AsyncSession) -> tuple[Principal, Participant, Participant]:
    """A caller of the first organisation, its participant, and another organisation's participant."""
    mine, theirs = await make_organisation(db), await make_organisation(db)
    own = await make_participant(db, await make_region(db, mine))
    foreign = await make_participant(db, await make_region(db, theirs))
    return principal_for(mine), own, foreign


async def test_a_page_of_an_unchecked_statement_is_refused(db: AsyncSession) -> None:
    """The regression: ``select(Participant)`` handed to pagination used to return other tenants' rows."""
    await two_organisations(db)
    with pytest.raises(AccessBypassError, match="participants"):
        await fetch_page(db, sa.select(Participant), BY_REFERENCE, PageRequest(first=10))
    with pytest.raises(AccessBypassError, match="participants"):
        await fetch_page(db, sa.select(Participant), BY_REFERENCE, PageRequest(first=10), as_rows=True)


async def test_a_count_of_an_unchecked_statement_is_refused(db: AsyncSession) -> None:
    await two_organisations(db)
    with pytest.raises(AccessBypassError, match="participants"):
        await count(db, sa.select(Participant))


async def test_nested_pages_and_counts_of_an_unchecked_statement_are_refused(db: AsyncSession) -> None:
    _principal, own, foreign = await two_organisations(db)
    parents = [own.region_id, foreign.region_id]
    with pytest.raises(AccessBypassError):
        await fetch_grouped_pages(
            db, Participant, sa.select(Participant), Participant.region_id, parents, BY_REFERENCE, PageRequest(first=5)
        )
    with pytest.raises(AccessBypassError):
        await grouped_counts(db, sa.select(Participant), Participant.region_id, parents)


async def test_pages_and_counts_of_readable_statements_hold_only_the_callers_rows(db: AsyncSession) -> None:
    principal, own, foreign = await two_organisations(db)
    statement = readable(principal, Participant)
    page = await fetch_page(db, statement, BY_REFERENCE, PageRequest(first=10))
    rows = await fetch_page(db, statement, BY_REFERENCE, PageRequest(first=10), as_rows=True)
    assert [row.id for row in page.rows] == [own.id]
    assert [row.id for row in rows.rows] == [own.id]
    assert await count(db, statement) == 1
    parents = [own.region_id, foreign.region_id]
    nested = await fetch_grouped_pages(
        db, Participant, statement, Participant.region_id, parents, BY_REFERENCE, PageRequest(first=5)
    )
    assert [row.id for row in nested[own.region_id].rows] == [own.id]
    assert nested[foreign.region_id].rows == []
    assert await grouped_counts(db, statement, Participant.region_id, parents) == {
        own.region_id: 1,
        foreign.region_id: 0,
    }


async def test_reads_derived_from_checked_statements_are_accepted_and_others_refused(db: AsyncSession) -> None:
    """A count over a ``readable`` subquery is safe by construction; joining a raw tenant table to it is not."""
    principal, own, _foreign = await two_organisations(db)
    install_guard(db)
    groups = readable(principal, Group).subquery()
    assert (await db.execute(sa.select(sa.func.count()).select_from(groups))).scalar_one() == 0
    with pytest.raises(AccessBypassError, match="regions"):
        await db.execute(sa.select(groups.c.id, Region.name).join(Region, Region.id == groups.c.region_id))
    with pytest.raises(AccessBypassError, match="participants"):
        await db.execute(sa.select(sa.func.count()).select_from(sa.select(Participant).subquery()))
    checked_rows = await access.execute(db, sa.select(readable(principal, Participant).subquery().c.id))
    assert checked_rows.scalars().all() == [own.id]


async def test_the_access_executors_refuse_unchecked_statements_on_any_session(db: AsyncSession) -> None:
    """Not only request sessions: the access module's own executors check what they are given."""
    await two_organisations(db)
    with pytest.raises(AccessBypassError):
        await access.execute(db, sa.select(Participant.id))
    with pytest.raises(AccessBypassError):
        await access.fetch_rows(db, sa.select(Participant.id))


async def test_core_execution_on_a_guarded_session_is_checked(db: AsyncSession) -> None:
    """The ORM hook never sees ``connection.execute``; the request session's connection refuses it too."""
    principal, own, _foreign = await two_organisations(db)
    install_guard(db)
    connection = await db.connection()
    with pytest.raises(AccessBypassError, match="participants"):
        await connection.execute(sa.select(Participant.id))
    with pytest.raises(AccessBypassError, match="participants"):
        await connection.execute(sa.union(sa.select(Participant.id), sa.select(Participant.id)))
    checked = readable(principal, Participant).with_only_columns(Participant.id)
    assert (await connection.execute(checked)).scalars().all() == [own.id]


async def test_the_guard_leaves_the_connection_when_the_sessions_transaction_ends(
    session_maker: Any, connection: AsyncConnection
) -> None:
    """A pooled connection goes on to serve others (the CLI, the authorization server): no guard follows it."""
    async with session_maker() as session:
        install_guard(session)
        guarded = await session.connection()
        with pytest.raises(AccessBypassError):
            await guarded.execute(sa.select(Participant.id))
    assert (await connection.execute(sa.select(sa.func.count()).select_from(Participant))).scalar_one() >= 0


async def test_compiled_reads_come_only_from_checked_statements(db: AsyncSession) -> None:
    principal, _own, _foreign = await two_organisations(db)
    connection = await db.connection()
    with pytest.raises(AccessBypassError):
        access.compile_read(sa.select(Participant.id), connection.dialect)
    forged = CompiledRead("SELECT id FROM participants", ())
    with pytest.raises(AccessBypassError):
        await access.fetch_compiled(connection, forged)
    with pytest.raises(AccessBypassError):
        await anext(access.cursor_batches(connection, forged, 10))
    read = access.compile_read(readable(principal, Participant).with_only_columns(Participant.id), connection.dialect)
    assert len(await access.fetch_compiled(connection, read)) == 1


def test_a_trusted_statement_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        access.trusted(sa.select(Participant.id), reason=" ")
    assert access.is_checked(access.trusted(sa.select(Participant.id), reason="a test of the marker"))
    assert not access.is_checked(sa.select(Participant.id))


async def test_export_sessions_are_guarded(
    db: AsyncSession, session_maker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An evaluator's export reads in its own sessions: those refuse unchecked reads like a request's does."""
    from programme_api.domain import exports

    from .factories import evaluator_for, make_project

    organisation = await make_organisation(db)
    project = await make_project(db, organisation)
    await db.commit()

    async def unfiltered_instruments(session: AsyncSession, _project: Any) -> list[Any]:
        return list((await session.execute(sa.select(Participant))).scalars())

    monkeypatch.setattr(exports, "project_instruments", unfiltered_instruments)
    with pytest.raises(AccessBypassError, match="participants"):
        await exports.prepare_export(session_maker, evaluator_for(organisation, project))
