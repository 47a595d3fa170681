"""A new programme team, end to end, from an empty database: the operator's CLI, then HTTP only.

Given an empty SQLite file, the operator migrates it and creates the organisation with its first admin client
(`programme-api organisations create`). From there everything goes through the service's HTTP interface with
real OAuth tokens, as the team's own tools would: the admin sets up regions, a group and its schedule, a
facilitator with training and a background check leading it; the operator imports the participants'
spreadsheet (`programme-api import`); the admin enrols them, records a register, a consent and a survey, sets
up an evaluation project and its evaluator client, and the evaluator reads the project's pseudonymised view.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from programme_api.app import create_app
from programme_api.config import Settings, get_settings

from .test_cli import invoke

ISSUER = "https://onboarding.test"
ADMIN_PASSWORD = "a long admin password"


def cli(*arguments: str, stdin: str | None = None) -> str:
    """Run a command that must succeed; its stdout."""
    code, out, err = invoke(*arguments, stdin=stdin)
    assert code == 0, f"programme-api {' '.join(arguments)}: {out}{err}"
    return out


@dataclass
class Onboarded:
    settings: Settings
    organisation: dict[str, Any]
    folder: Path


@pytest.fixture
def onboarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Onboarded]:
    """An empty database, migrated, with one organisation created by the operator."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'programme.db'}"
    monkeypatch.setenv("PROGRAMME_API_DATABASE_URL", url)
    monkeypatch.setenv("PROGRAMME_API_ISSUER", ISSUER)
    monkeypatch.setenv("PROGRAMME_API_SECRET_KEY_FILE", str(tmp_path / "keys.json"))
    monkeypatch.delenv("PROGRAMME_API_OWNER_DATABASE_URL", raising=False)
    monkeypatch.delenv("PROGRAMME_API_REDIS_URL", raising=False)
    get_settings.cache_clear()
    cli("db", "upgrade")
    created = json.loads(
        cli(
            "organisations",
            "create",
            "--slug",
            "riverside",
            "--name",
            "Riverside Peer Support",
            "--timezone",
            "Europe/London",
            "--admin-email",
            "admin@riverside.example",
            "--password-stdin",
            "--admin-client",
            "Onboarding script",
            "--json",
            stdin=ADMIN_PASSWORD + "\n",
        )
    )
    settings = get_settings()
    yield Onboarded(settings=settings, organisation=created, folder=tmp_path)
    get_settings.cache_clear()


