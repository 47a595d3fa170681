"""Organisations, regions, users, facilitators, groups and their schedules: the frame everything hangs on."""

from __future__ import annotations

import random
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from ..models import (
    ConsentPurpose,
    DeliveryMode,
    EvaluationProject,
    EvaluationProjectInvitation,
    EvaluationProjectOrganisation,
    Facilitator,
    FacilitatorAssignment,
    FacilitatorRole,
    Group,
    GroupStatus,
    InvitationStatus,
    Organisation,
    Region,
    Role,
    ScheduleFrequency,
    Topic,
    User,
    UserEmail,
    UserRegion,
)
from ..recurrence import Schedule
from .catalogue import (
    EVALUATED_INSTRUMENTS,
    EVALUATION_SLUG,
    FIRST_NAMES,
    GROUP_STEMS,
    ORGANISATIONS,
    SURNAMES,
    OrganisationSpec,
)
from .common import DEMO_TIMEZONE, IdSource, Period, Row, Rows, rng_for

FACILITATORS_PER_ORGANISATION = 14
PAUSED_GROUPS = (5, 16)
CLOSED_GROUPS = (11,)
NEW_GROUPS = (20,)
"""Group positions (per organisation) that are paused, closed, or started during the demo period."""

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
START_TIMES = (time(10, 0), time(10, 30), time(13, 30), time(14, 0), time(18, 0), time(18, 30), time(19, 0))
MODES = (DeliveryMode.IN_PERSON, DeliveryMode.IN_PERSON, DeliveryMode.ONLINE, DeliveryMode.HYBRID)
FREQUENCIES = (ScheduleFrequency.WEEKLY,) * 4 + (ScheduleFrequency.FORTNIGHTLY,) * 2 + (ScheduleFrequency.MONTHLY,)
CAPACITIES = {DeliveryMode.IN_PERSON: (8, 10, 12, 14), DeliveryMode.ONLINE: (10, 12, 15), DeliveryMode.HYBRID: (12, 14)}

ids = IdSource("structure")


@dataclass(frozen=True)
class GroupPlan:
    """What later stages need to know about a group; ``runs_until`` is the last meeting day of a paused
    or closed group (None while it keeps meeting)."""

    id: uuid.UUID
    key: str
    organisation_id: uuid.UUID
    region_id: uuid.UUID
    coordinator_id: uuid.UUID
    topic: Topic
    mode: DeliveryMode
    capacity: int
    status: GroupStatus
    schedule: Schedule
    runs_until: date | None
    facilitator_ids: tuple[uuid.UUID, ...]


@dataclass
class OrganisationPlan:
    spec: OrganisationSpec
    id: uuid.UUID
    region_ids: list[uuid.UUID] = field(default_factory=list)
    coordinator_by_region: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    groups: list[GroupPlan] = field(default_factory=list)


def build_structure(rows: Rows, period: Period, password_hash: str) -> list[OrganisationPlan]:
    """Both organisations with their regions, people and groups, plus the evaluation project spanning them."""
    project_id = ids()
    plans = [build_organisation(rows, spec, period, password_hash, project_id) for spec in ORGANISATIONS]
    add_evaluation_project(rows, project_id, plans, period)
    return plans


def build_organisation(
    rows: Rows, spec: OrganisationSpec, period: Period, password_hash: str, project_id: uuid.UUID
) -> OrganisationPlan:
    """One tenant: users come before facilitators (one facilitator is a user) and groups (which need
    facilitators and the coordinator of their region)."""
    plan = OrganisationPlan(spec=spec, id=ids())
    rows.add(
        Organisation,
        {"id": plan.id, "slug": spec.slug, "name": spec.name, "timezone": DEMO_TIMEZONE, "suppression_threshold": 10},
    )
    for region in spec.regions:
        region_id = ids()
        plan.region_ids.append(region_id)
        rows.add(Region, {"id": region_id, "organisation_id": plan.id, "slug": region.slug, "name": region.name})
    facilitator_user_id = add_users(rows, plan, password_hash, project_id)
    facilitators = add_facilitators(rows, plan, period, facilitator_user_id)
    rng = rng_for("groups", spec.slug)
    names: set[str] = set()
    for index in range(spec.group_count):
        plan.groups.append(add_group(rows, plan, index, period, facilitators, names, rng))
    return plan


