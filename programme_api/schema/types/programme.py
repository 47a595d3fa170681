"""Organisation, regions, groups, sessions and facilitators as GraphQL types (built from domain models)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from ...domain import models, programme
from ...domain.access import readable
from ...domain.programme import Period
from ..context import Info
from ..lists import load_children, load_node, load_rollup, nested_connection
from ..relay import Connection, Node, to_global_id
from . import enums  # noqa: F401  (registers the domain enums as GraphQL enums)

if TYPE_CHECKING:
    from .people import AttendanceRecord, Enrolment

PAGE_ARGS_HELP = "Relay paging: `first`/`after` or `last`/`before`, at most 100 (default 20)."


def _period(starts: datetime | None, ends: datetime | None) -> Period:
    return programme.period_of(starts, ends)


@strawberry.type(description="Totals for a region over a period. Requires `programme:read`.")
class RegionTotals:
    active_groups: int = strawberry.field(description="Groups currently active.")
    sessions_held: int = strawberry.field(description="Sessions held in the period.")
    unique_attendees: int = strawberry.field(description="Distinct participants present at least once in the period.")


@strawberry.type(description="A tenant: a charity or health partner. Requires `programme:read`.")
class Organisation(Node):
    model: strawberry.Private[models.Organisation]
    slug: str
    name: str
    timezone: str = strawberry.field(description="IANA timezone in which group schedules are kept.")
    suppression_threshold: int = strawberry.field(description="Smallest cell count evaluators may see.")
    default_consent_form_version: str | None = strawberry.field(
        description="The consent form version recorded when a consent names none."
    )
    version: int = strawberry.field(description="Send it back with updates; a stale version is a CONFLICT.")

    @classmethod
    def from_model(cls, row: models.Organisation) -> Organisation:
        return cls(
            model=row,
            id=to_global_id("Organisation", row.id),
            slug=row.slug,
            name=row.name,
            timezone=row.timezone,
            suppression_threshold=row.suppression_threshold,
            default_consent_form_version=row.default_consent_form_version,
            version=row.version,
        )


@strawberry.type(description="An area of an organisation. Requires `programme:read`.")
class Region(Node):
    model: strawberry.Private[models.Region]
    slug: str
    name: str
    version: int = strawberry.field(description="Send it back with updates; a stale version is a CONFLICT.")

    @classmethod
    def from_model(cls, row: models.Region) -> Region:
        return cls(model=row, id=to_global_id("Region", row.id), slug=row.slug, name=row.name, version=row.version)

    @strawberry.field(description=f"The region's groups. {PAGE_ARGS_HELP}")
    async def groups(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Group]:
        return await nested_connection(
            info, "region.groups", models.Group, programme.groups, models.Group.region_id, self.model.id,
            programme.GROUP_ORDER, Group.from_model, first, after, last, before,
        )  # fmt: skip

    @strawberry.field(description="Active groups, sessions held and unique attendees between `from` and `to` "
                      "(default: the last 12 months).")  # fmt: skip
    async def totals(
        self,
        info: Info,
        starts: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        ends: Annotated[datetime | None, strawberry.argument(name="to")] = None,
    ) -> RegionTotals:
        period = _period(starts, ends)
        totals = await load_rollup(
            info, ("region.totals", period), lambda s, p, ids: programme.region_totals(s, p, ids, period), self.model.id
        )
        return RegionTotals(
            active_groups=totals.active_groups,
            sessions_held=totals.sessions_held,
            unique_attendees=totals.unique_attendees,
        )


@strawberry.type(description="When a group meets; times are local to the organisation's timezone.")
class Schedule:
    frequency: models.ScheduleFrequency
    weekday: int = strawberry.field(description="0 = Monday ... 6 = Sunday.")
    week_of_month: int | None = strawberry.field(description="For monthly groups: 1-4, or -1 for the last.")
    start_time: time = strawberry.field(description="Local wall-clock start time.")
    duration_minutes: int
    anchor_date: date = strawberry.field(description="First date the pattern can fall on (fortnights count from it).")


@strawberry.type(description="A facilitator's role in a group. Requires `programme:read`.")
class FacilitatorAssignment:
    model: strawberry.Private[models.FacilitatorAssignment]
    role: models.FacilitatorRole

    @classmethod
    def from_model(cls, row: models.FacilitatorAssignment) -> FacilitatorAssignment:
        return cls(model=row, role=row.role)

    @strawberry.field
    async def facilitator(self, info: Info) -> Facilitator | None:
        return await load_node(info, models.Facilitator, self.model.facilitator_id, Facilitator.from_model)

    @strawberry.field
    async def group(self, info: Info) -> Group | None:
        return await load_node(info, models.Group, self.model.group_id, Group.from_model)


@strawberry.type(description="A peer-support group meeting on a schedule in one region. Requires `programme:read`.")
class Group(Node):
    model: strawberry.Private[models.Group]
    name: str
    topic: models.Topic
    delivery_mode: models.DeliveryMode
    venue: str | None
    capacity: int = strawberry.field(description="Active places; further enrolments go on the waitlist.")
    status: models.GroupStatus
    version: int = strawberry.field(description="Send it back with updates; a stale version is a CONFLICT.")

    @classmethod
    def from_model(cls, row: models.Group) -> Group:
        return cls(
            model=row,
            id=to_global_id("Group", row.id),
            name=row.name,
            topic=row.topic,
            delivery_mode=row.delivery_mode,
            venue=row.venue,
            capacity=row.capacity,
            status=row.status,
            version=row.version,
        )

    @strawberry.field(description="The recurring schedule, if one is set.")
    def schedule(self) -> Schedule | None:
        row = self.model
        if row.schedule_frequency is None:
            return None
        return Schedule(
            frequency=row.schedule_frequency,
            weekday=row.schedule_weekday or 0,
            week_of_month=row.schedule_week_of_month,
            start_time=row.schedule_start_time or time(0),
            duration_minutes=row.schedule_duration_minutes or 0,
            anchor_date=row.schedule_anchor_date or date.min,
        )

    @strawberry.field
    async def region(self, info: Info) -> Region | None:
        return await load_node(info, models.Region, self.model.region_id, Region.from_model)

    @strawberry.field(description="Who facilitates the group, leads first.")
    async def facilitators(self, info: Info) -> list[FacilitatorAssignment]:
        rows = await load_children(
            info, "group.facilitators", lambda p: readable(p, models.FacilitatorAssignment),
            models.FacilitatorAssignment.group_id, self.model.id,
            (models.FacilitatorAssignment.role.desc(), models.FacilitatorAssignment.created_at,
             models.FacilitatorAssignment.id),
        )  # fmt: skip
        return [FacilitatorAssignment.from_model(row) for row in rows]

    @strawberry.field(description="Active participants, in the order they got their place. "
                      "Requires `participants:read`.")  # fmt: skip
    async def roster(self, info: Info) -> list[Annotated[Enrolment, strawberry.lazy(".people")]]:
        return await _enrolments(info, self.model.id, models.EnrolmentStatus.ACTIVE)

    @strawberry.field(description="The waitlist, first come first served: the first is promoted when a place "
                      "frees up. Requires `participants:read`.")  # fmt: skip
    async def waitlist(self, info: Info) -> list[Annotated[Enrolment, strawberry.lazy(".people")]]:
        return await _enrolments(info, self.model.id, models.EnrolmentStatus.WAITLISTED)

    @strawberry.field(description=f"The group's sessions, earliest first. {PAGE_ARGS_HELP} Use `last` for the "
                      "most recent.")  # fmt: skip
    async def sessions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[GroupSession]:
        return await nested_connection(
            info, "group.sessions", models.GroupSession, programme.sessions, models.GroupSession.group_id,
            self.model.id, programme.SESSION_ORDER, GroupSession.from_model, first, after, last, before,
        )  # fmt: skip

    @strawberry.field(description="Share of recorded places that were `PRESENT` at sessions held between `from` "
                      "and `to` (default: the last 12 months); null when nothing was recorded.")  # fmt: skip
    async def attendance_rate(
        self,
        info: Info,
        starts: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        ends: Annotated[datetime | None, strawberry.argument(name="to")] = None,
    ) -> float | None:
        period = _period(starts, ends)
        rate: float | None = await load_rollup(
            info,
            ("group.attendance_rate", period),
            lambda s, p, ids: programme.attendance_rates(s, p, ids, period),
            self.model.id,
        )
        return rate


async def _enrolments(info: Info, group_id: Any, status: models.EnrolmentStatus) -> list[Enrolment]:
    from .people import Enrolment

    order = models.Enrolment.activated_at if status is models.EnrolmentStatus.ACTIVE else models.Enrolment.requested_at
    in_status = models.Enrolment.status == status
    rows = await load_children(
        info, ("group.enrolments", status), lambda p: readable(p, models.Enrolment).where(in_status),
        models.Enrolment.group_id, group_id, (order, models.Enrolment.requested_at, models.Enrolment.id),
    )  # fmt: skip
    return [Enrolment.from_model(row) for row in rows]


@strawberry.type(description="Attendance at one session, as counts (no one is named). Requires `programme:read`.")
class AttendanceCounts:
    present: int
    excused: int
    unexcused: int
    dropins: int = strawberry.field(description="People who came without being enrolled (anonymous headcount).")


@strawberry.type(description="One meeting of a group. Requires `programme:read`.")
class GroupSession(Node):
    model: strawberry.Private[models.GroupSession]
    starts_at: datetime
    ends_at: datetime
    status: models.SessionStatus
    cancellation_reason: str | None
    dropin_count: int
    version: int = strawberry.field(description="Send it back with updates; a stale version is a CONFLICT.")

    @classmethod
    def from_model(cls, row: models.GroupSession) -> GroupSession:
        return cls(
            model=row,
            id=to_global_id("GroupSession", row.id),
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            status=row.status,
            cancellation_reason=row.cancellation_reason,
            dropin_count=row.dropin_count,
            version=row.version,
        )

    @strawberry.field
    async def group(self, info: Info) -> Group | None:
        return await load_node(info, models.Group, self.model.group_id, Group.from_model)

    @strawberry.field(description="Counts of present, excused and unexcused participants, and drop-ins.")
    async def attendance_counts(self, info: Info) -> AttendanceCounts:
        counts = await load_rollup(info, "session.attendance_counts", programme.attendance_counts, self.model.id)
        return AttendanceCounts(
            present=counts.present, excused=counts.excused, unexcused=counts.unexcused, dropins=self.model.dropin_count
        )

    @strawberry.field(description="The facilitators recorded as present (`setSessionFacilitators`), by name.")
    async def facilitators_present(self, info: Info) -> list[Facilitator]:
        links = await load_children(
            info, "session.facilitators_present", lambda p: readable(p, models.SessionFacilitator),
            models.SessionFacilitator.session_id, self.model.id, (models.SessionFacilitator.id,),
        )  # fmt: skip
        found = await asyncio.gather(
            *(load_node(info, models.Facilitator, link.facilitator_id, Facilitator.from_model) for link in links)
        )
        return sorted((row for row in found if row is not None), key=lambda row: (row.display_name, row.id))

    @strawberry.field(description="Who was recorded, by participant. Requires `participants:read`.")
    async def attendance(self, info: Info) -> list[Annotated[AttendanceRecord, strawberry.lazy(".people")]]:
        from .people import AttendanceRecord

        rows = await load_children(
            info, "session.attendance", lambda p: readable(p, models.Attendance),
            models.Attendance.session_id, self.model.id, (models.Attendance.recorded_at, models.Attendance.id),
        )  # fmt: skip
        return [AttendanceRecord.from_model(row) for row in rows]


@strawberry.type(description="A person who facilitates groups. Requires `programme:read`.")
class Facilitator(Node):
    model: strawberry.Private[models.Facilitator]
    display_name: str
    training_completed_on: date | None
    background_check_expires_on: date | None
    version: int
    archived_at: datetime | None = strawberry.field(
        description="When the facilitator was retired; archived facilitators are left out of `facilitators`."
    )

    @classmethod
    def from_model(cls, row: models.Facilitator) -> Facilitator:
        return cls(
            model=row,
            id=to_global_id("Facilitator", row.id),
            display_name=row.display_name,
            training_completed_on=row.training_completed_on,
            background_check_expires_on=row.background_check_expires_on,
            version=row.version,
            archived_at=row.archived_at,
        )

    @strawberry.field(description="Training and background checks recorded, oldest first (the history).")
    async def checks(self, info: Info) -> list[FacilitatorCheck]:
        rows = await load_children(
            info, "facilitator.checks", lambda p: readable(p, models.FacilitatorCheck),
            models.FacilitatorCheck.facilitator_id, self.model.id,
            (models.FacilitatorCheck.completed_on, models.FacilitatorCheck.created_at, models.FacilitatorCheck.id),
        )  # fmt: skip
        return [FacilitatorCheck.from_model(row) for row in rows]

    @strawberry.field(
        description="Compliance today; `withinDays` sets the expiry warning window "
        f"(default 30, 0 to {programme.MAX_EXPIRY_WINDOW_DAYS})."
    )
    def compliance_state(self, within_days: int = programme.DEFAULT_EXPIRY_WINDOW_DAYS) -> programme.ComplianceState:
        return programme.compliance_state(self.model, programme.today(), within_days)

    @strawberry.field(description="The groups this facilitator is assigned to (those you may read).")
    async def assignments(self, info: Info) -> list[FacilitatorAssignment]:
        rows = await load_children(
            info, "facilitator.assignments", lambda p: readable(p, models.FacilitatorAssignment),
            models.FacilitatorAssignment.facilitator_id, self.model.id,
            (models.FacilitatorAssignment.created_at, models.FacilitatorAssignment.id),
        )  # fmt: skip
        return [FacilitatorAssignment.from_model(row) for row in rows]


@strawberry.type(description="A training or background check recorded for a facilitator. Requires `programme:read`.")
class FacilitatorCheck:
    kind: models.FacilitatorCheckKind
    completed_on: date
    expires_on: date | None
    reference: str | None
    recorded_at: datetime

    @classmethod
    def from_model(cls, row: models.FacilitatorCheck) -> FacilitatorCheck:
        return cls(
            kind=row.kind,
            completed_on=row.completed_on,
            expires_on=row.expires_on,
            reference=row.reference,
            recorded_at=row.created_at,
        )
