"""Consent per participant and purpose: recorded, withdrawn at once, and never forgotten.

History is the point: a withdrawal closes the consent row (``withdrawn_at``) instead of deleting it, so an
auditor can see what was agreed when. Evaluator queries test "in force" (``in_force_clause``) on every read,
which is what makes a withdrawal take effect immediately for past responses too: nothing is copied or cached.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from . import access, outbox
from .access import require_scope
from .errors import DomainError, ErrorCode, NotFound
from .models import AuditEvent, Consent, ConsentPurpose, Organisation, Participant, utcnow
from .principal import Principal

MAX_FORM_VERSION = 40


def _consent_filter(principal: Principal) -> ColumnElement[bool]:
    """Consents of the participants the principal may read (same reach as the participant itself)."""
    participants = sa.select(Participant.id).where(access.row_filter(principal, Participant))
    return sa.and_(Consent.organisation_id == principal.organisation_id, Consent.participant_id.in_(participants))


access.register_rule(Consent, "participants:read", _consent_filter)


def in_force_clause(participant_id: Any, purpose: ConsentPurpose) -> ColumnElement[bool]:
    """EXISTS a consent for ``purpose`` that has been given and not withdrawn, for the correlated participant."""
    return sa.exists(
        sa.select(Consent.id).where(
            Consent.participant_id == participant_id,
            Consent.purpose == purpose,
            Consent.withdrawn_at.is_(None),
        )
    )


def audit_event(
    session: AsyncSession,
    principal: Principal,
    action: str,
    target_type: str | None,
    target_id: Any,
    details: dict[str, Any] | None = None,
    organisation_id: uuid.UUID | None = None,
) -> None:
    """Add one audit event in the caller's unit of work (it commits or rolls back with the change it records).

    The request id comes from the request's context variable, so domain code need not carry it around.
    """
    from ..request_context import current_request_id

    session.add(
        AuditEvent(
            organisation_id=organisation_id or principal.organisation_id,
            actor_type=principal.actor_type,
            actor_id=principal.actor_id,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            request_id=current_request_id(),
            details=details or {},
        )
    )


async def record_consent(
    session: AsyncSession,
    principal: Principal,
    participant_id: uuid.UUID,
    purpose: ConsentPurpose,
    form_version: str | None,
    given_at: datetime | None = None,
) -> Consent:
    """Record one act of consent; an earlier consent still in force for the purpose is superseded (closed).

    Keeping one open row per purpose makes "in force" a simple EXISTS, and the closed row stays as history.
    Without a form version, the organisation's default one is recorded (refused when it has none).
    """
    require_scope(principal, "participants:write")
    if form_version is None:
        organisation = await access.get_in_reach(
            session, principal, Organisation, principal.organisation_id, "organisation", "formVersion"
        )
        form_version = organisation.default_consent_form_version or ""
    form_version = form_version.strip()
    if not form_version or len(form_version) > MAX_FORM_VERSION:
        raise DomainError(ErrorCode.INVALID, f"must be 1-{MAX_FORM_VERSION} characters", "formVersion")
    now = utcnow()
    given = given_at or now
    if given.tzinfo is None:
        raise DomainError(ErrorCode.INVALID, "must carry a timezone", "givenAt")
    if given > now:
        raise DomainError(ErrorCode.INVALID, "cannot be in the future", "givenAt")
    participant = await _writable_participant(session, principal, participant_id)
    for open_consent in await _open_consents(session, principal, participant.id, purpose):
        open_consent.withdrawn_at = max(given, open_consent.given_at)
        open_consent.withdrawn_by_user_id = principal.user_id
    consent = Consent(
        organisation_id=participant.organisation_id,
        participant_id=participant.id,
        purpose=purpose,
        form_version=form_version,
        given_at=given,
        recorded_by_user_id=principal.user_id,
    )
    session.add(consent)
    await session.flush()
    audit_event(
        session,
        principal,
        "consent.recorded",
        "Consent",
        consent.id,
        {"participant_id": str(participant.id), "purpose": purpose.value, "form_version": form_version},
    )
    return consent


async def withdraw_consent(
    session: AsyncSession, principal: Principal, participant_id: uuid.UUID, purpose: ConsentPurpose
) -> list[Consent]:
    """Withdraw every consent in force for the purpose, effective now; refused when none is in force."""
    require_scope(principal, "participants:write")
    participant = await _writable_participant(session, principal, participant_id)
    open_consents = await _open_consents(session, principal, participant.id, purpose)
    if not open_consents:
        raise DomainError(ErrorCode.INVALID, f"no consent for {purpose.value} is in force", "purpose")
    now = utcnow()
    for consent in open_consents:
        consent.withdrawn_at = max(now, consent.given_at)
        consent.withdrawn_by_user_id = principal.user_id
    await session.flush()
    audit_event(session, principal, "consent.withdrawn", "Participant", participant.id, {"purpose": purpose.value})
    await outbox.emit(session, principal, "consent.withdrawn", participant, purpose=purpose.value)
    return open_consents


async def _writable_participant(session: AsyncSession, principal: Principal, participant_id: uuid.UUID) -> Participant:
    """A participant in the writer's reach; writes need the read reach too (no writing blind)."""
    statement = access.in_reach(principal, Participant).where(Participant.id == participant_id)
    participant = (await session.execute(statement)).scalar_one_or_none()
    if participant is None:
        raise NotFound("participant", "participantId")
    return participant