def user_row(plan: OrganisationPlan, email: str, name: str, role: Role, password_hash: str) -> Row:
    """A user row; every demo user shares one password hash, since hashing is deliberately slow."""
    return {
        "id": ids(),
        "organisation_id": plan.id,
        "email": plan.spec.email(email),
        "display_name": name,
        "password_hash": password_hash,
        "role": role,
        "evaluation_project_id": None,
        "is_active": True,
    }


def add_user(rows: Rows, row: Row) -> Row:
    """A user row and its row in the lookup table of emails, which the ORM would write but a bulk insert does not."""
    rows.add(UserEmail, {"email": row["email"], "user_id": row["id"], "organisation_id": row["organisation_id"]})
    return rows.add(User, row)


def add_users(rows: Rows, plan: OrganisationPlan, password_hash: str, project_id: uuid.UUID) -> uuid.UUID:
    """An admin, coordinators (one covering two regions, one covering the third), an evaluator, and a
    facilitator user, whose ID is returned so the first facilitator can be linked to it."""
    spec = plan.spec
    add_user(rows, user_row(plan, "admin", spec.admin_name, Role.ORG_ADMIN, password_hash))
    for coordinator in spec.coordinators:
        email = f"coordinator.{coordinator.label}"
        user = add_user(rows, user_row(plan, email, coordinator.display_name, Role.COORDINATOR, password_hash))
        for region_index in coordinator.region_indexes:
            region_id = plan.region_ids[region_index]
            plan.coordinator_by_region[region_id] = user["id"]
            rows.add(
                UserRegion, {"id": ids(), "organisation_id": plan.id, "user_id": user["id"], "region_id": region_id}
            )
    evaluator = user_row(plan, "evaluator", spec.evaluator_name, Role.EVALUATOR, password_hash)
    evaluator["evaluation_project_id"] = project_id
    add_user(rows, evaluator)
    facilitator_name = facilitator_names(spec)[0]
    facilitator = add_user(rows, user_row(plan, "facilitator", facilitator_name, Role.FACILITATOR, password_hash))
    facilitator_id: uuid.UUID = facilitator["id"]
    return facilitator_id


def facilitator_names(spec: OrganisationSpec) -> list[str]:
    """Distinct invented names, the same on every load."""
    rng = rng_for("facilitator-names", spec.slug)
    pairs = [(first, last) for first in FIRST_NAMES for last in SURNAMES]
    return [f"{first} {last}" for first, last in rng.sample(pairs, FACILITATORS_PER_ORGANISATION)]


