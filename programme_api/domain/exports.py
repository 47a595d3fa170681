"""Bulk evaluator exports (CSV, Parquet) and their codebook, streamed in constant memory.

Rows come from ``evaluation.evaluator_rows`` (the same statement and rules as the GraphQL view) through a
streaming cursor (``yield_per``), are converted a batch at a time, and leave as bytes as soon as a batch is
encoded, so memory does not grow with the export. The export is audited in its own transaction before its
first byte (``audit_export``). Each transaction is bound to the caller (``tenancy.bind_principal``) before it
reads, for PostgreSQL's row-level security.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..db import read_only_session
from . import access, analysis
from .access import compile_read, cursor_batches, install_guard
from .audit import AuditWriter, ReadLog, record_read, write_reads
from .evaluation import Derivation, evaluator_rows
from .instruments import CASENESS, reliable_change_source
from .models import EvaluationProject, SurveyInstrument
from .outcome_tables import SUPPRESSION_RULES
from .principal import Principal
from .pseudonyms import pseudonym, week_start
from .tenancy import bind_principal

BATCH_ROWS = 2000
FIXED_COLUMNS: list[tuple[str, str, pa.DataType]] = [
    ("pseudonym", "Participant pseudonym (keyed hash, stable within this project only)", pa.string()),
    ("region", "Region of the group the response was given in", pa.string()),
    ("group_topic", "Topic of the group", pa.string()),
    ("timepoint", "Timepoint of the response", pa.string()),
    ("instrument_code", "Instrument code", pa.string()),
    ("instrument_version", "Instrument version the response was scored with", pa.int32()),
    ("completed_week", "Monday (ISO week start, UTC) of the week the response was completed", pa.date32()),
    ("score", "Instrument score (lookup, sum, prorated sum or mean, as the instrument declares)", pa.float64()),
    ("band", "Score band, where the instrument has bands", pa.string()),
    ("sessions_attended", "Sessions attended in the group between baseline and this response", pa.int32()),
    ("baseline_score", "Score of the participant's first baseline on this instrument", pa.float64()),
    ("change", "score - baseline_score", pa.float64()),
    ("reliable_change_threshold", "Score points a change must reach to be reliable", pa.float64()),
    ("reliable_change_source", "Where the reliable change threshold comes from", pa.string()),
    ("change_classification", "Reliable improvement, no reliable change or reliable deterioration", pa.string()),
    ("recovery", "NHS Talking Therapies recovery (PHQ-9, GAD-7 only)", pa.string()),
    ("dose_band", "Band of sessions_attended (no_baseline without a change)", pa.string()),
]
DERIVED_COLUMNS: dict[str, dict[str, str]] = {
    "sessions_attended": {
        "formula": "count of the group's sessions marked present with starts_at between the first baseline's "
        "completion and this response's completion (inclusive); null without a baseline",
        "source": "attendance registers",
    },
    "baseline_score": {
        "formula": "score of the participant's earliest baseline response on the same instrument code; null "
        "for baseline responses themselves and for people with no baseline",
        "source": "survey responses",
    },
    "change": {
        "formula": "score - baseline_score, rounded to 4 decimals; null where baseline_score is null",
        "source": "survey responses",
    },
    "reliable_change_threshold": {
        "formula": "the instrument's reliable_change (latest version of the instrument code)",
        "threshold": "per instrument, see instruments[].reliable_change",
        "source": "see reliable_change_source and instruments[].reliable_change_source",
    },
    "reliable_change_source": {"formula": "citation of reliable_change_threshold", "source": "instrument docs"},
    "change_classification": {
        "formula": "signed = change if higher_is_better else -change; reliable_improvement when signed >= "
        "threshold, reliable_deterioration when signed <= -threshold, else no_reliable_change (comparisons "
        "within 1e-6 for decimal scores)",
        "threshold": "reliable_change_threshold",
        "source": "Jacobson & Truax 1991 reliable change; thresholds per instrument",
    },
    "recovery": {
        "formula": "only PHQ-9 and GAD-7: not_at_caseness when baseline_score < cut-off; recovered when "
        "baseline_score >= cut-off and score < cut-off; else not_recovered; null for other instruments",
        "threshold": "caseness cut-off: PHQ-9 10, GAD-7 8",
        "source": "NHS Talking Therapies for anxiety and depression Manual (NHS England): recovery is moving "
        "from caseness at baseline to below caseness at the later measurement",
    },
    "dose_band": {
        "formula": "the project's band containing sessions_attended (band starts in project.dose_bands, "
        "default 0-3, 4-7, 8+); no_baseline where change is null",
        "source": "attendance registers",
    },
}
AGGREGATE_STATISTICS: dict[str, str] = {
    "meanChangeCi": "mean change +/- t(0.975, n-1) * sd(change) / sqrt(n) over the responses with a baseline",
    "shareReliablyImproved": "reliableImprovement / nWithBaseline",
    "effectSizeDz": "Cohen's d_z = mean(change) / sd(change) (Lakens 2013); 95 % CI by inverting the "
    "noncentral t distribution of t = d_z * sqrt(n) with n - 1 degrees of freedom (Cumming & Finch 2001)",
    "effectSizeDav": "Cohen's d_av = mean(change) / ((sd(baseline) + sd(score)) / 2) over the same pairs "
    "(Cumming 2012; Lakens 2013); 95 % CI: d_z's interval times sd(change) / average sd (approximation after "
    "Algina & Keselman 2003)",
    "sign": "effect sizes and changes are score - baseline: positive is a rise in score, which is improvement "
    "only where higher_is_better",
}


async def project_instruments(session: AsyncSession, project: EvaluationProject) -> list[SurveyInstrument]:
    """Every version of the project's instruments visible to the project (shipped or the owner's own).

    Trusted filter: the instrument rule applied to the project's owning organisation, narrowed to the
    project's instrument codes (the codebook and the answer columns come from these definitions).
    """
    statement = (
        sa.select(SurveyInstrument)
        .where(
            SurveyInstrument.code.in_([str(code) for code in project.instrument_codes]),
            sa.or_(
                SurveyInstrument.organisation_id.is_(None), SurveyInstrument.organisation_id == project.organisation_id
            ),
        )
        .order_by(SurveyInstrument.code, SurveyInstrument.version)
    )
    trusted = access.trusted(statement, reason="the instrument rule applied to the project's owning organisation")
    return list((await session.execute(trusted)).scalars())


def item_columns(instruments: list[SurveyInstrument]) -> list[str]:
    """One ``answer_<item>`` column per item key in any project instrument, in first-seen order."""
    seen: dict[str, None] = {}
    for instrument in instruments:
        for item in instrument.definition["items"]:
            seen.setdefault(f"answer_{item['key']}", None)
    return list(seen)


def codebook(project: EvaluationProject, instruments: list[SurveyInstrument], threshold: int) -> dict[str, Any]:
    """Column names, labels, value labels and instrument versions: what an analyst needs to read the files;
    and the suppression applied to the project's aggregates (GraphQL ``evaluation.aggregates``)."""
    columns: list[dict[str, Any]] = [
        {"name": name, "label": label, "type": str(kind)} | DERIVED_COLUMNS.get(name, {})
        for name, label, kind in FIXED_COLUMNS
    ]
    for name in item_columns(instruments):
        key = name.removeprefix("answer_")
        used_by = [
            f"{i.code}@{i.version}" for i in instruments if any(it["key"] == key for it in i.definition["items"])
        ]
        columns.append({"name": name, "label": f"Answer to item '{key}'", "type": "int64", "instruments": used_by})
    return {
        "project": {
            "slug": project.slug,
            "name": project.name,
            "consent_purpose": project.consent_purpose.value,
            "starts_on": project.starts_on.isoformat(),
            "ends_on": project.ends_on.isoformat(),
            "suppression_threshold": threshold,
            "dose_bands": dose_band_labels(project),
        },
        "suppression": {
            "applies_to": "aggregates (GraphQL evaluation.aggregates); the row-level files are not suppressed",
            "threshold": threshold,
            "threshold_source": "the strictest of the project's own threshold and that of every organisation "
            "the project covers",
            "rules": SUPPRESSION_RULES,
        },
        "aggregate_statistics": AGGREGATE_STATISTICS,
        "columns": columns,
        "instruments": [_instrument_entry(instrument) for instrument in instruments],
    }


