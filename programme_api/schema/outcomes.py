"""Root fields for consent, surveys, safeguarding and evaluation: thin resolvers over the domain modules.

Mutations answer expected refusals as ``userErrors`` and mark the request failed, so the edge rolls back
everything the mutation wrote; missing scopes are top-level errors (``INSUFFICIENT_SCOPE``) like elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from ..domain import consent, evaluation, models, surveys
from ..domain.audit import record_read
from ..domain.errors import DomainError, ErrorCode
from ..domain.pagination import Ordering
from ..domain.principal import Principal
from ..domain.scoring import AnswerError
from .context import Info
from .lists import M, N, StatementBuilder, top_level_connection
from .mutations.common import TOP_LEVEL_CODES
from .relay import Connection, expect_global_id
from .types.outcomes import (
    AggregateTable,
    Consent,
    EvaluationPageInfo,
    EvaluationResponse,
    EvaluationResponseConnection,
    EvaluationResponseEdge,
    OutcomesUserError,
    SafeguardingAlert,
    SurveyAnswerInput,
    SurveyInstrument,
    SurveyResponse,
)

T = TypeVar("T")


async def attempt(info: Info, work: Callable[[], Awaitable[T]]) -> tuple[T | None, list[OutcomesUserError]]:
    """Run a mutation's domain call; expected refusals become user errors and roll the request back."""
    try:
        return await work(), []
    except DomainError as error:
        if error.code in TOP_LEVEL_CODES:  # the same refusals that stay top-level errors for every mutation
            raise
        info.context.failed = True
        if isinstance(error, AnswerError):
            return None, [
                OutcomesUserError(field=p.field, message=p.message, code=p.code.value) for p in error.problems
            ]
        if isinstance(error, surveys.InstrumentDefinitionError):
            return None, [OutcomesUserError(field=p.field, message=p.message, code="INVALID") for p in error.problems]
        return None, [OutcomesUserError(field=error.field, message=error.message, code=error.code.value)]


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


@strawberry.type
class RecordConsentPayload:
    consent: Consent | None
    user_errors: list[OutcomesUserError]


@strawberry.type
class WithdrawConsentPayload:
    withdrawn: list[Consent]
    user_errors: list[OutcomesUserError]


@strawberry.type
class SubmitSurveyResponsePayload:
    response: SurveyResponse | None
    safeguarding_alert: SafeguardingAlert | None
    user_errors: list[OutcomesUserError]


@strawberry.type
class AcknowledgeSafeguardingAlertPayload:
    alert: SafeguardingAlert | None
    user_errors: list[OutcomesUserError]


@strawberry.type
class DefineCustomInstrumentPayload:
    instrument: SurveyInstrument | None
    user_errors: list[OutcomesUserError]


@strawberry.type
class EraseParticipantPayload:
    erased: bool
    user_errors: list[OutcomesUserError]


@strawberry.input
class SubmitSurveyResponseInput:
    participant_id: strawberry.ID
    group_id: strawberry.ID
    instrument_id: strawberry.ID
    timepoint: models.Timepoint
    answers: list[SurveyAnswerInput]
    completed_at: datetime | None = None


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
        async def page(session: AsyncSession, principal: Principal) -> tuple[evaluation.RowPage, int]:
            found = await evaluation.response_page(session, self.project, first, after)
            total = await evaluation.response_count(session, self.project)
            return found, total

        found, total = await info.context.run(page)
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
            total_count=total,
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


