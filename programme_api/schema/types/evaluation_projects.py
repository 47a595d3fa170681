"""Evaluation projects as their owning organisation's admin sees them (never the pseudonym key)."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from ...domain import models
from ..relay import Node, to_global_id
from .outcomes import ConsentPurpose


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
