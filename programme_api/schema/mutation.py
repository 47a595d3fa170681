"""The root Mutation: one field per write, each resolved in its own module under ``schema/mutations``.

Every mutation takes one ``input`` (with an optional ``idempotencyKey``) and answers a payload with the
affected objects and ``userErrors``. A missing scope is a top-level `INSUFFICIENT_SCOPE` error instead; either
way nothing is written.
"""

from __future__ import annotations

import strawberry

from .mutations import admin as admin_mutations
from .mutations import (
    attendance,
    enrolments,
    evaluation_projects,
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
ADMIN = "Requires `admin` (callers who reach the whole organisation)."


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
        "and the drop-in count) and mark it held; recording again replaces it; a session that has not started "
        "yet is refused with `NOT_STARTED`. Requires `attendance:write`.",
    )
    create_user: admin_mutations.UserPayload = strawberry.mutation(
        resolver=admin_mutations.create_user,
        description=f"Register a person; their password is generated and returned once. {ADMIN}",
    )
    disable_user: admin_mutations.UserPayload = strawberry.mutation(
        resolver=admin_mutations.disable_user,
        description=f"Disable a person: no sign-in, and their live tokens stop working at once. {ADMIN}",
    )
    enable_user: admin_mutations.UserPayload = strawberry.mutation(
        resolver=admin_mutations.enable_user, description=f"Enable a disabled person again. {ADMIN}"
    )
    set_user_regions: admin_mutations.UserPayload = strawberry.mutation(
        resolver=admin_mutations.set_user_regions,
        description=f"Assign a person to exactly these regions (applies to live tokens). {ADMIN}",
    )
    set_user_role: admin_mutations.UserPayload = strawberry.mutation(
        resolver=admin_mutations.set_user_role,
        description=f"Change a person's role (not to one holding scopes you do not hold). {ADMIN}",
    )
    reset_user_password: admin_mutations.UserPayload = strawberry.mutation(
        resolver=admin_mutations.reset_user_password,
        description=f"Give a person a generated password, returned once; their live tokens stop working. {ADMIN}",
    )
    create_oauth_client: admin_mutations.OAuthClientPayload = strawberry.mutation(
        name="createOAuthClient",
        resolver=admin_mutations.create_oauth_client,
        description=f"Register an OAuth client; its secret is returned once. {ADMIN}",
    )
    disable_oauth_client: admin_mutations.OAuthClientPayload = strawberry.mutation(
        name="disableOAuthClient",
        resolver=admin_mutations.disable_oauth_client,
        description=f"Disable a client: its live tokens stop working at once. {ADMIN}",
    )
    enable_oauth_client: admin_mutations.OAuthClientPayload = strawberry.mutation(
        name="enableOAuthClient",
        resolver=admin_mutations.enable_oauth_client,
        description=f"Enable a disabled client again. {ADMIN}",
    )
    set_oauth_client_scopes: admin_mutations.OAuthClientPayload = strawberry.mutation(
        name="setOAuthClientScopes",
        resolver=admin_mutations.set_oauth_client_scopes,
        description=f"Replace a client's allowed scopes; live tokens keep only those still allowed. {ADMIN}",
    )
    set_oauth_client_regions: admin_mutations.OAuthClientPayload = strawberry.mutation(
        name="setOAuthClientRegions",
        resolver=admin_mutations.set_oauth_client_regions,
        description=f"Bind a client to exactly these regions (applies to live tokens). {ADMIN}",
    )
    rotate_oauth_client_secret: admin_mutations.OAuthClientPayload = strawberry.mutation(
        name="rotateOAuthClientSecret",
        resolver=admin_mutations.rotate_oauth_client_secret,
        description=f"Give a client a new secret, returned once; the old one and its tokens stop working. {ADMIN}",
    )
    create_evaluation_project: evaluation_projects.EvaluationProjectPayload = strawberry.mutation(
        resolver=evaluation_projects.create_evaluation_project,
        description="Create an evaluation project owned by your organisation, with its own pseudonym key "
        f"(generated, never shown). {ADMIN}",
    )
    update_evaluation_project: evaluation_projects.EvaluationProjectPayload = strawberry.mutation(
        resolver=evaluation_projects.update_evaluation_project,
        description=f"Change an open evaluation project's name, instruments, dates, consent purpose, threshold or "
        f"invited organisations. {ADMIN}",
    )
    close_evaluation_project: evaluation_projects.EvaluationProjectPayload = strawberry.mutation(
        resolver=evaluation_projects.close_evaluation_project,
        description=f"Close an evaluation project: its evaluators read nothing from then on. {ADMIN}",
    )
    join_evaluation_project: evaluation_projects.EvaluationProjectInvitationPayload = strawberry.mutation(
        resolver=evaluation_projects.join_evaluation_project,
        description="Accept your organisation's invitation to another organisation's evaluation project: its "
        f"evaluators read your organisation's consented rows from then on. {ADMIN}",
    )
    leave_evaluation_project: evaluation_projects.EvaluationProjectInvitationPayload = strawberry.mutation(
        resolver=evaluation_projects.leave_evaluation_project,
        description="Stop taking part in another organisation's evaluation project: its evaluators read none of "
        f"your organisation's rows from then on. {ADMIN}",
    )
    update_participant: participants.ParticipantPayload = strawberry.mutation(
        resolver=participants.update_participant,
        description=f"Correct a participant's preferred name, contact details or home region. {PARTICIPANTS}",
    )
    create_session: sessions.SessionPayload = strawberry.mutation(
        resolver=sessions.create_session,
        description=f"Add a one-off session to an active group, outside its schedule. {PROGRAMME}",
    )
    complete_session: sessions.SessionPayload = strawberry.mutation(
        resolver=sessions.complete_session,
        description=f"Mark a session that has started as held (refused with `NOT_STARTED` before). {PROGRAMME}",
    )
    set_session_facilitators: sessions.SessionPayload = strawberry.mutation(
        resolver=sessions.set_session_facilitators,
        description=f"Record exactly which of the group's facilitators ran a session. {PROGRAMME}",
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
