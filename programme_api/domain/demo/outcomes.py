"""Survey responses at baseline, follow-up and exit, scored by the real scoring code, and the safeguarding
alerts that PHQ-9 item 9 risk answers raise."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..instruments import SHIPPED_INSTRUMENTS, shipped_instrument
from ..models import EnrolmentStatus, SafeguardingAlert, SurveyInstrument, SurveyResponse, Timepoint
from ..scoring import score_answers
from .catalogue import EVALUATED_INSTRUMENTS, SAFEGUARDING_NOTE
from .common import IdSource, Period, Rows, rng_for
from .people import EnrolmentPlan, Habit, ParticipantPlan

FOLLOW_UP_AFTER = timedelta(weeks=8)
EXIT_SURVEY_SHARE = 0.6
RISK_BASELINES = 5
RISK_FOLLOW_UPS = 2
RISK_RECENT = 2
"""How many PHQ-9 responses carry an item 9 risk answer: enough to show alerts, few enough to be rare."""
OPEN_ALERT_AGE = timedelta(days=14)
"""Alerts raised in the last fortnight are still open; older ones have been acknowledged."""

ids = IdSource("outcomes")


async def ensure_shipped_instruments(session: AsyncSession) -> dict[str, uuid.UUID]:
    """Insert any shipped instrument version missing from ``survey_instruments``; return code -> ID of the
    latest version. Idempotent, so start-up, the demo and tests can all call it."""
    rows = await session.execute(
        sa.select(SurveyInstrument.code, SurveyInstrument.version, SurveyInstrument.id).where(
            SurveyInstrument.organisation_id.is_(None)
        )
    )
    stored = {(code, version): instrument_id for code, version, instrument_id in rows}
    missing = [shipped for shipped in SHIPPED_INSTRUMENTS if (shipped.code, shipped.version) not in stored]
    if missing:
        new_ids = {(shipped.code, shipped.version): uuid.uuid4() for shipped in missing}
        await session.execute(
            sa.insert(SurveyInstrument),
            [
                {
                    "id": new_ids[shipped.code, shipped.version],
                    "organisation_id": None,
                    "code": shipped.code,
                    "version": shipped.version,
                    "name": shipped.name,
                    "definition": shipped.definition,
                    "wording_licensed": shipped.wording_licensed,
                }
                for shipped in missing
            ],
        )
        stored.update(new_ids)
    latest: dict[str, tuple[int, uuid.UUID]] = {}
    for (code, version), instrument_id in stored.items():
        if code not in latest or version > latest[code][0]:
            latest[code] = (version, instrument_id)
    return {code: instrument_id for code, (_, instrument_id) in latest.items()}


@dataclass(frozen=True)
class Sitting:
    """One occasion a participant fills in the questionnaires: when, at which timepoint, how unwell."""

    person: ParticipantPlan
    enrolment: EnrolmentPlan
    timepoint: Timepoint
    completed_at: datetime
    severity: float
    risk: bool = False


def build_outcomes(
    rows: Rows, people: list[ParticipantPlan], instrument_ids: Mapping[str, uuid.UUID], period: Period
) -> None:
    """Responses to every evaluated instrument at each sitting, and an alert for each risk answer."""
    rng = rng_for("outcomes")
    sittings = [sitting for person in people for sitting in plan_sittings(person, period, rng)]
    mark_risk_sittings(sittings, period, rng)
    for sitting in sittings:
        for code in EVALUATED_INSTRUMENTS:
            if code == "hhi" and sitting.timepoint is not Timepoint.BASELINE and rng.random() < 0.08:
                continue
            add_response(rows, sitting, code, instrument_ids[code], period, rng)


def plan_sittings(person: ParticipantPlan, period: Period, rng: random.Random) -> list[Sitting]:
    """Baseline in the first week of membership, follow-up eight weeks later if it has come, and an exit
    survey from most leavers. Wellbeing improves on average, less for those who drift or leave."""
    enrolment = next((e for e in person.enrolments if e.activated_at is not None), None)
    if enrolment is None or enrolment.activated_at is None:
        return []
    now = period.at(period.today, 0)
    severity = min(0.95, max(0.05, rng.gauss(0.55, 0.18)))
    gain = rng.gauss(0.12, 0.12) * (0.4 if enrolment.habit in (Habit.DRIFTING, Habit.FADING) else 1.0)
    baseline_at = enrolment.activated_at + timedelta(days=rng.randint(0, 6), hours=rng.randint(0, 2))
    sittings = [Sitting(person, enrolment, Timepoint.BASELINE, min(baseline_at, now), severity)]
    follow_up_at = baseline_at + FOLLOW_UP_AFTER + timedelta(days=rng.randint(0, 6))
    still_member = enrolment.left_at is None or follow_up_at < enrolment.left_at
    if follow_up_at < now and still_member:
        sittings.append(Sitting(person, enrolment, Timepoint.FOLLOW_UP_1, follow_up_at, clamp(severity - gain)))
    if enrolment.status is EnrolmentStatus.LEFT and enrolment.left_at and rng.random() < EXIT_SURVEY_SHARE:
        exit_at = min(enrolment.left_at, now)
        sittings.append(Sitting(person, enrolment, Timepoint.EXIT, exit_at, clamp(severity - 1.2 * gain)))
    return sittings


def mark_risk_sittings(sittings: list[Sitting], period: Period, rng: random.Random) -> None:
    """Pick the few sittings whose PHQ-9 carries a self-harm answer, from people who were struggling:
    some at baseline, some at follow-up, and some in the last fortnight so open alerts are waiting."""
    recent = period.at(period.today, 0) - OPEN_ALERT_AGE
    pickers: tuple[tuple[int, Callable[[Sitting], bool]], ...] = (
        (RISK_BASELINES, lambda s: s.timepoint is Timepoint.BASELINE and s.completed_at < recent),
        (RISK_FOLLOW_UPS, lambda s: s.timepoint is Timepoint.FOLLOW_UP_1 and s.completed_at < recent),
        (RISK_RECENT, lambda s: s.completed_at >= recent),
    )
    for count, wanted in pickers:
        candidates = [i for i, s in enumerate(sittings) if wanted(s) and s.severity > 0.6 and not s.risk]
        for index in rng.sample(candidates, min(count, len(candidates))):
            sittings[index] = replace(sittings[index], risk=True)


def clamp(value: float) -> float:
    """Keep a latent severity inside (0, 1) so nobody is pinned to the very end of every scale."""
    return min(0.98, max(0.02, value))


def answers_for(definition: Mapping[str, Any], severity: float, risk: bool, rng: random.Random) -> dict[str, int]:
    """Answers consistent with a latent severity (0 well, 1 unwell), honouring reverse-keyed items and the
    instrument's direction; risk items stay at their lowest option unless this is a risk sitting."""
    items: list[dict[str, Any]] = definition["items"]
    reversed_items = set(definition["scoring"]["reversed"])
    risk_items = set(definition["risk_items"])
    answers = {}
    for item in items:
        low, high = int(item["min"]), int(item["max"])
        position = 1 - severity if definition["higher_is_better"] else severity
        if item["key"] in reversed_items:
            position = 1 - position
        if item["key"] in risk_items:
            answers[item["key"]] = rng.choice((low + 1, low + 1, low + 2)) if risk else low
            continue
        noisy = min(1.0, max(0.0, position + rng.gauss(0, 0.17)))
        answers[item["key"]] = low + round(noisy * (high - low))
    return answers