def _instrument_entry(instrument: SurveyInstrument) -> dict[str, Any]:
    definition = instrument.definition
    labels = definition.get("response_labels")
    items = []
    for item in definition["items"]:
        entry: dict[str, Any] = {
            "key": item["key"],
            "label": item["label"],
            "min": item["min"],
            "max": item["max"],
            "reversed": item["key"] in definition["scoring"]["reversed"],
        }
        if labels:
            entry["value_labels"] = {str(item["min"] + i): label for i, label in enumerate(labels)}
        items.append(entry)
    return {
        "code": instrument.code,
        "version": instrument.version,
        "name": instrument.name,
        "higher_is_better": definition["higher_is_better"],
        "reliable_change": definition["reliable_change"],
        "reliable_change_source": reliable_change_source(instrument.code),
        "caseness_cut_off": CASENESS.get(instrument.code),
        "bands": definition["scoring"]["bands"],
        "items": items,
    }


PSEUDONYMS_KEPT = 1024
"""Pseudonyms remembered during one export: a participant's responses often come together, and each pseudonym
costs an HMAC (~3 us). Forgotten all at once when full, so the memory stays within that of a batch."""


def export_statement(project: EvaluationProject, answers: list[str], dialect: str) -> sa.Select[Any]:
    """``evaluation.evaluator_rows`` narrowed to the file's columns, in no particular order.

    Unordered, so that PostgreSQL streams rows as it produces them: an order would make it compute and sort
    every row (a million, spilled to disk) before the first byte leaves, and the download would wait that
    long before it starts. Analysts sort the file themselves.

    The database does the per-row work it does fastest: item answers come out as integer columns (no JSON
    decoded here; on PostgreSQL one ``json_to_record`` per row rather than a parse per item) and enums as
    their stored text; only the pseudonym and the week are worked out in Python.
    """
    rows = evaluator_rows(project).subquery("evaluator_rows")
    keys = [name.removeprefix("answer_") for name in answers]
    items: list[Any]
    if dialect == "postgresql" and keys:
        record = (
            sa.func.json_to_record(rows.c.answers)
            .table_valued(*(sa.column(key, sa.BigInteger) for key in keys))
            .render_derived(name="items", with_types=True)
            .lateral()
        )
        items, source = [record.c[key] for key in keys], rows.join(record, sa.true())
    else:
        items, source = [rows.c.answers[key].as_integer() for key in keys], rows  # type: ignore[assignment]
    # Reads only through evaluator_rows, so it is checked by construction: no declaration needed.
    return sa.select(
        rows.c.participant_id,
        rows.c.region,
        sa.type_coerce(rows.c.group_topic, sa.String),
        sa.type_coerce(rows.c.timepoint, sa.String),
        rows.c.instrument_code,
        rows.c.instrument_version,
        rows.c.completed_at,
        rows.c.score,
        rows.c.band,
        rows.c.sessions_attended,
        rows.c.baseline_score,
        *items,
    ).select_from(source)


