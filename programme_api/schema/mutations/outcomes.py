"""Consent, survey, safeguarding, custom-instrument and erasure mutations, on the one mutation convention.

These mutations were published before the convention reached them: they took separate arguments and answered
``userErrors`` of type ``OutcomesUserError`` (a string ``code``). The published schema only grows, so both
stay, deprecated: the separate arguments still work (without an idempotency key), and ``userErrors`` still
lists the refusals with the code as a string. New callers pass ``input`` (with an optional
``idempotencyKey``) and read ``errors``, typed by ``UserErrorCode`` like every other payload's
``userErrors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Self, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from ...domain import consent, models, surveys
from ...domain.errors import DomainError, ErrorCode
from ...domain.principal import Principal
from ..context import Info
from ..relay import expect_global_id
from ..types.outcomes import Consent, OutcomesUserError, SafeguardingAlert, SurveyAnswerInput, SurveyInstrument
from ..types.outcomes import SurveyResponse as SurveyResponseType
from .common import MutationInput, UserError, perform, user_errors

I = TypeVar("I", bound=MutationInput)  # noqa: E741 (an input type)

ARGUMENTS_DEPRECATED = "Pass `input` instead: it takes an `idempotencyKey`, and refusals are typed in `errors`."
USER_ERRORS_DEPRECATED = "Its `code` is a string: read `errors`, the same refusals typed by `UserErrorCode`."


@strawberry.type(description="A payload published before `UserErrorCode`: `errors` is its typed list of refusals.")
class OutcomesPayload:
    user_errors: list[OutcomesUserError] = strawberry.field(
        default_factory=list, deprecation_reason=USER_ERRORS_DEPRECATED
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list, description="Empty when the mutation succeeded; otherwise nothing was written."
    )

    @classmethod
    def refused(cls, error: DomainError, aliases: Mapping[str, str | None] | None = None) -> Self:
        legacy = [OutcomesUserError(field=f, message=m, code=c.value) for f, m, c in error.problems_found()]
        return cls(user_errors=legacy, errors=user_errors(error, aliases))


@strawberry.type
class RecordConsentPayload(OutcomesPayload):
    consent: Consent | None = None


@strawberry.type
class WithdrawConsentPayload(OutcomesPayload):
    withdrawn: list[Consent] = strawberry.field(default_factory=list)


@strawberry.type
class SubmitSurveyResponsePayload(OutcomesPayload):
    response: SurveyResponseType | None = None
    safeguarding_alert: SafeguardingAlert | None = None


@strawberry.type
class AcknowledgeSafeguardingAlertPayload(OutcomesPayload):
    alert: SafeguardingAlert | None = None


@strawberry.type
class DefineCustomInstrumentPayload(OutcomesPayload):
    instrument: SurveyInstrument | None = None


@strawberry.type
class EraseParticipantPayload(OutcomesPayload):
    erased: bool = False


@strawberry.input(description="One act of consent for one purpose.")
class RecordConsentInput(MutationInput):
    participant_id: strawberry.ID
    purpose: models.ConsentPurpose
    form_version: str | None = strawberry.field(
        default=None, description="The consent form signed; when left out, the organisation's default version."
    )
    given_at: datetime | None = strawberry.field(default=None, description="When consent was given; default now.")


@strawberry.input(description="Withdraw a participant's consent for one purpose.")
class WithdrawConsentInput(MutationInput):
    participant_id: strawberry.ID
    purpose: models.ConsentPurpose


@strawberry.input
class SubmitSurveyResponseInput(MutationInput):
    participant_id: strawberry.ID
    group_id: strawberry.ID
    instrument_id: strawberry.ID
    timepoint: models.Timepoint
    answers: list[SurveyAnswerInput]
    completed_at: datetime | None = None


@strawberry.input(description="Say what was done about a safeguarding alert.")
class AcknowledgeSafeguardingAlertInput(MutationInput):
    alert_id: strawberry.ID
    note: str = strawberry.field(description=f"What was done (1-{surveys.MAX_NOTE} characters).")


@strawberry.input(description="A new version of one of your organisation's own instruments.")
class DefineCustomInstrumentInput(MutationInput):
    code: str
    name: str
    definition: JSON


@strawberry.input(description="Erase one participant's personal data and survey responses.")
class EraseParticipantInput(MutationInput):
    participant_id: strawberry.ID
    version: int | None = strawberry.field(
        default=None, description="The participant's version you read; a stale one is a `CONFLICT`."
    )


def _choose(input: I | None, input_type: type[I], legacy: dict[str, Any]) -> I:
    """The call's input: ``input`` itself, or one built from the deprecated separate arguments."""
    given = {name: value for name, value in legacy.items() if value is not None}
    if input is not None:
        if given:
            raise DomainError(ErrorCode.INVALID, "pass either `input` or the separate arguments, not both", "input")
        return input
    try:
        return input_type(**given)
    except TypeError:
        raise DomainError(ErrorCode.INVALID, "`input` is required", "input") from None