class Api:
    """GraphQL over HTTP with a bearer token; every mutation must answer without user errors."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http, self.token = http, token

    async def query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post(
            "/graphql", json={"query": document, "variables": variables or {}},
            headers={"Authorization": f"Bearer {self.token}"},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def mutate(self, name: str, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        data = (await self.query(document, variables))[name]
        assert data["userErrors"] == [], data["userErrors"]
        result: dict[str, Any] = data
        return result


async def client_token(http: httpx.AsyncClient, client_id: str, secret: str) -> str:
    response = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
async def http(onboarded: Onboarded) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(onboarded.settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


REGION = "mutation($slug: String!, $name: String!) { createRegion(input: {slug: $slug, name: $name}) " \
         "{ userErrors { field code message } region { id slug } } }"  # fmt: skip
GROUP = """mutation($region: ID!) { createGroup(input: {regionId: $region, name: "Riverside walkers",
  topic: LONELINESS, deliveryMode: IN_PERSON, venue: "Riverside library", capacity: 10})
  { userErrors { field code message } group { id version } } }"""
SCHEDULE = """mutation($group: ID!, $version: Int!, $anchor: Date!) { setGroupSchedule(input: {groupId: $group,
  version: $version, frequency: WEEKLY, weekday: 1, startTime: "18:30:00", durationMinutes: 90, anchorDate: $anchor})
  { userErrors { field code message } group { id version schedule { frequency } } } }"""
SESSIONS = """mutation($group: ID!, $from: Date!, $to: Date!) { scheduleSessions(input: {groupId: $group,
  from: $from, to: $to}) { userErrors { field code message } createdCount sessions { id startsAt } } }"""
FACILITATOR = """mutation { createFacilitator(input: {displayName: "Dee Facilitator"})
  { userErrors { field code message } facilitator { id } } }"""
TRAINED = """mutation($f: ID!, $on: Date!) { recordTraining(input: {facilitatorId: $f, completedOn: $on})
  { userErrors { field code message } } }"""
CHECKED = """mutation($f: ID!, $on: Date!, $until: Date!) { recordBackgroundCheck(input: {facilitatorId: $f,
  completedOn: $on, expiresOn: $until, reference: "DBS-0001"}) { userErrors { field code message } } }"""
ASSIGN = """mutation($g: ID!, $f: ID!) { assignFacilitator(input: {groupId: $g, facilitatorId: $f, role: LEAD})
  { userErrors { field code message } } }"""
COMPLIANCE = "query { facilitators(first: 10) { nodes { displayName complianceState checks { kind } } } }"
PARTICIPANTS = """query { participants(filter: {search: "RV-"}, first: 50)
  { totalCount nodes { id reference preferredName } } }"""
ENROL = """mutation($p: ID!, $g: ID!) { enrolParticipant(input: {participantId: $p, groupId: $g})
  { userErrors { field code message } enrolment { status } } }"""
ONE_OFF = """mutation($g: ID!, $s: DateTime!, $e: DateTime!) { createSession(input: {groupId: $g, startsAt: $s,
  endsAt: $e}) { userErrors { field code message } session { id version status } } }"""
REGISTER = """mutation($s: ID!, $v: Int!, $entries: [AttendanceEntryInput!]!) { recordAttendance(input:
  {sessionId: $s, version: $v, entries: $entries, dropinCount: 1}) { userErrors { field code message } } }"""
CONSENT = """mutation($p: ID!) { recordConsent(participantId: $p, purpose: EVALUATION, formVersion: "v1")
  { userErrors { field code message } consent { purpose } } }"""
INSTRUMENTS = "query { surveyInstruments(first: 50) { nodes { id code } } }"
SURVEY = """mutation($p: ID!, $g: ID!, $i: ID!, $answers: [SurveyAnswerInput!]!) { submitSurveyResponse(input:
  {participantId: $p, groupId: $g, instrumentId: $i, timepoint: BASELINE, answers: $answers})
  { userErrors { field code message } response { id score } } }"""
PROJECT = """mutation($starts: Date!, $ends: Date!) { createEvaluationProject(input: {slug: "riverside-eval",
  name: "Riverside outcomes", instrumentCodes: ["swemwbs"], startsOn: $starts, endsOn: $ends,
  consentPurpose: EVALUATION}) { userErrors { field code message } evaluationProject { id slug } } }"""
EVALUATOR = """mutation($project: ID!) { createOAuthClient(input: {name: "University evaluator",
  scopes: ["evaluation:read"], evaluationProjectId: $project})
  { userErrors { field code message } clientSecret oauthClient { clientId scopes } } }"""
EVALUATION = """query { evaluation { slug instrumentCodes responses(first: 10)
  { edges { node { pseudonym region groupTopic timepoint instrumentCode score } } } } }"""


async def test_a_new_organisation_from_an_empty_database_to_the_evaluators_view(
    onboarded: Onboarded, http: httpx.AsyncClient
) -> None:
    created = onboarded.organisation["admin_client"]
    admin = Api(http, await client_token(http, created["client_id"], created["client_secret"]))
    viewer = await admin.query("{ viewer { scopes } organisation { slug name } }")
    assert viewer["organisation"] == {"slug": "riverside", "name": "Riverside Peer Support"}
    assert "evaluation:read" not in viewer["viewer"]["scopes"]

    # Regions, a group and its schedule.
    north = (await admin.mutate("createRegion", REGION, {"slug": "north", "name": "North"}))["region"]
    await admin.mutate("createRegion", REGION, {"slug": "south", "name": "South"})
    group = (await admin.mutate("createGroup", GROUP, {"region": north["id"]}))["group"]
    today = datetime.now(UTC).date()
    scheduled = await admin.mutate("setGroupSchedule", SCHEDULE,
                                   {"group": group["id"], "version": group["version"], "anchor": str(today)})  # fmt: skip
    assert scheduled["group"]["schedule"]["frequency"] == "WEEKLY"
    generated = await admin.mutate("scheduleSessions", SESSIONS,
                                   {"group": group["id"], "from": str(today), "to": str(today + timedelta(days=27))})  # fmt: skip
    assert generated["createdCount"] == 4

    # A facilitator with training and a background check, leading the group.
    facilitator = (await admin.mutate("createFacilitator", FACILITATOR, {}))["facilitator"]
    await admin.mutate("recordTraining", TRAINED, {"f": facilitator["id"], "on": str(today - timedelta(days=30))})
    await admin.mutate("recordBackgroundCheck", CHECKED, {"f": facilitator["id"], "on": str(today - timedelta(days=10)),
                                                          "until": str(today + timedelta(days=1000))})  # fmt: skip
    await admin.mutate("assignFacilitator", ASSIGN, {"g": group["id"], "f": facilitator["id"]})
    [listed] = (await admin.query(COMPLIANCE))["facilitators"]["nodes"]
    assert listed["complianceState"] == "COMPLIANT"
    assert sorted(check["kind"] for check in listed["checks"]) == ["BACKGROUND_CHECK", "TRAINING"]

    # The participants' spreadsheet, imported by the operator (run beside the live service).
    sheet = onboarded.folder / "participants.csv"
    sheet.write_text("reference,region,preferred_name,contact_email\n"
                     "RV-001,north,Ann,ann@example.org\nRV-002,north,Bo,\nRV-003,north,Cy,\n")  # fmt: skip
    report = json.loads(await asyncio.to_thread(cli, "import", "riverside", str(sheet), "--kind", "participants",
                                                "--json"))  # fmt: skip
    assert (report["created"], report["errors"]) == (3, [])
    people = (await admin.query(PARTICIPANTS))["participants"]
    assert people["totalCount"] == 3
    ids = {node["reference"]: node["id"] for node in people["nodes"]}

    # Enrol, hold a one-off session, record its register.
    for participant in ids.values():
        enrolled = await admin.mutate("enrolParticipant", ENROL, {"p": participant, "g": group["id"]})
        assert enrolled["enrolment"]["status"] == "ACTIVE"
    now = datetime.now(UTC).replace(microsecond=0)
    meeting = (await admin.mutate("createSession", ONE_OFF, {
        "g": group["id"], "s": (now - timedelta(hours=2)).isoformat(), "e": (now - timedelta(hours=1)).isoformat(),
    }))["session"]  # fmt: skip
    entries = [{"participantId": ids["RV-001"], "status": "PRESENT"},
               {"participantId": ids["RV-002"], "status": "PRESENT"},
               {"participantId": ids["RV-003"], "status": "EXCUSED"}]  # fmt: skip
    await admin.mutate("recordAttendance", REGISTER, {"s": meeting["id"], "v": meeting["version"], "entries": entries})
    upcoming = generated["sessions"][-1]
    refused = (await admin.query(REGISTER, {"s": upcoming["id"], "v": 1, "entries": entries}))["recordAttendance"]
    assert [error["code"] for error in refused["userErrors"]] == ["NOT_STARTED"]
    register = await http.get(f"/exports/registers/{meeting['id']}.csv",
                              headers={"Authorization": f"Bearer {admin.token}"})  # fmt: skip
    assert register.status_code == 200, register.text
    lines = list(csv.reader(io.StringIO(register.text)))
    assert lines == [["reference", "preferred_name", "enrolment_status", "attendance"],
                     ["RV-001", "Ann", "active", "present"], ["RV-002", "Bo", "active", "present"],
                     ["RV-003", "Cy", "active", "excused"]]  # fmt: skip

    # A consent and a survey.
    consent = (await admin.query(CONSENT, {"p": ids["RV-001"]}))["recordConsent"]
    assert consent["userErrors"] == []
    assert consent["consent"]["purpose"] == "EVALUATION"
    instruments = {node["code"]: node["id"] for node in (await admin.query(INSTRUMENTS))["surveyInstruments"]["nodes"]}
    answers = [{"item": f"item{number}", "value": 4} for number in range(1, 8)]
    for reference in ("RV-001", "RV-002"):  # RV-002 has not consented to evaluation
        submitted = (await admin.query(SURVEY, {"p": ids[reference], "g": group["id"], "i": instruments["swemwbs"],
                                                "answers": answers}))["submitSurveyResponse"]  # fmt: skip
        assert submitted["userErrors"] == []
        assert submitted["response"]["score"] is not None

    # An evaluation project and its evaluator client; the evaluator's own view.
    project = (await admin.mutate("createEvaluationProject", PROJECT,
                                  {"starts": str(today - timedelta(days=30)),
                                   "ends": str(today + timedelta(days=365))}))["evaluationProject"]  # fmt: skip
    evaluator = await admin.mutate("createOAuthClient", EVALUATOR, {"project": project["id"]})
    assert evaluator["oauthClient"]["scopes"] == ["evaluation:read"]
    assert evaluator["clientSecret"]
    reader = Api(http, await client_token(http, evaluator["oauthClient"]["clientId"], evaluator["clientSecret"]))
    view = (await reader.query(EVALUATION))["evaluation"]
    assert (view["slug"], view["instrumentCodes"]) == ("riverside-eval", ["swemwbs"])
    (row,) = [edge["node"] for edge in view["responses"]["edges"]]  # only the consented participant's response
    assert (row["region"], row["groupTopic"], row["timepoint"], row["instrumentCode"]) == (
        "North", "LONELINESS", "BASELINE", "swemwbs")  # fmt: skip
    assert row["pseudonym"] not in {"RV-001", ids["RV-001"]}
    refused_admin = await http.post("/graphql", json={"query": EVALUATION},
                                    headers={"Authorization": f"Bearer {admin.token}"})  # fmt: skip
    assert refused_admin.json()["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"

    people_and_clients = await admin.query("{ users { nodes { email role } } oauthClients { nodes { name } } }")
    assert people_and_clients["users"]["nodes"] == [{"email": "admin@riverside.example", "role": "ORG_ADMIN"}]
    assert sorted(node["name"] for node in people_and_clients["oauthClients"]["nodes"]) == [
        "Onboarding script", "University evaluator"]  # fmt: skip