async def stream_rows(
    session: AsyncSession, project: EvaluationProject, answers: list[str], instruments: list[SurveyInstrument]
) -> AsyncGenerator[list[list[Any]], None]:
    """The project's rows in batches, from a server-side cursor (never the whole result in memory), each
    already as the file's column values: fixed columns, then the answers in ``answers`` order.

    The next batch is asked for before this one is converted, so the database works on it meanwhile: at most
    two batches are held at once. On PostgreSQL the rows come straight from the driver's cursor (the
    statement compiled once by ``access.compile_read``): SQLAlchemy's per-row result processing cost a
    third of an export's time.
    """
    flatten = row_flattener(project.pseudonym_key, derivation_of(project, instruments))
    connection = await session.connection()
    statement = export_statement(project, answers, connection.dialect.name)
    access.require_checked(statement, "an export")
    batches: AsyncIterator[Sequence[Any]]
    if connection.dialect.name == "postgresql":
        # The per-row sessions count makes the planner's estimate large enough to switch JIT compilation on,
        # which costs more than it saves here (100,000 rows: 1.27 s of query with it, 0.83 s without).
        await connection.exec_driver_sql("SET LOCAL jit = off")
        batches = cursor_batches(connection, compile_read(statement, connection.dialect), BATCH_ROWS)
    else:
        result = await session.stream(statement.execution_options(yield_per=BATCH_ROWS))
        batches = result.partitions(BATCH_ROWS)
    upcoming = asyncio.ensure_future(anext(batches, None))
    try:
        while (batch := await upcoming) is not None:
            upcoming = asyncio.ensure_future(anext(batches, None))
            await asyncio.sleep(0)  # let the fetch send its request before this batch ties up the loop
            yield [flatten(raw) for raw in batch]
    finally:
        if not upcoming.done():  # the download broke off: let the fetch in flight end before the session closes
            with contextlib.suppress(Exception):
                await upcoming


def derivation_of(project: EvaluationProject, instruments: list[SurveyInstrument]) -> Derivation:
    """The derived columns' inputs from the project's instruments: the latest version of each code, as
    ``evaluation.derivation`` reads them for the GraphQL view and the tables."""
    latest = {instrument.code: instrument.definition for instrument in sorted(instruments, key=lambda i: i.version)}
    return Derivation(latest, analysis.dose_bands(project.dose_bands))


def dose_band_labels(project: EvaluationProject) -> list[str]:
    return [*analysis.band_labels(analysis.dose_bands(project.dose_bands)), analysis.NO_DOSE]


