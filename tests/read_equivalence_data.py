"""The data set the read-equivalence test asks about: small, but with every shape a read path can get wrong.

Lists longer than a page (30 sessions, 24 participants against the default page of 20), several groups per
region (a nested list under two parents that share a region is where rows were repeated before), a
facilitator leading groups in two regions, sessions held, cancelled and scheduled with attendance, enrolments
active, waitlisted and left, consents given and withdrawn, survey responses with a safeguarding alert, an
evaluation project, and a second organisation whose IDs must stay unreachable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import (
    ActorType,
    AttendanceStatus,
    ConsentPurpose,
    DeliveryMode,
    EnrolmentStatus,
    FacilitatorRole,
    GroupStatus,
    Role,
    SafeguardingAlert,
    ScheduleFrequency,
    SessionStatus,
    Timepoint,
    Topic,
)
from programme_api.domain.principal import Principal

from .factories import (
    add,
    assign,
    enrol,
    evaluator_for,
    gid,
    make_consent,
    make_facilitator,
    make_group,
    make_organisation,
    make_participant,
    make_project,
    make_region,
    make_response,
    make_session,
    principal_for,
    record,
    weekly_schedule,
)

PRINCIPALS = ("org_admin", "region_client", "facilitator", "evaluator")

# Sessions per group (regions "north" 4 groups, "south" 3); group 7 has none.
SESSIONS_PER_GROUP = (8, 6, 5, 2, 6, 3, 0)
GROUP_NAMES = (
    "Tuesday Evening Circle",
    "Online Anxiety Support",
    "Carers Together",
    "Bereavement Cafe",
    "Tuesday Morning Walk",
    "Online Loneliness Group",
    "New Parents Circle",
)
MARKS = (AttendanceStatus.PRESENT, AttendanceStatus.PRESENT, AttendanceStatus.EXCUSED, AttendanceStatus.UNEXCUSED)


@dataclass
class DataSet:
    """What was built: the principals that ask, and the IDs and words queries may carry."""

    principals: dict[str, Principal]
    ids: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    # The evaluation project's key: its cursors are sealed with a fresh nonce each time, so two answers
    # are compared on what the cursors hold, not on their bytes.
    sealed_cursor_key: bytes = b""


async def build(db: AsyncSession) -> DataSet:
    organisation = await make_organisation(db, name="Difftest Peer Support", slug="difftest-main")
    north = await make_region(db, organisation, slug="north", name="North")
    south = await make_region(db, organisation, slug="south", name="South")
    empty = await make_region(db, organisation, slug="empty", name="Empty")
    rows: list[Any] = [organisation, north, south, empty]

    today = date.today()
    facilitators = [
        await make_facilitator(db, organisation, display_name="Ada Compliant"),
        await make_facilitator(
            db, organisation, display_name="Ben Expiring", background_check_expires_on=today + timedelta(days=10)
        ),
        await make_facilitator(
            db, organisation, display_name="Cy Expired", background_check_expires_on=today - timedelta(days=3)
        ),
        await make_facilitator(db, organisation, display_name="Di Untrained", training_completed_on=None),
        await make_facilitator(db, organisation, display_name="Ed Compliant"),
    ]
    rows += facilitators

    topics, modes = list(Topic), list(DeliveryMode)
    statuses = (GroupStatus.ACTIVE,) * 5 + (GroupStatus.PAUSED, GroupStatus.CLOSED)
    groups = []
    for number, name in enumerate(GROUP_NAMES):
        region = north if number < 4 else south
        schedule: dict[str, Any] = weekly_schedule(weekday=number % 7, start=time(18 + number % 3, 30))
        if number == 2:
            schedule |= {"schedule_frequency": ScheduleFrequency.MONTHLY, "schedule_week_of_month": -1}
        elif number in (3, 6):
            schedule = {}
        groups.append(await make_group(
            db, region, name=name, topic=topics[number % len(topics)], delivery_mode=modes[number % len(modes)],
            status=statuses[number], capacity=3 + number % 3, venue=None if number % 3 == 1 else "Library",
            **schedule,
        ))  # fmt: skip
    rows += groups

    # Ada leads in both regions (the facilitator principal), Ben and Ed share groups, Cy co-facilitates.
    for group_number, facilitator_number, role in (
        (0, 0, FacilitatorRole.LEAD), (1, 0, FacilitatorRole.LEAD), (4, 0, FacilitatorRole.CO_FACILITATOR),
        (0, 2, FacilitatorRole.CO_FACILITATOR), (2, 1, FacilitatorRole.LEAD), (4, 1, FacilitatorRole.LEAD),
        (3, 4, FacilitatorRole.LEAD), (5, 4, FacilitatorRole.LEAD), (1, 4, FacilitatorRole.CO_FACILITATOR),
    ):  # fmt: skip
        await assign(db, groups[group_number], facilitators[facilitator_number], role)

    people = []
    for number in range(24):
        region = north if number < 14 else south
        people.append(await make_participant(db, region, reference=f"DT-{number:03d}",
                                             contact_phone=None if number % 4 else f"0770090{number:04d}"))  # fmt: skip
    rows += people

    enrolled: dict[int, list[Any]] = {number: [] for number in range(len(groups))}
    enrolments = []
    for number, person in enumerate(people):
        home = range(4) if number < 14 else range(4, 7)
        for group_number in (home[number % len(home)], home[(number + 1) % len(home)])[: 1 + number % 2]:
            status = (EnrolmentStatus.ACTIVE, EnrolmentStatus.ACTIVE, EnrolmentStatus.WAITLISTED,
                      EnrolmentStatus.LEFT)[number % 4]  # fmt: skip
            enrolments.append(await enrol(db, person, groups[group_number], status))
            if status is not EnrolmentStatus.WAITLISTED:
                enrolled[group_number].append(person)
    rows += enrolments

    sessions, records = [], []
    start = datetime(2026, 1, 6, 18, 30, tzinfo=UTC)
    for group_number, group in enumerate(groups):
        for week in range(SESSIONS_PER_GROUP[group_number]):
            # Fortnightly, but two groups start with a session on each of three days: the first page of
            # sessions then holds several of one group (parents that share a child).
            days = week if group_number in (0, 4) and week < 3 else 14 * week + group_number
            starts = start + timedelta(days=days, minutes=7 * group_number)
            status = SessionStatus.HELD
            if week == 3:
                status = SessionStatus.CANCELLED
            elif week >= 6 or (group_number == 4 and week == 5):
                status = SessionStatus.SCHEDULED  # a year ahead
            session = await make_session(
                db, group, starts_at=starts + (timedelta(days=365) if status is SessionStatus.SCHEDULED else
                                               timedelta()),
                status=status, cancellation_reason="Venue flooded" if status is SessionStatus.CANCELLED else None,
                dropin_count=week % 3 if status is SessionStatus.HELD else 0,
            )  # fmt: skip
            sessions.append(session)
            if status is SessionStatus.HELD:
                for index, person in enumerate(enrolled[group_number]):
                    records.append(await record(db, session, person, MARKS[(index + week) % len(MARKS)]))
    rows += sessions + records

    consents, responses = [], []
    for number, person in enumerate(people[:16]):
        given = datetime(2026, 1, 2, 9, tzinfo=UTC) + timedelta(days=number)
        withdrawn = given + timedelta(days=40) if number % 5 == 4 else None
        consents.append(await make_consent(db, person, given_at=given, withdrawn_at=withdrawn))
        if number % 3 == 0:
            consents.append(await make_consent(db, person, purpose=ConsentPurpose.CONTACT,
                                               form_version="contact-v2", given_at=given))  # fmt: skip
        group = groups[0 if number < 14 else 4] if number % 2 else groups[1 if number < 14 else 5]
        responses.append(await make_response(db, person, group, value=number % 4,
                                             completed_at=given + timedelta(days=3)))  # fmt: skip
        if number % 2 == 0:
            responses.append(await make_response(
                db, person, group, value=(number + 1) % 4, timepoint=Timepoint.FOLLOW_UP_1,
                completed_at=given + timedelta(days=60),
            ))  # fmt: skip
        if number % 4 == 1:
            responses.append(await make_response(db, person, group, code="swemwbs", value=1 + number % 5,
                                                 completed_at=given + timedelta(days=5)))  # fmt: skip
    rows += consents + responses
    alerts = []
    for number, response in enumerate(responses[2:4]):
        alerts.append(await add(db, SafeguardingAlert(
            organisation_id=organisation.id, response_id=response.id, participant_id=response.participant_id,
            group_id=response.group_id, reason="Risk answer on item 9",
            acknowledged_at=datetime(2026, 2, 1, tzinfo=UTC) if number else None,
            acknowledgement_note="Called back" if number else None,
        )))  # fmt: skip
    rows += alerts
    project = await make_project(db, organisation, slug="difftest-evaluation", suppression_threshold=3)

    rows += await foreign_rows(db)
    principals = {
        "org_admin": principal_for(organisation),
        "region_client": dataclasses.replace(
            principal_for(
                organisation,
                role=None,
                regions=[north],
                scopes={"programme:read", "participants:read", "surveys:read", "attendance:write"},
            ),
            actor_type=ActorType.CLIENT,
            subject="client:difftest-booking",
            client_id="difftest-booking",
        ),
        "facilitator": principal_for(organisation, role=Role.FACILITATOR, facilitator=facilitators[0]),
        "evaluator": evaluator_for(organisation, project),
    }
    words = ["Tuesday", "online", "Circle", "North", "DT-00", "Ada"]
    return DataSet(principals, [gid(row) for row in rows], words, project.pseudonym_key)


async def foreign_rows(db: AsyncSession) -> list[Any]:
    """Another organisation's rows: their IDs are asked for and must answer like missing ones on both paths."""
    other = await make_organisation(db, name="Elsewhere", slug="difftest-elsewhere")
    region = await make_region(db, other, slug="north", name="North")
    group = await make_group(db, region, name="Tuesday Evening Circle")
    person = await make_participant(db, region, reference="DT-900")
    session = await make_session(db, group)
    return [other, region, group, person, session, await enrol(db, person, group),
            await record(db, session, person, AttendanceStatus.PRESENT), await make_facilitator(db, other)]  # fmt: skip
