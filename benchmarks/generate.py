"""Seeded benchmark data at a chosen scale, bulk-loaded into a fresh PostgreSQL database.

Why not the demo loader: the demo is hand-shaped for people to explore (two tenants, every edge case) and
inserts through the ORM; benchmarks need the same *kind* of data at 10x or 100x its size, loaded in seconds.
So this module writes rows with asyncpg's binary ``COPY`` into a schema migrated by ``programme-api db
upgrade`` (the real migrations: the benchmark measures the real indexes).

Scale 1 is the demo's size in groups (44); every count grows linearly with ``--scale``:

==============  ===================  =====================
per scale unit  scale 1              scale 10
==============  ===================  =====================
regions         2                    20
groups          44 (22 per region)   440
sessions        100 per group        44,000
attendance      10 marks per held    ~410,000
participants    23 per group         10,120
responses       10,000               100,000
==============  ===================  =====================

Every group has 23 active enrolments, so the attendance-register scenario can always send a register of 15
(``REGISTER_SIZE`` in ``shared.py``). ``--export-rows N`` sets the number of survey responses independently of
the scale (the export target is measured at 1,000,000): below the scale's count the first N are kept; above
it, extra participants (not enrolled anywhere, so the read scenarios see exactly the same data) give ten
responses each. All participants consent to evaluation, and the evaluation project ``bench-evaluation``
covers both instruments and every response date, so an evaluator's CSV export returns every response.

Fractional scales (e.g. 0.05) give a tiny data set for the smoke test. Everything comes from one
``random.Random(seed)``, and dates hang on a fixed anchor, so two runs with the same arguments load
byte-identical data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

import asyncpg

ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DEFAULT_DATABASE = "programme_bench"
ORGANISATION_SLUG = "bench-org"
DASHBOARD_REGION_SLUG = "region-001"
EVALUATION_PROJECT_SLUG = "bench-evaluation"
INSTRUMENT_CODES = ("BENCH-A", "BENCH-B")
ANCHOR = datetime(2026, 1, 5, 18, 0, tzinfo=UTC)
"""Sessions run weekly up to this Monday; fixed (not "now") so the data never depends on the day it is made."""

GROUPS_PER_REGION = 22
SESSIONS_PER_GROUP = 100
FUTURE_SESSIONS = 4
PARTICIPANTS_PER_GROUP = 23
MARKS_PER_SESSION = 10
RESPONSES_PER_SCALE = 10_000
TOPICS = ("depression", "anxiety", "burnout", "long_term_conditions", "bereavement", "loneliness")
MODES = ("in_person", "online", "hybrid")
TIMEPOINTS = ("baseline", "follow_up_1", "follow_up_2", "follow_up_3", "exit")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Tables:
    """Rows per table, as tuples in the column order given in ``columns``; insertion order is FK order."""

    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    tails: dict[str, tuple[int, Callable[[], Iterator[tuple[Any, ...]]]]] = field(default_factory=dict)
    """Rows made only while they are copied (count, factory): a million survey responses never sit in memory."""

    def add(self, table: str, **values: Any) -> None:
        if table not in self.columns:
            self.columns[table] = tuple(values)
            self.rows[table] = []
        self.rows[table].append(tuple(values.values()))

    def count(self, table: str) -> int:
        return len(self.rows.get(table, [])) + (self.tails[table][0] if table in self.tails else 0)

    def records(self, table: str) -> Iterator[tuple[Any, ...]]:
        yield from self.rows[table]
        if table in self.tails:
            yield from self.tails[table][1]()


def counts_for(scale: float) -> tuple[int, int]:
    """(regions, groups per region): at least one region with two groups, so scale 0.05 is still a dashboard."""
    groups = max(2, round(44 * scale))
    regions = max(1, round(2 * scale))
    return regions, max(2, groups // regions)


def instrument_definition() -> dict[str, Any]:
    """Seven items 1-5 summed (the shape ``domain/scoring.py`` reads); item keys match the answers' ``q1..q7``."""
    items = [{"key": f"q{n}", "label": f"Item {n}", "min": 1, "max": 5, "reverse": False} for n in range(1, 8)]
    bands = [{"label": "low", "min": 7, "max": 20}, {"label": "moderate", "min": 21, "max": 35}]
    return {"higher_is_better": True, "reliable_change": 3.0, "risk_items": [], "items": items,
            "scoring": {"method": "sum", "reversed": [], "lookup": None, "bands": bands,
                        "missing": {"max_missing": 0, "rule": "none"}, "decimals": 2}}  # fmt: skip


