"""Assigning facilitators to groups, refused when they are not cleared to facilitate.

The compliance rules are the ones the ``facilitators(compliance:)`` query reports (``programme.compliance_state``):
an expired or missing background check blocks a new assignment, and so does missing training. A check that is
merely expiring soon does not: it shows in the compliance query for the coordinator to chase.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit
from .access import require_scope
from .errors import DomainError, ErrorCode, NotFound
from .models import Facilitator, FacilitatorAssignment, FacilitatorRole, Group
from .principal import Principal
from .programme import ComplianceState, compliance_state, today

SCOPE = "programme:write"

REFUSALS: dict[ComplianceState, tuple[ErrorCode, str]] = {
    ComplianceState.CHECK_EXPIRED: (
        ErrorCode.BACKGROUND_CHECK_EXPIRED,
        "the facilitator's background check has expired (or was never recorded)",
    ),
    ComplianceState.TRAINING_MISSING: (ErrorCode.TRAINING_INCOMPLETE, "the facilitator has not completed training"),
}


@dataclass(frozen=True)
class Unassigned:
    group: Group
    facilitator: Facilitator


async def _assignment(
    session: AsyncSession, principal: Principal, group: Group, facilitator: Facilitator
) -> FacilitatorAssignment | None:
    statement = access.in_reach(principal, FacilitatorAssignment).where(
        FacilitatorAssignment.group_id == group.id, FacilitatorAssignment.facilitator_id == facilitator.id
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def _targets(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, facilitator_id: uuid.UUID
) -> tuple[Group, Facilitator]:
    group = await access.get_in_reach(session, principal, Group, group_id, "group", "group_id", lock=True)
    facilitator = await access.get_in_reach(
        session, principal, Facilitator, facilitator_id, "facilitator", "facilitator_id"
    )
    return group, facilitator


async def assign_facilitator(
    session: AsyncSession,
    principal: Principal,
    group_id: uuid.UUID,
    facilitator_id: uuid.UUID,
    role: FacilitatorRole,
) -> FacilitatorAssignment:
    require_scope(principal, SCOPE)
    group, facilitator = await _targets(session, principal, group_id, facilitator_id)
    if facilitator.archived_at is not None:
        raise DomainError(ErrorCode.INVALID_STATE, "the facilitator is archived", "facilitator_id")
    refusal = REFUSALS.get(compliance_state(facilitator, today()))
    if refusal is not None:
        raise DomainError(refusal[0], refusal[1], "facilitator_id")
    if await _assignment(session, principal, group, facilitator) is not None:
        raise DomainError(
            ErrorCode.DUPLICATE, "the facilitator is already assigned to this group; unassign first", "facilitator_id"
        )
    assignment = FacilitatorAssignment(
        id=uuid.uuid4(),
        organisation_id=principal.organisation_id,
        group_id=group.id,
        facilitator_id=facilitator.id,
        role=role,
    )
    session.add(assignment)
    await session.flush()
    details = {"group_id": str(group.id), "facilitator_id": str(facilitator.id), "role": role.value}
    await audit.record(session, principal, "facilitator.assign", assignment, details)
    return assignment


async def unassign_facilitator(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, facilitator_id: uuid.UUID
) -> Unassigned:
    require_scope(principal, SCOPE)
    group, facilitator = await _targets(session, principal, group_id, facilitator_id)
    assignment = await _assignment(session, principal, group, facilitator)
    if assignment is None:
        raise NotFound("assignment of this facilitator to this group", "facilitator_id")
    details = {"group_id": str(group.id), "facilitator_id": str(facilitator.id), "role": assignment.role.value}
    await audit.record(session, principal, "facilitator.unassign", assignment, details)
    await session.delete(assignment)
    await session.flush()
    return Unassigned(group=group, facilitator=facilitator)
