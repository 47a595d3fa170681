"""Change per response and dose-response tables through HTTP, with exact expected values.

The cohort: seven people with a PHQ-9 baseline (4 March 2026) and a follow-up 80 days later in one group
meeting weekly after the baseline; each attended a chosen number of the ten sessions in between.

| person | sessions | baseline | follow-up | change | classification          | recovery (caseness 10) |
|--------|----------|----------|-----------|--------|-------------------------|------------------------|
| A      | 1        | 15       | 12        | -3     | no reliable change      | not recovered          |
| B      | 3        | 12       | 13        | +1     | no reliable change      | not recovered          |
| C      | 5        | 18       | 10        | -8     | reliable improvement    | not recovered          |
| D      | 6        | 14       | 8         | -6     | reliable improvement    | recovered              |
| E      | 9        | 20       | 5         | -15    | reliable improvement    | recovered              |
| F      | 10       | 16       | 4         | -12    | reliable improvement    | recovered              |
| G      | 8        | 9        | 3         | -6     | reliable improvement    | not at caseness        |

Default bands: 0-3 holds A, B (changes -3, +1: mean -1, SD sqrt(8)); 4-7 holds C, D (-8, -6: mean -7, SD
sqrt(2)); 8+ holds E, F, G (-15, -12, -6: mean -11, SD sqrt(21)). Intervals: mean +/- t(0.975, n-1) * SD /
sqrt(n), with t(0.975, 1) = 12.7062 and t(0.975, 2) = 4.3027.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import AttendanceStatus, Timepoint, Topic
from programme_api.domain.pseudonyms import pseudonym
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
from .test_cli import database_url  # noqa: F401  (the fixture)

BASELINE_AT = datetime(2026, 3, 4, 12, tzinfo=UTC)
PEOPLE = {"A": (1, 15, 12), "B": (3, 12, 13), "C": (5, 18, 10), "D": (6, 14, 8), "E": (9, 20, 5), "F": (10, 16, 4),
          "G": (8, 9, 3)}  # fmt: skip
PHQ9_SOURCE = "NHS Talking Therapies reliable improvement criterion (a change of 6 or more)"

ROWS = """query R($after: String) { evaluation { responses(first: 100, after: $after) {
  edges { node { pseudonym timepoint score sessionsAttended doseBand
    change { baselineScore change reliableChangeThreshold reliableChangeSource classification recovery } } }
  pageInfo { hasNextPage endCursor } } } }"""
DOSE = """query D($tp: Timepoint, $code: String! = "phq9") { evaluation {
  aggregates(instrumentCode: $code, by: DOSE_BAND, timepoint: $tp) { dimension threshold
    cells { key suppressed n nWithBaseline meanChange reliableImprovement shareReliablyImproved
      meanChangeCi { estimate lower upper } effectSizeDz { estimate lower upper }
      effectSizeDav { estimate lower upper } suppressedStatistics }
    total { n nWithBaseline meanChange shareReliablyImproved meanChangeCi { lower upper } } } } }"""
WITHDRAW = """mutation W($p: ID!) { withdrawConsent(participantId: $p, purpose: EVALUATION) { userErrors { code } } }"""


def phq9_answers(total: int) -> dict[str, int]:
    """Nine answers 0-3 adding up to ``total``."""
    values = [min(3, max(0, total - 3 * position)) for position in range(9)]
    assert sum(values) == total
    return {f"item{position + 1}": value for position, value in enumerate(values)}


async def dose_cohort(db: AsyncSession, threshold: int = 1, **project: Any) -> dict[str, Any]:
    organisation = await make_organisation(db, suppression_threshold=1)
    region = await make_region(db, organisation, name="North")
    group = await make_group(db, region, topic=Topic.ANXIETY)
    sessions = [await make_session(db, group, starts_at=BASELINE_AT + timedelta(days=7 * w)) for w in range(1, 11)]
    people = {}
    for name, (attended, before, after) in PEOPLE.items():
        participant = await make_participant(db, region)
        await enrol(db, participant, group)
        await make_consent(db, participant)
        await make_response(db, participant, group, answers=phq9_answers(before), completed_at=BASELINE_AT)
        await make_response(db, participant, group, answers=phq9_answers(after), timepoint=Timepoint.FOLLOW_UP_1,
                            completed_at=BASELINE_AT + timedelta(days=80))  # fmt: skip
        for session in sessions[:attended]:
            await record(db, session, participant, AttendanceStatus.PRESENT)
        for session in sessions[attended:]:
            await record(db, session, participant, AttendanceStatus.UNEXCUSED)
        people[name] = participant
    evaluation = await make_project(db, organisation, suppression_threshold=threshold, **project)
    return {"organisation": organisation, "people": people, "project": evaluation,
            "evaluator": evaluator_for(organisation, evaluation)}  # fmt: skip


async def follow_ups(gql: GraphQLClient, c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each person's follow-up row, by name."""
    page = (await gql.data(ROWS, as_=c["evaluator"]))["evaluation"]["responses"]
    assert not page["pageInfo"]["hasNextPage"]
    names = {pseudonym(c["project"].pseudonym_key, p.id): name for name, p in c["people"].items()}
    rows = [edge["node"] for edge in page["edges"]]
    assert len(rows) == 14
    for row in rows:
        if row["timepoint"] == "BASELINE":
            assert (row["change"], row["doseBand"]) == (None, "no_baseline")
    return {names[row["pseudonym"]]: row for row in rows if row["timepoint"] == "FOLLOW_UP_1"}


