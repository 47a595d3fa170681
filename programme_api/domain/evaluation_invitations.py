"""Other organisations taking part in an evaluation project: invited by the owner, accepted by themselves.

A project's evaluators read the rows of every organisation that takes part. One organisation's admin cannot
share another's health data, so the owner's admin only *invites* (``participating_organisation_ids`` of a
project); the invited organisation takes part once its own admin accepts (``join``) and stops the moment it
leaves (``leave``): the participation row the evaluators' reads follow is inserted and deleted by those two
calls, in the invited organisation's own transaction. The owner may withdraw an invitation, or a
participation, by leaving the organisation out of the list: that only narrows what its evaluators read.

The operator's ``evaluation-projects share`` (``evaluation_projects.share_project``) is the override for when
both organisations agreed outside the service: it records an accepted invitation directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit
from .errors import DomainError, ErrorCode, NotFound
from .models import (
    EvaluationProject,
    EvaluationProjectInvitation,
    EvaluationProjectOrganisation,
    InvitationStatus,
    utcnow,
)
from .principal import Principal
from .tenancy import tenant_of

SCOPE = "admin"
MAX_ORGANISATIONS = 50
FIELD = "participating_organisation_ids"
# What the owner's list keeps: an invitation still open or accepted.
_CURRENT = (InvitationStatus.PENDING, InvitationStatus.ACCEPTED)
# ``join`` or ``leave``: the invited organisation's answer to one project.
Answer = Callable[[AsyncSession, Principal, uuid.UUID], Awaitable[EvaluationProjectInvitation]]

access.register_rule(
    EvaluationProjectInvitation,
    SCOPE,
    lambda p: sa.and_(
        sa.or_(
            EvaluationProjectInvitation.organisation_id == p.organisation_id,
            EvaluationProjectInvitation.owner_organisation_id == p.organisation_id,
        ),
        sa.true() if p.region_ids is None else sa.false(),
    ),
)


def require_whole_organisation(principal: Principal) -> None:
    """Projects are the organisation's, not a region's: only an admin reaching all of it manages them."""
    access.require_scope(principal, SCOPE)
    if principal.region_ids is not None:
        raise DomainError(ErrorCode.FORBIDDEN, "only callers who reach the whole organisation manage projects")


def received(principal: Principal) -> sa.Select[EvaluationProjectInvitation]:
    """Invitations to the caller's organisation, whatever their state."""
    invitations = access.readable(principal, EvaluationProjectInvitation)
    return invitations.where(EvaluationProjectInvitation.organisation_id == principal.organisation_id)


def sent(principal: Principal, project_id: uuid.UUID) -> sa.Select[EvaluationProjectInvitation]:
    """The invitations the caller's organisation sent for one of its projects."""
    return access.readable(principal, EvaluationProjectInvitation).where(
        EvaluationProjectInvitation.owner_organisation_id == principal.organisation_id,
        EvaluationProjectInvitation.evaluation_project_id == project_id,
    )


def invited_projects(principal: Principal) -> sa.Select[EvaluationProject]:
    """The projects the caller's organisation is or was invited to, for its admin to see what is asked.

    Trusted filter: projects named by an invitation the caller may read as the invited organisation (the
    invitation rule above, narrowed to the caller's side), which is what the invited organisation's admin
    is shown; the pseudonym key never leaves the domain.
    """
    require_whole_organisation(principal)
    invitations = received(principal).with_only_columns(EvaluationProjectInvitation.evaluation_project_id)
    statement = sa.select(EvaluationProject).where(EvaluationProject.id.in_(invitations))
    return access.trusted(statement, reason="projects the caller's organisation is invited to")


async def with_projects(
    session: AsyncSession, principal: Principal, invitations: Sequence[EvaluationProjectInvitation]
) -> list[tuple[EvaluationProjectInvitation, EvaluationProject]]:
    """Each invitation received with its project (in the order given)."""
    ids = {row.evaluation_project_id for row in invitations}
    found = await session.execute(invited_projects(principal).where(EvaluationProject.id.in_(ids)))
    projects = {project.id: project for project in found.scalars()}
    return [(row, projects[row.evaluation_project_id]) for row in invitations]


async def invitations_received(
    session: AsyncSession, principal: Principal, statuses: Sequence[InvitationStatus] | None = None
) -> list[tuple[EvaluationProjectInvitation, EvaluationProject]]:
    """The caller's organisation's invitations (of these statuses), newest first, with their projects."""
    require_whole_organisation(principal)
    statement = received(principal)
    if statuses is not None:
        statement = statement.where(EvaluationProjectInvitation.status.in_(list(statuses)))
    statement = statement.order_by(EvaluationProjectInvitation.created_at.desc(), EvaluationProjectInvitation.id)
    rows = list((await session.execute(statement)).scalars())
    return await with_projects(session, principal, rows)


async def invitations_sent(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID
) -> list[EvaluationProjectInvitation]:
    """The invitations of one of the caller's projects, oldest first."""
    statement = sent(principal, project_id).order_by(
        EvaluationProjectInvitation.created_at, EvaluationProjectInvitation.id
    )
    return list((await session.execute(statement)).scalars())


