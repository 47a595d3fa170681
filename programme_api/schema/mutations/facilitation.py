"""assignFacilitator and unassignFacilitator."""

from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain import facilitation, models
from ...domain.principal import Principal
from ..context import Info
from ..relay import expect_global_id
from ..types.programme import Facilitator, FacilitatorAssignment, Group
from .common import MutationInput, MutationPayload, perform

SCOPE = facilitation.SCOPE


@strawberry.input(description="Assign a facilitator to a group (refused when their check or training is lacking).")
class AssignFacilitatorInput(MutationInput):
    group_id: strawberry.ID
    facilitator_id: strawberry.ID
    role: models.FacilitatorRole


@strawberry.input(description="Remove a facilitator from a group.")
class UnassignFacilitatorInput(MutationInput):
    group_id: strawberry.ID
    facilitator_id: strawberry.ID


@strawberry.type(description="The new assignment, or why it was refused.")
class AssignFacilitatorPayload(MutationPayload):
    assignment: FacilitatorAssignment | None = None


@strawberry.type(description="The group and facilitator no longer assigned, or why not.")
class UnassignFacilitatorPayload(MutationPayload):
    group: Group | None = None
    facilitator: Facilitator | None = None


async def assign_facilitator(info: Info, input: AssignFacilitatorInput) -> AssignFacilitatorPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.FacilitatorAssignment:
        return await facilitation.assign_facilitator(
            session,
            principal,
            expect_global_id(input.group_id, "Group", "input.groupId"),
            expect_global_id(input.facilitator_id, "Facilitator", "input.facilitatorId"),
            input.role,
        )

    return await perform(
        info,
        operation="assignFacilitator",
        scope=SCOPE,
        input=input,
        result_type=models.FacilitatorAssignment,
        work=work,
        payload=AssignFacilitatorPayload,
        present=lambda row: AssignFacilitatorPayload(assignment=FacilitatorAssignment(model=row, role=row.role)),
    )


async def unassign_facilitator(info: Info, input: UnassignFacilitatorInput) -> UnassignFacilitatorPayload:
    async def work(session: AsyncSession, principal: Principal) -> facilitation.Unassigned:
        return await facilitation.unassign_facilitator(
            session,
            principal,
            expect_global_id(input.group_id, "Group", "input.groupId"),
            expect_global_id(input.facilitator_id, "Facilitator", "input.facilitatorId"),
        )

    return await perform(
        info,
        operation="unassignFacilitator",
        scope=SCOPE,
        input=input,
        result_type=facilitation.Unassigned,
        work=work,
        payload=UnassignFacilitatorPayload,
        present=lambda result: UnassignFacilitatorPayload(
            group=Group.from_model(result.group), facilitator=Facilitator.from_model(result.facilitator)
        ),
    )