def build(scale: float, seed: int, export_rows: int | None = None) -> Tables:
    """Every row, in memory (extra survey responses are made while copied); deterministic for the arguments.

    ``export_rows`` changes only the survey responses and the participants added to carry them: every other
    table is the same row for row whatever it is (the extra rows come from a second generator, ``extra``)."""
    rng = random.Random(seed)

    def new_id() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    t = Tables()
    created = ANCHOR - timedelta(days=900)
    organisation_id = new_id()
    t.add("organisations", id=organisation_id, created_at=created, version=1, slug=ORGANISATION_SLUG,
          name="Benchmark Peer Support", timezone="Europe/London", suppression_threshold=10)  # fmt: skip
    regions, per_region = counts_for(scale)
    region_ids = []
    for number in range(1, regions + 1):
        region_ids.append(new_id())
        t.add("regions", id=region_ids[-1], created_at=created, version=1, organisation_id=organisation_id,
              slug=f"region-{number:03d}", name=f"Region {number:03d}")  # fmt: skip
    facilitator_ids = []
    for number in range(max(4, regions * per_region * 2 // 3)):
        facilitator_ids.append(new_id())
        t.add("facilitators", id=facilitator_ids[-1], created_at=created, version=1, organisation_id=organisation_id,
              user_id=None, display_name=f"Facilitator {number:05d}", email=f"f{number}@bench.example",
              training_completed_on=date(2024, 1, 1) + timedelta(days=rng.randrange(400)),
              background_check_expires_on=date(2026, 1, 1) + timedelta(days=rng.randrange(-60, 700)))  # fmt: skip
    instrument_ids = [new_id(), new_id()]
    for code, instrument_id in zip(INSTRUMENT_CODES, instrument_ids, strict=True):
        t.add("survey_instruments", id=instrument_id, created_at=created, organisation_id=organisation_id, code=code,
              version=1, name=f"Benchmark instrument {code}", definition=json.dumps(instrument_definition()),
              wording_licensed=False)  # fmt: skip
    participant_number = 0
    response_budget = round(RESPONSES_PER_SCALE * scale)
    group_number = 0
    groups: list[tuple[uuid.UUID, uuid.UUID]] = []
    for region_id in region_ids:
        for _ in range(per_region):
            group_number += 1
            group_id = new_id()
            groups.append((group_id, region_id))
            weekday = rng.randrange(7)
            t.add("groups", id=group_id, created_at=created, version=1, organisation_id=organisation_id,
                  region_id=region_id, name=f"{rng.choice(TOPICS).replace('_', ' ').title()} group {group_number:05d}",
                  topic=rng.choice(TOPICS), delivery_mode=rng.choice(MODES), venue=f"Hall {group_number}",
                  capacity=rng.randrange(12, 25), status="active", schedule_frequency="weekly",
                  schedule_weekday=weekday, schedule_week_of_month=None, schedule_start_time=clock(18, 0),
                  schedule_duration_minutes=90, schedule_anchor_date=created.date(), updated_at=created)  # fmt: skip
            lead, co = rng.sample(facilitator_ids, 2)
            t.add("facilitator_assignments", id=new_id(), created_at=created, organisation_id=organisation_id,
                  group_id=group_id, facilitator_id=lead, role="lead")  # fmt: skip
            if rng.random() < 0.7:
                t.add("facilitator_assignments", id=new_id(), created_at=created + timedelta(seconds=1),
                      organisation_id=organisation_id, group_id=group_id, facilitator_id=co,
                      role="co_facilitator")  # fmt: skip
            members = []
            for _ in range(PARTICIPANTS_PER_GROUP):
                participant_number += 1
                members.append(new_id())
                t.add("participants", id=members[-1], created_at=created, version=1, organisation_id=organisation_id,
                      region_id=region_id, reference=f"P{participant_number:07d}", preferred_name=None,
                      contact_email=None, contact_phone=None, erased_at=None)  # fmt: skip
                t.add("enrolments", id=new_id(), created_at=created, version=1, organisation_id=organisation_id,
                      participant_id=members[-1], group_id=group_id, status="active", requested_at=created,
                      activated_at=created, left_at=None)  # fmt: skip
            first = ANCHOR - timedelta(weeks=SESSIONS_PER_GROUP - FUTURE_SESSIONS, days=weekday % 7)
            for week in range(SESSIONS_PER_GROUP):
                starts = first + timedelta(weeks=week)
                session_id = new_id()
                future = week >= SESSIONS_PER_GROUP - FUTURE_SESSIONS
                cancelled = not future and rng.random() < 0.05
                status = "scheduled" if future else ("cancelled" if cancelled else "held")
                t.add("group_sessions", id=session_id, created_at=created, version=1, organisation_id=organisation_id,
                      group_id=group_id, starts_at=starts, ends_at=starts + timedelta(minutes=90), status=status,
                      cancellation_reason="Facilitator unwell" if cancelled else None, source="schedule",
                      dropin_count=0 if status != "held" else rng.randrange(4))  # fmt: skip
                if status == "held":
                    for participant_id in rng.sample(members, MARKS_PER_SESSION):
                        mark = rng.choices(("present", "excused", "unexcused"), (8, 1, 1))[0]
                        t.add("attendance", id=new_id(), organisation_id=organisation_id, session_id=session_id,
                              participant_id=participant_id, status=mark,
                              recorded_at=starts + timedelta(hours=2))  # fmt: skip
            for participant_id in members:
                for instrument_id in instrument_ids:
                    for step, timepoint in enumerate(TIMEPOINTS):
                        if t.count("survey_responses") >= response_budget:
                            break
                        answers = {f"q{item}": rng.randrange(1, 6) for item in range(1, 8)}
                        raw = float(sum(answers.values()))
                        t.add("survey_responses", id=new_id(), created_at=created, organisation_id=organisation_id,
                              participant_id=participant_id, instrument_id=instrument_id, group_id=group_id,
                              timepoint=timepoint, answers=json.dumps(answers), raw_score=raw, score=raw,
                              band="moderate" if raw > 20 else "low",
                              completed_at=created + timedelta(weeks=12 * step, hours=rng.randrange(100)),
                              recorded_by_user_id=None)  # fmt: skip
    add_evaluation(t, organisation_id, instrument_ids, groups, participant_number, seed, export_rows)
    return t


def add_evaluation(
    t: Tables,
    organisation_id: uuid.UUID,
    instrument_ids: list[uuid.UUID],
    groups: list[tuple[uuid.UUID, uuid.UUID]],
    participant_number: int,
    seed: int,
    export_rows: int | None,
) -> None:
    """The evaluation project, everyone's evaluation consent, and ``export_rows`` survey responses in all."""
    extra = random.Random(seed * 1_000_003 + 11)

    def new_id() -> uuid.UUID:
        return uuid.UUID(int=extra.getrandbits(128), version=4)

    created = ANCHOR - timedelta(days=900)
    # Drawn first, so the project's ids and key do not depend on export_rows.
    project_id = new_id()
    project = {"id": project_id, "created_at": created, "organisation_id": organisation_id,
               "slug": EVALUATION_PROJECT_SLUG, "name": "Benchmark evaluation",
               "instrument_codes": json.dumps(INSTRUMENT_CODES), "starts_on": created.date() - timedelta(days=1),
               "ends_on": ANCHOR.date() + timedelta(days=365), "consent_purpose": "evaluation",
               "suppression_threshold": 10, "pseudonym_key": extra.randbytes(32)}  # fmt: skip
    link = {"id": new_id(), "organisation_id": organisation_id, "evaluation_project_id": project_id}
    responses = t.rows["survey_responses"]
    wanted = len(responses) if export_rows is None else export_rows
    del responses[wanted:]
    missing = wanted - len(responses)
    per_person = len(instrument_ids) * len(TIMEPOINTS)
    newcomers = []
    for index in range(-(-missing // per_person)):
        participant_number += 1
        group_id, region_id = groups[index % len(groups)]
        newcomers.append((new_id(), group_id))
        t.add("participants", id=newcomers[-1][0], created_at=created, version=1, organisation_id=organisation_id,
              region_id=region_id, reference=f"P{participant_number:07d}", preferred_name=None,
              contact_email=None, contact_phone=None, erased_at=None)  # fmt: skip
    t.add("evaluation_projects", **project)
    t.add("evaluation_project_organisations", **link)
    participant_ids = [row[0] for row in t.rows["participants"]]
    for participant_id in participant_ids:
        t.add("consents", id=new_id(), created_at=created, organisation_id=organisation_id,
              participant_id=participant_id, purpose="evaluation", form_version="bench-1", given_at=created,
              recorded_by_user_id=None, withdrawn_at=None, withdrawn_by_user_id=None)  # fmt: skip
    if missing <= 0:
        return
    columns = t.columns["survey_responses"]
    tail_seed = extra.getrandbits(64)

    def tail() -> Iterator[tuple[Any, ...]]:
        rng = random.Random(tail_seed)
        left = missing
        for participant_id, group_id in newcomers:
            for instrument_id in instrument_ids:
                for step, timepoint in enumerate(TIMEPOINTS):
                    if left == 0:
                        return
                    left -= 1
                    answers = {f"q{item}": rng.randrange(1, 6) for item in range(1, 8)}
                    raw = float(sum(answers.values()))
                    row = {"id": uuid.UUID(int=rng.getrandbits(128), version=4), "created_at": created,
                           "organisation_id": organisation_id, "participant_id": participant_id,
                           "instrument_id": instrument_id, "group_id": group_id, "timepoint": timepoint,
                           "answers": json.dumps(answers), "raw_score": raw, "score": raw,
                           "band": "moderate" if raw > 20 else "low",
                           "completed_at": created + timedelta(weeks=12 * step, hours=rng.randrange(100)),
                           "recorded_by_user_id": None}  # fmt: skip
                    yield tuple(row[name] for name in columns)

    t.tails["survey_responses"] = (missing, tail)


def with_database(dsn: str, database: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{database}"


async def recreate_database(database: str) -> None:
    """Drop and create ``database``: a benchmark always starts from the same, freshly loaded state."""
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()


def migrate(database: str, source: Path = ROOT) -> None:
    """Create the schema with the project's own ``programme-api db upgrade``, so tables and indexes are the
    production ones. ``source`` is the checkout whose code and migrations are used (see ``run.py --source``)."""
    env = {**os.environ, "PROGRAMME_API_DATABASE_URL": sqlalchemy_url(database),
           "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(source), str(ROOT)]))}  # fmt: skip
    command = [sys.executable, "-c", "from programme_api.cli import main; main()", "db", "upgrade"]
    subprocess.run(command, env=env, check=True, cwd=source, stdout=subprocess.DEVNULL)


def sqlalchemy_url(database: str) -> str:
    return with_database(ADMIN_DSN, database).replace("postgresql://", "postgresql+asyncpg://", 1)


async def copy_in(dsn: str, tables: Tables) -> None:
    """Binary COPY per table, then ANALYZE so the planner sees the real row counts from the first request."""
    connection = await asyncpg.connect(dsn)
    try:
        for table, columns in tables.columns.items():
            await connection.copy_records_to_table(table, records=tables.records(table), columns=list(columns))
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def generate(
    scale: float, seed: int = 7, database: str = DEFAULT_DATABASE, source: Path = ROOT, export_rows: int | None = None
) -> dict[str, int]:
    """Recreate ``database``, migrate it, and load the data; returns the row count per table."""
    tables = build(scale, seed, export_rows)
    await recreate_database(database)
    await asyncio.to_thread(migrate, database, source)
    await copy_in(with_database(ADMIN_DSN, database), tables)
    return {table: tables.count(table) for table in tables.columns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1 = demo size; 10 = 440 groups, 44k sessions")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--export-rows", type=int, default=None, help="survey responses (default: the scale's)")
    args = parser.parse_args()
    started = time.perf_counter()
    counts = asyncio.run(generate(args.scale, args.seed, args.database, export_rows=args.export_rows))
    print(f"loaded {args.database} at scale {args.scale} in {time.perf_counter() - started:.1f}s:")
    for table, number in counts.items():
        print(f"  {table:<24} {number:>9,}")


if __name__ == "__main__":
    main()