async def _wanted(
    session: AsyncSession, project: EvaluationProject, organisation_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """The organisations named, deduplicated, the owner left out; NOT_FOUND names the first unknown one.

    Another organisation's row is invisible to the owner, so existence is asked of ``tenant_of``, which
    answers with the organisation's id and nothing else.
    """
    if len(organisation_ids) > MAX_ORGANISATIONS:
        raise DomainError(ErrorCode.INVALID, f"at most {MAX_ORGANISATIONS} organisations", FIELD)
    wanted: list[uuid.UUID] = []
    for index, organisation_id in enumerate(organisation_ids):
        if organisation_id == project.organisation_id or organisation_id in wanted:
            continue
        if await tenant_of(session, "organisation", str(organisation_id)) is None:
            raise NotFound("organisation", f"{FIELD}.{index}")
        wanted.append(organisation_id)
    return wanted


async def _end_participation(session: AsyncSession, project_id: uuid.UUID, organisation_id: uuid.UUID) -> None:
    """Delete the row the evaluators' reads follow: from the next statement on, the organisation's rows are out."""
    await session.execute(
        sa.delete(EvaluationProjectOrganisation).where(
            EvaluationProjectOrganisation.evaluation_project_id == project_id,
            EvaluationProjectOrganisation.organisation_id == organisation_id,
        )
    )


def _new(
    project: EvaluationProject, organisation_id: uuid.UUID, status: InvitationStatus
) -> EvaluationProjectInvitation:
    return EvaluationProjectInvitation(
        organisation_id=organisation_id,
        owner_organisation_id=project.organisation_id,
        evaluation_project_id=project.id,
        status=status,
    )


def _move(row: EvaluationProjectInvitation, status: InvitationStatus, responded: bool) -> None:
    row.status = status
    row.responded_at = utcnow() if responded else None
    row.version += 1


async def invite(
    session: AsyncSession, principal: Principal, project: EvaluationProject, organisation_ids: Sequence[uuid.UUID]
) -> dict[str, list[str]]:
    """Make the project's other organisations exactly these: new ones invited (pending until their admin
    accepts), ones left out withdrawn (an accepted one stops taking part at once). Returns what changed."""
    wanted = await _wanted(session, project, organisation_ids)
    found = await session.execute(sent(principal, project.id).with_for_update())
    existing = {row.organisation_id: row for row in found.scalars()}
    invited: list[str] = []
    withdrawn: list[str] = []
    for organisation_id in wanted:
        row = existing.get(organisation_id)
        if row is None:
            session.add(_new(project, organisation_id, InvitationStatus.PENDING))
        elif row.status not in _CURRENT:
            _move(row, InvitationStatus.PENDING, responded=False)
        else:
            continue
        invited.append(str(organisation_id))
    for organisation_id, row in existing.items():
        if organisation_id in wanted or row.status not in _CURRENT:
            continue
        if row.status is InvitationStatus.ACCEPTED:
            await _end_participation(session, project.id, organisation_id)
        _move(row, InvitationStatus.WITHDRAWN, responded=False)
        withdrawn.append(str(organisation_id))
    await session.flush()
    return {"invited": invited, "withdrawn": withdrawn}


async def _received_one(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID
) -> tuple[EvaluationProjectInvitation, EvaluationProject]:
    """The caller's organisation's invitation to the project, locked (NOT_FOUND when there is none)."""
    require_whole_organisation(principal)
    statement = received(principal).where(EvaluationProjectInvitation.evaluation_project_id == project_id)
    row = (await session.execute(statement.with_for_update())).scalar_one_or_none()
    if row is None:
        raise NotFound("evaluation project", "project_id")
    ((_, project),) = await with_projects(session, principal, [row])
    return row, project


async def join(session: AsyncSession, principal: Principal, project_id: uuid.UUID) -> EvaluationProjectInvitation:
    """Accept the invitation: the organisation's rows the project covers reach its evaluators from now on."""
    row, project = await _received_one(session, principal, project_id)
    if row.status is InvitationStatus.ACCEPTED:
        raise DomainError(ErrorCode.INVALID_STATE, "your organisation already takes part", "project_id")
    if row.status is not InvitationStatus.PENDING:
        raise DomainError(ErrorCode.INVALID_STATE, f"the invitation is {row.status.value}: ask to be invited again",
                          "project_id")  # fmt: skip
    if project.closed_at is not None:
        raise DomainError(ErrorCode.INVALID_STATE, "the project is closed", "project_id")
    session.add(EvaluationProjectOrganisation(organisation_id=principal.organisation_id,
                                              evaluation_project_id=project.id))  # fmt: skip
    _move(row, InvitationStatus.ACCEPTED, responded=True)
    await session.flush()
    await audit.record(session, principal, "evaluation_project.join", project, _details(row))
    return row


async def leave(session: AsyncSession, principal: Principal, project_id: uuid.UUID) -> EvaluationProjectInvitation:
    """Stop taking part: the project's evaluators read none of the organisation's rows from now on."""
    row, project = await _received_one(session, principal, project_id)
    if row.status is not InvitationStatus.ACCEPTED:
        raise DomainError(ErrorCode.INVALID_STATE, "your organisation does not take part", "project_id")
    await _end_participation(session, project.id, principal.organisation_id)
    _move(row, InvitationStatus.LEFT, responded=True)
    await session.flush()
    await audit.record(session, principal, "evaluation_project.leave", project, _details(row))
    return row


def _details(row: EvaluationProjectInvitation) -> dict[str, Any]:
    return {"invitation_id": str(row.id), "owner_organisation_id": str(row.owner_organisation_id)}


async def record_shared(session: AsyncSession, project: EvaluationProject, organisation_id: uuid.UUID) -> None:
    """The operator's share as an accepted invitation, so that the owner sees it and the partner can leave."""
    row = await session.scalar(
        sa.select(EvaluationProjectInvitation).where(
            EvaluationProjectInvitation.evaluation_project_id == project.id,
            EvaluationProjectInvitation.organisation_id == organisation_id,
        )
    )
    if row is None:
        row = _new(project, organisation_id, InvitationStatus.ACCEPTED)
        session.add(row)
    else:
        row.version += 1
    row.status = InvitationStatus.ACCEPTED
    row.responded_at = utcnow()