def add_facilitators(rows: Rows, plan: OrganisationPlan, period: Period, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Facilitators with a spread of compliance states, returned as the IDs trained ones can be assigned from.

    By position: 0 is the facilitator user (in good standing), 1-2 have expired background checks (they
    still hold the assignments made before expiry, which the compliance query should flag), 3-4 expire
    within 30 days, 5 has a check but no training yet and 6 has neither; both are unassigned, because
    assignment requires training and a current check.
    """
    rng = rng_for("facilitators", plan.spec.slug)
    today = period.today
    assignable: list[uuid.UUID] = []
    for position, name in enumerate(facilitator_names(plan.spec)):
        trained: date | None = today - timedelta(days=rng.randint(120, 1400))
        expires: date | None = today + timedelta(days=rng.randint(45, 1000))
        if position in (1, 2):
            expires = today - timedelta(days=rng.randint(5, 120))
        elif position in (3, 4):
            expires = today + timedelta(days=rng.randint(3, 28))
        elif position == 5:
            trained = None
        elif position == 6:
            trained = expires = None
        first, last = name.split(" ", 1)
        email = "facilitator" if position == 0 else f"{first.lower()}.{last.lower()}"
        row = rows.add(
            Facilitator,
            {
                "id": ids(),
                "organisation_id": plan.id,
                "user_id": user_id if position == 0 else None,
                "display_name": name,
                "email": plan.spec.email(email),
                "training_completed_on": trained,
                "background_check_expires_on": expires,
            },
        )
        if trained is not None and expires is not None:
            assignable.append(row["id"])
    return assignable


def add_group(
    rows: Rows,
    plan: OrganisationPlan,
    index: int,
    period: Period,
    facilitators: list[uuid.UUID],
    names: set[str],
    rng: random.Random,
) -> GroupPlan:
    """One group; topic, mode, frequency and region rotate so every combination the rules care about appears."""
    region_index = index % 3
    region = plan.spec.regions[region_index]
    region_id = plan.region_ids[region_index]
    topic = list(Topic)[(index + index // 6) % len(Topic)]
    mode = MODES[index % len(MODES)]
    schedule = group_schedule(index, topic, period, rng)
    status, runs_until = group_status(index, period, rng)
    name = group_name(topic, mode, region.name, schedule, names, rng)
    venue = None
    if mode is not DeliveryMode.ONLINE:
        venue = rng.choice(region.venues) + (" (and online)" if mode is DeliveryMode.HYBRID else "")
    lead = facilitators[index % len(facilitators)]
    team = (lead, facilitators[(index + 5) % len(facilitators)]) if index % 5 in (0, 2, 3) else (lead,)
    group = GroupPlan(
        id=ids(),
        key=f"{plan.spec.slug}/{index}",
        organisation_id=plan.id,
        region_id=region_id,
        coordinator_id=plan.coordinator_by_region[region_id],
        topic=topic,
        mode=mode,
        capacity=rng.choice(CAPACITIES[mode]),
        status=status,
        schedule=schedule,
        runs_until=runs_until,
        facilitator_ids=team,
    )
    rows.add(Group, group_row(group, name, venue))
    for position, facilitator_id in enumerate(team):
        role = FacilitatorRole.LEAD if position == 0 else FacilitatorRole.CO_FACILITATOR
        assignment = {"id": ids(), "organisation_id": plan.id, "group_id": group.id, "role": role}
        rows.add(FacilitatorAssignment, {**assignment, "facilitator_id": facilitator_id})
    return group


def group_schedule(index: int, topic: Topic, period: Period, rng: random.Random) -> Schedule:
    """A weekly, fortnightly or monthly (nth or last weekday) pattern; online groups meet in the evening,
    Saturday groups in the morning.

    Established groups started months or years ago; the ``NEW_GROUPS`` started four weeks into the period.
    """
    frequency = FREQUENCIES[index % len(FREQUENCIES)]
    weekday = 5 if topic is Topic.LONELINESS and index % 2 == 0 else rng.randrange(5)
    times: tuple[time, ...] = START_TIMES
    if MODES[index % len(MODES)] is DeliveryMode.ONLINE:
        times = START_TIMES[4:]
    elif weekday == 5:
        times = START_TIMES[:2]
    start_time = rng.choice(times)
    duration = rng.choice((60, 90, 90, 120))
    week_of_month = rng.choice((1, 2, 3, -1)) if frequency is ScheduleFrequency.MONTHLY else None
    if index in NEW_GROUPS:
        anchor = period.start + timedelta(weeks=4)
    else:
        anchor = period.start - timedelta(weeks=rng.randint(8, 100))
    anchor += timedelta(days=(weekday - anchor.weekday()) % 7)
    return Schedule(frequency, weekday, start_time, duration, anchor, week_of_month)


def group_status(index: int, period: Period, rng: random.Random) -> tuple[GroupStatus, date | None]:
    """Paused and closed groups stopped meeting part-way through the period."""
    if index not in PAUSED_GROUPS + CLOSED_GROUPS:
        return GroupStatus.ACTIVE, None
    stopped = period.start + timedelta(weeks=rng.randint(4, 7), days=-1)
    return (GroupStatus.PAUSED if index in PAUSED_GROUPS else GroupStatus.CLOSED), stopped


def group_name(
    topic: Topic, mode: DeliveryMode, region: str, schedule: Schedule, taken: set[str], rng: random.Random
) -> str:
    """A name people would recognise, e.g. "Calm Minds Online: Tyneside, Tuesday evenings", unique per
    organisation so lists and pickers never show two identical entries."""
    hour = schedule.start_time.hour
    part = "mornings" if hour < 12 else "afternoons" if hour < 17 else "evenings"
    when = f"{WEEKDAY_NAMES[schedule.weekday]} {part}"
    if schedule.frequency is ScheduleFrequency.FORTNIGHTLY:
        when = f"alternate {when}"
    elif schedule.frequency is ScheduleFrequency.MONTHLY:
        nth = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}[schedule.week_of_month or 1]
        when = f"{nth} {WEEKDAY_NAMES[schedule.weekday]} of the month"
    online = " Online" if mode is DeliveryMode.ONLINE else ""
    stems = rng.sample(GROUP_STEMS[topic], len(GROUP_STEMS[topic]))
    candidates = [f"{stem}{online}: {region}, {when}" for stem in stems]
    name = next((candidate for candidate in candidates if candidate not in taken), f"{candidates[0]} ({len(taken)})")
    taken.add(name)
    return name


def group_row(group: GroupPlan, name: str, venue: str | None) -> Row:
    """The ``groups`` row, with the schedule spread over its ``schedule_*`` columns."""
    schedule = group.schedule
    return {
        "id": group.id,
        "organisation_id": group.organisation_id,
        "region_id": group.region_id,
        "name": name,
        "topic": group.topic,
        "delivery_mode": group.mode,
        "venue": venue,
        "capacity": group.capacity,
        "status": group.status,
        "schedule_frequency": schedule.frequency,
        "schedule_weekday": schedule.weekday,
        "schedule_week_of_month": schedule.week_of_month,
        "schedule_start_time": schedule.start_time,
        "schedule_duration_minutes": schedule.duration_minutes,
        "schedule_anchor_date": schedule.anchor_date,
    }


def add_evaluation_project(rows: Rows, project_id: uuid.UUID, plans: list[OrganisationPlan], period: Period) -> None:
    """``demo-evaluation``: owned by the first organisation, covering both, over the whole demo history.

    Its pseudonym key is the one value that is not seeded: it is a real secret, created once with the project.
    """
    owner = plans[0]
    rows.add(
        EvaluationProject,
        {
            "id": project_id,
            "organisation_id": owner.id,
            "slug": EVALUATION_SLUG,
            "name": "Peer support outcomes (demo evaluation)",
            "instrument_codes": list(EVALUATED_INSTRUMENTS),
            "starts_on": period.start - timedelta(weeks=26),
            "ends_on": period.end + timedelta(weeks=26),
            "consent_purpose": ConsentPurpose.EVALUATION,
            "suppression_threshold": 10,
            "pseudonym_key": secrets.token_bytes(32),
        },
    )
    for plan in plans:
        rows.add(
            EvaluationProjectOrganisation,
            {"id": ids(), "organisation_id": plan.id, "evaluation_project_id": project_id},
        )
    accepted_at = datetime.combine(period.start, time(9), tzinfo=period.zone)
    for plan in plans[1:]:  # the partners' agreement, as their admins would have accepted it
        rows.add(
            EvaluationProjectInvitation,
            {"id": ids(), "organisation_id": plan.id, "owner_organisation_id": owner.id,
             "evaluation_project_id": project_id, "status": InvitationStatus.ACCEPTED, "responded_at": accepted_at},
        )  # fmt: skip
