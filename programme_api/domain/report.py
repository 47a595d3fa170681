"""The evaluator's outcome summary: per instrument, the tables a published report needs, all read from the
same suppression decision as ``evaluation.aggregates``.

Every figure here is a cell of ``OutcomeCube.table``: counts per timepoint, mean change with its interval and
effect sizes per timepoint, and dose-response by band of sessions attended (per follow-up timepoint and over
all of them). Nothing is computed beside the cube, so the report can show no figure the aggregates would hide,
and a withdrawal takes effect here as everywhere (the cube is built from ``evaluator_rows`` at request time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..db import read_only_session
from . import analysis
from .access import install_guard
from .errors import DomainError
from .evaluation import outcome_cube
from .exports import PreparedExport
from .instruments import reliable_change_source
from .models import Timepoint
from .outcome_tables import AggregateTable, Dimension
from .principal import Principal
from .tenancy import bind_principal


@dataclass(frozen=True)
class DoseTable:
    """Dose-response at one timepoint (``None``: all follow-up and exit responses together)."""

    timepoint: Timepoint | None
    table: AggregateTable


@dataclass(frozen=True)
class InstrumentReport:
    code: str
    name: str
    higher_is_better: bool
    reliable_change: float
    reliable_change_source: str
    threshold: int
    by_timepoint: AggregateTable
    dose: list[DoseTable]


@dataclass(frozen=True)
class Report:
    project_name: str
    project_slug: str
    starts_on: str
    ends_on: str
    threshold: int
    dose_bands: list[str]
    generated_at: datetime
    instruments: list[InstrumentReport]
    unanswered: list[str]
    """Names of the project's instruments nobody (in the project's reach) has answered."""


async def build_report(
    session_maker: async_sessionmaker[AsyncSession], principal: Principal, prepared: PreparedExport, now: datetime
) -> Report:
    """The report of an authorised (and audited) export: one read-only transaction bound to the caller."""
    project = prepared.project
    latest = {instrument.code: instrument for instrument in sorted(prepared.instruments, key=lambda i: i.version)}
    reports = []
    unanswered = []
    async with read_only_session(session_maker) as session:
        install_guard(session)
        await bind_principal(session, principal)
        for code in [str(code) for code in project.instrument_codes]:
            instrument = latest.get(code)
            if instrument is None:
                continue
            try:
                cube = await outcome_cube(session, project, code)
            except DomainError:  # an instrument the project names but cannot read: nothing to report
                continue
            if not cube.timepoints:
                unanswered.append(instrument.name)
                continue
            follow_ups = [t for t in cube.timepoints if t is not Timepoint.BASELINE]
            dose = [DoseTable(t, cube.table(code, Dimension.DOSE_BAND, t)) for t in follow_ups]
            if len(follow_ups) > 1:
                dose.append(DoseTable(None, cube.table(code, Dimension.DOSE_BAND, None)))
            reports.append(
                InstrumentReport(
                    code=code,
                    name=instrument.name,
                    higher_is_better=bool(instrument.definition["higher_is_better"]),
                    reliable_change=float(instrument.definition["reliable_change"]),
                    reliable_change_source=reliable_change_source(code),
                    threshold=cube.threshold,
                    by_timepoint=cube.table(code, Dimension.TIMEPOINT, None),
                    dose=dose,
                )
            )
    bands = analysis.band_labels(analysis.dose_bands(project.dose_bands))
    return Report(
        project_name=project.name,
        project_slug=project.slug,
        starts_on=project.starts_on.isoformat(),
        ends_on=project.ends_on.isoformat(),
        threshold=prepared.threshold,
        dose_bands=bands,
        generated_at=now,
        instruments=reports,
        unanswered=unanswered,
    )