async def _open_consents(
    session: AsyncSession, principal: Principal, participant_id: uuid.UUID, purpose: ConsentPurpose
) -> list[Consent]:
    """The consents in force for a purpose, to be withdrawn.

    Trusted filter: ``participant_id`` was found through ``in_reach`` by the caller, and the consents of a
    participant in reach are the writer's to close; the organisation is pinned as every rule pins it.
    """
    statement = access.trusted(
        sa.select(Consent).where(
            Consent.organisation_id == principal.organisation_id,
            Consent.participant_id == participant_id,
            Consent.purpose == purpose,
            Consent.withdrawn_at.is_(None),
        ),
        reason="consents of a participant already found in the writer's reach",
    )
    return list((await session.execute(statement)).scalars())


def consent_history(principal: Principal) -> sa.Select[Consent]:
    """Readable consents (history included); callers narrow by participant."""
    return access.readable(principal, Consent)


__all__ = [
    "audit_event",
    "consent_history",
    "erase_participant",
    "in_force_clause",
    "record_consent",
    "withdraw_consent",
]


async def erase_participant(
    session: AsyncSession, principal: Principal, participant_id: uuid.UUID, version: int | None = None
) -> Participant:
    """Erase one participant on request: personal fields emptied, survey responses (and their alerts) deleted.

    The participant row stays, marked ``erased_at``, so enrolment and attendance counts already published stay
    the same. Aggregates already published from survey responses are kept reconcilable instead: the audit event
    lists how many responses were removed per instrument version and timepoint, so any published ``n`` equals
    today's ``n`` plus the erased counts. Consents stay as the record of what was agreed (they hold no
    personal data beyond the link to the now-empty row).

    Trusted filter (the count of removed responses): an admin's erasure covers every response of a
    participant found in reach, whatever group it was given in, so it is filtered by participant and
    organisation rather than by the survey rules' groups.
    """
    from .models import SafeguardingAlert, SurveyInstrument, SurveyResponse

    require_scope(principal, "admin")
    participant = await _writable_participant(session, principal, participant_id)
    if version is not None and version != participant.version:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"the participant was changed by someone else (now at version {participant.version}): read it again",
            "version",
        )
    removed = access.trusted(
        sa.select(SurveyInstrument.code, SurveyInstrument.version, SurveyResponse.timepoint, sa.func.count())
        .join(SurveyInstrument, SurveyInstrument.id == SurveyResponse.instrument_id)
        .where(
            SurveyResponse.organisation_id == principal.organisation_id, SurveyResponse.participant_id == participant.id
        )
        .group_by(SurveyInstrument.code, SurveyInstrument.version, SurveyResponse.timepoint),
        reason="counts of the responses an admin erases for a participant found in reach",
    )
    counts = {f"{code}@{version}/{timepoint}": int(n) for code, version, timepoint, n in await session.execute(removed)}
    owned = (
        SafeguardingAlert.organisation_id == principal.organisation_id,
        SafeguardingAlert.participant_id == participant.id,
    )
    await session.execute(sa.delete(SafeguardingAlert).where(*owned))
    await session.execute(
        sa.delete(SurveyResponse).where(
            SurveyResponse.organisation_id == principal.organisation_id, SurveyResponse.participant_id == participant.id
        )
    )
    participant.reference = f"erased-{uuid.uuid4().hex[:12]}"
    participant.preferred_name = participant.contact_email = participant.contact_phone = None
    participant.erased_at = utcnow()
    participant.version += 1
    await session.flush()
    audit_event(
        session,
        principal,
        "participant.erased",
        "Participant",
        participant.id,
        {"removed_responses": counts, "removed_total": sum(counts.values())},
    )
    return participant
