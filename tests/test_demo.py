"""``demo load``: the data set the contract promises, idempotent, deterministic and consistent with the rules.

Most tests pin ``today`` to a Monday whose 12-week window crosses the October clock change, so the wall-clock
test sees both GMT and BST sessions; one load uses the real date, as the CLI does.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.config import Settings
from programme_api.db import create_engine, session_factory
from programme_api.domain.demo import EVALUATION_SLUG, ORGANISATION_SLUGS, ensure_shipped_instruments, load_demo
from programme_api.domain.instruments import SHIPPED_INSTRUMENTS
from programme_api.domain.models import (
    Attendance,
    AttendanceStatus,
    AuditEvent,
    Base,
    Consent,
    ConsentPurpose,
    DeliveryMode,
    Enrolment,
    EnrolmentStatus,
    EvaluationProject,
    EvaluationProjectOrganisation,
    Facilitator,
    FacilitatorAssignment,
    Group,
    GroupSession,
    GroupStatus,
    Organisation,
    Participant,
    Region,
    Role,
    SafeguardingAlert,
    ScheduleFrequency,
    SessionFacilitator,
    SessionStatus,
    SurveyInstrument,
    SurveyResponse,
    Timepoint,
    Topic,
    User,
    UserRegion,
)
from programme_api.domain.scoring import score_answers

from .conftest import empty_database_url, migrate

TODAY = date(2026, 11, 23)
"""A Monday: sessions run 2026-09-14 to 2026-12-06, across the clocks going back on 2026-10-25."""
LONDON = ZoneInfo("Europe/London")


@pytest.fixture
async def demo(db: AsyncSession) -> str:
    return await load_demo(db, today=TODAY)


async def count(db: AsyncSession, model: type[Base], *where: Any) -> int:
    return int(await db.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0)


async def table_counts(db: AsyncSession) -> dict[str, int]:
    return {
        table.name: int(await db.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
        for table in Base.metadata.sorted_tables
    }


async def test_load_meets_the_contract_minimums(db: AsyncSession, demo: str) -> None:
    assert demo.startswith("demo data loaded:")
    organisations = (await db.scalars(sa.select(Organisation).order_by(Organisation.slug))).all()
    assert sorted(org.slug for org in organisations) == sorted(ORGANISATION_SLUGS)
    assert {org.timezone for org in organisations} == {"Europe/London"}
    for org in organisations:
        assert await count(db, Region, Region.organisation_id == org.id) == 3
    assert await count(db, Group) >= 40
    assert await count(db, Participant) >= 400
    groups = (await db.scalars(sa.select(Group))).all()
    assert {g.topic for g in groups} == set(Topic)
    assert {g.delivery_mode for g in groups} == set(DeliveryMode)
    assert {g.schedule_frequency for g in groups} == set(ScheduleFrequency)
    assert {g.status for g in groups} == set(GroupStatus)
    assert -1 in {g.schedule_week_of_month for g in groups}
    for group in groups:
        assert (group.venue is None) == (group.delivery_mode is DeliveryMode.ONLINE), group.name

    starts = (await db.scalars(sa.select(GroupSession.starts_at))).all()
    assert timedelta(weeks=11) < max(starts) - min(starts) < timedelta(weeks=12)
    cancelled = (await db.scalars(sa.select(GroupSession).where(GroupSession.status == SessionStatus.CANCELLED))).all()
    assert cancelled
    assert all(session.cancellation_reason for session in cancelled)
    assert await count(db, GroupSession, GroupSession.status == SessionStatus.SCHEDULED) > 0
    assert await count(db, GroupSession, GroupSession.dropin_count > 0) > 0

    soon = TODAY + timedelta(days=30)
    assert await count(db, Facilitator, Facilitator.background_check_expires_on < TODAY) >= 2
    assert await count(db, Facilitator, Facilitator.background_check_expires_on.between(TODAY, soon)) >= 2
    assert await count(db, Facilitator, Facilitator.training_completed_on.is_(None)) >= 2
    assert await count(db, Consent, Consent.withdrawn_at.is_not(None), Consent.purpose == "evaluation") > 0
    for status in EnrolmentStatus:
        assert await count(db, Enrolment, Enrolment.status == status) > 0
    for timepoint in (Timepoint.BASELINE, Timepoint.FOLLOW_UP_1, Timepoint.EXIT):
        assert await count(db, SurveyResponse, SurveyResponse.timepoint == timepoint) > 0
    assert await count(db, SafeguardingAlert) > 0
    assert await count(db, SafeguardingAlert, SafeguardingAlert.acknowledged_at.is_(None)) > 0
    assert await count(db, AuditEvent, AuditEvent.action == "demo.load", AuditEvent.actor_type == "system") == 2


async def test_people_roles_and_evaluation_project(db: AsyncSession, demo: str) -> None:
    users = (await db.scalars(sa.select(User))).all()
    for org_id in {user.organisation_id for user in users}:
        assert {u.role for u in users if u.organisation_id == org_id} == set(Role)
    regions_per_coordinator = Counter(
        (await db.scalars(sa.select(UserRegion.user_id).join(User, User.id == UserRegion.user_id))).all()
    )
    assert 2 in regions_per_coordinator.values()
    linked = (await db.scalars(sa.select(Facilitator).where(Facilitator.user_id.is_not(None)))).all()
    assert len(linked) == 2
    for facilitator in linked:
        assert await count(db, FacilitatorAssignment, FacilitatorAssignment.facilitator_id == facilitator.id) > 0
    assert await count(db, Facilitator, Facilitator.training_completed_on.is_(None)) > 0
    untrained_assigned = (
        sa.select(FacilitatorAssignment).join(Facilitator).where(Facilitator.training_completed_on.is_(None))
    )
    assert (await db.execute(untrained_assigned)).first() is None

    project = await db.scalar(sa.select(EvaluationProject).where(EvaluationProject.slug == EVALUATION_SLUG))
    assert project is not None
    assert project.instrument_codes == ["swemwbs", "phq9", "hhi"]
    assert project.consent_purpose is ConsentPurpose.EVALUATION
    assert project.suppression_threshold == 10
    assert len(project.pseudonym_key) == 32
    covered = await count(
        db, EvaluationProjectOrganisation, EvaluationProjectOrganisation.evaluation_project_id == project.id
    )
    assert covered == 2
    first_session = await db.scalar(sa.select(sa.func.min(GroupSession.starts_at)))
    assert first_session is not None
    assert project.starts_on <= first_session.date()
    assert project.ends_on >= TODAY
    participants = await count(db, Participant)
    assert await count(db, Consent, Consent.purpose == ConsentPurpose.SERVICE_DELIVERY) == participants


async def test_second_load_changes_nothing(db: AsyncSession) -> None:
    await load_demo(db)
    before = await table_counts(db)
    summary = await load_demo(db)
    assert "already loaded" in summary
    assert await table_counts(db) == before


async def test_shipped_instruments_are_inserted_once(db: AsyncSession) -> None:
    first = await ensure_shipped_instruments(db)
    again = await ensure_shipped_instruments(db)
    assert first == again
    assert set(first) == {shipped.code for shipped in SHIPPED_INSTRUMENTS}
    assert await count(db, SurveyInstrument, SurveyInstrument.organisation_id.is_(None)) == len(SHIPPED_INSTRUMENTS)


async def test_sessions_keep_the_schedules_local_wall_clock_time(db: AsyncSession, demo: str) -> None:
    rows = (await db.execute(sa.select(GroupSession, Group).join(Group, Group.id == GroupSession.group_id))).all()
    offsets = set()
    for session, group in rows:
        local = session.starts_at.astimezone(LONDON)
        offsets.add(local.utcoffset())
        assert local.time() == group.schedule_start_time, group.name
        assert local.weekday() == group.schedule_weekday, group.name
        assert session.ends_at - session.starts_at == timedelta(minutes=group.schedule_duration_minutes or 0)
        past = local.date() < TODAY
        expected = SessionStatus.HELD if past else SessionStatus.SCHEDULED
        assert session.status in {expected, SessionStatus.CANCELLED}
    assert offsets == {timedelta(0), timedelta(hours=1)}


async def test_registers_only_for_held_sessions_with_facilitators_present(db: AsyncSession, demo: str) -> None:
    not_held = sa.select(Attendance).join(GroupSession).where(GroupSession.status != SessionStatus.HELD)
    assert (await db.execute(not_held)).first() is None
    held = set((await db.scalars(sa.select(GroupSession.id).where(GroupSession.status == SessionStatus.HELD))).all())
    staffed = set((await db.scalars(sa.select(SessionFacilitator.session_id))).all())
    assert staffed == held
    marks = Counter((await db.scalars(sa.select(Attendance.status))).all())
    assert marks[AttendanceStatus.PRESENT] > 0.6 * sum(marks.values())
    assert marks[AttendanceStatus.EXCUSED] > 0
    assert marks[AttendanceStatus.UNEXCUSED] > 0


async def test_waitlists_only_for_full_groups(db: AsyncSession, demo: str) -> None:
    active = (
        sa.select(Enrolment.group_id, sa.func.count().label("active"))
        .where(Enrolment.status == EnrolmentStatus.ACTIVE)
        .group_by(Enrolment.group_id)
        .subquery()
    )
    waitlisted_groups = (
        sa.select(Group.capacity, active.c.active)
        .join(active, active.c.group_id == Group.id)
        .where(Group.id.in_(sa.select(Enrolment.group_id).where(Enrolment.status == EnrolmentStatus.WAITLISTED)))
    )
    rows = (await db.execute(waitlisted_groups)).all()
    assert rows
    assert all(capacity == members for capacity, members in rows)


async def test_stored_scores_are_what_scoring_computes(db: AsyncSession, demo: str) -> None:
    rows = (
        await db.execute(
            sa.select(SurveyResponse, SurveyInstrument.definition, SurveyInstrument.code).join(SurveyInstrument)
        )
    ).all()
    alerted = set((await db.scalars(sa.select(SafeguardingAlert.response_id))).all())
    scores: dict[tuple[str, Timepoint], list[float]] = {}
    for response, definition, code in rows:
        result = score_answers(definition, response.answers)
        assert (response.raw_score, response.score, response.band) == (result.raw_score, result.score, result.band)
        assert (response.id in alerted) == bool(result.risk_items)
        scores.setdefault((code, response.timepoint), []).append(result.score)

    def mean(code: str, timepoint: Timepoint) -> float:
        return sum(scores[code, timepoint]) / len(scores[code, timepoint])

    assert mean("swemwbs", Timepoint.FOLLOW_UP_1) > mean("swemwbs", Timepoint.BASELINE)
    assert mean("hhi", Timepoint.FOLLOW_UP_1) > mean("hhi", Timepoint.BASELINE)
    assert mean("phq9", Timepoint.FOLLOW_UP_1) < mean("phq9", Timepoint.BASELINE)


async def test_every_row_belongs_to_the_organisation_that_owns_its_parent(db: AsyncSession, demo: str) -> None:
    """A row whose ``organisation_id`` differs from its parent's would leak across tenants."""
    pairs = [
        (Region, Organisation, Region.organisation_id, Organisation.id, Region.organisation_id == Organisation.id),
        (Group, Region, Group.organisation_id, Region.organisation_id, Group.region_id == Region.id),
        (Participant, Region, Participant.organisation_id, Region.organisation_id, Participant.region_id == Region.id),
        (Enrolment, Group, Enrolment.organisation_id, Group.organisation_id, Enrolment.group_id == Group.id),
        (Enrolment, Participant, Enrolment.organisation_id, Participant.organisation_id,
         Enrolment.participant_id == Participant.id),
        (GroupSession, Group, GroupSession.organisation_id, Group.organisation_id, GroupSession.group_id == Group.id),
        (Attendance, GroupSession, Attendance.organisation_id, GroupSession.organisation_id,
         Attendance.session_id == GroupSession.id),
        (Attendance, Participant, Attendance.organisation_id, Participant.organisation_id,
         Attendance.participant_id == Participant.id),
        (SessionFacilitator, Facilitator, SessionFacilitator.organisation_id, Facilitator.organisation_id,
         SessionFacilitator.facilitator_id == Facilitator.id),
        (FacilitatorAssignment, Group, FacilitatorAssignment.organisation_id, Group.organisation_id,
         FacilitatorAssignment.group_id == Group.id),
        (Consent, Participant, Consent.organisation_id, Participant.organisation_id,
         Consent.participant_id == Participant.id),
        (Consent, User, Consent.organisation_id, User.organisation_id, Consent.recorded_by_user_id == User.id),
        (SurveyResponse, Group, SurveyResponse.organisation_id, Group.organisation_id,
         SurveyResponse.group_id == Group.id),
        (SafeguardingAlert, SurveyResponse, SafeguardingAlert.organisation_id, SurveyResponse.organisation_id,
         SafeguardingAlert.response_id == SurveyResponse.id),
        (UserRegion, Region, UserRegion.organisation_id, Region.organisation_id, UserRegion.region_id == Region.id),
    ]  # fmt: skip
    for child, parent, child_org, parent_org, link in pairs:
        mismatched = sa.select(sa.func.count()).select_from(child).join(parent, link).where(child_org != parent_org)
        assert await db.scalar(mismatched) == 0, f"{child.__name__} -> {parent.__name__}"


