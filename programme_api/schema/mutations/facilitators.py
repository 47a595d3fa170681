"""createFacilitator, updateFacilitator, archiveFacilitator, recordTraining and recordBackgroundCheck."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain import facilitators, models
from ...domain.principal import Principal
from ..context import Info
from ..relay import expect_global_id
from ..types.programme import Facilitator, FacilitatorCheck
from .common import MutationInput, MutationPayload, perform

SCOPE = facilitators.SCOPE
ALIASES = {"user_email": "input.userEmail"}


@strawberry.input(description="A new facilitator of your organisation.")
class CreateFacilitatorInput(MutationInput):
    display_name: str
    email: str | None = strawberry.field(default=None, description="Contact address (not the sign-in account).")
    user_email: str | None = strawberry.field(
        default=None,
        description="Link the sign-in account (role `facilitator`) with this email: it then sees the "
        "facilitator's own groups. Linking needs `admin`.",
    )


@strawberry.input(description="Correct a facilitator; fields left out stay as they are.")
class UpdateFacilitatorInput(MutationInput):
    facilitator_id: strawberry.ID
    version: int = strawberry.field(description="The facilitator's version you read; a stale one is a `CONFLICT`.")
    display_name: str | None = None
    email: str | None = strawberry.field(default=None, description="An empty string removes it.")
    user_email: str | None = strawberry.field(default=None, description="Link this account instead (`admin`).")
    unlink_user: bool = strawberry.field(default=False, description="Remove the account link (`admin`).")


@strawberry.input(description="Retire a facilitator: their assignments end; their history stays.")
class ArchiveFacilitatorInput(MutationInput):
    facilitator_id: strawberry.ID
    version: int = strawberry.field(description="The facilitator's version you read; a stale one is a `CONFLICT`.")


@strawberry.input(description="Completed training, added to the facilitator's history.")
class RecordTrainingInput(MutationInput):
    facilitator_id: strawberry.ID
    completed_on: date = strawberry.field(description="The day it was done (not in the future).")
    expires_on: date | None = strawberry.field(default=None, description="When a refresher is due, if ever.")
    reference: str | None = strawberry.field(default=None, description="Course or certificate reference.")


@strawberry.input(description="A completed background check, added to the facilitator's history.")
class RecordBackgroundCheckInput(MutationInput):
    facilitator_id: strawberry.ID
    completed_on: date = strawberry.field(description="The day it was done (not in the future).")
    expires_on: date = strawberry.field(description="When it expires; after that the facilitator cannot be assigned.")
    reference: str | None = strawberry.field(default=None, description="The check's certificate number.")


@strawberry.type(description="The facilitator, or why not.")
class FacilitatorPayload(MutationPayload):
    facilitator: Facilitator | None = None


@strawberry.type(description="The record added and the facilitator with compliance recomputed, or why not.")
class RecordFacilitatorCheckPayload(MutationPayload):
    check: FacilitatorCheck | None = None
    facilitator: Facilitator | None = None


def _facilitator_payload(row: models.Facilitator) -> FacilitatorPayload:
    return FacilitatorPayload(facilitator=Facilitator.from_model(row))


async def _write(
    info: Info,
    operation: str,
    input: MutationInput,
    work: Callable[[AsyncSession, Principal], Awaitable[models.Facilitator]],
) -> FacilitatorPayload:
    return await perform(
        info,
        operation=operation,
        scope=SCOPE,
        input=input,
        result_type=models.Facilitator,
        work=work,
        payload=FacilitatorPayload,
        present=_facilitator_payload,
        aliases=ALIASES,
    )


def _id(value: strawberry.ID) -> uuid.UUID:
    return expect_global_id(value, "Facilitator", "input.facilitatorId")


async def create_facilitator(info: Info, input: CreateFacilitatorInput) -> FacilitatorPayload:
    change = facilitators.FacilitatorChange(
        display_name=input.display_name, email=input.email, user_email=input.user_email
    )

    async def work(session: AsyncSession, principal: Principal) -> models.Facilitator:
        return await facilitators.create_facilitator(session, principal, change)

    return await _write(info, "createFacilitator", input, work)


async def update_facilitator(info: Info, input: UpdateFacilitatorInput) -> FacilitatorPayload:
    change = facilitators.FacilitatorChange(
        display_name=input.display_name,
        email=input.email,
        user_email=input.user_email,
        unlink_user=input.unlink_user,
    )

    async def work(session: AsyncSession, principal: Principal) -> models.Facilitator:
        return await facilitators.update_facilitator(
            session, principal, _id(input.facilitator_id), input.version, change
        )

    return await _write(info, "updateFacilitator", input, work)


async def archive_facilitator(info: Info, input: ArchiveFacilitatorInput) -> FacilitatorPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.Facilitator:
        return await facilitators.archive_facilitator(session, principal, _id(input.facilitator_id), input.version)

    return await _write(info, "archiveFacilitator", input, work)


async def _record(
    info: Info,
    operation: str,
    input: RecordTrainingInput | RecordBackgroundCheckInput,
    kind: models.FacilitatorCheckKind,
) -> RecordFacilitatorCheckPayload:
    async def work(session: AsyncSession, principal: Principal) -> facilitators.Recorded:
        return await facilitators.record_check(
            session, principal, _id(input.facilitator_id), kind, input.completed_on, input.expires_on, input.reference
        )

    return await perform(
        info,
        operation=operation,
        scope=SCOPE,
        input=input,
        result_type=facilitators.Recorded,
        work=work,
        payload=RecordFacilitatorCheckPayload,
        present=lambda done: RecordFacilitatorCheckPayload(
            check=FacilitatorCheck.from_model(done.check), facilitator=Facilitator.from_model(done.facilitator)
        ),
    )


async def record_training(info: Info, input: RecordTrainingInput) -> RecordFacilitatorCheckPayload:
    return await _record(info, "recordTraining", input, models.FacilitatorCheckKind.TRAINING)


async def record_background_check(info: Info, input: RecordBackgroundCheckInput) -> RecordFacilitatorCheckPayload:
    return await _record(info, "recordBackgroundCheck", input, models.FacilitatorCheckKind.BACKGROUND_CHECK)
