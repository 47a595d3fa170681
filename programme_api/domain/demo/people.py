"""Participants, their enrolments (active, waitlisted when a group is full, some left) and their consents."""

from __future__ import annotations

import enum
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ..models import Consent, ConsentPurpose, Enrolment, EnrolmentStatus, GroupStatus, Participant
from .catalogue import FIRST_NAMES
from .common import IdSource, Period, Row, Rows, rng_for
from .structure import GroupPlan, OrganisationPlan

ENROLMENT_HISTORY = timedelta(weeks=16)
"""How far before the period established groups' current members joined (baselines fall in this window)."""
SECOND_GROUP_SHARE = 0.12
FULL_GROUP_SHARE = 0.35
CONSENT_FORMS = {
    ConsentPurpose.SERVICE_DELIVERY: ("service-delivery-v3", 1.0, 0.0),
    ConsentPurpose.EVALUATION: ("evaluation-v2", 0.85, 0.07),
    ConsentPurpose.RESEARCH_SHARING: ("research-sharing-v1", 0.35, 0.0),
    ConsentPurpose.CONTACT: ("contact-v2", 0.6, 0.03),
}
"""Form version, share of participants who give the consent, and share of those who later withdraw it."""

ids = IdSource("people")


class Habit(enum.StrEnum):
    """How someone attends, so registers show the patterns roll-ups and follow-up lists must catch."""

    REGULAR = "regular"
    OCCASIONAL = "occasional"
    STREAKY = "streaky"
    DRIFTING = "drifting"
    FADING = "fading"


@dataclass(frozen=True)
class EnrolmentPlan:
    participant_id: uuid.UUID
    group: GroupPlan
    status: EnrolmentStatus
    requested_at: datetime
    activated_at: datetime | None
    left_at: datetime | None
    habit: Habit

    def expected_at(self, starts_at: datetime) -> bool:
        """Whether the participant was a member (so on the register) at a meeting starting then."""
        if self.activated_at is None or starts_at < self.activated_at:
            return False
        return self.left_at is None or starts_at < self.left_at


@dataclass
class ParticipantPlan:
    id: uuid.UUID
    organisation_id: uuid.UUID
    region_id: uuid.UUID
    coordinator_id: uuid.UUID
    enrolments: list[EnrolmentPlan] = field(default_factory=list)

    @property
    def registered_at(self) -> datetime:
        """When they first asked for a place: their participant record and consents date from then."""
        return min(enrolment.requested_at for enrolment in self.enrolments)


def build_people(rows: Rows, plans: list[OrganisationPlan], period: Period) -> list[ParticipantPlan]:
    """Everyone enrolled in the demo groups, with participant, enrolment and consent rows added in order."""
    people: list[ParticipantPlan] = []
    for plan in plans:
        rng = rng_for("enrolments", plan.spec.slug)
        pools: dict[uuid.UUID, list[ParticipantPlan]] = {region_id: [] for region_id in plan.region_ids}
        for group in plan.groups:
            enrol_group(group, pools[group.region_id], people, period, rng)
    add_participant_rows(rows, plans, people)
    for person in people:
        for enrolment in person.enrolments:
            rows.add(Enrolment, enrolment_row(person, enrolment))
    add_consents(rows, people, period)
    return people


