"""Evaluator exports over HTTP: same rows as GraphQL, consent withdrawal, refusals, and constant memory."""

from __future__ import annotations

import csv
import dataclasses
import io
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.exports import export_body, prepare_export
from programme_api.domain.models import AuditEvent, Consent, Participant, SurveyResponse, Timepoint

from .api import GraphQLClient
from .factories import principal_for, shipped_instrument_ids
from .test_evaluation import WITHDRAW, all_rows, cohort

ROWS_WITH_CHANGE = """query P($after: String) { evaluation { responses(first: 2, after: $after) { totalCount
  edges { cursor node { pseudonym region groupTopic timepoint instrumentCode instrumentVersion answers score band
  completedWeek sessionsAttended doseBand change { baselineScore change reliableChangeThreshold reliableChangeSource
  classification recovery } } } pageInfo { hasNextPage endCursor } } } }"""


async def get(gql: GraphQLClient, path: str, principal: object | None) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Authorization": f"Bearer {gql.tokens.issue(principal)}"} if principal else {}  # type: ignore[arg-type]
    response = await gql.http.get(path, headers=headers)
    return response.status_code, response.content, dict(response.headers)


def _graphql_as_csv(node: dict[str, Any], answer_columns: list[str]) -> tuple[str, ...]:
    """A GraphQL evaluation row written the way the CSV export writes it."""
    plain = ["pseudonym", "region", "groupTopic", "timepoint", "instrumentCode", "instrumentVersion",
             "completedWeek", "score", "band", "sessionsAttended"]  # fmt: skip
    derived = ["baselineScore", "change", "reliableChangeThreshold", "reliableChangeSource", "classification",
               "recovery"]  # fmt: skip
    change = node["change"] or {}
    values = [node[name] for name in plain] + [change.get(name) for name in derived] + [node["doseBand"]]
    values[2], values[3] = values[2].lower(), values[3].lower()
    values[14] = values[14].lower() if values[14] else values[14]
    values[15] = values[15].lower() if values[15] else values[15]
    answers = [node["answers"].get(column.removeprefix("answer_")) for column in answer_columns]
    return tuple("" if value is None else str(value) for value in values + answers)


