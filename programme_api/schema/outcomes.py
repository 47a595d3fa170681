"""Root fields for consent, surveys, safeguarding and evaluation: thin resolvers over the domain modules.

The mutations are resolved in ``schema/mutations/outcomes.py``, on the one mutation convention.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain import evaluation, models, surveys
from ..domain.audit import record_read
from ..domain.pagination import Ordering
from ..domain.principal import Principal
from .context import Info
from .lists import M, N, StatementBuilder, top_level_connection
from .mutations import outcomes as outcome_mutations
from .relay import Connection, expect_global_id
from .types.outcomes import (
    AggregateTable,
    EvaluationPageInfo,
    EvaluationResponse,
    EvaluationResponseConnection,
    EvaluationResponseEdge,
    SafeguardingAlert,
    SurveyInstrument,
    SurveyResponse,
)

T = TypeVar("T")


async def audited_connection(
    info: Info,
    build: StatementBuilder[M],
    ordering: Ordering,
    convert: Callable[[M], N],
    first: int | None,
    after: str | None,
    what: str,
    **details: Any,
) -> Connection[N]:
    """A forward page of identified health data: every list read of it is audited with the rows it returned
    (an empty page too: it says that there was nothing to see). Fields read are added as they resolve."""
    ids: list[Any] = []

    def kept(row: M) -> N:
        ids.append(getattr(row, "id"))  # noqa: B009 (the rows are models with an id; M does not say so)
        return convert(row)

    connection = await top_level_connection(info, build, ordering, kept, first, after, None, None)
    record_read(info.context.reads, what, ids, **details)
    return connection


@strawberry.type(description="The evaluator's project: consented, pseudonymised data. Requires `evaluation:read`.")
class Evaluation:
    project: strawberry.Private[models.EvaluationProject]
    slug: str
    name: str
    starts_on: date
    ends_on: date
    instrument_codes: list[str]
    consent_purpose: models.ConsentPurpose
    suppression_threshold: int = strawberry.field(
        description="Smallest count of people the tables show: the strictest of the project's own threshold "
        "and that of every organisation the project covers."
    )

    @strawberry.field(description="Responses of consenting participants, oldest first.")
    async def responses(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> EvaluationResponseConnection:
        async def page(session: AsyncSession, _principal: Principal) -> evaluation.RowPage:
            return await evaluation.response_page(session, self.project, first, after)

        async def total(session: AsyncSession, _principal: Principal) -> int:
            return await evaluation.response_count(session, self.project)

        found = await info.context.run(page)
        record_read(
            info.context.reads, "EvaluationProject", (self.project.id,), action="evaluation.responses_read",
            rows=len(found.rows),
        )  # fmt: skip
        edges = [
            EvaluationResponseEdge(cursor=c, node=EvaluationResponse.from_row(r))
            for r, c in zip(found.rows, found.cursors, strict=True)
        ]
        return EvaluationResponseConnection(
            edges=edges,
            page_info=EvaluationPageInfo(
                has_next_page=found.has_next_page,
                has_previous_page=found.has_previous_page,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            counter=lambda: info.context.run(total),
        )

    @strawberry.field(
        description="Outcome statistics of one instrument by region, group topic or timepoint. Figures under "
        "the threshold, and the complementary figures that would let them be derived from any other answer, "
        "are suppressed; the rules are in `/exports/codebook.json`."
    )
    async def aggregates(
        self, info: Info, instrument_code: str, by: evaluation.Dimension, timepoint: models.Timepoint | None = None
    ) -> AggregateTable:
        async def compute(session: AsyncSession, _principal: Principal) -> evaluation.AggregateTable:
            return await evaluation.aggregate(session, self.project, instrument_code, by, timepoint)

        table = await info.context.run(compute)
        record_read(
            info.context.reads, "EvaluationProject", (self.project.id,), action="evaluation.aggregates_read",
            instrument=instrument_code,
        )  # fmt: skip
        return AggregateTable.from_domain(table)


@strawberry.type
class OutcomesQuery:
    @strawberry.field(
        description="Shipped instruments and your organisation's own, by code and version. Requires `programme:read`."
    )
    async def survey_instruments(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[SurveyInstrument]:
        return await top_level_connection(
            info, surveys.instruments, surveys.INSTRUMENT_ORDER, SurveyInstrument.from_model, first, after, None, None
        )

    @strawberry.field(
        description="Identified survey responses in your reach (optionally of one participant), "
        "oldest first; each read is audited. Requires `surveys:read`."
    )
    async def survey_responses(
        self,
        info: Info,
        participant_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[SurveyResponse]:
        participant = expect_global_id(participant_id, "Participant", "participantId") if participant_id else None
        return await audited_connection(
            info,
            lambda p: surveys.responses(p, participant),
            surveys.RESPONSE_ORDER,
            SurveyResponse.from_model,
            first,
            after,
            "SurveyResponse",
            participant_id=str(participant) if participant else None,
        )

    @strawberry.field(
        description="Safeguarding alerts of the groups in your regions, oldest first; each read is "
        "audited. Requires `surveys:read`."
    )
    async def safeguarding_alerts(
        self, info: Info, open_only: bool = False, first: int | None = None, after: str | None = None
    ) -> Connection[SafeguardingAlert]:
        return await audited_connection(
            info,
            lambda p: surveys.alerts(p, open_only),
            surveys.ALERT_ORDER,
            SafeguardingAlert.from_model,
            first,
            after,
            "SafeguardingAlert",
        )

    @strawberry.field(
        description="Your evaluation project's pseudonymised data and aggregates. "
        "Requires `evaluation:read` and a token bound to an evaluation project."
    )
    async def evaluation(self, info: Info) -> Evaluation:
        async def load(session: AsyncSession, principal: Principal) -> tuple[models.EvaluationProject, int]:
            project = await evaluation.project_for(session, principal)
            return project, await evaluation.suppression_threshold(session, project)

        project, threshold = await info.context.run(load)
        return Evaluation(
            project=project,
            slug=project.slug,
            name=project.name,
            starts_on=project.starts_on,
            ends_on=project.ends_on,
            instrument_codes=[str(code) for code in project.instrument_codes],
            consent_purpose=project.consent_purpose,
            suppression_threshold=threshold,
        )


PARTICIPANTS = "Requires `participants:write`."


@strawberry.type
class OutcomesMutation:
    record_consent: outcome_mutations.RecordConsentPayload = strawberry.mutation(
        resolver=outcome_mutations.record_consent,
        description="Record a participant's consent for one purpose (an earlier one in force for "
        f"the purpose is superseded, kept as history). {PARTICIPANTS}",
    )
    withdraw_consent: outcome_mutations.WithdrawConsentPayload = strawberry.mutation(
        resolver=outcome_mutations.withdraw_consent,
        description="Withdraw a participant's consent for one purpose, effective immediately "
        f"(evaluators stop seeing all of their responses). {PARTICIPANTS}",
    )
    submit_survey_response: outcome_mutations.SubmitSurveyResponsePayload = strawberry.mutation(
        resolver=outcome_mutations.submit_survey_response,
        description="Submit one participant's answers to one instrument version at one timepoint; "
        "scored on the server; a risk answer raises a safeguarding alert. Requires `surveys:write`.",
    )
    acknowledge_safeguarding_alert: outcome_mutations.AcknowledgeSafeguardingAlertPayload = strawberry.mutation(
        resolver=outcome_mutations.acknowledge_safeguarding_alert,
        description="Acknowledge a safeguarding alert with a note saying what was done; the alert records who "
        "and when. Requires `surveys:read` and a person signed in (not an application acting for itself) who "
        "reaches the alert's group as its coordinator or an admin.",
    )
    define_custom_instrument: outcome_mutations.DefineCustomInstrumentPayload = strawberry.mutation(
        resolver=outcome_mutations.define_custom_instrument,
        description="Define (a new version of) your organisation's own instrument with declared "
        "scoring; codes are prefixed `custom_`. Requires `programme:write` or `admin`.",
    )
    erase_participant: outcome_mutations.EraseParticipantPayload = strawberry.mutation(
        resolver=outcome_mutations.erase_participant,
        description="Erase a participant: personal fields emptied, survey responses deleted, "
        "counts removed recorded in the audit log. Requires `admin`.",
    )
