"""createEvaluationProject, updateEvaluationProject and closeEvaluationProject (the owner's admin);
joinEvaluationProject and leaveEvaluationProject (the admin of an organisation invited to a project)."""

from __future__ import annotations

import uuid
from datetime import date

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain import evaluation_invitations as invitations
from ...domain import evaluation_projects as projects
from ...domain import models
from ...domain.principal import Principal
from ..context import Info
from ..relay import expect_global_id
from ..types.evaluation_projects import EvaluationProject, EvaluationProjectInvitation
from ..types.outcomes import ConsentPurpose
from .common import MutationInput, MutationPayload, perform

SCOPE = projects.SCOPE
VERSION_HELP = "The version you read; a stale one is refused with `CONFLICT`."
PARTICIPANTS_HELP = (
    "Other organisations (`Organisation` IDs) invited to take part: each takes part only once its own admin "
    "accepts (`joinEvaluationProject`)."
)


@strawberry.input(description="A new evaluation project owned by the caller's organisation.")
class CreateEvaluationProjectInput(MutationInput):
    slug: str = strawberry.field(description="Unique across the service: evaluator clients are bound by it.")
    name: str
    instrument_codes: list[str] = strawberry.field(description="Codes of shipped or your custom instruments.")
    starts_on: date
    ends_on: date
    consent_purpose: ConsentPurpose = ConsentPurpose.EVALUATION  # type: ignore[valid-type]
    suppression_threshold: int = strawberry.field(default=10, description="At least 5.")
    participating_organisation_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list, description=PARTICIPANTS_HELP
    )


@strawberry.input(description="Changes to an open project; omitted fields keep their value.")
class UpdateEvaluationProjectInput(MutationInput):
    project_id: strawberry.ID
    version: int = strawberry.field(description=VERSION_HELP)
    name: str | None = None
    instrument_codes: list[str] | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    consent_purpose: ConsentPurpose | None = None  # type: ignore[valid-type]
    suppression_threshold: int | None = None
    participating_organisation_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description=f"{PARTICIPANTS_HELP} The whole list: an organisation left out has its invitation withdrawn "
        "and, if it took part, stops at once.",
    )


@strawberry.input(description="Close a project: its evaluators read nothing from then on.")
class CloseEvaluationProjectInput(MutationInput):
    project_id: strawberry.ID
    version: int = strawberry.field(description=VERSION_HELP)


@strawberry.type(description="The project created or changed, or why not.")
class EvaluationProjectPayload(MutationPayload):
    evaluation_project: EvaluationProject | None = None


@strawberry.input(description="The project your organisation was invited to.")
class EvaluationProjectInvitationInput(MutationInput):
    project_id: strawberry.ID


@strawberry.type(description="Your organisation's invitation after accepting or leaving, or why not.")
class EvaluationProjectInvitationPayload(MutationPayload):
    invitation: EvaluationProjectInvitation | None = None


def _present(row: models.EvaluationProject) -> EvaluationProjectPayload:
    return EvaluationProjectPayload(evaluation_project=EvaluationProject.from_model(row))


def _organisation_ids(values: list[strawberry.ID] | None) -> tuple[uuid.UUID, ...] | None:
    if values is None:
        return None
    return tuple(
        expect_global_id(value, "Organisation", f"input.participatingOrganisationIds.{index}")
        for index, value in enumerate(values)
    )


async def create_evaluation_project(info: Info, input: CreateEvaluationProjectInput) -> EvaluationProjectPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.EvaluationProject:
        data = projects.NewProject(
            slug=input.slug, name=input.name, instrument_codes=tuple(input.instrument_codes),
            starts_on=input.starts_on, ends_on=input.ends_on, consent_purpose=input.consent_purpose,
            suppression_threshold=input.suppression_threshold,
            participating_organisation_ids=_organisation_ids(input.participating_organisation_ids) or (),
        )  # fmt: skip
        return await projects.create_project(session, principal, data)

    return await perform(
        info, operation="createEvaluationProject", scope=SCOPE, input=input, result_type=models.EvaluationProject,
        work=work, payload=EvaluationProjectPayload, present=_present,
    )  # fmt: skip


async def update_evaluation_project(info: Info, input: UpdateEvaluationProjectInput) -> EvaluationProjectPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.EvaluationProject:
        project_id = expect_global_id(input.project_id, "EvaluationProject", "input.projectId")
        changes = projects.ProjectChanges(
            name=input.name,
            instrument_codes=None if input.instrument_codes is None else tuple(input.instrument_codes),
            starts_on=input.starts_on, ends_on=input.ends_on, consent_purpose=input.consent_purpose,
            suppression_threshold=input.suppression_threshold,
            participating_organisation_ids=_organisation_ids(input.participating_organisation_ids),
        )  # fmt: skip
        return await projects.update_project(session, principal, project_id, input.version, changes)

    return await perform(
        info, operation="updateEvaluationProject", scope=SCOPE, input=input, result_type=models.EvaluationProject,
        work=work, payload=EvaluationProjectPayload, present=_present,
    )  # fmt: skip


async def close_evaluation_project(info: Info, input: CloseEvaluationProjectInput) -> EvaluationProjectPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.EvaluationProject:
        project_id = expect_global_id(input.project_id, "EvaluationProject", "input.projectId")
        return await projects.close_project(session, principal, project_id, input.version)

    return await perform(
        info, operation="closeEvaluationProject", scope=SCOPE, input=input, result_type=models.EvaluationProject,
        work=work, payload=EvaluationProjectPayload, present=_present,
    )  # fmt: skip


async def _answer(
    info: Info, operation: str, input: EvaluationProjectInvitationInput, decide: invitations.Answer
) -> EvaluationProjectInvitationPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.EvaluationProjectInvitation:
        project_id = expect_global_id(input.project_id, "EvaluationProject", "input.projectId")
        return await decide(session, principal, project_id)

    return await perform(
        info, operation=operation, scope=SCOPE, input=input, result_type=models.EvaluationProjectInvitation,
        work=work, payload=EvaluationProjectInvitationPayload,
        present=lambda row: EvaluationProjectInvitationPayload(invitation=EvaluationProjectInvitation.from_model(row)),
    )  # fmt: skip


async def join_evaluation_project(
    info: Info, input: EvaluationProjectInvitationInput
) -> EvaluationProjectInvitationPayload:
    return await _answer(info, "joinEvaluationProject", input, invitations.join)


async def leave_evaluation_project(
    info: Info, input: EvaluationProjectInvitationInput
) -> EvaluationProjectInvitationPayload:
    return await _answer(info, "leaveEvaluationProject", input, invitations.leave)