@strawberry.type
class OutcomesMutation:
    @strawberry.mutation(
        description="Record a participant's consent for one purpose (an earlier one in force for "
        "the purpose is superseded, kept as history). Requires `participants:write`."
    )
    async def record_consent(
        self,
        info: Info,
        participant_id: strawberry.ID,
        purpose: models.ConsentPurpose,
        form_version: str,
        given_at: datetime | None = None,
    ) -> RecordConsentPayload:
        async def work() -> models.Consent:
            participant = expect_global_id(participant_id, "Participant", "participantId")
            return await info.context.run(consent.record_consent, participant, purpose, form_version, given_at)

        row, errors = await attempt(info, work)
        return RecordConsentPayload(consent=Consent.from_model(row) if row else None, user_errors=errors)

    @strawberry.mutation(
        description="Withdraw a participant's consent for one purpose, effective immediately "
        "(evaluators stop seeing all of their responses). Requires `participants:write`."
    )
    async def withdraw_consent(
        self, info: Info, participant_id: strawberry.ID, purpose: models.ConsentPurpose
    ) -> WithdrawConsentPayload:
        async def work() -> list[models.Consent]:
            participant = expect_global_id(participant_id, "Participant", "participantId")
            return await info.context.run(consent.withdraw_consent, participant, purpose)

        rows, errors = await attempt(info, work)
        return WithdrawConsentPayload(withdrawn=[Consent.from_model(r) for r in rows or []], user_errors=errors)

    @strawberry.mutation(
        description="Submit one participant's answers to one instrument version at one timepoint; "
        "scored on the server; a risk answer raises a safeguarding alert. Requires `surveys:write`."
    )
    async def submit_survey_response(self, info: Info, input: SubmitSurveyResponseInput) -> SubmitSurveyResponsePayload:
        async def work() -> tuple[models.SurveyResponse, models.SafeguardingAlert | None]:
            answers: dict[str, Any] = {}
            for answer in input.answers:
                if answer.item in answers:
                    raise DomainError(ErrorCode.INVALID, "is answered more than once", f"answers.{answer.item}")
                answers[answer.item] = answer.value
            return await info.context.run(
                surveys.submit_response,
                expect_global_id(input.participant_id, "Participant", "input.participantId"),
                expect_global_id(input.group_id, "Group", "input.groupId"),
                expect_global_id(input.instrument_id, "SurveyInstrument", "input.instrumentId"),
                input.timepoint,
                answers,
                input.completed_at,
            )

        result, errors = await attempt(info, work)
        if result is None:
            return SubmitSurveyResponsePayload(response=None, safeguarding_alert=None, user_errors=errors)
        response, alert = result
        return SubmitSurveyResponsePayload(
            response=SurveyResponse.from_model(response),
            safeguarding_alert=SafeguardingAlert.from_model(alert) if alert else None,
            user_errors=[],
        )

    @strawberry.mutation(
        description="Acknowledge a safeguarding alert with a note saying what was done. "
        "Requires `surveys:read` (coordinators and admins of the group's region)."
    )
    async def acknowledge_safeguarding_alert(
        self, info: Info, alert_id: strawberry.ID, note: str
    ) -> AcknowledgeSafeguardingAlertPayload:
        async def work() -> models.SafeguardingAlert:
            return await info.context.run(
                surveys.acknowledge_alert, expect_global_id(alert_id, "SafeguardingAlert", "alertId"), note
            )

        row, errors = await attempt(info, work)
        return AcknowledgeSafeguardingAlertPayload(
            alert=SafeguardingAlert.from_model(row) if row else None, user_errors=errors
        )

    @strawberry.mutation(
        description="Define (a new version of) your organisation's own instrument with declared "
        "scoring; codes are prefixed `custom_`. Requires `programme:write` or `admin`."
    )
    async def define_custom_instrument(
        self, info: Info, code: str, name: str, definition: JSON
    ) -> DefineCustomInstrumentPayload:
        async def work() -> models.SurveyInstrument:
            if not isinstance(definition, dict):
                raise DomainError(ErrorCode.INVALID, "must be an object", "definition")
            return await info.context.run(surveys.define_custom_instrument, code, name, definition)

        row, errors = await attempt(info, work)
        return DefineCustomInstrumentPayload(
            instrument=SurveyInstrument.from_model(row) if row else None, user_errors=errors
        )

    @strawberry.mutation(
        description="Erase a participant: personal fields emptied, survey responses deleted, "
        "counts removed recorded in the audit log. Requires `admin`."
    )
    async def erase_participant(self, info: Info, participant_id: strawberry.ID) -> EraseParticipantPayload:
        async def work() -> bool:
            await info.context.run(
                consent.erase_participant, expect_global_id(participant_id, "Participant", "participantId")
            )
            return True

        done, errors = await attempt(info, work)
        return EraseParticipantPayload(erased=bool(done), user_errors=errors)