async def _refuse(payload: type[Any], error: DomainError, info: Info) -> Any:
    info.context.failed = True
    return payload.refused(error)


async def record_consent(
    info: Info,
    input: RecordConsentInput | None = None,
    participant_id: Annotated[
        strawberry.ID | None, strawberry.argument(deprecation_reason=ARGUMENTS_DEPRECATED)
    ] = None,
    purpose: Annotated[
        models.ConsentPurpose | None, strawberry.argument(deprecation_reason=ARGUMENTS_DEPRECATED)
    ] = None,
    form_version: Annotated[str | None, strawberry.argument(deprecation_reason=ARGUMENTS_DEPRECATED)] = None,
    given_at: Annotated[datetime | None, strawberry.argument(deprecation_reason=ARGUMENTS_DEPRECATED)] = None,
) -> RecordConsentPayload:
    try:
        chosen = _choose(
            input,
            RecordConsentInput,
            {"participant_id": participant_id, "purpose": purpose, "form_version": form_version, "given_at": given_at},
        )
    except DomainError as error:
        return await _refuse(RecordConsentPayload, error, info)  # type: ignore[no-any-return]

    async def work(session: AsyncSession, principal: Principal) -> models.Consent:
        participant = expect_global_id(chosen.participant_id, "Participant", "input.participantId")
        return await consent.record_consent(
            session, principal, participant, chosen.purpose, chosen.form_version, chosen.given_at
        )

    return await perform(
        info,
        operation="recordConsent",
        scope="participants:write",
        input=chosen,
        result_type=models.Consent,
        work=work,
        payload=RecordConsentPayload,
        present=lambda row: RecordConsentPayload(consent=Consent.from_model(row)),
    )


async def withdraw_consent(
    info: Info,
    input: WithdrawConsentInput | None = None,
    participant_id: Annotated[
        strawberry.ID | None, strawberry.argument(deprecation_reason=ARGUMENTS_DEPRECATED)
    ] = None,
    purpose: Annotated[
        models.ConsentPurpose | None, strawberry.argument(deprecation_reason=ARGUMENTS_DEPRECATED)
    ] = None,
) -> WithdrawConsentPayload:
    try:
        chosen = _choose(input, WithdrawConsentInput, {"participant_id": participant_id, "purpose": purpose})
    except DomainError as error:
        return await _refuse(WithdrawConsentPayload, error, info)  # type: ignore[no-any-return]

    async def work(session: AsyncSession, principal: Principal) -> list[models.Consent]:
        participant = expect_global_id(chosen.participant_id, "Participant", "input.participantId")
        return await consent.withdraw_consent(session, principal, participant, chosen.purpose)

    return await perform(
        info,
        operation="withdrawConsent",
        scope="participants:write",
        input=chosen,
        result_type=list,
        work=work,
        payload=WithdrawConsentPayload,
        present=lambda rows: WithdrawConsentPayload(withdrawn=[Consent.from_model(row) for row in rows]),
    )


@dataclass(frozen=True)
class Submitted:
    response: models.SurveyResponse
    alert: models.SafeguardingAlert | None


async def submit_survey_response(info: Info, input: SubmitSurveyResponseInput) -> SubmitSurveyResponsePayload:
    async def work(session: AsyncSession, principal: Principal) -> Submitted:
        answers: dict[str, Any] = {}
        for answer in input.answers:
            if answer.item in answers:
                raise DomainError(ErrorCode.INVALID, "is answered more than once", f"answers.{answer.item}")
            answers[answer.item] = answer.value
        response, alert = await surveys.submit_response(
            session,
            principal,
            expect_global_id(input.participant_id, "Participant", "input.participantId"),
            expect_global_id(input.group_id, "Group", "input.groupId"),
            expect_global_id(input.instrument_id, "SurveyInstrument", "input.instrumentId"),
            input.timepoint,
            answers,
            input.completed_at,
        )
        return Submitted(response=response, alert=alert)

    return await perform(
        info,
        operation="submitSurveyResponse",
        scope="surveys:write",
        input=input,
        result_type=Submitted,
        work=work,
        payload=SubmitSurveyResponsePayload,
        present=lambda done: SubmitSurveyResponsePayload(
            response=SurveyResponseType.from_model(done.response),
            safeguarding_alert=SafeguardingAlert.from_model(done.alert) if done.alert else None,
        ),
    )