def enrol_group(
    group: GroupPlan, pool: list[ParticipantPlan], people: list[ParticipantPlan], period: Period, rng: random.Random
) -> None:
    """Members for one group: a full group gets a waitlist, most groups have lost one or two people, and a
    closed group's members all left when it closed."""
    full = group.status is GroupStatus.ACTIVE and rng.random() < FULL_GROUP_SHARE
    active = group.capacity if full else rng.randint(max(5, 2 * group.capacity // 3), group.capacity - 1)
    leavers = rng.choice((0, 0, 1, 1, 2, 3))
    waiting = rng.randint(1, 4) if full else 0
    first, last = activation_window(group, period)
    members: set[uuid.UUID] = set()
    latest = first
    for position in range(active + leavers):
        person = choose_participant(group, pool, people, members, rng)
        joined = day_between(rng, first, last if position < active else last - timedelta(days=21))
        latest = max(latest, joined)
        status, left = EnrolmentStatus.ACTIVE, None
        if position >= active or group.status is GroupStatus.CLOSED:
            status, left = EnrolmentStatus.LEFT, leaving_day(group, joined, period, rng)
        habit = Habit.FADING if left is not None else rng.choices(list(Habit)[:4], weights=(55, 25, 10, 10))[0]
        activated_at = at_office_hours(period, joined, rng)
        requested_at = activated_at - timedelta(days=rng.randint(0, 10), hours=rng.randint(0, 3))
        left_at = None if left is None else at_office_hours(period, left, rng)
        person.enrolments.append(EnrolmentPlan(person.id, group, status, requested_at, activated_at, left_at, habit))
    for _ in range(waiting):
        person = choose_participant(group, pool, people, members, rng)
        asked = at_office_hours(period, day_between(rng, latest + timedelta(days=1), period.today), rng)
        person.enrolments.append(
            EnrolmentPlan(person.id, group, EnrolmentStatus.WAITLISTED, asked, None, None, Habit.REGULAR)
        )


def activation_window(group: GroupPlan, period: Period) -> tuple[date, date]:
    """The days current members joined on: recent history for established groups, around the first meeting
    for new ones, before the pause or closure for groups that stopped."""
    anchor = group.schedule.anchor_date
    first = anchor - timedelta(days=14) if anchor >= period.start else max(anchor, period.start - ENROLMENT_HISTORY)
    last = (group.runs_until or period.today) - timedelta(days=14)
    return first, max(first, last)


def leaving_day(group: GroupPlan, joined: date, period: Period, rng: random.Random) -> date:
    """Members of a closed group leave the day after its last meeting; others after three to ten weeks."""
    if group.status is GroupStatus.CLOSED and group.runs_until is not None:
        return group.runs_until + timedelta(days=1)
    return min(joined + timedelta(days=rng.randint(21, 70)), period.today - timedelta(days=1))


def choose_participant(
    group: GroupPlan,
    pool: list[ParticipantPlan],
    people: list[ParticipantPlan],
    members: set[uuid.UUID],
    rng: random.Random,
) -> ParticipantPlan:
    """Mostly a new person; sometimes someone from the region who already attends another group."""
    if pool and rng.random() < SECOND_GROUP_SHARE:
        candidate = rng.choice(pool)
        if candidate.id not in members:
            members.add(candidate.id)
            return candidate
    person = ParticipantPlan(ids(), group.organisation_id, group.region_id, group.coordinator_id)
    pool.append(person)
    people.append(person)
    members.add(person.id)
    return person


def day_between(rng: random.Random, first: date, last: date) -> date:
    """A uniformly chosen day in ``[first, last]`` (``first`` when the range is empty)."""
    return first + timedelta(days=rng.randint(0, max(0, (last - first).days)))


def at_office_hours(period: Period, day: date, rng: random.Random) -> datetime:
    """A plausible moment for a coordinator to record something on ``day``."""
    return period.at(day, rng.randint(9, 16), rng.choice((0, 15, 30, 45)))


def add_participant_rows(rows: Rows, plans: list[OrganisationPlan], people: list[ParticipantPlan]) -> None:
    """References count up per organisation (``NPS-0001``); contacts use reserved fictional ranges."""
    prefixes = {plan.id: plan.spec.reference_prefix for plan in plans}
    counters = dict.fromkeys(prefixes, 0)
    rng = rng_for("participant-details")
    for number, person in enumerate(people):
        counters[person.organisation_id] += 1
        reference = f"{prefixes[person.organisation_id]}-{counters[person.organisation_id]:04d}"
        name = rng.choice(FIRST_NAMES)
        email = f"{name.lower()}.{reference.lower()}@example.org" if rng.random() < 0.7 else None
        phone = f"07700 900{number % 1000:03d}" if rng.random() < 0.6 else None
        rows.add(
            Participant,
            {
                "id": person.id,
                "organisation_id": person.organisation_id,
                "region_id": person.region_id,
                "reference": reference,
                "preferred_name": name,
                "contact_email": email,
                "contact_phone": phone,
                "created_at": person.registered_at,
            },
        )


def enrolment_row(person: ParticipantPlan, enrolment: EnrolmentPlan) -> Row:
    """The ``enrolments`` row; created when the place was requested, as the service would have done."""
    return {
        "id": ids(),
        "organisation_id": person.organisation_id,
        "participant_id": person.id,
        "group_id": enrolment.group.id,
        "status": enrolment.status,
        "requested_at": enrolment.requested_at,
        "activated_at": enrolment.activated_at,
        "left_at": enrolment.left_at,
        "created_at": enrolment.requested_at,
    }


def add_consents(rows: Rows, people: list[ParticipantPlan], period: Period) -> None:
    """Consents given at registration and recorded by the region's coordinator; a few later withdrawn."""
    rng = rng_for("consents")
    for person in people:
        given_at = person.registered_at
        for purpose, (form, share, withdrawn_share) in CONSENT_FORMS.items():
            if rng.random() >= share:
                continue
            withdrawn_at = None
            days_since = (period.today - given_at.date()).days
            if rng.random() < withdrawn_share and days_since > 14:
                withdrawn_at = at_office_hours(period, given_at.date() + timedelta(rng.randint(7, days_since - 1)), rng)
            rows.add(
                Consent,
                {
                    "id": ids(),
                    "organisation_id": person.organisation_id,
                    "participant_id": person.id,
                    "purpose": purpose,
                    "form_version": form,
                    "given_at": given_at,
                    "recorded_by_user_id": person.coordinator_id,
                    "withdrawn_at": withdrawn_at,
                    "withdrawn_by_user_id": None if withdrawn_at is None else person.coordinator_id,
                    "created_at": given_at,
                },
            )
