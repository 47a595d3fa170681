"""The evaluator's view: consented, pseudonymised responses of one evaluation project, and suppressed aggregates.

Every read (GraphQL page, aggregate, export) starts from ``evaluator_rows``: one statement that applies all of
the project's rules at query time (organisations, instruments, date range, consent in force, not erased).
Because consent is checked on every read, a withdrawal removes that person's rows, past ones included, from
the next request on. Evaluators are not tenants of one organisation, so these statements are built from the
project, not from ``readable``: ``evaluator_rows`` declares the project filter trusted (it is the evaluator's
access rule), and pages, counts and aggregates read only through it, so they need no declaration of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from . import access, analysis
from .access import require_scope
from .consent import in_force_clause
from .errors import DomainError, ErrorCode, NotFound
from .models import (
    ActorType,
    Attendance,
    AttendanceStatus,
    AuditEvent,
    EvaluationProject,
    EvaluationProjectOrganisation,
    Group,
    GroupSession,
    Organisation,
    Participant,
    Region,
    SurveyInstrument,
    SurveyResponse,
    Timepoint,
)
from .outcome_tables import AggregateCell, AggregateTable, CubeKey, Dimension, OutcomeCube, Sums, decided_cube
from .pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from .principal import Principal
from .pseudonyms import open_cursor, pseudonym, seal_cursor, week_start

__all__ = ["AggregateCell", "AggregateTable", "Dimension"]


def _project_filter(principal: Principal) -> sa.ColumnElement[bool]:
    """The project the principal is bound to, if the principal's organisation owns it or takes part in it.

    A project shared by several organisations is one project: a client of any participating organisation
    reads the same rows under the same pseudonyms (the project's key), never a per-organisation view. A closed
    project reaches nothing.
    """
    participates = sa.exists().where(
        EvaluationProjectOrganisation.evaluation_project_id == EvaluationProject.id,
        EvaluationProjectOrganisation.organisation_id == principal.organisation_id,
    )
    bound = sa.and_(
        EvaluationProject.id == (principal.evaluation_project_id or uuid.UUID(int=0)),
        sa.or_(EvaluationProject.organisation_id == principal.organisation_id, participates),
        EvaluationProject.closed_at.is_(None),
    )
    if principal.evaluation_project_id is None and principal.region_ids is None and principal.has_scope("admin"):
        # The organisation's admin manages (creates, changes, closes) the projects it owns, closed ones too;
        # reading their data still takes ``evaluation:read`` and a binding to the project.
        return sa.or_(bound, EvaluationProject.organisation_id == principal.organisation_id)
    return bound


access.register_rule(EvaluationProject, "evaluation:read", _project_filter)


@dataclass(frozen=True)
class EvaluationRow:
    """One response as an evaluator sees it: no names, contacts or internal ids; the week, not the day."""

    pseudonym: str
    region: str
    group_topic: str
    timepoint: Timepoint
    instrument_code: str
    instrument_version: int
    answers: dict[str, Any]
    score: float | None
    band: str | None
    completed_week: date
    sessions_attended: int | None
    change: analysis.ResponseChange | None = None
    dose_band: str = analysis.NO_DOSE


@dataclass(frozen=True)
class RowPage:
    rows: list[EvaluationRow]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool


async def project_for(session: AsyncSession, principal: Principal) -> EvaluationProject:
    """The caller's evaluation project; a token not bound to one reaches nothing."""
    require_scope(principal, "evaluation:read")
    if principal.evaluation_project_id is None:
        raise DomainError(ErrorCode.FORBIDDEN, "this token is not bound to an evaluation project")
    return await access.get_readable(
        session, principal, EvaluationProject, principal.evaluation_project_id, "evaluation project"
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _first_baselines(project: EvaluationProject, organisations: sa.Select[Any]) -> sa.Subquery:
    """Each participant's first baseline per instrument code (when and what score), in one pass.

    Joined into ``evaluator_rows`` instead of looked up per row: the per-row lookups cost PostgreSQL most of
    an export's time.
    """
    baseline, baseline_instrument = aliased(SurveyResponse), aliased(SurveyInstrument)
    ranked = (
        sa.select(
            baseline.participant_id.label("participant_id"),
            baseline_instrument.code.label("code"),
            baseline.completed_at.label("baseline_at"),
            baseline.score.label("baseline_score"),
            sa.func.row_number()
            .over(
                partition_by=(baseline.participant_id, baseline_instrument.code),
                order_by=(baseline.completed_at, baseline.id),
            )
            .label("position"),
        )
        .join(baseline_instrument, baseline_instrument.id == baseline.instrument_id)
        .where(
            baseline.timepoint == Timepoint.BASELINE,
            sa.or_(baseline.organisation_id == project.organisation_id, baseline.organisation_id.in_(organisations)),
        )
        .subquery("ranked_baselines")
    )
    return (
        sa.select(ranked.c.participant_id, ranked.c.code, ranked.c.baseline_at, ranked.c.baseline_score)
        .where(ranked.c.position == 1)
        .subquery("first_baselines")
    )


def _project_organisations(project: EvaluationProject) -> sa.Select[Any]:
    """The organisations taking part in the project besides its owner."""
    return sa.select(EvaluationProjectOrganisation.organisation_id).where(
        EvaluationProjectOrganisation.evaluation_project_id == project.id
    )


def _row_columns() -> list[sa.ColumnElement[Any]]:
    """A response's own columns as every evaluator read labels them (the derived ones are added per read)."""
    response, instrument = SurveyResponse, SurveyInstrument
    return [
        response.id.label("response_id"),
        response.participant_id.label("participant_id"),
        Region.name.label("region"),
        Group.topic.label("group_topic"),
        response.timepoint.label("timepoint"),
        instrument.code.label("instrument_code"),
        instrument.version.label("instrument_version"),
        response.answers.label("answers"),
        response.score.label("score"),
        response.band.label("band"),
        response.completed_at.label("completed_at"),
    ]


def _project_rule(
    project: EvaluationProject, statement: sa.Select[Any], in_project: sa.ColumnElement[bool]
) -> sa.Select[Any]:
    """``statement`` over survey responses with the project's rule joined and applied: ``in_project`` (its
    organisations), its instruments, its date range, consent for its purpose in force now, nobody erased."""
    response, instrument = SurveyResponse, SurveyInstrument
    return (
        statement.join(instrument, instrument.id == response.instrument_id)
        .join(Group, Group.id == response.group_id)
        .join(Region, Region.id == Group.region_id)
        .join(Participant, Participant.id == response.participant_id)
        .where(
            in_project,
            sa.or_(instrument.organisation_id.is_(None), instrument.organisation_id == response.organisation_id),
            instrument.code.in_([str(code) for code in project.instrument_codes]),
            response.completed_at >= _day_start(project.starts_on),
            response.completed_at < _day_start(project.ends_on + timedelta(days=1)),
            Participant.erased_at.is_(None),
            in_force_clause(response.participant_id, project.consent_purpose),
        )
    )


def _sessions_attended(participant_id: Any, group_id: Any, baseline_at: Any, completed_at: Any) -> Any:
    """Sessions of the response's group the person attended between their first baseline and the response."""
    return (
        sa.select(sa.func.count(Attendance.id))
        .join(GroupSession, GroupSession.id == Attendance.session_id)
        .where(
            Attendance.participant_id == participant_id,
            Attendance.status == AttendanceStatus.PRESENT,
            GroupSession.group_id == group_id,
            GroupSession.starts_at >= baseline_at,
            GroupSession.starts_at <= completed_at,
        )
        .scalar_subquery()
    )


def evaluator_rows(project: EvaluationProject) -> sa.Select[Any]:
    """All responses the project may see, as labelled columns, with the project's rules applied.

    Trusted filter: evaluators are not tenants of one organisation, so ``readable`` cannot express their
    reach. The project is the rule: its organisations, its instruments, its date range, consent for its
    purpose in force at query time, and no erased participant. The exports and the tables are derived from
    this statement; the GraphQL pages apply the same rule (``_project_rule``) in ``evaluator_page``.
    """
    response, instrument = SurveyResponse, SurveyInstrument
    organisations = _project_organisations(project)
    in_project = sa.or_(
        response.organisation_id == project.organisation_id, response.organisation_id.in_(organisations)
    )
    first_baseline = _first_baselines(project, organisations)
    baseline_at = first_baseline.c.baseline_at
    # One correlated count per row, against the baseline joined in (not looked up again per row).
    attended = _sessions_attended(response.participant_id, response.group_id, baseline_at, response.completed_at)
    statement: sa.Select[Any] = sa.select(
        *_row_columns(),
        sa.case((baseline_at.is_(None), None), else_=attended).label("sessions_attended"),
        sa.case((response.timepoint == Timepoint.BASELINE, None), else_=first_baseline.c.baseline_score).label(
            "baseline_score"
        ),
    )
    statement = _project_rule(project, statement, in_project).outerjoin(
        first_baseline,
        sa.and_(first_baseline.c.participant_id == response.participant_id, first_baseline.c.code == instrument.code),
    )
    return access.trusted(statement, reason="an evaluation project's own rule: its organisations, consent, range")


async def project_organisation_ids(session: AsyncSession, project: EvaluationProject) -> list[uuid.UUID]:
    """The owner and every organisation taking part in the project, owner first.

    Trusted filter: it lists only the project's own participation rows, the binding the evaluator holds.
    A page filters responses by these ids as values (``organisation_id = ?`` for a one-organisation project),
    so that the (organisation, completion) index yields the rows in page order.
    """
    statement = access.trusted(_project_organisations(project), reason="the project's own participating organisations")
    others = (await access.execute(session, statement)).scalars().all()
    return [project.organisation_id, *(found for found in others if found != project.organisation_id)]


def project_responses(project: EvaluationProject, organisation_ids: list[uuid.UUID]) -> sa.Select[Any]:
    """The project's responses with their own columns only, the rule of ``evaluator_rows`` applied: what
    pages are cut from and counted over, without the derived columns that need other rows.

    Trusted filter: the same project rule as ``evaluator_rows``, its organisations given as the ids
    ``project_organisation_ids`` read.
    """
    response = SurveyResponse
    statement: sa.Select[Any] = sa.select(*_row_columns(), response.group_id.label("group_id"))
    statement = _project_rule(project, statement, response.organisation_id.in_(organisation_ids))
    return access.trusted(statement, reason="an evaluation project's own rule, its organisations as values")


def _first_baseline_of(
    organisation_ids: list[uuid.UUID], participant_id: Any, code: Any, column: Callable[[Any], Any]
) -> sa.ScalarSelect[Any]:
    """``column`` of a person's first baseline of an instrument code, looked up for one row (through the
    person's unique responses index): what ``_first_baselines`` computes for every row at once."""
    baseline, baseline_instrument = aliased(SurveyResponse), aliased(SurveyInstrument)
    return (
        sa.select(column(baseline))
        .join(baseline_instrument, baseline_instrument.id == baseline.instrument_id)
        .where(
            baseline.participant_id == participant_id,
            baseline.timepoint == Timepoint.BASELINE,
            baseline_instrument.code == code,
            baseline.organisation_id.in_(organisation_ids),
        )
        .order_by(baseline.completed_at, baseline.id)
        .limit(1)
        .scalar_subquery()
    )


def evaluator_page(
    project: EvaluationProject, organisation_ids: list[uuid.UUID], size: int, after: tuple[datetime, uuid.UUID] | None
) -> sa.Select[Any]:
    """``size`` rows of ``evaluator_rows`` after the ``after`` key, in (completion, id) order, with the same
    columns.

    The page is cut first, over the (organisation, completion) index, and only its rows get the derived
    columns (first baseline, sessions attended), each by an indexed lookup: the work follows the page size,
    not the project's size. Deriving first and cutting after made PostgreSQL build every row's baseline
    each time, and once it switched the prepared statement to a generic plan, pair every row with every
    baseline (seconds per page).

    Trusted filter: it reads the project's rows through ``project_responses`` (the project's rule); the
    lookups are correlated to those rows' own person, group and instrument.
    """
    rows = project_responses(project, organisation_ids).subquery("project_rows")
    cut = sa.select(rows)
    if after is not None:
        completed, row_id = after
        cut = cut.where(
            rows.c.completed_at >= completed,
            sa.tuple_(rows.c.completed_at, rows.c.response_id) > sa.tuple_(completed, row_id),
        )
    page = cut.order_by(rows.c.completed_at, rows.c.response_id).limit(size).subquery("page")
    person, code = page.c.participant_id, page.c.instrument_code
    with_baseline = sa.select(
        page,
        _first_baseline_of(organisation_ids, person, code, lambda b: b.completed_at).label("baseline_at"),
        _first_baseline_of(organisation_ids, person, code, lambda b: b.score).label("first_baseline_score"),
    ).subquery("paged")
    attended = _sessions_attended(
        with_baseline.c.participant_id, with_baseline.c.group_id, with_baseline.c.baseline_at,
        with_baseline.c.completed_at,
    )  # fmt: skip
    own = [with_baseline.c[column.name] for column in _row_columns()]
    statement = sa.select(
        *own,
        sa.case((with_baseline.c.baseline_at.is_(None), None), else_=attended).label("sessions_attended"),
        sa.case(
            (with_baseline.c.timepoint == Timepoint.BASELINE, None), else_=with_baseline.c.first_baseline_score
        ).label("baseline_score"),
    ).order_by(with_baseline.c.completed_at, with_baseline.c.response_id)
    return access.trusted(statement, reason="a page of the project's own rows, each with its own lookups")


@dataclass(frozen=True)
class Derivation:
    """What a row's derived columns need beside the row: each instrument's latest definition (the one the
    project's tables use) and the project's dose bands."""

    definitions: dict[str, dict[str, Any]]
    dose_bands: tuple[int, ...]

    def change(self, code: str, score: float | None, baseline_score: float | None) -> analysis.ResponseChange | None:
        definition = self.definitions.get(code)
        if definition is None:
            return None
        return analysis.response_change(code, definition, score, baseline_score)

    def dose_band(self, sessions: int | None, change: analysis.ResponseChange | None) -> str:
        return analysis.dose_band(self.dose_bands, sessions, change is not None)


async def derivation(session: AsyncSession, project: EvaluationProject) -> Derivation:
    """Each project instrument's latest definition and the project's dose bands, in one statement."""
    from .exports import derivation_of, project_instruments

    return derivation_of(project, await project_instruments(session, project))


def to_row(key: bytes, raw: Any, derived: Derivation) -> EvaluationRow:
    change = derived.change(raw.instrument_code, raw.score, raw.baseline_score)
    return EvaluationRow(
        pseudonym=pseudonym(key, raw.participant_id),
        region=raw.region,
        group_topic=str(raw.group_topic),
        timepoint=Timepoint(raw.timepoint),
        instrument_code=raw.instrument_code,
        instrument_version=raw.instrument_version,
        answers=dict(raw.answers),
        score=raw.score,
        band=raw.band,
        completed_week=week_start(raw.completed_at),
        sessions_attended=raw.sessions_attended,
        change=change,
        dose_band=derived.dose_band(raw.sessions_attended, change),
    )


async def response_page(
    session: AsyncSession,
    project: EvaluationProject,
    first: int | None,
    after: str | None,
) -> RowPage:
    """A forward page of rows, ordered by completion then row id, with sealed cursors."""
    size = DEFAULT_PAGE_SIZE if first is None else first
    if not 0 <= size <= MAX_PAGE_SIZE:
        raise DomainError(ErrorCode.INVALID, f"'first' must be between 0 and {MAX_PAGE_SIZE}", "first")
    key = open_cursor(project.pseudonym_key, after, "after") if after else None
    organisation_ids = await project_organisation_ids(session, project)
    found = (await access.execute(session, evaluator_page(project, organisation_ids, size + 1, key))).all()
    window = found[:size]
    derived = await derivation(session, project)
    return RowPage(
        rows=[to_row(project.pseudonym_key, raw, derived) for raw in window],
        cursors=[seal_cursor(project.pseudonym_key, (raw.completed_at, raw.response_id)) for raw in window],
        has_next_page=len(found) > size,
        has_previous_page=after is not None,
    )


async def response_count(session: AsyncSession, project: EvaluationProject) -> int:
    """How many rows the project's pages hold: the project's rule alone, no derived column worked out,
    planned with its values (its generic plan loops over every row: 150 ms against 43 ms on the demo data)."""
    organisation_ids = await project_organisation_ids(session, project)
    rows = project_responses(project, organisation_ids).subquery()
    await plan_with_values(session)
    return int((await access.execute(session, sa.select(sa.func.count()).select_from(rows))).scalar_one())


async def instrument_definition(session: AsyncSession, project: EvaluationProject, code: str) -> dict[str, Any]:
    """The latest definition of a project instrument (direction of improvement, reliable change).

    Trusted filter: the instrument rule (shipped, or the organisation's own) applied to the project's
    owning organisation, for one of the project's instrument codes.
    """
    if code not in [str(item) for item in project.instrument_codes]:
        raise DomainError(ErrorCode.INVALID, "this instrument is not part of the evaluation project", "instrumentCode")
    statement = access.trusted(
        sa.select(SurveyInstrument.definition)
        .where(
            SurveyInstrument.code == code,
            sa.or_(
                SurveyInstrument.organisation_id.is_(None),
                SurveyInstrument.organisation_id == project.organisation_id,
            ),
        )
        .order_by(SurveyInstrument.version.desc())
        .limit(1),
        reason="the instrument rule applied to the project's owning organisation",
    )
    definition = (await session.execute(statement)).scalar_one_or_none()
    if definition is None:
        raise DomainError(ErrorCode.INVALID, "no such instrument", "instrumentCode")
    return dict(definition)


async def suppression_threshold(session: AsyncSession, project: EvaluationProject) -> int:
    """The threshold the project's tables are suppressed at: the strictest of the project's own and that of
    every organisation whose data it covers (each organisation sets the smallest count its data may show).

    Trusted filter: it reads only the settings of the project's own participating organisations, the rows the
    evaluator's binding covers, and returns one number."""
    organisations = sa.select(EvaluationProjectOrganisation.organisation_id).where(
        EvaluationProjectOrganisation.evaluation_project_id == project.id
    )
    statement = sa.select(sa.func.max(Organisation.suppression_threshold)).where(
        sa.or_(Organisation.id == project.organisation_id, Organisation.id.in_(organisations))
    )
    trusted = access.trusted(statement, reason="the thresholds of the project's participating organisations")
    strictest = (await access.execute(session, trusted)).scalar_one_or_none()
    return max(project.suppression_threshold, strictest or 1)


def dose_case(project: EvaluationProject, sessions: Any, baseline_score: Any) -> sa.ColumnElement[str]:
    """The dose band label of a row in SQL (``analysis.dose_band``): ``no_baseline`` without a change."""
    bounds = analysis.dose_bands(project.dose_bands)
    labels = analysis.band_labels(bounds)
    whens: list[tuple[Any, str]] = [
        (baseline_score.is_(None), analysis.NO_DOSE),
        (sessions.is_(None), analysis.NO_DOSE),
    ]
    whens += [(sessions >= low, label) for low, label in reversed(list(zip(bounds, labels, strict=True)))]
    return sa.case(*whens, else_=labels[0])


async def plan_with_values(session: AsyncSession) -> None:
    """Have PostgreSQL plan the rest of this transaction's statements with their values (a custom plan each
    time), never with the generic plan of a prepared statement.

    For a statement over every row of the project, the generic plan cannot see the date range and guesses a
    few rows; it then joins every row by nested loops, and pairs every response with every first baseline
    (the cube of the demo data: 2 s with the generic plan, 0.45 s planned with its values). Planning costs a
    few milliseconds.
    """
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


async def outcome_cube(session: AsyncSession, project: EvaluationProject, instrument_code: str) -> OutcomeCube:
    """The instrument's sums by region x group topic x timepoint x dose band, computed in SQL, with suppression
    decided.

    Reliable change counts a change of at least the instrument's ``reliable_change`` in the improving
    direction (``higher_is_better``) as improvement, the same size the other way as deterioration (within
    ``analysis.TOLERANCE``, as ``analysis.response_change`` classifies each row).
    """
    definition = await instrument_definition(session, project, instrument_code)
    threshold = await suppression_threshold(session, project)
    rows = evaluator_rows(project).subquery()
    change = (rows.c.score - rows.c.baseline_score).label("change")
    signed = change if definition["higher_is_better"] else -change
    reliable = float(definition["reliable_change"]) - analysis.TOLERANCE
    dose = dose_case(project, rows.c.sessions_attended, rows.c.baseline_score).label("dose")
    paired_score = sa.case((rows.c.baseline_score.is_not(None), rows.c.score))
    keys = (rows.c.region, rows.c.group_topic, rows.c.timepoint, dose)
    statement = (
        sa.select(
            *keys,
            sa.func.count(rows.c.score),
            sa.func.sum(rows.c.score),
            sa.func.sum(rows.c.score * rows.c.score),
            sa.func.count(change),
            sa.func.sum(change),
            sa.func.sum(sa.case((signed >= reliable, 1), else_=0)),
            sa.func.sum(sa.case((signed <= -reliable, 1), else_=0)),
            sa.func.sum(change * change),
            sa.func.sum(rows.c.baseline_score),
            sa.func.sum(rows.c.baseline_score * rows.c.baseline_score),
            sa.func.sum(paired_score),
            sa.func.sum(paired_score * paired_score),
        )
        .where(rows.c.instrument_code == instrument_code, rows.c.score.is_not(None))
        .group_by(*keys)
    )
    await plan_with_values(session)
    cells: dict[CubeKey, Sums] = {}
    for region, topic, timepoint, band, n, *sums in (await access.execute(session, statement)).all():
        key = (str(region), str(topic), Timepoint(timepoint), str(band))
        total, squares, n_change, change_total, improved, deteriorated, *paired = sums
        cells[key] = cells.get(key, Sums()) + Sums(
            int(n),
            float(total or 0),
            float(squares or 0),
            int(n_change),
            float(change_total or 0),
            int(improved or 0),
            int(deteriorated or 0),
            *(float(value or 0) for value in paired),
        )
    order = (*analysis.band_labels(analysis.dose_bands(project.dose_bands)), analysis.NO_DOSE)
    return decided_cube(threshold, tuple(sorted(cells.items())), order)


async def aggregate(
    session: AsyncSession,
    project: EvaluationProject,
    instrument_code: str,
    dimension: Dimension,
    timepoint: Timepoint | None = None,
) -> AggregateTable:
    """Outcome statistics by one dimension, read from the suppression decided on the instrument's whole cube
    (``outcome_tables``), so that no combination of answers recovers a hidden figure."""
    cube = await outcome_cube(session, project, instrument_code)
    return cube.table(instrument_code, dimension, timepoint)


async def set_dose_bands(
    session: AsyncSession, organisation_slug: str, project_slug: str, bounds: list[int] | None
) -> list[str]:
    """Operator-level (the CLI): set the bands of sessions attended an owning organisation's project groups
    its dose-response tables by (``None``: back to 0-3, 4-7, 8+); audited in the same transaction.

    Returns the band labels now in force. Tables asked for afterwards use the new bands at once: the cube is
    built per request from the project row.
    """
    from .directory import organisation_by_slug

    if bounds is not None:
        analysis.validate_dose_bands(bounds, "band")
    organisation = await organisation_by_slug(session, organisation_slug)
    project = await session.scalar(
        sa.select(EvaluationProject).where(
            EvaluationProject.slug == project_slug, EvaluationProject.organisation_id == organisation.id
        )
    )
    if project is None:
        raise NotFound(f"evaluation project {project_slug!r}", "project")
    project.dose_bands = None if bounds is None else list(bounds)
    session.add(
        AuditEvent(
            organisation_id=organisation.id,
            actor_type=ActorType.SYSTEM,
            actor_id="cli",
            action="evaluation_project.dose_bands_set",
            target_type="EvaluationProject",
            target_id=str(project.id),
            details={"dose_bands": project.dose_bands},
        )
    )
    await session.flush()
    return [*analysis.band_labels(analysis.dose_bands(project.dose_bands)), analysis.NO_DOSE]
