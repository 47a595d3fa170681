"""Factory functions that build rows with sensible defaults; every argument can be overridden."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import (
    ActorType,
    Attendance,
    AttendanceStatus,
    DeliveryMode,
    Enrolment,
    EnrolmentStatus,
    Facilitator,
    FacilitatorAssignment,
    FacilitatorRole,
    Group,
    GroupSession,
    Organisation,
    Participant,
    Region,
    Role,
    ScheduleFrequency,
    SessionStatus,
    Topic,
)
from programme_api.domain.principal import ALL_SCOPES, ROLE_SCOPES, Principal

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


async def add(db: AsyncSession, row: Any) -> Any:
    db.add(row)
    await db.flush()
    return row


async def make_organisation(db: AsyncSession, **overrides: Any) -> Organisation:
    values: dict[str, Any] = {"slug": unique("org"), "name": "Test Organisation", "timezone": "Europe/London"}
    return await add(db, Organisation(**(values | overrides)))  # type: ignore[no-any-return]


async def make_region(db: AsyncSession, organisation: Organisation, **overrides: Any) -> Region:
    slug = overrides.pop("slug", unique("region"))
    values = {"organisation_id": organisation.id, "slug": slug, "name": f"Region {slug}"}
    return await add(db, Region(**(values | overrides)))  # type: ignore[no-any-return]


async def make_group(db: AsyncSession, region: Region, **overrides: Any) -> Group:
    values: dict[str, Any] = {
        "organisation_id": region.organisation_id,
        "region_id": region.id,
        "name": unique("Group"),
        "topic": Topic.DEPRESSION,
        "delivery_mode": DeliveryMode.IN_PERSON,
        "venue": "Community hall",
        "capacity": 12,
    }
    return await add(db, Group(**(values | overrides)))  # type: ignore[no-any-return]


def weekly_schedule(weekday: int = 2, start: time = time(19, 0), anchor: date = date(2026, 1, 1)) -> dict[str, Any]:
    return {
        "schedule_frequency": ScheduleFrequency.WEEKLY,
        "schedule_weekday": weekday,
        "schedule_start_time": start,
        "schedule_duration_minutes": 90,
        "schedule_anchor_date": anchor,
    }


async def make_session(db: AsyncSession, group: Group, **overrides: Any) -> GroupSession:
    starts = overrides.pop("starts_at", datetime(2026, 3, 4, 19, tzinfo=UTC) + timedelta(minutes=next(_counter)))
    values: dict[str, Any] = {
        "organisation_id": group.organisation_id,
        "group_id": group.id,
        "starts_at": starts,
        "ends_at": starts + timedelta(minutes=90),
        "status": SessionStatus.HELD,
    }
    return await add(db, GroupSession(**(values | overrides)))  # type: ignore[no-any-return]


async def make_facilitator(db: AsyncSession, organisation: Organisation, **overrides: Any) -> Facilitator:
    values: dict[str, Any] = {
        "organisation_id": organisation.id,
        "display_name": unique("Facilitator"),
        "training_completed_on": date(2025, 1, 10),
        "background_check_expires_on": date.today() + timedelta(days=365),
    }
    return await add(db, Facilitator(**(values | overrides)))  # type: ignore[no-any-return]


async def assign(
    db: AsyncSession, group: Group, facilitator: Facilitator, role: FacilitatorRole = FacilitatorRole.LEAD
) -> FacilitatorAssignment:
    row = FacilitatorAssignment(
        organisation_id=group.organisation_id, group_id=group.id, facilitator_id=facilitator.id, role=role
    )
    return await add(db, row)  # type: ignore[no-any-return]


async def make_participant(db: AsyncSession, region: Region, **overrides: Any) -> Participant:
    reference = overrides.pop("reference", unique("P"))
    values: dict[str, Any] = {
        "organisation_id": region.organisation_id,
        "region_id": region.id,
        "reference": reference,
        "preferred_name": f"Person {reference}",
        "contact_email": f"{reference.lower()}@example.org",
    }
    return await add(db, Participant(**(values | overrides)))  # type: ignore[no-any-return]


async def enrol(
    db: AsyncSession, participant: Participant, group: Group, status: EnrolmentStatus = EnrolmentStatus.ACTIVE
) -> Enrolment:
    now = datetime.now(UTC)
    row = Enrolment(
        organisation_id=group.organisation_id,
        participant_id=participant.id,
        group_id=group.id,
        status=status,
        requested_at=now,
        activated_at=now if status is EnrolmentStatus.ACTIVE else None,
    )
    return await add(db, row)  # type: ignore[no-any-return]


async def record(
    db: AsyncSession, session: GroupSession, participant: Participant, status: AttendanceStatus
) -> Attendance:
    row = Attendance(
        organisation_id=session.organisation_id, session_id=session.id, participant_id=participant.id, status=status
    )
    return await add(db, row)  # type: ignore[no-any-return]


def principal_for(
    organisation: Organisation,
    *,
    scopes: set[str] | frozenset[str] | None = None,
    regions: list[Region] | None = None,
    role: Role | None = Role.ORG_ADMIN,
    facilitator: Facilitator | None = None,
) -> Principal:
    granted = frozenset(scopes) if scopes is not None else (ROLE_SCOPES[role] if role else ALL_SCOPES)
    return Principal(
        subject=f"test:{uuid.uuid4()}",
        actor_type=ActorType.USER,
        organisation_id=organisation.id,
        scopes=granted,
        region_ids=frozenset(r.id for r in regions) if regions is not None else None,
        role=role,
        user_id=None,
        facilitator_id=facilitator.id if facilitator else None,
    )


# Outcomes: consents, instruments, responses, evaluation projects (added by the outcomes slice).


async def make_consent(db: AsyncSession, participant: Participant, **overrides: Any) -> Any:
    from programme_api.domain.models import Consent, ConsentPurpose

    values: dict[str, Any] = {
        "organisation_id": participant.organisation_id,
        "participant_id": participant.id,
        "purpose": ConsentPurpose.EVALUATION,
        "form_version": "evaluation-v1",
        "given_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return await add(db, Consent(**(values | overrides)))


async def shipped_instrument_ids(db: AsyncSession) -> dict[str, uuid.UUID]:
    from programme_api.domain.surveys import ensure_shipped_instruments

    return await ensure_shipped_instruments(db)


async def make_response(db: AsyncSession, participant: Participant, group: Group, **overrides: Any) -> Any:
    """A scored PHQ-9 response (all answers ``value``) unless overridden."""
    from programme_api.domain.instruments import shipped_instrument
    from programme_api.domain.models import SurveyResponse, Timepoint
    from programme_api.domain.scoring import score_answers

    code = overrides.pop("code", "phq9")
    value = overrides.pop("value", 1)
    instrument_id = (await shipped_instrument_ids(db))[code]
    definition = shipped_instrument(code).definition
    answers = overrides.pop("answers", {item["key"]: value for item in definition["items"]})
    scored = score_answers(definition, answers)
    values: dict[str, Any] = {
        "organisation_id": participant.organisation_id,
        "participant_id": participant.id,
        "instrument_id": instrument_id,
        "group_id": group.id,
        "timepoint": Timepoint.BASELINE,
        "answers": answers,
        "raw_score": scored.raw_score,
        "score": scored.score,
        "band": scored.band,
        "completed_at": datetime(2026, 3, 4, 12, tzinfo=UTC),
    }
    return await add(db, SurveyResponse(**(values | overrides)))


async def make_project(db: AsyncSession, organisation: Organisation, **overrides: Any) -> Any:
    import os

    from programme_api.domain.models import ConsentPurpose, EvaluationProject, EvaluationProjectOrganisation

    values: dict[str, Any] = {
        "organisation_id": organisation.id,
        "slug": unique("eval"),
        "name": "Evaluation",
        "instrument_codes": ["phq9", "swemwbs"],
        "starts_on": date(2026, 1, 1),
        "ends_on": date(2026, 12, 31),
        "consent_purpose": ConsentPurpose.EVALUATION,
        "suppression_threshold": 1,
        "pseudonym_key": os.urandom(32),
    }
    project = await add(db, EvaluationProject(**(values | overrides)))
    await add(db, EvaluationProjectOrganisation(organisation_id=organisation.id, evaluation_project_id=project.id))
    return project


def evaluator_for(organisation: Organisation, project: Any, **overrides: Any) -> Principal:
    import dataclasses

    principal = principal_for(organisation, role=Role.EVALUATOR, **overrides)
    return dataclasses.replace(principal, evaluation_project_id=project.id)


# Writes: global IDs of rows, and row counts that prove a refused mutation wrote nothing (added by the writes slice).

WRITE_TABLES = (
    "regions",
    "groups",
    "group_sessions",
    "facilitator_assignments",
    "participants",
    "enrolments",
    "attendance",
    "audit_events",
    "idempotency_records",
)


def gid(row: Any) -> str:
    """The global ID the API gives ``row`` (attendance rows are ``AttendanceRecord`` nodes)."""
    from programme_api.schema.relay import to_global_id

    type_name = "AttendanceRecord" if isinstance(row, Attendance) else type(row).__name__
    return str(to_global_id(type_name, row.id))


async def row_counts(db: AsyncSession) -> dict[str, int]:
    """Rows per table that mutations write to, audit events and idempotency records included."""
    import sqlalchemy as sa

    counts: dict[str, int] = {}
    for table in WRITE_TABLES:
        counts[table] = int((await db.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one())
    return counts


async def audit_events(db: AsyncSession, action: str | None = None) -> list[Any]:
    """Audit events, oldest first, optionally of one action."""
    import sqlalchemy as sa

    from programme_api.domain.models import AuditEvent

    statement = sa.select(AuditEvent).order_by(AuditEvent.occurred_at, AuditEvent.id)
    if action is not None:
        statement = statement.where(AuditEvent.action == action)
    return list((await db.execute(statement.execution_options(populate_existing=True))).scalars())


async def become_unprivileged_role(connection: Any, grants: str) -> str:
    """Switch the test's transaction to a new non-owner role (as the production application role connects),
    so row-level security applies; ``grants`` is what it may do, e.g. ``SELECT ON regions``."""
    import secrets

    import sqlalchemy as sa

    role = f"programme_rls_probe_{secrets.token_hex(4)}"
    await connection.execute(sa.text(f'CREATE ROLE "{role}" NOLOGIN'))
    await connection.execute(sa.text(f'GRANT {grants} TO "{role}"'))
    await connection.execute(sa.text(f'SET LOCAL ROLE "{role}"'))
    return role
