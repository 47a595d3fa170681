"""Survey instruments, responses and the safeguarding alerts that risk answers raise.

Scoring belongs to ``scoring.py``; this module decides who may submit for whom, stores the score with the
instrument version it was computed from, and raises an alert in the same unit of work as the response, so
a risk answer can never be stored without its alert. Reads of responses and alerts are health data: they are
audited reads (``audit.record_read``, written in their own transaction before the answer leaves).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from . import access, outbox
from .access import readable, require_scope
from .consent import audit_event
from .demo.outcomes import ensure_shipped_instruments
from .errors import DomainError, ErrorCode, NotFound
from .models import (
    ActorType,
    Enrolment,
    Group,
    Participant,
    Role,
    SafeguardingAlert,
    SurveyInstrument,
    SurveyResponse,
    Timepoint,
    utcnow,
)
from .pagination import Ordering
from .principal import Principal
from .scoring import AnswerError, DefinitionError, score_answers, validate_definition

RESPONSE_ORDER = Ordering((SurveyResponse.completed_at, SurveyResponse.id))
ALERT_ORDER = Ordering((SafeguardingAlert.created_at, SafeguardingAlert.id))
INSTRUMENT_ORDER = Ordering((SurveyInstrument.code, SurveyInstrument.version, SurveyInstrument.id))
MAX_NOTE = 4000
CUSTOM_CODE_PREFIX = "custom_"

__all__ = ["ensure_shipped_instruments"]


def instrument_filter(principal: Principal) -> ColumnElement[bool]:
    """Shipped instruments (no organisation) and the principal's organisation's own."""
    return sa.or_(
        SurveyInstrument.organisation_id.is_(None), SurveyInstrument.organisation_id == principal.organisation_id
    )


def _by_group(principal: Principal, organisation_column: Any, group_column: Any) -> ColumnElement[bool]:
    """Health data of the groups the principal reaches: a coordinator's regions, a facilitator's own groups."""
    return sa.and_(
        organisation_column == principal.organisation_id, group_column.in_(access.readable_group_ids(principal))
    )


# Instruments are the catalogue surveys are entered against: anyone working in the programme may list them.
access.register_rule(SurveyInstrument, "programme:read", instrument_filter)
access.register_rule(
    SurveyResponse, "surveys:read", lambda p: _by_group(p, SurveyResponse.organisation_id, SurveyResponse.group_id)
)
access.register_rule(
    SafeguardingAlert,
    "surveys:read",
    lambda p: _by_group(p, SafeguardingAlert.organisation_id, SafeguardingAlert.group_id),
)


def instruments(principal: Principal) -> sa.Select[SurveyInstrument]:
    return readable(principal, SurveyInstrument)


def responses(principal: Principal, participant_id: uuid.UUID | None = None) -> sa.Select[SurveyResponse]:
    statement = readable(principal, SurveyResponse)
    return statement if participant_id is None else statement.where(SurveyResponse.participant_id == participant_id)


def alerts(principal: Principal, open_only: bool = False) -> sa.Select[SafeguardingAlert]:
    statement = readable(principal, SafeguardingAlert)
    return statement.where(SafeguardingAlert.acknowledged_at.is_(None)) if open_only else statement


async def define_custom_instrument(
    session: AsyncSession, principal: Principal, code: str, name: str, definition: Mapping[str, Any]
) -> SurveyInstrument:
    """A new version of an organisation's own instrument, with declared scoring checked before it is stored.

    Needs ``admin`` or ``programme:write``: instruments shape what every facilitator collects, like groups do.
    Codes are prefixed ``custom_`` so they can never shadow a shipped instrument in evaluators' data.

    Trusted filter (the latest version): the organisation's own instruments of one code, a subset of what
    the instrument rule lets anyone in the organisation read.
    """
    if not (principal.has_scope("admin") or principal.has_scope("programme:write")):
        require_scope(principal, "programme:write")
    code = code.strip().lower()
    if not code.startswith(CUSTOM_CODE_PREFIX):
        code = CUSTOM_CODE_PREFIX + code
    if not (len(code) <= 40 and code.replace("_", "").isalnum()):
        raise DomainError(ErrorCode.INVALID, "must be letters, digits and underscores (at most 33)", "code")
    if not name.strip() or len(name) > 200:
        raise DomainError(ErrorCode.INVALID, "must be 1-200 characters", "name")
    try:
        validate_definition(definition)
    except DefinitionError as error:
        raise InstrumentDefinitionError(error) from error
    latest = access.trusted(
        sa.select(sa.func.max(SurveyInstrument.version)).where(
            SurveyInstrument.organisation_id == principal.organisation_id, SurveyInstrument.code == code
        ),
        reason="the organisation's own instrument versions (a subset of the instrument rule)",
    )
    version = ((await session.execute(latest)).scalar_one_or_none() or 0) + 1
    instrument = SurveyInstrument(
        organisation_id=principal.organisation_id,
        code=code,
        version=version,
        name=name.strip(),
        definition=dict(definition),
        wording_licensed=True,
    )
    session.add(instrument)
    await session.flush()
    audit_event(
        session, principal, "instrument.defined", "SurveyInstrument", instrument.id, {"code": code, "version": version}
    )
    return instrument


class InstrumentDefinitionError(DomainError):
    """A custom definition refused, with every problem addressed by its path in the definition."""

    def __init__(self, error: DefinitionError) -> None:
        self.problems = error.problems
        super().__init__(ErrorCode.INVALID, str(error), "definition")

    def problems_found(self) -> list[tuple[str | None, str, ErrorCode]]:
        return [(problem.field, problem.message, ErrorCode.INVALID) for problem in self.problems]


async def submit_response(
    session: AsyncSession,
    principal: Principal,
    participant_id: uuid.UUID,
    group_id: uuid.UUID,
    instrument_id: uuid.UUID,
    timepoint: Timepoint,
    answers: Mapping[str, object],
    completed_at: datetime | None = None,
) -> tuple[SurveyResponse, SafeguardingAlert | None]:
    """Score and store one response; a risk answer raises a safeguarding alert in the same unit of work."""
    require_scope(principal, "surveys:write")
    completed = completed_at or utcnow()
    if completed.tzinfo is None or completed > utcnow():
        raise DomainError(ErrorCode.INVALID, "must carry a timezone and not be in the future", "completedAt")
    participant = await _one(session, principal, Participant, participant_id)
    if participant is None:
        raise NotFound("participant", "participantId")
    group = await _one(session, principal, Group, group_id)
    if group is None:
        raise NotFound("group", "groupId")
    instrument = await _one(session, principal, SurveyInstrument, instrument_id)
    if instrument is None:
        raise NotFound("instrument", "instrumentId")
    await _require_enrolment(session, principal, participant.id, group.id)
    await _refuse_duplicate(session, principal, participant.id, instrument.id, timepoint)
    result = score_answers(instrument.definition, answers)
    response = SurveyResponse(
        organisation_id=participant.organisation_id,
        participant_id=participant.id,
        instrument_id=instrument.id,
        group_id=group.id,
        timepoint=timepoint,
        answers={key: answers.get(key) for key in (item["key"] for item in instrument.definition["items"])},
        raw_score=result.raw_score,
        score=result.score,
        band=result.band,
        completed_at=completed,
        recorded_by_user_id=principal.user_id,
    )
    session.add(response)
    await session.flush()
    alert = None
    if result.risk_items:
        reason = f"{instrument.name}: risk answer on {', '.join(result.risk_items)}"
        alert = SafeguardingAlert(
            organisation_id=response.organisation_id,
            response_id=response.id,
            participant_id=participant.id,
            group_id=group.id,
            reason=reason[:300],
        )
        session.add(alert)
        await session.flush()
        await outbox.emit(session, principal, "safeguarding_alert.raised", alert)
    audit_event(
        session,
        principal,
        "survey_response.submitted",
        "SurveyResponse",
        response.id,
        {
            "instrument": f"{instrument.code}@{instrument.version}",
            "timepoint": timepoint.value,
            "alert": alert is not None,
        },
    )
    return response, alert


async def acknowledge_alert(
    session: AsyncSession, principal: Principal, alert_id: uuid.UUID, note: str
) -> SafeguardingAlert:
    """A coordinator (or admin) of the group's region records that the alert was followed up, with a note.

    Only a person may: the alert then names who followed it up, which an application acting for itself
    (a client-credentials token) cannot say.
    """
    require_scope(principal, "surveys:read")
    if principal.actor_type is not ActorType.USER:
        raise DomainError(
            ErrorCode.FORBIDDEN, "alerts are acknowledged by a person signed in, not by an application", "alertId"
        )
    if principal.role is Role.FACILITATOR:
        raise DomainError(ErrorCode.FORBIDDEN, "alerts are acknowledged by the group's coordinators", "alertId")
    note = note.strip()
    if not note or len(note) > MAX_NOTE:
        raise DomainError(ErrorCode.INVALID, f"must be 1-{MAX_NOTE} characters", "note")
    alert = await access.get_in_reach(session, principal, SafeguardingAlert, alert_id, "alert", "alertId", lock=True)
    if alert.acknowledged_at is not None:
        raise DomainError(ErrorCode.CONFLICT, "this alert has already been acknowledged", "alertId")
    alert.acknowledged_at = utcnow()
    alert.acknowledged_by_user_id = principal.user_id
    alert.acknowledgement_note = note
    await session.flush()
    audit_event(session, principal, "safeguarding_alert.acknowledged", "SafeguardingAlert", alert.id)
    await outbox.emit(session, principal, "safeguarding_alert.acknowledged", alert)
    return alert


async def _one(session: AsyncSession, principal: Principal, model: Any, row_id: uuid.UUID) -> Any:
    """One row within the writer's reach (scope already checked by the caller), or None."""
    statement = access.in_reach(principal, model).where(model.id == row_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def _require_enrolment(
    session: AsyncSession, principal: Principal, participant_id: uuid.UUID, group_id: uuid.UUID
) -> None:
    """The participant is enrolled in the group (both already found in reach)."""
    statement = access.in_reach(principal, Enrolment).where(
        Enrolment.participant_id == participant_id, Enrolment.group_id == group_id
    )
    if (await session.execute(statement)).first() is None:
        raise DomainError(ErrorCode.NOT_ENROLLED, "the participant is not enrolled in this group", "groupId")


async def _refuse_duplicate(
    session: AsyncSession,
    principal: Principal,
    participant_id: uuid.UUID,
    instrument_id: uuid.UUID,
    timepoint: Timepoint,
) -> None:
    """One response per participant, instrument and timepoint.

    Trusted filter: the rule is organisation-wide (a response given in a group outside the writer's reach
    counts too), so it spans the organisation of a participant found in reach, and reveals only that a
    response exists.
    """
    statement = access.trusted(
        sa.select(SurveyResponse.id).where(
            SurveyResponse.organisation_id == principal.organisation_id,
            SurveyResponse.participant_id == participant_id,
            SurveyResponse.instrument_id == instrument_id,
            SurveyResponse.timepoint == timepoint,
        ),
        reason="organisation-wide uniqueness of a response; reveals only that one exists",
    )
    if (await session.execute(statement)).first() is not None:
        raise DomainError(
            ErrorCode.DUPLICATE,
            "this participant already has a response for this instrument and timepoint",
            "timepoint",
        )


__all__ += [
    "AnswerError",
    "acknowledge_alert",
    "alerts",
    "define_custom_instrument",
    "instruments",
    "responses",
    "submit_response",
]
