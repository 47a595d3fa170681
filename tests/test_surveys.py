"""Survey responses, safeguarding alerts and instruments through HTTP, including every refusal."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.instruments import shipped_instrument
from programme_api.domain.models import AuditEvent, Role, SafeguardingAlert, SurveyResponse
from programme_api.schema.relay import to_global_id

from .api import GraphQLClient
from .factories import (
    enrol,
    make_group,
    make_organisation,
    make_participant,
    make_region,
    principal_for,
    shipped_instrument_ids,
)

SUBMIT = """mutation S($input: SubmitSurveyResponseInput!) { submitSurveyResponse(input: $input) {
  response { timepoint score band rawScore instrument { code version } }
  safeguardingAlert { id reason } userErrors { field message code } } }"""
ALERTS = """query { safeguardingAlerts { totalCount edges { node { id reason acknowledgedAt group { name } } } } }"""
ACK = """mutation A($id: ID!) { acknowledgeSafeguardingAlert(alertId: $id, note: "Called, safety plan agreed") {
  alert { acknowledgedAt acknowledgementNote } userErrors { field code } } }"""


async def setting(db: AsyncSession) -> dict[str, Any]:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    participant = await make_participant(db, region)
    await enrol(db, participant, group)
    return {"organisation": organisation, "region": region, "group": group, "participant": participant,
            "instruments": await shipped_instrument_ids(db)}  # fmt: skip


def submission(s: dict[str, Any], code: str, answers: dict[str, Any], timepoint: str = "BASELINE") -> dict[str, Any]:
    return {"input": {
        "participantId": to_global_id("Participant", s["participant"].id),
        "groupId": to_global_id("Group", s["group"].id),
        "instrumentId": to_global_id("SurveyInstrument", s["instruments"][code]),
        "timepoint": timepoint,
        "answers": [{"item": key, "value": value} for key, value in answers.items()],
    }}  # fmt: skip


def phq9(value: int, item9: int = 0) -> dict[str, int]:
    return {f"item{i}": value for i in range(1, 9)} | {"item9": item9}


async def responses(db: AsyncSession) -> list[SurveyResponse]:
    return list((await db.execute(sa.select(SurveyResponse))).scalars())


async def test_submit_scores_and_stores_with_the_instrument_version(db: AsyncSession, gql: GraphQLClient) -> None:
    s = await setting(db)
    data = await gql.data(SUBMIT, submission(s, "phq9", phq9(1)), as_=principal_for(s["organisation"]))
    assert data["submitSurveyResponse"] == {
        "response": {"timepoint": "BASELINE", "score": 8.0, "band": "mild", "rawScore": 8.0,
                     "instrument": {"code": "phq9", "version": 1}},
        "safeguardingAlert": None, "userErrors": [],
    }  # fmt: skip
    [stored] = await responses(db)
    assert stored.instrument_id == s["instruments"]["phq9"]
    assert stored.answers["item9"] == 0


async def test_core10_prorates_one_missing_item(db: AsyncSession, gql: GraphQLClient) -> None:
    s = await setting(db)
    answers: dict[str, Any] = {f"item{i}": 2 for i in range(1, 11)} | {"item10": None}
    data = await gql.data(SUBMIT, submission(s, "core10", answers), as_=principal_for(s["organisation"]))
    assert data["submitSurveyResponse"]["response"]["score"] == 20.0  # 18 * 10 / 9


async def test_invalid_answers_give_precise_user_errors_and_write_nothing(db: AsyncSession, gql: GraphQLClient) -> None:
    s = await setting(db)
    answers: dict[str, Any] = phq9(1) | {"item3": 7, "item10": 1}
    del answers["item4"]
    data = await gql.data(SUBMIT, submission(s, "phq9", answers), as_=principal_for(s["organisation"]))
    errors = data["submitSurveyResponse"]["userErrors"]
    assert {(e["field"], e["code"]) for e in errors} == {
        ("answers.item3", "OUT_OF_RANGE"), ("answers.item4", "MISSING_ITEM"), ("answers.item10", "UNKNOWN_ITEM"),
    }  # fmt: skip
    assert data["submitSurveyResponse"]["response"] is None
    assert await responses(db) == []


async def test_duplicate_timepoint_is_refused(db: AsyncSession, gql: GraphQLClient) -> None:
    s = await setting(db)
    admin = principal_for(s["organisation"])
    await gql.data(SUBMIT, submission(s, "gad7", {f"item{i}": 0 for i in range(1, 8)}), as_=admin)
    again = await gql.data(SUBMIT, submission(s, "gad7", {f"item{i}": 1 for i in range(1, 8)}), as_=admin)
    assert again["submitSurveyResponse"]["userErrors"] == [
        {
            "field": "timepoint",
            "code": "DUPLICATE",
            "message": again["submitSurveyResponse"]["userErrors"][0]["message"],
        }
    ]
    assert len(await responses(db)) == 1


async def test_risk_answer_raises_an_alert_for_the_regions_coordinators(db: AsyncSession, gql: GraphQLClient) -> None:
    s = await setting(db)
    data = await gql.data(SUBMIT, submission(s, "phq9", phq9(0, item9=1)), as_=principal_for(s["organisation"]))
    alert = data["submitSurveyResponse"]["safeguardingAlert"]
    assert "item9" in alert["reason"]

    coordinator = principal_for(s["organisation"], role=Role.COORDINATOR, regions=[s["region"]])
    seen = await gql.data(ALERTS, as_=coordinator)
    assert seen["safeguardingAlerts"]["totalCount"] == 1
    other_region = principal_for(
        s["organisation"], role=Role.COORDINATOR, regions=[await make_region(db, s["organisation"])]
    )
    assert (await gql.data(ALERTS, as_=other_region))["safeguardingAlerts"]["totalCount"] == 0
    other_org = principal_for(await make_organisation(db))
    assert (await gql.data(ALERTS, as_=other_org))["safeguardingAlerts"]["totalCount"] == 0

    refused = await gql.data(ACK, {"id": alert["id"]}, as_=other_region)
    assert refused["acknowledgeSafeguardingAlert"]["userErrors"][0]["code"] == "NOT_FOUND"
    done = await gql.data(ACK, {"id": alert["id"]}, as_=coordinator)
    assert done["acknowledgeSafeguardingAlert"]["alert"]["acknowledgementNote"] == "Called, safety plan agreed"
    [stored] = (await db.execute(sa.select(SafeguardingAlert))).scalars().all()
    assert stored.acknowledged_at is not None
    reads = (
        (await db.execute(sa.select(AuditEvent).where(AuditEvent.action == "SafeguardingAlert.read"))).scalars().all()
    )
    # the three lists (two of them empty), and the alert as the submission and the acknowledgement returned it
    assert sorted(event.details["count"] for event in reads) == [0, 0, 1, 1, 1]


async def test_core10_item6_is_a_risk_answer(db: AsyncSession, gql: GraphQLClient) -> None:
    s = await setting(db)
    answers = {f"item{i}": 0 for i in range(1, 11)} | {"item6": 2}
    data = await gql.data(SUBMIT, submission(s, "core10", answers), as_=principal_for(s["organisation"]))
    assert data["submitSurveyResponse"]["safeguardingAlert"] is not None


async def test_submission_denials_write_nothing(db: AsyncSession, gql: GraphQLClient) -> None:
    s = await setting(db)
    body = await gql.execute(SUBMIT, submission(s, "phq9", phq9(1)),
                             as_=principal_for(s["organisation"], scopes={"surveys:read", "programme:read"}))  # fmt: skip
    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    foreign = await gql.data(SUBMIT, submission(s, "phq9", phq9(1)), as_=principal_for(await make_organisation(db)))
    assert foreign["submitSurveyResponse"]["userErrors"][0]["code"] == "NOT_FOUND"
    stranger = await make_participant(db, s["region"])
    s2 = s | {"participant": stranger}
    not_enrolled = await gql.data(SUBMIT, submission(s2, "phq9", phq9(1)), as_=principal_for(s["organisation"]))
    assert not_enrolled["submitSurveyResponse"]["userErrors"][0]["code"] == "NOT_ENROLLED"
    assert await responses(db) == []


async def test_responses_are_read_with_surveys_read_and_audited(db: AsyncSession, gql: GraphQLClient) -> None:
    s = await setting(db)
    admin = principal_for(s["organisation"])
    await gql.data(SUBMIT, submission(s, "phq9", phq9(2)), as_=admin)
    query = "query { surveyResponses { totalCount edges { node { score participant { reference } } } } }"
    data = await gql.data(query, as_=admin)
    assert data["surveyResponses"]["totalCount"] == 1
    denied = await gql.execute(query, as_=principal_for(s["organisation"], scopes={"programme:read"}))
    assert denied["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    reads = (await db.execute(sa.select(AuditEvent).where(AuditEvent.action == "SurveyResponse.read"))).scalars().all()
    # the submission's answer (it returned the score) and the list; the refused read left nothing
    assert sorted(tuple(event.details["fields"]) for event in reads) == [
        ("band", "instrument", "rawScore", "score", "timepoint"),
        ("participant", "score"),
    ]


async def test_instruments_list_shipped_and_own_custom(db: AsyncSession, gql: GraphQLClient) -> None:
    s = await setting(db)
    definition = shipped_instrument("ucla3").definition
    define = """mutation D($d: JSON!) { defineCustomInstrument(code: "belonging", name: "Belonging", definition: $d) {
      instrument { code version shipped } userErrors { field code } } }"""
    made = await gql.data(define, {"d": definition}, as_=principal_for(s["organisation"]))
    assert made["defineCustomInstrument"]["instrument"] == {"code": "custom_belonging", "version": 1, "shipped": False}
    broken = await gql.data(define, {"d": {"items": []}}, as_=principal_for(s["organisation"]))
    assert broken["defineCustomInstrument"]["userErrors"]
    refused = await gql.execute(define, {"d": definition},
                                as_=principal_for(s["organisation"], role=Role.FACILITATOR))  # fmt: skip
    assert refused["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"

    query = "query { surveyInstruments(first: 50) { edges { node { code shipped } } } }"
    mine = await gql.data(query, as_=principal_for(s["organisation"]))
    codes = {edge["node"]["code"] for edge in mine["surveyInstruments"]["edges"]}
    assert {"phq9", "swemwbs", "core10", "custom_belonging"} <= codes
    theirs = await gql.data(query, as_=principal_for(await make_organisation(db)))
    assert "custom_belonging" not in {edge["node"]["code"] for edge in theirs["surveyInstruments"]["edges"]}