async def test_every_csv_row_is_a_graphql_row_column_for_column(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await cohort(db)
    status, body, _ = await get(gql, "/exports/surveys.csv", c["evaluator"])
    assert status == 200
    header, *lines = list(csv.reader(io.StringIO(body.decode())))
    answer_columns = [name for name in header if name.startswith("answer_")]
    assert header[: len(header) - len(answer_columns)] == [
        "pseudonym", "region", "group_topic", "timepoint", "instrument_code", "instrument_version",
        "completed_week", "score", "band", "sessions_attended", "baseline_score", "change",
        "reliable_change_threshold", "reliable_change_source", "change_classification", "recovery", "dose_band"]  # fmt: skip
    graph = await all_rows(gql, c["evaluator"], ROWS_WITH_CHANGE)
    assert sorted(tuple(line) for line in lines) == sorted(_graphql_as_csv(node, answer_columns) for node in graph)


async def test_csv_and_parquet_match_graphql_and_drop_withdrawn_people(db: AsyncSession, gql: GraphQLClient) -> None:
    from programme_api.schema.relay import to_global_id

    c = await cohort(db)
    status, body, _ = await get(gql, "/exports/surveys.csv", c["evaluator"])
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    graph = await all_rows(gql, c["evaluator"])
    assert sorted(r["pseudonym"] for r in rows) == sorted(r["pseudonym"] for r in graph)
    assert rows[0]["answer_item9"] == "2"
    assert rows[0]["completed_week"] == "2026-03-02"

    await gql.data(
        WITHDRAW, {"p": to_global_id("Participant", c["participants"][0].id)}, as_=principal_for(c["organisation"])
    )
    _, body, _ = await get(gql, "/exports/surveys.csv", c["evaluator"])
    assert len(list(csv.DictReader(io.StringIO(body.decode())))) == 4
    status, body, _ = await get(gql, "/exports/surveys.parquet", c["evaluator"])
    table = pq.read_table(io.BytesIO(body))
    assert status == 200
    assert table.num_rows == 4
    assert set(table.column("pseudonym").to_pylist()) == {r["pseudonym"] for r in await all_rows(gql, c["evaluator"])}

    exports = (
        (await db.execute(sa.select(AuditEvent).where(AuditEvent.action == "evaluation.exported"))).scalars().all()
    )
    assert sorted(e.details["format"] for e in exports) == ["csv", "csv", "parquet"]
    assert {e.target_id for e in exports} == {str(c["evaluator"].evaluation_project_id)}


async def test_codebook_lists_columns_and_instrument_versions(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await cohort(db, people=1)
    status, body, _ = await get(gql, "/exports/codebook.json", c["evaluator"])
    import orjson

    book = orjson.loads(body)
    assert status == 200
    assert {"phq9", "swemwbs"} == {i["code"] for i in book["instruments"]}
    phq9 = next(i for i in book["instruments"] if i["code"] == "phq9")
    assert phq9["version"] == 1
    assert phq9["items"][0]["value_labels"]["0"] == "Not at all"
    assert "answer_item9" in {column["name"] for column in book["columns"]}


async def test_export_refusals(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await cohort(db, people=1)
    status, _, headers = await get(gql, "/exports/surveys.csv", None)
    assert status == 401
    assert headers["www-authenticate"] == "Bearer"
    status, body, _ = await get(gql, "/exports/surveys.csv", principal_for(c["organisation"]))
    assert status == 403
    assert b"pseudonym" not in body
    unbound = dataclasses.replace(c["evaluator"], evaluation_project_id=None)
    assert (await get(gql, "/exports/surveys.parquet", unbound))[0] == 403
    foreign = dataclasses.replace(c["evaluator"], evaluation_project_id=uuid.uuid4())
    assert (await get(gql, "/exports/codebook.json", foreign))[0] == 403
    exports = (
        (await db.execute(sa.select(AuditEvent).where(AuditEvent.action == "evaluation.exported"))).scalars().all()
    )
    assert exports == []


async def test_large_export_streams_in_constant_memory(db: AsyncSession, session_maker: Any, backend: str) -> None:
    """100,000 responses: memory stops growing with the file after the first batches (on PostgreSQL the rows
    come from the driver's cursor, on SQLite through SQLAlchemy's streamed result: both are checked)."""
    c = await cohort(db, people=1)
    instrument = (await shipped_instrument_ids(db))["phq9"]
    organisation, region, group = c["organisation"], c["region"], c["group"]
    people = [uuid.uuid4() for _ in range(20_000)]
    await db.execute(sa.insert(Participant), [
        {"id": pid, "organisation_id": organisation.id, "region_id": region.id, "reference": f"V{n}"}
        for n, pid in enumerate(people)])  # fmt: skip
    await db.execute(sa.insert(Consent), [
        {"id": uuid.uuid4(), "organisation_id": organisation.id, "participant_id": pid, "purpose": "evaluation",
         "form_version": "v1", "given_at": datetime(2026, 1, 1, tzinfo=UTC)} for pid in people])  # fmt: skip
    answers = {f"item{i}": 1 for i in range(1, 10)}
    start = datetime(2026, 2, 1, tzinfo=UTC)
    for timepoint in list(Timepoint):
        await db.execute(sa.insert(SurveyResponse), [
            {"id": uuid.uuid4(), "organisation_id": organisation.id, "participant_id": pid, "instrument_id": instrument,
             "group_id": group.id, "timepoint": timepoint, "answers": answers, "raw_score": 9.0, "score": 9.0,
             "band": "mild", "completed_at": start + timedelta(seconds=n)} for n, pid in enumerate(people)])  # fmt: skip
    await db.commit()
    if backend == "postgresql":  # statistics for the new rows, as autovacuum would gather for committed ones
        await db.execute(sa.text("ANALYZE"))
    prepared = await prepare_export(session_maker, c["evaluator"])
    size = rows = 0
    halfway: tuple[int, int] | None = None  # (held, peak) over the first half
    tracemalloc.start()
    async for chunk in export_body(session_maker, c["evaluator"], prepared, "csv"):
        size += len(chunk)
        rows += chunk.count(b"\n")
        if halfway is None and rows >= 50_000:
            halfway = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
    held, second_half_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rows == 100_000 + 2 + 1  # header + the cohort's two rows + data
    assert size > 8_000_000
    assert halfway is not None
    halfway_held, first_half_peak = halfway
    # Nothing of the first half is still held at the end (a few bytes per row kept would be hundreds of KB),
    # and the second half (about half the file's bytes) peaks no higher than the first give or take a batch's
    # jitter: memory is bounded by the batch in flight, not by the file.
    assert held - halfway_held < 100_000, (halfway_held, held)
    assert second_half_peak - first_half_peak < 1_000_000, (first_half_peak, second_half_peak, size)
