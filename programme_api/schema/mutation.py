"""The root Mutation: one field per write, each resolved in its own module under ``schema/mutations``.

Every mutation takes one ``input`` (with an optional ``idempotencyKey``) and answers a payload with the
affected objects and ``userErrors``. A missing scope is a top-level `INSUFFICIENT_SCOPE` error instead; either
way nothing is written.
"""

from __future__ import annotations

import strawberry

from .mutations import (
    attendance,
    enrolments,
    facilitation,
    facilitators,
    groups,
    organisation_settings,
    participants,
    regions,
    schedules,
    sessions,
)

PROGRAMME = "Requires `programme:write`."
PARTICIPANTS = "Requires `participants:write`."


@strawberry.type
class Mutation:
    create_region: regions.RegionPayload = strawberry.mutation(
        resolver=regions.create_region,
        description=f"Create a region (callers who reach the whole organisation only). {PROGRAMME}",
    )
    update_region: regions.RegionPayload = strawberry.mutation(
        resolver=regions.update_region, description=f"Rename a region or change its slug. {PROGRAMME}"
    )
    create_group: groups.GroupPayload = strawberry.mutation(
        resolver=groups.create_group, description=f"Create a group in a region you reach. {PROGRAMME}"
    )
    update_group: groups.GroupPayload = strawberry.mutation(
        resolver=groups.update_group,
        description=f"Change a group's name, topic, delivery mode, venue, capacity or status. {PROGRAMME}",
    )
    set_group_schedule: groups.GroupPayload = strawberry.mutation(
        resolver=schedules.set_group_schedule,
        description=f"Set a group's recurring schedule (weekly, fortnightly, monthly nth weekday). {PROGRAMME}",
    )
    schedule_sessions: schedules.ScheduleSessionsPayload = strawberry.mutation(
        resolver=schedules.schedule_sessions,
        description=f"Generate a group's sessions for a date range from its schedule; dates that already have "
        f"a session are skipped, so repeating it creates nothing new. {PROGRAMME}",
    )
    cancel_session: sessions.SessionPayload = strawberry.mutation(
        resolver=sessions.cancel_session, description=f"Cancel a scheduled session, with a reason. {PROGRAMME}"
    )
    reschedule_session: sessions.SessionPayload = strawberry.mutation(
        resolver=sessions.reschedule_session,
        description=f"Move a scheduled session to a new start and end, with a reason. {PROGRAMME}",
    )
    assign_facilitator: facilitation.AssignFacilitatorPayload = strawberry.mutation(
        resolver=facilitation.assign_facilitator,
        description="Assign a facilitator to a group as lead or co-facilitator; refused with "
        f"`BACKGROUND_CHECK_EXPIRED` or `TRAINING_INCOMPLETE` when they are not cleared. {PROGRAMME}",
    )
    unassign_facilitator: facilitation.UnassignFacilitatorPayload = strawberry.mutation(
        resolver=facilitation.unassign_facilitator, description=f"Remove a facilitator from a group. {PROGRAMME}"
    )
    register_participant: participants.RegisterParticipantPayload = strawberry.mutation(
        resolver=participants.register_participant,
        description=f"Register a participant in a region, optionally enrolling them in a group. {PARTICIPANTS}",
    )
    enrol_participant: enrolments.EnrolParticipantPayload = strawberry.mutation(
        resolver=enrolments.enrol_participant,
        description=f"Enrol a participant in an active group; a full group waitlists them. {PARTICIPANTS}",
    )
    leave_group: enrolments.LeaveGroupPayload = strawberry.mutation(
        resolver=enrolments.leave_group,
        description=f"Mark an enrolment left and promote the earliest waitlisted participant. {PARTICIPANTS}",
    )
    record_attendance: attendance.RecordAttendancePayload = strawberry.mutation(
        resolver=attendance.record_attendance,
        description="Record a session's whole register (present / excused / unexcused per enrolled participant, "
        "and the drop-in count) and mark it held; recording again replaces it. Requires `attendance:write`.",
    )
    update_organisation_settings: organisation_settings.UpdateOrganisationSettingsPayload = strawberry.mutation(
        resolver=organisation_settings.update_organisation_settings,
        description="Change your organisation's name, timezone, suppression threshold or default consent form "
        "version; each change is audited. Requires `admin`.",
    )
    create_facilitator: facilitators.FacilitatorPayload = strawberry.mutation(
        resolver=facilitators.create_facilitator,
        description=f"Add a facilitator to your organisation (linking a sign-in account needs `admin`). {PROGRAMME}",
    )
    update_facilitator: facilitators.FacilitatorPayload = strawberry.mutation(
        resolver=facilitators.update_facilitator,
        description=f"Correct a facilitator's name or contact, or (`admin`) link an account. {PROGRAMME}",
    )
    archive_facilitator: facilitators.FacilitatorPayload = strawberry.mutation(
        resolver=facilitators.archive_facilitator,
        description=f"Retire a facilitator: their assignments end, their history stays. {PROGRAMME}",
    )
    record_training: facilitators.RecordFacilitatorCheckPayload = strawberry.mutation(
        resolver=facilitators.record_training,
        description=f"Record completed training (kept as history); compliance follows at once. {PROGRAMME}",
    )
    record_background_check: facilitators.RecordFacilitatorCheckPayload = strawberry.mutation(
        resolver=facilitators.record_background_check,
        description=f"Record a completed background check with its expiry (kept as history); compliance follows "
        f"at once. {PROGRAMME}",
    )
