"""Evaluation projects as their owning organisation's admin sees them, and invitations to them as both the
owner and the invited organisation see them (never the pseudonym key)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import strawberry

from ...domain import evaluation_invitations, models
from ..context import Info
from ..relay import Node, to_global_id
from .outcomes import ConsentPurpose

InvitationStatus = strawberry.enum(
    models.InvitationStatus,
    name="EvaluationInvitationStatus",
    description="Where an invited organisation stands: it takes part only once ACCEPTED.",
)


@strawberry.type(
    description="An organisation invited to another organisation's evaluation project, and its answer. "
    "Requires `admin`."
)
class EvaluationProjectInvitation:
    project_id: strawberry.ID = strawberry.field(description="The project (an `EvaluationProject` ID).")
    organisation_id: strawberry.ID = strawberry.field(description="The invited organisation.")
    owner_organisation_id: strawberry.ID = strawberry.field(description="The organisation that owns the project.")
    status: models.InvitationStatus
    created_at: datetime = strawberry.field(description="When first invited.")
    responded_at: datetime | None = strawberry.field(description="When accepted or left; null while pending.")
    version: int

    @classmethod
    def from_model(cls, row: models.EvaluationProjectInvitation) -> EvaluationProjectInvitation:
        return cls(**_invitation_fields(row))


def _invitation_fields(row: models.EvaluationProjectInvitation) -> dict[str, Any]:
    return {
        "project_id": to_global_id("EvaluationProject", row.evaluation_project_id),
        "organisation_id": to_global_id("Organisation", row.organisation_id),
        "owner_organisation_id": to_global_id("Organisation", row.owner_organisation_id),
        "status": row.status,
        "created_at": row.created_at,
        "responded_at": row.responded_at,
        "version": row.version,
    }


@strawberry.type(description="What an invited organisation is asked to share its data with. Requires `admin`.")
class InvitedEvaluationProject:
    slug: str
    name: str
    instrument_codes: list[str] = strawberry.field(description="Instruments whose responses the evaluators see.")
    starts_on: date
    ends_on: date
    consent_purpose: ConsentPurpose = strawberry.field(  # type: ignore[valid-type]
        description="The consent each shared row needs in force."
    )
    closed_at: datetime | None


@strawberry.type(description="An invitation your organisation received, with the project it is for.")
class ReceivedEvaluationInvitation(EvaluationProjectInvitation):
    project: InvitedEvaluationProject

    @classmethod
    def received(
        cls, row: models.EvaluationProjectInvitation, project: models.EvaluationProject
    ) -> ReceivedEvaluationInvitation:
        shown = InvitedEvaluationProject(
            slug=project.slug,
            name=project.name,
            instrument_codes=[str(code) for code in project.instrument_codes],
            starts_on=project.starts_on,
            ends_on=project.ends_on,
            consent_purpose=project.consent_purpose,
            closed_at=project.closed_at,
        )
        return cls(**_invitation_fields(row), project=shown)


@strawberry.type(description="An evaluator's scope, as its organisation's admin manages it. Requires `admin`.")
class EvaluationProject(Node):
    model: strawberry.Private[models.EvaluationProject]
    slug: str
    name: str
    instrument_codes: list[str] = strawberry.field(description="Instruments whose responses the evaluators see.")
    starts_on: date
    ends_on: date
    consent_purpose: ConsentPurpose = strawberry.field(  # type: ignore[valid-type]
        description="The consent each row needs in force."
    )
    suppression_threshold: int = strawberry.field(description="Smallest count the evaluators' aggregates show.")
    closed_at: datetime | None = strawberry.field(description="Set once closed: its evaluators read nothing.")
    version: int

    @strawberry.field(description="The organisations invited besides the owner, and their answers (oldest first).")
    async def invitations(self, info: Info) -> list[EvaluationProjectInvitation]:
        rows = await info.context.run(evaluation_invitations.invitations_sent, self.model.id)
        return [EvaluationProjectInvitation.from_model(row) for row in rows]

    @classmethod
    def from_model(cls, row: models.EvaluationProject) -> EvaluationProject:
        return cls(
            model=row,
            id=to_global_id("EvaluationProject", row.id),
            slug=row.slug,
            name=row.name,
            instrument_codes=[str(code) for code in row.instrument_codes],
            starts_on=row.starts_on,
            ends_on=row.ends_on,
            consent_purpose=row.consent_purpose,
            suppression_threshold=row.suppression_threshold,
            closed_at=row.closed_at,
            version=row.version,
        )
