"""The evaluator's view through HTTP: consent, pseudonyms, aggregates with suppression, and refusals."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import AttendanceStatus, Region, Timepoint, Topic
from programme_api.domain.outcome_tables import AggregateCell, AggregateTable, Dimension
from programme_api.domain.pseudonyms import pseudonym
from programme_api.domain.suppression import Line, determined, protect
from programme_api.schema.relay import to_global_id

from .api import GraphQLClient
from .factories import (
    enrol,
    evaluator_for,
    make_consent,
    make_group,
    make_organisation,
    make_participant,
    make_project,
    make_region,
    make_response,
    make_session,
    principal_for,
    record,
)

RESPONSES = """query P($after: String) { evaluation { responses(first: 2, after: $after) { totalCount
  edges { cursor node { pseudonym region groupTopic timepoint instrumentCode instrumentVersion answers score band
  completedWeek sessionsAttended } } pageInfo { hasNextPage endCursor } } } }"""
AGGREGATES = """query A($by: AggregateDimension!, $tp: Timepoint) { evaluation {
  aggregates(instrumentCode: "phq9", by: $by, timepoint: $tp) { threshold
    cells { key suppressed n mean sd nWithBaseline meanChange reliableImprovement reliableDeterioration
      suppressedStatistics }
    total { suppressed n mean } } } }"""
WITHDRAW = """mutation W($p: ID!) { withdrawConsent(participantId: $p, purpose: EVALUATION) { userErrors { code } } }"""


async def cohort(db: AsyncSession, people: int = 3) -> dict[str, Any]:
    """People with PHQ-9 at baseline (value 2: score 18) and follow-up (value 0: score 0), two sessions attended."""
    organisation = await make_organisation(db, suppression_threshold=1)
    region = await make_region(db, organisation, name="North")
    group = await make_group(db, region, topic=Topic.ANXIETY)
    baseline_at = datetime(2026, 3, 4, 12, tzinfo=UTC)  # a Wednesday
    sessions = [await make_session(db, group, starts_at=baseline_at + timedelta(days=7 * w)) for w in (1, 2, 3)]
    participants = []
    for _ in range(people):
        participant = await make_participant(db, region)
        await enrol(db, participant, group)
        await make_consent(db, participant)
        await make_response(db, participant, group, value=2, completed_at=baseline_at)
        await make_response(db, participant, group, value=0, timepoint=Timepoint.FOLLOW_UP_1,
                            completed_at=baseline_at + timedelta(days=20))  # fmt: skip
        for session in sessions[:2]:
            await record(db, session, participant, AttendanceStatus.PRESENT)
        participants.append(participant)
    project = await make_project(db, organisation)
    return {"organisation": organisation, "region": region, "group": group, "participants": participants,
            "project": project, "evaluator": evaluator_for(organisation, project)}  # fmt: skip


async def all_rows(gql: GraphQLClient, evaluator: Any, query: str = RESPONSES) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await gql.data(query, {"after": after}, as_=evaluator))["evaluation"]["responses"]
        rows += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return rows
        after = page["pageInfo"]["endCursor"]


async def test_rows_are_pseudonymised_coarsened_and_paged(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await cohort(db)
    rows = await all_rows(gql, c["evaluator"])
    assert len(rows) == 6
    follow_up = next(row for row in rows if row["timepoint"] == "FOLLOW_UP_1")
    assert follow_up | {"pseudonym": None, "answers": None} == {
        "pseudonym": None, "region": "North", "groupTopic": "ANXIETY", "timepoint": "FOLLOW_UP_1",
        "instrumentCode": "phq9", "instrumentVersion": 1, "answers": None, "score": 0.0, "band": "minimal",
        "completedWeek": "2026-03-23", "sessionsAttended": 2,
    }  # fmt: skip
    assert {row["completedWeek"] for row in rows if row["timepoint"] == "BASELINE"} == {"2026-03-02"}
    expected = {pseudonym(c["project"].pseudonym_key, p.id) for p in c["participants"]}
    assert {row["pseudonym"] for row in rows} == expected
    body = str(await gql.execute(RESPONSES, as_=c["evaluator"]))
    for participant in c["participants"]:
        assert str(participant.id) not in body
        assert f"'{participant.reference}'" not in body
        assert str(participant.preferred_name) not in body


async def test_pseudonyms_are_stable_in_a_project_and_differ_across_projects(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    c = await cohort(db, people=1)
    second = await make_project(db, c["organisation"])
    first_rows = await all_rows(gql, c["evaluator"])
    again = await all_rows(gql, c["evaluator"])
    other = await all_rows(gql, evaluator_for(c["organisation"], second))
    assert len({row["pseudonym"] for row in first_rows + again}) == 1
    assert {row["pseudonym"] for row in other}.isdisjoint({row["pseudonym"] for row in first_rows})


async def test_withdrawal_removes_rows_and_aggregates_at_once(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await cohort(db)
    before = await gql.data(AGGREGATES, {"by": "TIMEPOINT"}, as_=c["evaluator"])
    assert before["evaluation"]["aggregates"]["total"]["n"] == 6
    leaving = c["participants"][0]
    result = await gql.data(
        WITHDRAW, {"p": to_global_id("Participant", leaving.id)}, as_=principal_for(c["organisation"])
    )
    assert result["withdrawConsent"]["userErrors"] == []
    rows = await all_rows(gql, c["evaluator"])
    assert len(rows) == 4
    assert pseudonym(c["project"].pseudonym_key, leaving.id) not in {row["pseudonym"] for row in rows}
    after = await gql.data(AGGREGATES, {"by": "TIMEPOINT"}, as_=c["evaluator"])
    assert after["evaluation"]["aggregates"]["total"]["n"] == 4


async def test_aggregates_by_timepoint_show_change_from_baseline(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await cohort(db)
    table = (await gql.data(AGGREGATES, {"by": "TIMEPOINT"}, as_=c["evaluator"]))["evaluation"]["aggregates"]
    cells = {cell["key"]: cell for cell in table["cells"]}
    assert cells["baseline"] == {"key": "baseline", "suppressed": False, "n": 3, "mean": 18.0, "sd": 0.0,
        "nWithBaseline": 0, "meanChange": None, "reliableImprovement": 0, "reliableDeterioration": 0,
        "suppressedStatistics": []}  # fmt: skip
    assert cells["follow_up_1"]["meanChange"] == -18.0
    assert cells["follow_up_1"]["reliableImprovement"] == 3  # PHQ-9: lower is better, reliable change 6


def test_a_lone_hidden_cell_in_a_line_gets_a_complement_and_differencing_recovers_nothing() -> None:
    """The reported pattern: a region's total (108) shown, three of its timepoints shown (60, 43, 0), the
    fourth (5) hidden; a second hidden figure must join it in the region's line."""
    line = Line("north", ("baseline", "follow_up_1", "follow_up_2", "exit"))
    values = {"north": 108, "baseline": 60, "follow_up_1": 43, "follow_up_2": 0, "exit": 5}
    hidden = protect(values, [line], {"exit"}, list(values))
    assert hidden == {"exit", "follow_up_1"}  # the smallest non-zero figure beside it, not the empty one
    assert determined(hidden, [line], {key: i for i, key in enumerate(values)}) == set()
    assert determined({"exit"}, [line], {key: i for i, key in enumerate(values)}) == {"exit"}


