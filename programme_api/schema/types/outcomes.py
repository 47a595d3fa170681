"""GraphQL types for consent, surveys, safeguarding alerts and the evaluator's view.

Identified types (consents, responses, alerts) expose global IDs like the rest of the schema; the evaluator's
types expose none: a pseudonym, the week and labels, never a row id, name or contact.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from ...domain import consent, evaluation, models
from ...domain.evaluation import Dimension
from ...domain.outcome_tables import Statistic
from ..context import Info
from ..lists import load_children, load_node
from ..relay import Node, to_global_id
from . import enums  # noqa: F401  (registers the domain enums with strawberry)
from .analysis import ConfidenceInterval, ResponseChange
from .people import Participant
from .programme import Group

ConsentPurpose = strawberry.enum(models.ConsentPurpose, description="What a participant agreed to.")
Timepoint = strawberry.enum(models.Timepoint, description="When in a participant's journey a survey was taken.")
AggregateDimension = strawberry.enum(
    Dimension, name="AggregateDimension", description="What outcome aggregates are broken down by."
)

AggregateStatistic = strawberry.enum(
    Statistic, name="AggregateStatistic", description="A statistic of an outcome table cell."
)


@strawberry.type(description="A refusal the caller can act on: the input field, a message, and a code.")
class OutcomesUserError:
    field: str | None
    message: str
    code: str


@strawberry.type(description="One act of consent for one purpose; in force while `withdrawnAt` is null.")
class Consent(Node):
    purpose: models.ConsentPurpose
    form_version: str
    given_at: datetime
    withdrawn_at: datetime | None
    in_force: bool

    @classmethod
    def from_model(cls, row: models.Consent) -> Consent:
        return cls(
            id=to_global_id("Consent", row.id),
            purpose=row.purpose,
            form_version=row.form_version,
            given_at=row.given_at,
            withdrawn_at=row.withdrawn_at,
            in_force=row.withdrawn_at is None,
        )


@strawberry.type(description="One version of a questionnaire with its declared scoring. Requires `programme:read`.")
class SurveyInstrument(Node):
    code: str
    version: int
    name: str
    shipped: bool = strawberry.field(description="Shipped with the service (not an organisation's own).")
    wording_licensed: bool
    definition: JSON = strawberry.field(description="Items, response scale and scoring (see the scoring docs).")

    @classmethod
    def from_model(cls, row: models.SurveyInstrument) -> SurveyInstrument:
        return cls(
            id=to_global_id("SurveyInstrument", row.id),
            code=row.code,
            version=row.version,
            name=row.name,
            shipped=row.organisation_id is None,
            wording_licensed=row.wording_licensed,
            definition=cast(JSON, row.definition),
        )


@strawberry.type(description="A participant's answers at one timepoint, scored on entry. Requires `surveys:read`.")
class SurveyResponse(Node):
    model: strawberry.Private[models.SurveyResponse]
    timepoint: models.Timepoint
    answers: JSON
    raw_score: float | None
    score: float | None
    band: str | None
    completed_at: datetime

    @classmethod
    def from_model(cls, row: models.SurveyResponse) -> SurveyResponse:
        return cls(
            model=row,
            id=to_global_id("SurveyResponse", row.id),
            timepoint=row.timepoint,
            answers=cast(JSON, row.answers),
            raw_score=row.raw_score,
            score=row.score,
            band=row.band,
            completed_at=row.completed_at,
        )

    @strawberry.field(description="The instrument version this response was scored with.")
    async def instrument(self, info: Info) -> SurveyInstrument | None:
        return await load_node(info, models.SurveyInstrument, self.model.instrument_id, SurveyInstrument.from_model)

    @strawberry.field(description="The participant (null without `participants:read`).")
    async def participant(self, info: Info) -> Participant | None:
        principal = info.context.require_principal()
        if not principal.has_scope("participants:read"):
            return None
        return await load_node(info, models.Participant, self.model.participant_id, Participant.from_model)


@strawberry.type(
    description="Raised by a risk answer; the group's coordinators acknowledge it. Requires `surveys:read`."
)
class SafeguardingAlert(Node):
    model: strawberry.Private[models.SafeguardingAlert]
    reason: str
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledgement_note: str | None
    acknowledged_by: str | None = strawberry.field(
        description="The person who acknowledged it: their subject, as `viewer.subject` and the audit log name them."
    )

    @classmethod
    def from_model(cls, row: models.SafeguardingAlert) -> SafeguardingAlert:
        return cls(
            model=row,
            id=to_global_id("SafeguardingAlert", row.id),
            reason=row.reason,
            raised_at=row.created_at,
            acknowledged_at=row.acknowledged_at,
            acknowledgement_note=row.acknowledgement_note,
            acknowledged_by=str(row.acknowledged_by_user_id) if row.acknowledged_by_user_id else None,
        )

    @strawberry.field
    async def group(self, info: Info) -> Group | None:
        return await load_node(info, models.Group, self.model.group_id, Group.from_model)

    @strawberry.field(description="The response that raised the alert.")
    async def response(self, info: Info) -> SurveyResponse | None:
        return await load_node(info, models.SurveyResponse, self.model.response_id, SurveyResponse.from_model)


@strawberry.type(description="One response as an evaluator sees it: pseudonymised, week-coarsened.")
class EvaluationResponse:
    pseudonym: str = strawberry.field(description="Stable within this evaluation project, unlinkable across projects.")
    region: str
    group_topic: models.Topic
    timepoint: models.Timepoint
    instrument_code: str
    instrument_version: int
    answers: JSON
    score: float | None
    band: str | None
    completed_week: date = strawberry.field(description="Monday of the ISO week (UTC) the response was completed.")
    sessions_attended: int | None = strawberry.field(
        description="Sessions attended in the group between the baseline response and this one (null: no baseline)."
    )
    change: ResponseChange | None = strawberry.field(
        default=None,
        description="Change from the first baseline with its reliable change classification (null for "
        "baselines and for responses of people with no baseline).",
    )
    dose_band: str = strawberry.field(
        default="no_baseline",
        description="The project's band of `sessionsAttended` (`no_baseline` where there is no change).",
    )

    @classmethod
    def from_row(cls, row: evaluation.EvaluationRow) -> EvaluationResponse:
        return cls(
            pseudonym=row.pseudonym,
            region=row.region,
            group_topic=models.Topic(row.group_topic),
            timepoint=row.timepoint,
            instrument_code=row.instrument_code,
            instrument_version=row.instrument_version,
            answers=cast(JSON, row.answers),
            score=row.score,
            band=row.band,
            completed_week=row.completed_week,
            sessions_attended=row.sessions_attended,
            change=ResponseChange.from_domain(row.change),
            dose_band=row.dose_band,
        )


@strawberry.type
class EvaluationResponseEdge:
    cursor: str
    node: EvaluationResponse


@strawberry.type(description="Whether more evaluation responses follow.")
class EvaluationPageInfo:
    has_next_page: bool
    has_previous_page: bool
    end_cursor: str | None


@strawberry.type(description="A forward page of evaluation responses (`first` at most 100, opaque cursors).")
class EvaluationResponseConnection:
    edges: list[EvaluationResponseEdge]
    page_info: EvaluationPageInfo
    counter: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    async def total_count(self) -> int:
        """Counted only when asked for: it is a statement over every row of the project."""
        return await self.counter()


@strawberry.type(
    description="One cell of an outcome table; all statistics are null when `suppressed`, and any statistic "
    "withheld on its own (a small count of people inside the cell, or its complement) is null and listed in "
    "`suppressedStatistics`."
)
class AggregateCell:
    key: str
    suppressed: bool
    n: int | None
    mean: float | None
    sd: float | None = strawberry.field(description="Sample standard deviation of the score.")
    n_with_baseline: int | None
    mean_change: float | None = strawberry.field(description="Mean change from the same person's baseline score.")
    reliable_improvement: int | None
    reliable_deterioration: int | None
    suppressed_statistics: list[Statistic] = strawberry.field(
        description="The statistics withheld in this cell (null above); empty when everything is shown."
    )
    mean_change_ci: ConfidenceInterval | None = strawberry.field(
        default=None, description="Mean change with its 95 % t interval (shown with `nWithBaseline`)."
    )
    share_reliably_improved: float | None = strawberry.field(
        default=None, description="`reliableImprovement / nWithBaseline` (shown with `reliableImprovement`)."
    )
    effect_size_dz: ConfidenceInterval | None = strawberry.field(
        default=None,
        description="Cohen's d_z of the paired change (mean / SD of changes) with a noncentral-t 95 % interval.",
    )
    effect_size_dav: ConfidenceInterval | None = strawberry.field(
        default=None,
        description="Cohen's d_av (mean change / average of the baseline and follow-up SDs) with an "
        "approximate 95 % interval.",
    )

    @classmethod
    def from_domain(cls, cell: evaluation.AggregateCell) -> AggregateCell:
        return cls(
            key=cell.key,
            suppressed=cell.suppressed,
            n=cell.n,
            mean=cell.mean,
            sd=cell.sd,
            n_with_baseline=cell.n_with_baseline,
            mean_change=cell.mean_change,
            reliable_improvement=cell.reliable_improvement,
            reliable_deterioration=cell.reliable_deterioration,
            suppressed_statistics=list(cell.suppressed_statistics),
            mean_change_ci=ConfidenceInterval.from_domain(cell.mean_change_ci),
            share_reliably_improved=cell.share_reliably_improved,
            effect_size_dz=ConfidenceInterval.from_domain(cell.effect_size_dz),
            effect_size_dav=ConfidenceInterval.from_domain(cell.effect_size_dav),
        )


@strawberry.type(
    description="Outcomes by one dimension with small-number suppression decided once on every table the "
    "project can ask for (primary and complementary), so no difference of answers recovers a hidden figure."
)
class AggregateTable:
    instrument_code: str
    dimension: Dimension
    threshold: int
    cells: list[AggregateCell]
    total: AggregateCell

    @classmethod
    def from_domain(cls, table: evaluation.AggregateTable) -> AggregateTable:
        return cls(
            instrument_code=table.instrument_code,
            dimension=table.dimension,
            threshold=table.threshold,
            cells=[AggregateCell.from_domain(cell) for cell in table.cells],
            total=AggregateCell.from_domain(table.total),
        )


@strawberry.input(description="One answer: the item key and the chosen value (null when unanswered).")
class SurveyAnswerInput:
    item: str
    value: int | None


async def participant_consents(info: Info, participant_id: uuid.UUID) -> list[Consent]:
    """A participant's consent history, batched across every participant in the response."""
    rows = await load_children(
        info,
        "participant.consents",
        consent.consent_history,
        models.Consent.participant_id,
        participant_id,
        (models.Consent.given_at, models.Consent.created_at, models.Consent.id),
    )
    return [Consent.from_model(row) for row in rows]