async def test_each_follow_up_carries_its_change_threshold_source_and_classification(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    c = await dose_cohort(db)
    rows = await follow_ups(gql, c)
    expected = {
        "A": (15.0, -3.0, "NO_RELIABLE_CHANGE", "NOT_RECOVERED", 1, "0-3"),
        "B": (12.0, 1.0, "NO_RELIABLE_CHANGE", "NOT_RECOVERED", 3, "0-3"),
        "C": (18.0, -8.0, "RELIABLE_IMPROVEMENT", "NOT_RECOVERED", 5, "4-7"),
        "D": (14.0, -6.0, "RELIABLE_IMPROVEMENT", "RECOVERED", 6, "4-7"),
        "E": (20.0, -15.0, "RELIABLE_IMPROVEMENT", "RECOVERED", 9, "8+"),
        "F": (16.0, -12.0, "RELIABLE_IMPROVEMENT", "RECOVERED", 10, "8+"),
        "G": (9.0, -6.0, "RELIABLE_IMPROVEMENT", "NOT_AT_CASENESS", 8, "8+"),
    }
    for name, (baseline, change, classification, recovery, sessions, band) in expected.items():
        row = rows[name]
        assert row["change"] == {
            "baselineScore": baseline, "change": change, "reliableChangeThreshold": 6.0,
            "reliableChangeSource": PHQ9_SOURCE, "classification": classification, "recovery": recovery,
        }, name  # fmt: skip
        assert (row["sessionsAttended"], row["doseBand"], row["score"]) == (sessions, band, baseline + change), name


async def test_deterioration_is_classified(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await dose_cohort(db)
    worse = await make_participant(db, await make_region(db, c["organisation"], name="South"))
    group = await make_group(db, (await make_region(db, c["organisation"], name="East")), topic=Topic.ANXIETY)
    await make_consent(db, worse)
    await make_response(db, worse, group, answers=phq9_answers(4), completed_at=BASELINE_AT)
    await make_response(db, worse, group, answers=phq9_answers(11), timepoint=Timepoint.EXIT,
                        completed_at=BASELINE_AT + timedelta(days=30))  # fmt: skip
    page = (await gql.data(ROWS, as_=c["evaluator"]))["evaluation"]["responses"]
    exit_row = next(edge["node"] for edge in page["edges"] if edge["node"]["timepoint"] == "EXIT")
    assert exit_row["change"] == {
        "baselineScore": 4.0, "change": 7.0, "reliableChangeThreshold": 6.0, "reliableChangeSource": PHQ9_SOURCE,
        "classification": "RELIABLE_DETERIORATION", "recovery": "NOT_AT_CASENESS",
    }  # fmt: skip
    assert (exit_row["sessionsAttended"], exit_row["doseBand"]) == (0, "0-3")


async def test_dose_response_by_default_bands(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await dose_cohort(db)
    table = (await gql.data(DOSE, {"tp": "FOLLOW_UP_1"}, as_=c["evaluator"]))["evaluation"]["aggregates"]
    assert table["dimension"] == "DOSE_BAND"
    cells = {cell["key"]: cell for cell in table["cells"]}
    assert list(cells) == ["0-3", "4-7", "8+"]
    assert cells["0-3"] == {
        "key": "0-3", "suppressed": False, "n": 2, "nWithBaseline": 2, "meanChange": -1.0, "reliableImprovement": 0,
        "shareReliablyImproved": 0.0,
        "meanChangeCi": {"estimate": -1.0, "lower": -26.4124, "upper": 24.4124},  # -1 +/- 12.7062 * sqrt(8)/sqrt(2)
        "effectSizeDz": {"estimate": -0.3536, "lower": -1.7382, "upper": 1.1573},  # -1 / sqrt(8)
        # -1 / ((SD(15, 12) + SD(12, 13)) / 2) = -1 / ((2.1213 + 0.7071) / 2); interval d_z's x sqrt(8) / 1.4142
        "effectSizeDav": {"estimate": -0.7071, "lower": -3.4765, "upper": 2.3146},
        "suppressedStatistics": [],
    }  # fmt: skip
    assert (cells["4-7"]["n"], cells["4-7"]["meanChange"], cells["4-7"]["shareReliablyImproved"]) == (2, -7.0, 1.0)
    assert cells["4-7"]["meanChangeCi"] == {"estimate": -7.0, "lower": -19.7062, "upper": 5.7062}  # -7 +/- 12.7062
    assert cells["4-7"]["effectSizeDz"]["estimate"] == -4.9497  # -7 / sqrt(2)
    assert (cells["8+"]["n"], cells["8+"]["meanChange"], cells["8+"]["reliableImprovement"]) == (3, -11.0, 3)
    assert cells["8+"]["meanChangeCi"] == {"estimate": -11.0, "lower": -22.3837, "upper": 0.3837}
    assert cells["8+"]["effectSizeDz"]["estimate"] == -2.4004  # -11 / sqrt(21)
    # everyone: changes -3 1 -8 -6 -15 -12 -6, mean -7 (SD 5.3541), 5 of 7 reliably improved
    assert table["total"] == {"n": 7, "nWithBaseline": 7, "meanChange": -7.0, "shareReliablyImproved": 0.7143,
                              "meanChangeCi": {"lower": -11.9517, "upper": -2.0483}}  # fmt: skip


async def test_dose_bands_over_all_timepoints_keep_baselines_apart(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await dose_cohort(db)
    table = (await gql.data(DOSE, as_=c["evaluator"]))["evaluation"]["aggregates"]
    keys = [(cell["key"], cell["n"], cell["nWithBaseline"]) for cell in table["cells"]]
    assert keys == [("0-3", 2, 2), ("4-7", 2, 2), ("8+", 3, 3), ("no_baseline", 7, 0)]
    assert table["total"]["n"] == 14


async def test_bands_are_configured_per_project(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await dose_cohort(db, dose_bands=[0, 5])
    table = (await gql.data(DOSE, {"tp": "FOLLOW_UP_1"}, as_=c["evaluator"]))["evaluation"]["aggregates"]
    assert [(cell["key"], cell["n"], cell["meanChange"]) for cell in table["cells"]] == [
        ("0-4", 2, -1.0), ("5+", 5, -9.4)]  # fmt: skip
    rows = await follow_ups(gql, c)
    assert {name: row["doseBand"] for name, row in rows.items()} == {
        "A": "0-4", "B": "0-4", "C": "5+", "D": "5+", "E": "5+", "F": "5+", "G": "5+"}  # fmt: skip


async def test_small_dose_bands_are_suppressed_with_a_complement(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await dose_cohort(db, threshold=3)
    table = (await gql.data(DOSE, {"tp": "FOLLOW_UP_1"}, as_=c["evaluator"]))["evaluation"]["aggregates"]
    cells = {cell["key"]: cell for cell in table["cells"]}
    for band in ("0-3", "4-7"):  # two people each: hidden, and each other's complement
        assert cells[band]["suppressed"] is True
        assert (cells[band]["n"], cells[band]["meanChange"], cells[band]["meanChangeCi"]) == (None, None, None)
        assert (cells[band]["effectSizeDz"], cells[band]["shareReliablyImproved"]) == (None, None)
        assert "EFFECT_SIZE_DZ" in cells[band]["suppressedStatistics"]
    assert (cells["8+"]["n"], cells["8+"]["meanChange"], cells["8+"]["shareReliablyImproved"]) == (3, -11.0, 1.0)
    assert table["total"]["n"] == 7


async def test_withdrawal_leaves_the_dose_table_at_once(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await dose_cohort(db)
    result = await gql.data(
        WITHDRAW, {"p": to_global_id("Participant", c["people"]["E"].id)}, as_=principal_for(c["organisation"])
    )
    assert result["withdrawConsent"]["userErrors"] == []
    table = (await gql.data(DOSE, {"tp": "FOLLOW_UP_1"}, as_=c["evaluator"]))["evaluation"]["aggregates"]
    cells = {cell["key"]: cell for cell in table["cells"]}
    assert (cells["8+"]["n"], cells["8+"]["meanChange"]) == (2, -9.0)  # F -12 and G -6
    assert "E" not in await follow_ups_without(gql, c, "E")


async def follow_ups_without(gql: GraphQLClient, c: dict[str, Any], gone: str) -> dict[str, Any]:
    page = (await gql.data(ROWS, as_=c["evaluator"]))["evaluation"]["responses"]
    names = {pseudonym(c["project"].pseudonym_key, p.id): name for name, p in c["people"].items()}
    seen = {names[edge["node"]["pseudonym"]]: edge["node"] for edge in page["edges"]}
    assert len(page["edges"]) == 12
    return seen


async def test_export_and_codebook_carry_the_derived_columns(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await dose_cohort(db)
    token = gql.tokens.issue(c["evaluator"])  # type: ignore[attr-defined]
    response = await gql.http.get("/exports/surveys.csv", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    mine = pseudonym(c["project"].pseudonym_key, c["people"]["D"].id)
    follow_up = next(row for row in rows if row["pseudonym"] == mine and row["timepoint"] == "follow_up_1")
    derived = ["sessions_attended", "baseline_score", "change", "reliable_change_threshold", "reliable_change_source",
               "change_classification", "recovery", "dose_band"]  # fmt: skip
    assert [follow_up[name] for name in derived] == [
        "6", "14.0", "-6.0", "6.0", PHQ9_SOURCE, "reliable_improvement", "recovered", "4-7"]  # fmt: skip
    baseline = next(row for row in rows if row["pseudonym"] == mine and row["timepoint"] == "baseline")
    assert [baseline[name] for name in derived[1:]] == ["", "", "", "", "", "", "no_baseline"]

    book = (await gql.http.get("/exports/codebook.json", headers={"Authorization": f"Bearer {token}"})).json()
    columns = {column["name"]: column for column in book["columns"]}
    for name in derived:
        assert columns[name]["formula"], name
        assert columns[name]["source"], name
    assert "threshold" in columns["change_classification"]
    assert columns["recovery"]["threshold"] == "caseness cut-off: PHQ-9 10, GAD-7 8"
    phq9 = next(entry for entry in book["instruments"] if entry["code"] == "phq9")
    assert (phq9["reliable_change"], phq9["reliable_change_source"], phq9["caseness_cut_off"]) == (
        6.0, PHQ9_SOURCE, 10.0)  # fmt: skip
    assert book["project"]["dose_bands"] == ["0-3", "4-7", "8+", "no_baseline"]
    assert set(book["aggregate_statistics"]) >= {
        "meanChangeCi",
        "shareReliablyImproved",
        "effectSizeDz",
        "effectSizeDav",
    }


async def test_self_efficacy_and_recovery_measures_in_an_evaluation(db: AsyncSession, gql: GraphQLClient) -> None:
    """GSE 10-40 (higher is better, reliable change 6) and QPR-15 0-60 (reliable change 11), by timepoint."""
    organisation = await make_organisation(db, suppression_threshold=1)
    region = await make_region(db, organisation, name="North")
    group = await make_group(db, region, topic=Topic.LONELINESS)
    for before, after in ((1, 3), (2, 3)):
        person = await make_participant(db, region)
        await make_consent(db, person)
        for code in ("gse", "qpr15"):
            await make_response(db, person, group, code=code, value=before, completed_at=BASELINE_AT)
            await make_response(db, person, group, code=code, value=after, timepoint=Timepoint.EXIT,
                                completed_at=BASELINE_AT + timedelta(days=60))  # fmt: skip
    project = await make_project(db, organisation, instrument_codes=["gse", "qpr15"])
    evaluator = evaluator_for(organisation, project)
    query = """query A($code: String!) { evaluation { aggregates(instrumentCode: $code, by: TIMEPOINT) {
      cells { key n mean nWithBaseline meanChange reliableImprovement } } } }"""
    gse = (await gql.data(query, {"code": "gse"}, as_=evaluator))["evaluation"]["aggregates"]["cells"]
    assert gse == [
        {"key": "baseline", "n": 2, "mean": 15.0, "nWithBaseline": 0, "meanChange": None, "reliableImprovement": 0},
        {"key": "exit", "n": 2, "mean": 30.0, "nWithBaseline": 2, "meanChange": 15.0, "reliableImprovement": 2},
    ]  # fmt: skip
    qpr = (await gql.data(query, {"code": "qpr15"}, as_=evaluator))["evaluation"]["aggregates"]["cells"]
    assert qpr == [  # all 1s = 15, all 2s = 30, all 3s = 45: changes 30 and 15, both at least 11
        {"key": "baseline", "n": 2, "mean": 22.5, "nWithBaseline": 0, "meanChange": None, "reliableImprovement": 0},
        {"key": "exit", "n": 2, "mean": 45.0, "nWithBaseline": 2, "meanChange": 22.5, "reliableImprovement": 2},
    ]  # fmt: skip


def test_the_cli_sets_a_projects_dose_bands(database_url: str) -> None:  # noqa: F811
    """``evaluation-projects set-dose-bands``: validated, audited, and the default restored with ``--default``."""
    import json

    from .test_cli import invoke

    assert invoke("db", "upgrade")[0] == 0
    assert invoke("demo", "load")[0] == 0
    base = ("evaluation-projects", "set-dose-bands", "demo-evaluation", "--organisation", "northern-peer-support")
    code, out, err = invoke(*base, "--band", "0", "--band", "2", "--band", "6")
    assert code == 0, err
    assert json.loads(out) == ["0-1", "2-5", "6+", "no_baseline"]
    code, _, err = invoke(*base, "--band", "1", "--band", "3")
    assert (code, err.strip()) == (1, "error: the first band must start at 0 sessions")
    code, _, err = invoke(*base)
    assert (code, err.strip()) == (1, "error: give either --band (one or more) or --default")
    code, _, err = invoke(
        "evaluation-projects", "set-dose-bands", "nope", "--organisation", "northern-peer-support", "--default"
    )
    assert (code, err.strip()) == (1, "error: evaluation project 'nope' not found")
    code, out, _ = invoke(*base, "--default")
    assert json.loads(out) == ["0-3", "4-7", "8+", "no_baseline"]
    code, out, _ = invoke("audit", "list", "--organisation", "northern-peer-support", "--json",
                          "--action", "evaluation_project.dose_bands_set")  # fmt: skip
    assert [json.loads(line)["details"] for line in out.splitlines()] == [
        {"dose_bands": None},
        {"dose_bands": [0, 2, 6]},
    ]