def add_response(
    rows: Rows, sitting: Sitting, code: str, instrument_id: uuid.UUID, period: Period, rng: random.Random
) -> None:
    """A response row scored by ``score_answers``, plus a safeguarding alert when it has risk answers;
    alerts older than a fortnight have been acknowledged by the coordinator."""
    shipped = shipped_instrument(code)
    answers = answers_for(shipped.definition, sitting.severity, sitting.risk, rng)
    result = score_answers(shipped.definition, answers)
    person, group = sitting.person, sitting.enrolment.group
    response = rows.add(
        SurveyResponse,
        {
            "id": ids(),
            "organisation_id": person.organisation_id,
            "participant_id": person.id,
            "instrument_id": instrument_id,
            "group_id": group.id,
            "timepoint": sitting.timepoint,
            "answers": answers,
            "raw_score": result.raw_score,
            "score": result.score,
            "band": result.band,
            "completed_at": sitting.completed_at,
            "recorded_by_user_id": group.coordinator_id,
            "created_at": sitting.completed_at,
        },
    )
    if not result.risk_items:
        return
    acknowledged = sitting.completed_at < period.at(period.today, 0) - OPEN_ALERT_AGE
    rows.add(
        SafeguardingAlert,
        {
            "id": ids(),
            "organisation_id": person.organisation_id,
            "response_id": response["id"],
            "participant_id": person.id,
            "group_id": group.id,
            "reason": f"{shipped.name}: risk answer on {', '.join(result.risk_items)}",
            "acknowledged_at": sitting.completed_at + timedelta(hours=3) if acknowledged else None,
            "acknowledged_by_user_id": group.coordinator_id if acknowledged else None,
            "acknowledgement_note": SAFEGUARDING_NOTE if acknowledged else None,
            "created_at": sitting.completed_at,
        },
    )
