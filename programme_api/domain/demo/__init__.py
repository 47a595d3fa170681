"""``programme-api demo load``: a realistic, deterministic demonstration data set, loaded once.

Two organisations (``northern-peer-support``, ``coastal-wellbeing``), three regions each, 44 groups across every
topic, delivery mode and schedule frequency, facilitators in every compliance state, about 500 participants
with enrolments, consents, 12 weeks of sessions and registers, survey responses with safeguarding alerts, and
the ``demo-evaluation`` project. Every demo user signs in with ``DEMO_PASSWORD`` (``demo-password-1``):
``admin@``, ``coordinator.north@`` / ``coordinator.south@`` (``.west@`` / ``.east@`` on the coast),
``facilitator@`` and ``evaluator@`` followed by ``<organisation slug>.example``.

Determinism: every value comes from seeded streams (``common.SEED``) except the evaluation project's
pseudonym key (a real secret) and the password hash's salt. Dates hang on one anchor, the current date in
Europe/London: sessions cover the 10 weeks before the current week, this week and next week, so the data is
always recent and loading twice on the same day gives identical data. Tests pass ``today`` to pin it.

Idempotence: if any demo organisation exists the load writes nothing and says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import (
    ActorType,
    Attendance,
    AuditEvent,
    Base,
    Consent,
    Enrolment,
    EvaluationProject,
    EvaluationProjectInvitation,
    EvaluationProjectOrganisation,
    Facilitator,
    FacilitatorAssignment,
    Group,
    GroupSession,
    Organisation,
    Participant,
    Region,
    SafeguardingAlert,
    SessionFacilitator,
    SurveyResponse,
    User,
    UserEmail,
    UserRegion,
)
from ..passwords import hash_password
from .catalogue import DEMO_PASSWORD, EVALUATION_SLUG, ORGANISATIONS
from .common import DEMO_TIMEZONE, SEED, IdSource, Period, Rows, local_today
from .meetings import build_meetings
from .outcomes import build_outcomes, ensure_shipped_instruments
from .people import build_people
from .structure import OrganisationPlan, build_structure

__all__ = [
    "DEMO_PASSWORD",
    "EVALUATION_SLUG",
    "ORGANISATION_SLUGS",
    "build_rows",
    "ensure_shipped_instruments",
    "load_demo",
]

ORGANISATION_SLUGS = tuple(spec.slug for spec in ORGANISATIONS)

INSERT_ORDER: tuple[type[Base], ...] = (
    Organisation,
    EvaluationProject,
    Region,
    User,
    UserEmail,
    UserRegion,
    EvaluationProjectOrganisation,
    EvaluationProjectInvitation,
    Facilitator,
    Group,
    FacilitatorAssignment,
    Participant,
    Enrolment,
    Consent,
    GroupSession,
    SessionFacilitator,
    Attendance,
    SurveyResponse,
    SafeguardingAlert,
    AuditEvent,
)
"""Parents before children, so foreign keys hold at every statement (SQLite checks them immediately)."""

SUMMARY_COUNTS = (
    ("organisations", Organisation),
    ("regions", Region),
    ("groups", Group),
    ("users", User),
    ("facilitators", Facilitator),
    ("participants", Participant),
    ("enrolments", Enrolment),
    ("sessions", GroupSession),
    ("attendance marks", Attendance),
    ("consents", Consent),
    ("survey responses", SurveyResponse),
    ("safeguarding alerts", SafeguardingAlert),
)


async def load_demo(session: AsyncSession, *, today: date | None = None) -> str:
    """Load the demo data set unless it is already there, and return a one-line summary.

    Only flushes: the caller owns the transaction (the CLI commits it, tests roll it back).
    """
    existing = await existing_demo_organisations(session)
    if existing:
        return f"demo data already loaded ({', '.join(existing)} exist); nothing changed"
    period = Period(today or local_today(), ZoneInfo(DEMO_TIMEZONE))
    instrument_ids = await ensure_shipped_instruments(session)
    rows = build_rows(period, hash_password(DEMO_PASSWORD), instrument_ids)
    for model in INSERT_ORDER:
        if rows.of(model):
            await session.execute(sa.insert(model), rows.of(model))
    await session.flush()
    counts = ", ".join(f"{rows.count(model)} {label}" for label, model in SUMMARY_COUNTS)
    return f"demo data loaded: {counts}; sessions {period.start} to {period.end}; password {DEMO_PASSWORD!r}"


async def existing_demo_organisations(session: AsyncSession) -> list[str]:
    """Slugs of demo organisations already present: one is enough to refuse, since a half-present demo
    cannot be completed without clashing on slugs and e-mail addresses."""
    found = await session.scalars(
        sa.select(Organisation.slug).where(Organisation.slug.in_(ORGANISATION_SLUGS)).order_by(Organisation.slug)
    )
    return list(found)


def build_rows(period: Period, password_hash: str, instrument_ids: Mapping[str, uuid.UUID]) -> Rows:
    """Every demo row, computed in memory (no database access), keyed by model."""
    rows = Rows()
    plans = build_structure(rows, period, password_hash)
    people = build_people(rows, plans, period)
    build_meetings(rows, plans, people, period)
    build_outcomes(rows, people, instrument_ids, period)
    add_audit_events(rows, plans, period)
    return rows


def add_audit_events(rows: Rows, plans: list[OrganisationPlan], period: Period) -> None:
    """One ``demo.load`` event per organisation, so each tenant's audit log explains where its data came from
    (an event without an organisation would be visible to neither)."""
    ids = IdSource("audit")
    for plan in plans:
        rows.add(
            AuditEvent,
            {
                "id": ids(),
                "organisation_id": plan.id,
                "actor_type": ActorType.SYSTEM,
                "actor_id": "programme-api demo load",
                "action": "demo.load",
                "target_type": "organisation",
                "target_id": str(plan.id),
                "request_id": None,
                "details": {"seed": SEED, "anchor_date": period.today.isoformat(), "slug": plan.spec.slug},
            },
        )