def row_flattener(key: bytes, derived: Derivation) -> Callable[[Any], list[Any]]:
    """An ``export_statement`` row as the file's values: the participant id becomes the project's pseudonym,
    the completion time its week, and the change columns are derived (``evaluation.to_row`` does the same for
    the GraphQL view)."""
    known: dict[Any, str] = {}

    def flatten(raw: Any) -> list[Any]:
        participant_id, region, topic, timepoint, code, version, completed_at, score, band, sessions, *rest = raw
        baseline, *answers = rest
        person = known.get(participant_id)
        if person is None:
            if len(known) >= PSEUDONYMS_KEPT:
                known.clear()
            person = known[participant_id] = pseudonym(key, participant_id)
        change = derived.change(code, score, baseline)
        derived_values = (
            [None] * 6
            if change is None
            else [
                change.baseline_score,
                change.change,
                change.reliable_change_threshold,
                change.reliable_change_source,
                str(change.classification),
                None if change.recovery is None else str(change.recovery),
            ]
        )
        return [
            person, region, topic, timepoint, code, version, week_start(completed_at), score, band, sessions,
            *derived_values, derived.dose_band(sessions, change), *answers,
        ]  # fmt: skip

    return flatten


async def csv_chunks(batches: AsyncIterator[list[list[Any]]], answers: list[str]) -> AsyncIterator[bytes]:
    """CSV text, one encoded chunk per batch."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([name for name, _, _ in FIXED_COLUMNS] + answers)
    async for batch in batches:
        writer.writerows(batch)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def parquet_schema(answers: list[str]) -> pa.Schema:
    return pa.schema(
        [pa.field(name, kind) for name, _, kind in FIXED_COLUMNS] + [pa.field(a, pa.int64()) for a in answers]
    )


class _Drain:
    """A write-only file for pyarrow whose bytes are taken out after each row group."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


async def parquet_chunks(batches: AsyncIterator[list[list[Any]]], answers: list[str]) -> AsyncIterator[bytes]:
    """Parquet, one row group per batch, each written out as soon as it is encoded."""
    schema = parquet_schema(answers)
    drain = _Drain()
    writer = pq.ParquetWriter(pa.PythonFile(drain, mode="w"), schema)
    async for batch in batches:
        columns = list(zip(*batch, strict=True))
        writer.write_batch(
            pa.RecordBatch.from_arrays(
                [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
            )
        )
        yield drain.take()
    writer.close()
    yield drain.take()


def codebook_json(project: EvaluationProject, instruments: list[SurveyInstrument], threshold: int) -> bytes:
    return orjson.dumps(codebook(project, instruments, threshold), option=orjson.OPT_INDENT_2)


@dataclass(frozen=True)
class PreparedExport:
    """An authorised export: the project and its instruments, checked before any byte is sent."""

    project: EvaluationProject
    instruments: list[SurveyInstrument]
    threshold: int


async def prepare_export(session_maker: async_sessionmaker[AsyncSession], principal: Principal) -> PreparedExport:
    """Authorise (``evaluation:read`` and a bound project) before streaming, so refusals get a proper status."""
    from .evaluation import project_for, suppression_threshold

    async with read_only_session(session_maker) as session:
        install_guard(session)
        await bind_principal(session, principal)
        project = await project_for(session, principal)
        instruments = await project_instruments(session, project)
        return PreparedExport(project, instruments, await suppression_threshold(session, project))


async def audit_export(writer: AuditWriter, principal: Principal, prepared: PreparedExport, export_format: str) -> None:
    """Record the export (project, format, instruments) in its own transaction now: call before any byte is
    sent, and do not send when it raises ``AuditUnavailable``."""
    reads = ReadLog()
    instruments = sorted({f"{instrument.code}@{instrument.version}" for instrument in prepared.instruments})
    record_read(
        reads, "EvaluationProject", (prepared.project.id,), action="evaluation.exported",
        format=export_format, instruments=instruments, consent_purpose=prepared.project.consent_purpose.value,
    )  # fmt: skip
    await write_reads(writer, reads, principal)


async def export_body(
    session_maker: async_sessionmaker[AsyncSession],
    principal: Principal,
    prepared: PreparedExport,
    export_format: str,
    on_rows: Callable[[int], None] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The file's bytes (audited beforehand with ``audit_export``); ``on_rows`` hears each batch's row count."""
    answers = item_columns(prepared.instruments)
    encode = csv_chunks if export_format == "csv" else parquet_chunks
    async with read_only_session(session_maker) as session:  # a long read: never hold the write lock
        install_guard(session)
        await bind_principal(session, principal)
        rows = stream_rows(session, prepared.project, answers, prepared.instruments)
        counted = rows if on_rows is None else _reported(rows, on_rows)
        async with contextlib.aclosing(counted):  # a client gone mid-file closes the cursor and session now
            async for chunk in encode(counted, answers):
                yield chunk


async def _reported(
    batches: AsyncGenerator[list[list[Any]], None], on_rows: Callable[[int], None]
) -> AsyncGenerator[list[list[Any]], None]:
    async with contextlib.aclosing(batches):
        async for batch in batches:
            on_rows(len(batch))
            yield batch
