"""An organisation's admin setting up evaluation projects: create, change, close.

A project is the evaluator's whole scope (instruments, date range, the consent purpose its rows need, the
suppression threshold) and owns a pseudonym key that is generated here, kept only in the database and never
returned: pseudonyms stay stable within the project and unlinkable to any other. Closing a project stops its
evaluators' reads at once (the evaluator's project rule requires an open project); its clients and people
stay, refused, for the record.

Only the owning organisation's admin changes a project. Other organisations take part in a shared project
when the owner's admin invites them and their own admin accepts (``evaluation_invitations.py``): the data
they share is theirs to agree to, which one tenant's admin cannot do for another. The operator's
``programme-api evaluation-projects share`` is the override that records an accepted invitation directly.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit, evaluation_invitations
from .access import require_scope
from .errors import DomainError, ErrorCode, NotFound
from .models import (
    ActorType,
    AuditEvent,
    ConsentPurpose,
    EvaluationProject,
    EvaluationProjectOrganisation,
    SurveyInstrument,
    utcnow,
)
from .organisations import check_suppression_threshold
from .principal import Principal
from .regions import SLUG, clean_name
from .surveys import instruments

SCOPE = "admin"
MAX_INSTRUMENTS = 20


@dataclass(frozen=True)
class NewProject:
    slug: str
    name: str
    instrument_codes: tuple[str, ...]
    starts_on: date
    ends_on: date
    consent_purpose: ConsentPurpose = ConsentPurpose.EVALUATION
    suppression_threshold: int = 10
    participating_organisation_ids: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class ProjectChanges:
    """Fields to change; None keeps the current value."""

    name: str | None = None
    instrument_codes: tuple[str, ...] | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    consent_purpose: ConsentPurpose | None = None
    suppression_threshold: int | None = None
    participating_organisation_ids: tuple[uuid.UUID, ...] | None = None
    """The other organisations wanted (invited; the ones left out withdrawn); None keeps them."""


def owned(principal: Principal) -> sa.Select[EvaluationProject]:
    """The projects the caller's organisation owns, for its admin.

    Trusted filter: the owner organisation, for callers holding ``admin`` who reach the whole organisation;
    the evaluator's rule (``evaluation.py``) is for reading data through a project, not for managing it.
    """
    require_scope(principal, SCOPE)
    statement = sa.select(EvaluationProject).where(EvaluationProject.organisation_id == principal.organisation_id)
    if principal.region_ids is not None:
        statement = statement.where(sa.false())
    return access.trusted(statement, reason="projects the caller's organisation owns")


async def _owned_one(session: AsyncSession, principal: Principal, project_id: uuid.UUID) -> EvaluationProject:
    found = await session.execute(owned(principal).where(EvaluationProject.id == project_id).with_for_update())
    row = found.scalar_one_or_none()
    if row is None:
        raise NotFound("evaluation project", "project_id")
    return row


async def _check_instruments(session: AsyncSession, principal: Principal, codes: tuple[str, ...]) -> list[str]:
    """Codes of instruments the organisation can use (shipped ones and its own custom ones), deduplicated."""
    wanted = list(dict.fromkeys(code.strip() for code in codes))
    if not wanted or len(wanted) > MAX_INSTRUMENTS:
        raise DomainError(ErrorCode.INVALID, f"name 1 to {MAX_INSTRUMENTS} instruments", "instrument_codes")
    statement = instruments(principal).with_only_columns(SurveyInstrument.code).where(SurveyInstrument.code.in_(wanted))
    known = set((await session.execute(statement)).scalars())
    for index, code in enumerate(wanted):
        if code not in known:
            raise DomainError(ErrorCode.NOT_FOUND, f"no instrument {code!r}", f"instrument_codes.{index}")
    return wanted


def _check_dates(starts_on: date, ends_on: date) -> None:
    if ends_on < starts_on:
        raise DomainError(ErrorCode.INVALID, "must not be before startsOn", "ends_on")


async def create_project(session: AsyncSession, principal: Principal, data: NewProject) -> EvaluationProject:
    require_scope(principal, SCOPE)
    if principal.region_ids is not None:
        raise DomainError(ErrorCode.FORBIDDEN, "only callers who reach the whole organisation manage projects")
    if not SLUG.match(data.slug):
        raise DomainError(ErrorCode.INVALID, "must be 1 to 63 lower-case letters, digits or inner hyphens", "slug")
    name = clean_name(data.name)
    codes = await _check_instruments(session, principal, data.instrument_codes)
    _check_dates(data.starts_on, data.ends_on)
    threshold = check_suppression_threshold(data.suppression_threshold)
    project = EvaluationProject(
        id=uuid.uuid4(),
        organisation_id=principal.organisation_id,
        slug=data.slug,
        name=name,
        instrument_codes=codes,
        starts_on=data.starts_on,
        ends_on=data.ends_on,
        consent_purpose=data.consent_purpose,
        suppression_threshold=threshold,
        pseudonym_key=secrets.token_bytes(32),
    )
    try:
        # Slugs are unique across organisations (clients name projects by slug); another tenant's project
        # is invisible here, so the unique constraint is the check.
        async with session.begin_nested():
            session.add(project)
            await session.flush()
    except IntegrityError:
        raise DomainError(ErrorCode.DUPLICATE, f"the slug {data.slug!r} is taken", "slug") from None
    session.add(EvaluationProjectOrganisation(organisation_id=principal.organisation_id,
                                              evaluation_project_id=project.id))  # fmt: skip
    await session.flush()
    invitations = await evaluation_invitations.invite(session, principal, project, data.participating_organisation_ids)
    details = {"slug": project.slug, "instruments": codes, "consent_purpose": project.consent_purpose.value,
               "invited": invitations["invited"]}  # fmt: skip
    await audit.record(session, principal, "evaluation_project.create", project, details)
    return project


async def update_project(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID, version: int, changes: ProjectChanges
) -> EvaluationProject:
    require_scope(principal, SCOPE)
    project = await _owned_one(session, principal, project_id)
    if project.closed_at is not None:
        raise DomainError(ErrorCode.INVALID_STATE, "the project is closed", "project_id")
    wanted: dict[str, object] = {}
    if changes.name is not None:
        wanted["name"] = clean_name(changes.name)
    if changes.instrument_codes is not None:
        wanted["instrument_codes"] = await _check_instruments(session, principal, changes.instrument_codes)
    if changes.starts_on is not None:
        wanted["starts_on"] = changes.starts_on
    if changes.ends_on is not None:
        wanted["ends_on"] = changes.ends_on
    if changes.consent_purpose is not None:
        wanted["consent_purpose"] = changes.consent_purpose
    if changes.suppression_threshold is not None:
        wanted["suppression_threshold"] = check_suppression_threshold(changes.suppression_threshold)
    _check_dates(wanted.get("starts_on", project.starts_on), wanted.get("ends_on", project.ends_on))  # type: ignore[arg-type]
    await audit.bump_version(session, project, version, "evaluation project")
    changed = sorted(name for name, value in wanted.items() if getattr(project, name) != value)
    for name in changed:
        setattr(project, name, wanted[name])
    await session.flush()
    details: dict[str, object] = {"changed": changed}
    if changes.participating_organisation_ids is not None:
        ids = changes.participating_organisation_ids
        details |= await evaluation_invitations.invite(session, principal, project, ids)
    await audit.record(session, principal, "evaluation_project.update", project, details)
    return project


async def close_project(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID, version: int
) -> EvaluationProject:
    require_scope(principal, SCOPE)
    project = await _owned_one(session, principal, project_id)
    if project.closed_at is not None:
        raise DomainError(ErrorCode.INVALID_STATE, "the project is already closed", "project_id")
    await audit.bump_version(session, project, version, "evaluation project")
    project.closed_at = utcnow()
    await session.flush()
    await audit.record(session, principal, "evaluation_project.close", project, {})
    return project


async def share_project(session: AsyncSession, project_slug: str, organisation_slug: str) -> EvaluationProject:
    """The operator adds an organisation to a shared project, once both organisations have agreed.

    System work across two tenants (run as the tables' owner), and the operator's override of the invitation
    the owner's admin sends and the other organisation's admin accepts through the API: it records the
    invitation as accepted at once, so the owner sees the organisation taking part and the organisation's
    admin can leave. Audited in both.
    """
    from .directory import organisation_by_slug

    project = await session.scalar(sa.select(EvaluationProject).where(EvaluationProject.slug == project_slug))
    if project is None:
        raise NotFound(f"evaluation project {project_slug!r}", "project")
    if project.closed_at is not None:
        raise DomainError(ErrorCode.INVALID_STATE, "the project is closed", "project")
    organisation = await organisation_by_slug(session, organisation_slug)
    taken = await session.scalar(
        sa.select(EvaluationProjectOrganisation.id).where(
            EvaluationProjectOrganisation.evaluation_project_id == project.id,
            EvaluationProjectOrganisation.organisation_id == organisation.id,
        )
    )
    if taken is not None:
        raise DomainError(
            ErrorCode.DUPLICATE, f"{organisation_slug!r} already takes part in the project", "organisation"
        )
    session.add(EvaluationProjectOrganisation(organisation_id=organisation.id, evaluation_project_id=project.id))
    await evaluation_invitations.record_shared(session, project, organisation.id)
    for tenant in {project.organisation_id, organisation.id}:
        session.add(
            AuditEvent(
                organisation_id=tenant,
                actor_type=ActorType.SYSTEM,
                actor_id="cli",
                action="evaluation_project.share",
                target_type="EvaluationProject",
                target_id=str(project.id),
                details={"organisation_id": str(organisation.id)},
            )
        )
    await session.flush()
    return project
