"""enrolParticipant and leaveGroup."""

from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain import enrolments, models
from ...domain.principal import Principal
from ..context import Info
from ..relay import expect_global_id
from ..types.people import Enrolment
from .common import MutationInput, MutationPayload, perform

SCOPE = enrolments.SCOPE


@strawberry.input(description="Enrol a participant in an active group; a full group puts them on its waitlist.")
class EnrolParticipantInput(MutationInput):
    participant_id: strawberry.ID
    group_id: strawberry.ID


@strawberry.input(description="A participant leaves a group; their place goes to the earliest waitlisted person.")
class LeaveGroupInput(MutationInput):
    enrolment_id: strawberry.ID
    version: int = strawberry.field(description="The enrolment's version you read; a stale one is a `CONFLICT`.")


@strawberry.type(description="The enrolment (`ACTIVE` or `WAITLISTED`), or why not.")
class EnrolParticipantPayload(MutationPayload):
    enrolment: Enrolment | None = None


@strawberry.type(description="The enrolment now `LEFT`, and who was promoted from the waitlist, or why not.")
class LeaveGroupPayload(MutationPayload):
    enrolment: Enrolment | None = None
    promoted: list[Enrolment] = strawberry.field(
        default_factory=list, description="Waitlisted enrolments made active by this leave."
    )


async def enrol_participant(info: Info, input: EnrolParticipantInput) -> EnrolParticipantPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.Enrolment:
        participant_id = expect_global_id(input.participant_id, "Participant", "input.participantId")
        group_id = expect_global_id(input.group_id, "Group", "input.groupId")
        return await enrolments.enrol(session, principal, participant_id, group_id)

    return await perform(
        info,
        operation="enrolParticipant",
        scope=SCOPE,
        input=input,
        result_type=models.Enrolment,
        work=work,
        payload=EnrolParticipantPayload,
        present=lambda row: EnrolParticipantPayload(enrolment=Enrolment.from_model(row)),
    )


async def leave_group(info: Info, input: LeaveGroupInput) -> LeaveGroupPayload:
    async def work(session: AsyncSession, principal: Principal) -> enrolments.Left:
        enrolment_id = expect_global_id(input.enrolment_id, "Enrolment", "input.enrolmentId")
        return await enrolments.leave(session, principal, enrolment_id, input.version)

    return await perform(
        info,
        operation="leaveGroup",
        scope=SCOPE,
        input=input,
        result_type=enrolments.Left,
        work=work,
        payload=LeaveGroupPayload,
        present=lambda result: LeaveGroupPayload(
            enrolment=Enrolment.from_model(result.enrolment),
            promoted=[Enrolment.from_model(row) for row in result.promoted],
        ),
    )