def test_a_cell_pinned_by_two_tables_is_found_and_protected() -> None:
    """Two hidden cells in each line, yet a bridge: a, b in row 1 and c, d in row 2, and a, c in column 1 but
    b and d each alone with a hidden partner outside the table. Only linear algebra sees what is pinned."""
    lines = [
        Line("r1", ("a", "b")),
        Line("r2", ("c", "d")),
        Line("c1", ("a", "c")),
        Line("c2", ("b", "e")),
        Line("c3", ("d", "f")),
        Line("t", ("r1", "r2")),
    ]
    order = ["a", "b", "c", "d", "e", "f", "r1", "r2", "c1", "c2", "c3", "t"]
    values = dict.fromkeys(order, 20) | {"a": 2}
    rank = {key: i for i, key in enumerate(order)}
    hidden = protect(values, lines, {"a"}, order)
    assert "a" in hidden
    assert determined(hidden, lines, rank) == set()


async def test_small_cells_are_suppressed_with_a_secondary_cell(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await cohort(db, people=2)
    for topic, people in ((Topic.BURNOUT, 3), (Topic.LONELINESS, 4)):  # anxiety: 2 at baseline, 2 at follow-up
        group = await make_group(db, c["region"], topic=topic)
        for _ in range(people):
            participant = await make_participant(db, c["region"])
            await make_consent(db, participant)
            await make_response(db, participant, group, value=1)
    c["project"].suppression_threshold = 3
    await db.flush()
    table = await gql.data(AGGREGATES, {"by": "GROUP_TOPIC", "tp": "BASELINE"}, as_=c["evaluator"])
    aggregates = table["evaluation"]["aggregates"]
    cells = {cell["key"]: cell for cell in aggregates["cells"]}
    assert cells["anxiety"]["suppressed"]
    assert cells["anxiety"]["n"] is None
    assert cells["anxiety"]["mean"] is None
    assert cells["anxiety"]["suppressedStatistics"] == [
        "N", "MEAN", "SD", "N_WITH_BASELINE", "MEAN_CHANGE", "RELIABLE_IMPROVEMENT", "RELIABLE_DETERIORATION",
        "MEAN_CHANGE_CI", "SHARE_RELIABLY_IMPROVED", "EFFECT_SIZE_DZ", "EFFECT_SIZE_DAV"]  # fmt: skip
    # Anxiety's 2 cannot be had as the total minus the shown cells: a second figure of the line is hidden.
    line = [cells["burnout"], cells["loneliness"], aggregates["total"]]
    assert any(figure["suppressed"] for figure in line)
    assert all(figure["n"] is None for figure in line if figure["suppressed"])


async def test_project_rules_and_refusals(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await cohort(db, people=1)
    outsider = await cohort(db, people=2)  # another organisation, not in the project
    late = await make_participant(db, c["region"])
    await make_consent(db, late)
    await make_response(db, late, c["group"], completed_at=datetime(2027, 2, 1, tzinfo=UTC))  # after the end date
    unconsented = await make_participant(db, c["region"])
    await make_response(db, unconsented, c["group"])
    await make_response(db, c["participants"][0], c["group"], code="gad7")  # not a project instrument
    assert len(await all_rows(gql, c["evaluator"])) == 2
    assert len(await all_rows(gql, outsider["evaluator"])) == 4

    unbound = dataclasses.replace(c["evaluator"], evaluation_project_id=None)
    assert (await gql.execute(RESPONSES, as_=unbound))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    foreign = dataclasses.replace(c["evaluator"], evaluation_project_id=outsider["project"].id)
    body = await gql.execute(RESPONSES, as_=foreign)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    no_scope = principal_for(c["organisation"])  # an admin: no evaluation:read
    body = await gql.execute(RESPONSES, as_=dataclasses.replace(no_scope, evaluation_project_id=c["project"].id))
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    bad_cursor = await gql.execute(RESPONSES, {"after": "bm90LWEtY3Vyc29y"}, as_=c["evaluator"])
    assert bad_cursor["errors"][0]["extensions"]["code"] == "INVALID"


ALL_AGGREGATES = """query A($by: AggregateDimension!, $tp: Timepoint) { evaluation {
  aggregates(instrumentCode: "phq9", by: $by, timepoint: $tp) { instrumentCode dimension threshold
    cells { key suppressed n mean sd nWithBaseline meanChange reliableImprovement reliableDeterioration }
    total { key suppressed n mean sd nWithBaseline meanChange reliableImprovement reliableDeterioration } } } }"""


async def test_a_region_total_and_its_other_timepoints_do_not_give_away_the_hidden_one(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    """The reported pattern: a region's n over all timepoints shown, all its timepoints but EXIT shown, so EXIT
    was the difference. Every answer the API allows is collected over HTTP and no hidden figure may follow."""
    from .test_suppression_properties import derivable_figures

    organisation = await make_organisation(db, suppression_threshold=1)
    plan = {"North": (Topic.ANXIETY, {Timepoint.BASELINE: 4, Timepoint.FOLLOW_UP_1: 3, Timepoint.EXIT: 1}),
            "South": (Topic.DEPRESSION, {Timepoint.BASELINE: 3, Timepoint.FOLLOW_UP_1: 4, Timepoint.EXIT: 3})}  # fmt: skip
    for name, (topic, counts) in plan.items():
        group = await make_group(db, await make_region(db, organisation, name=name), topic=topic)
        people = [await make_participant(db, await db.get(Region, group.region_id)) for _ in range(4)]
        for person in people:
            await make_consent(db, person)
        for timepoint, count in counts.items():
            for person in people[:count]:
                await make_response(db, person, group, timepoint=timepoint)
    project = await make_project(db, organisation, suppression_threshold=3)
    evaluator = evaluator_for(organisation, project)

    answers = []
    for by in Dimension:
        for tp in [None, *Timepoint]:
            variables = {"by": by.name, "tp": tp.name if tp else None}
            table = (await gql.data(ALL_AGGREGATES, variables, as_=evaluator))["evaluation"]["aggregates"]
            answers.append((by, tp, _as_table(table)))
    north_exit = next(t for by, tp, t in answers if by is Dimension.REGION and tp is Timepoint.EXIT).cells[0]
    assert (north_exit.key, north_exit.suppressed, north_exit.n) == ("North", True, None)
    north = [
        next(c for c in t.cells if c.key == "North").n
        for by, tp, t in answers
        if by is Dimension.REGION and tp in (None, Timepoint.BASELINE, Timepoint.FOLLOW_UP_1)
    ]
    assert None in north  # the region's total or one of its other timepoints is hidden with it
    assert derivable_figures(answers) == []


def _as_table(table: dict[str, Any]) -> AggregateTable:
    def cell(raw: dict[str, Any]) -> AggregateCell:
        return AggregateCell(**{_snake(name): value for name, value in raw.items()})

    return AggregateTable(
        table["instrumentCode"], Dimension[table["dimension"]], table["threshold"],
        [cell(raw) for raw in table["cells"]], cell(table["total"]),
    )  # fmt: skip


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
