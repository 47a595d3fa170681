"""registerParticipant and updateParticipant."""

from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain import models, participants
from ...domain.principal import Principal
from ..context import Info
from ..relay import expect_global_id
from ..types.people import Enrolment, Participant
from .common import MutationInput, MutationPayload, perform

SCOPE = participants.SCOPE


@strawberry.input(description="A new participant: a reference, minimal contact details, and a home region.")
class RegisterParticipantInput(MutationInput):
    reference: str = strawberry.field(description="Unique in the organisation: up to 32 letters, digits, `.-_`.")
    region_id: strawberry.ID
    preferred_name: str | None = None
    contact_email: str | None = None
    contact_phone: str | None = None
    group_id: strawberry.ID | None = strawberry.field(
        default=None, description="Enrol straight away in this group (active, or waitlisted when it is full)."
    )


@strawberry.type(description="The registered participant (and enrolment, when a group was given), or why not.")
class RegisterParticipantPayload(MutationPayload):
    participant: Participant | None = None
    enrolment: Enrolment | None = None


def _present(result: participants.Registered) -> RegisterParticipantPayload:
    return RegisterParticipantPayload(
        participant=Participant.from_model(result.participant),
        enrolment=Enrolment.from_model(result.enrolment) if result.enrolment is not None else None,
    )


async def register_participant(info: Info, input: RegisterParticipantInput) -> RegisterParticipantPayload:
    async def work(session: AsyncSession, principal: Principal) -> participants.Registered:
        new = participants.NewParticipant(
            reference=input.reference,
            region_id=expect_global_id(input.region_id, "Region", "input.regionId"),
            preferred_name=input.preferred_name,
            contact_email=input.contact_email,
            contact_phone=input.contact_phone,
            group_id=expect_global_id(input.group_id, "Group", "input.groupId") if input.group_id else None,
        )
        return await participants.register_participant(session, principal, new)

    return await perform(
        info,
        operation="registerParticipant",
        scope=SCOPE,
        input=input,
        result_type=participants.Registered,
        work=work,
        payload=RegisterParticipantPayload,
        present=_present,
    )


@strawberry.input(description='Corrections to a participant; omitted fields keep their value, `""` clears one.')
class UpdateParticipantInput(MutationInput):
    participant_id: strawberry.ID
    version: int = strawberry.field(description="The version you read; a stale one is refused with `CONFLICT`.")
    preferred_name: str | None = None
    contact_email: str | None = None
    contact_phone: str | None = None
    region_id: strawberry.ID | None = strawberry.field(default=None, description="Move to another region you reach.")


@strawberry.type(description="The participant changed, or why not.")
class ParticipantPayload(MutationPayload):
    participant: Participant | None = None


async def update_participant(info: Info, input: UpdateParticipantInput) -> ParticipantPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.Participant:
        changes = participants.ParticipantChanges(
            preferred_name=input.preferred_name,
            contact_email=input.contact_email,
            contact_phone=input.contact_phone,
            region_id=expect_global_id(input.region_id, "Region", "input.regionId") if input.region_id else None,
        )
        participant_id = expect_global_id(input.participant_id, "Participant", "input.participantId")
        return await participants.update_participant(session, principal, participant_id, input.version, changes)

    return await perform(
        info, operation="updateParticipant", scope=SCOPE, input=input, result_type=models.Participant, work=work,
        payload=ParticipantPayload, present=lambda row: ParticipantPayload(participant=Participant.from_model(row)),
    )  # fmt: skip