async def acknowledge_safeguarding_alert(
    info: Info,
    input: AcknowledgeSafeguardingAlertInput | None = None,
    alert_id: Annotated[strawberry.ID | None, strawberry.argument(deprecation_reason=ARGUMENTS_DEPRECATED)] = None,
    note: Annotated[str | None, strawberry.argument(deprecation_reason=ARGUMENTS_DEPRECATED)] = None,
) -> AcknowledgeSafeguardingAlertPayload:
    try:
        chosen = _choose(input, AcknowledgeSafeguardingAlertInput, {"alert_id": alert_id, "note": note})
    except DomainError as error:
        return await _refuse(AcknowledgeSafeguardingAlertPayload, error, info)  # type: ignore[no-any-return]

    async def work(session: AsyncSession, principal: Principal) -> models.SafeguardingAlert:
        alert = expect_global_id(chosen.alert_id, "SafeguardingAlert", "input.alertId")
        return await surveys.acknowledge_alert(session, principal, alert, chosen.note)

    return await perform(
        info,
        operation="acknowledgeSafeguardingAlert",
        scope="surveys:read",
        input=chosen,
        result_type=models.SafeguardingAlert,
        work=work,
        payload=AcknowledgeSafeguardingAlertPayload,
        present=lambda row: AcknowledgeSafeguardingAlertPayload(alert=SafeguardingAlert.from_model(row)),
    )


async def define_custom_instrument(
    info: Info,
    input: DefineCustomInstrumentInput | None = None,
    code: Annotated[str | None, strawberry.argument(deprecation_reason=ARGUMENTS_DEPRECATED)] = None,
    name: Annotated[str | None, strawberry.argument(deprecation_reason=ARGUMENTS_DEPRECATED)] = None,
    definition: Annotated[JSON | None, strawberry.argument(deprecation_reason=ARGUMENTS_DEPRECATED)] = None,
) -> DefineCustomInstrumentPayload:
    try:
        chosen = _choose(input, DefineCustomInstrumentInput, {"code": code, "name": name, "definition": definition})
    except DomainError as error:
        return await _refuse(DefineCustomInstrumentPayload, error, info)  # type: ignore[no-any-return]

    async def work(session: AsyncSession, principal: Principal) -> models.SurveyInstrument:
        if not isinstance(chosen.definition, dict):
            raise DomainError(ErrorCode.INVALID, "must be an object", "definition")
        return await surveys.define_custom_instrument(session, principal, chosen.code, chosen.name, chosen.definition)

    return await perform(
        info,
        operation="defineCustomInstrument",
        scope=("programme:write", "admin"),
        input=chosen,
        result_type=models.SurveyInstrument,
        work=work,
        payload=DefineCustomInstrumentPayload,
        present=lambda row: DefineCustomInstrumentPayload(instrument=SurveyInstrument.from_model(row)),
    )


async def erase_participant(
    info: Info,
    input: EraseParticipantInput | None = None,
    participant_id: Annotated[
        strawberry.ID | None, strawberry.argument(deprecation_reason=ARGUMENTS_DEPRECATED)
    ] = None,
) -> EraseParticipantPayload:
    try:
        chosen = _choose(input, EraseParticipantInput, {"participant_id": participant_id})
    except DomainError as error:
        return await _refuse(EraseParticipantPayload, error, info)  # type: ignore[no-any-return]

    async def work(session: AsyncSession, principal: Principal) -> bool:
        participant = expect_global_id(chosen.participant_id, "Participant", "input.participantId")
        await consent.erase_participant(session, principal, participant, chosen.version)
        return True  # the erased participant is out of everyone's reach, so a replay answers the flag alone

    return await perform(
        info,
        operation="eraseParticipant",
        scope="admin",
        input=chosen,
        result_type=bool,
        work=work,
        payload=EraseParticipantPayload,
        present=lambda erased: EraseParticipantPayload(erased=erased),
    )
