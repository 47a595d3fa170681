"""The access module: row filters per principal, and the guard that refuses queries that bypass it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.access import AccessBypassError, install_guard, readable
from programme_api.domain.errors import DomainError
from programme_api.domain.models import Group, GroupSession, Participant, Role

from .factories import (
    assign,
    enrol,
    make_facilitator,
    make_group,
    make_organisation,
    make_participant,
    make_region,
    make_session,
    principal_for,
)


async def test_guarded_session_refuses_unfiltered_selects_on_tenant_tables(db: AsyncSession) -> None:
    install_guard(db)
    with pytest.raises(AccessBypassError, match="groups"):
        await db.execute(sa.select(Group))
    with pytest.raises(AccessBypassError, match="group_sessions"):
        await db.execute(sa.select(sa.func.count()).select_from(GroupSession))
    with pytest.raises(AccessBypassError):
        await db.execute(sa.select(Participant.id).where(Participant.id.in_(sa.select(Group.id))))
    assert (await db.execute(sa.select(sa.literal(1)))).scalar_one() == 1


async def test_readable_statements_pass_the_guard(db: AsyncSession) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    await make_group(db, region)
    install_guard(db)
    rows = (await db.execute(readable(principal_for(organisation), Group))).scalars().all()
    assert len(rows) == 1


async def test_facilitator_reads_only_their_groups_and_participants(db: AsyncSession) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    mine, other = await make_group(db, region), await make_group(db, region)
    facilitator = await make_facilitator(db, organisation)
    await assign(db, mine, facilitator)
    member, stranger = await make_participant(db, region), await make_participant(db, region)
    await enrol(db, member, mine)
    await enrol(db, stranger, other)
    await make_session(db, mine)
    await make_session(db, other)
    me = principal_for(organisation, role=Role.FACILITATOR, facilitator=facilitator)

    groups = (await db.execute(readable(me, Group))).scalars().all()
    participants = (await db.execute(readable(me, Participant))).scalars().all()
    sessions = (await db.execute(readable(me, GroupSession))).scalars().all()
    assert [g.id for g in groups] == [mine.id]
    assert [p.id for p in participants] == [member.id]
    assert {s.group_id for s in sessions} == {mine.id}


async def test_readable_checks_scope_before_building(db: AsyncSession) -> None:
    organisation = await make_organisation(db)
    with pytest.raises(DomainError) as caught:
        readable(principal_for(organisation, scopes={"programme:read"}), Participant)
    assert caught.value.code == "INSUFFICIENT_SCOPE"


async def test_erased_participants_are_never_read(db: AsyncSession) -> None:
    from datetime import UTC, datetime

    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    await make_participant(db, region, erased_at=datetime.now(UTC), preferred_name=None)
    assert (await db.execute(readable(principal_for(organisation), Participant))).scalars().all() == []