async def fingerprint(db: AsyncSession) -> dict[str, Any]:
    """What must not change between two loads on the same day: names, references, schedules and registers."""
    attendance = await db.execute(
        sa.select(Group.name, Attendance.status, sa.func.count())
        .join(GroupSession, GroupSession.group_id == Group.id)
        .join(Attendance, Attendance.session_id == GroupSession.id)
        .group_by(Group.name, Attendance.status)
    )
    sessions = await db.execute(sa.select(GroupSession.starts_at, GroupSession.status, GroupSession.dropin_count))
    responses = await db.execute(sa.select(Participant.reference, SurveyResponse.timepoint, SurveyResponse.score).join(
        Participant, Participant.id == SurveyResponse.participant_id
    ))  # fmt: skip
    participants = await db.execute(sa.select(Participant.reference, Participant.preferred_name))
    return {
        "groups": sorted((await db.scalars(sa.select(Group.name))).all()),
        "participants": sorted(participants.all()),
        "attendance": sorted((name, str(status), n) for name, status, n in attendance.all()),
        "sessions": sorted((starts.isoformat(), str(status), n) for starts, status, n in sessions.all()),
        "responses": sorted((ref, str(timepoint), score) for ref, timepoint, score in responses.all()),
        "consents": await count(db, Consent),
    }


async def test_loads_on_the_same_day_are_identical(db: AsyncSession, demo: str, tmp_path: Path) -> None:
    url = await empty_database_url("sqlite", tmp_path, "demo_again")
    engine = create_engine(Settings(database_url=url))
    try:
        await migrate(engine)
        async with session_factory(engine)() as other:
            await load_demo(other, today=TODAY)
            await other.commit()
            expected = await fingerprint(other)
    finally:
        await engine.dispose()
    actual = await fingerprint(db)
    assert actual == expected
    assert len(actual["groups"]) == len(set(actual["groups"]))


async def test_default_anchor_is_today_in_london(db: AsyncSession) -> None:
    await load_demo(db)
    today = datetime.now(LONDON).date()
    latest = await db.scalar(sa.select(sa.func.max(GroupSession.starts_at)))
    assert latest is not None
    assert 0 <= (latest.astimezone(LONDON).date() - today).days <= 13
