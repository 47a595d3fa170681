"""Every mutation follows one convention, checked mutation by mutation through HTTP.

The cases are keyed by the schema's own Mutation fields, so a new mutation without a case fails here. For each:
it takes ``input`` with an optional ``idempotencyKey``; its payload lists refusals typed by ``UserErrorCode``;
it succeeds once with a key, writing rows and an audit event; and the same call resent with the same key answers
exactly the first result and writes nothing more.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, get_named_type
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.config import get_settings
from programme_api.domain.instruments import shipped_instrument
from programme_api.domain.models import (
    DeliveryStatus,
    Enrolment,
    EvaluationProject,
    EvaluationProjectInvitation,
    EvaluationProjectOrganisation,
    Facilitator,
    Group,
    GroupSession,
    InvitationStatus,
    OAuthClient,
    Organisation,
    OutboxEvent,
    Participant,
    Region,
    Role,
    SafeguardingAlert,
    SessionStatus,
    User,
    WebhookDelivery,
    WebhookSubscription,
)
from programme_api.domain.principal import Principal
from programme_api.schema import schema

from .api import GraphQLClient
from .factories import (
    add,
    assign,
    enrol,
    gid,
    make_consent,
    make_facilitator,
    make_group,
    make_organisation,
    make_participant,
    make_project,
    make_region,
    make_response,
    make_session,
    principal_for,
    unique,
    weekly_schedule,
)
from .oauth_support import client_row, make_client

MUTATION_TYPE = schema._schema.mutation_type
assert MUTATION_TYPE is not None

# Tables a mutation may write to; a replay must leave every count as the first call left it.
COUNTED = (
    "regions", "groups", "group_sessions", "facilitators", "facilitator_assignments", "facilitator_checks",
    "participants", "enrolments", "attendance", "consents", "survey_responses", "safeguarding_alerts",
    "survey_instruments", "idempotency_records", "users", "oauth_clients", "evaluation_projects",
    "webhook_subscriptions", "webhook_deliveries", "outbox_events", "evaluation_project_invitations",
    "evaluation_project_organisations",
)  # fmt: skip


@dataclass
class World:
    organisation: Organisation
    region: Region
    group: Group
    past_session: GroupSession
    future_session: GroupSession
    member: Participant
    enrolment: Enrolment
    outsider: Participant
    assigned: Facilitator
    spare: Facilitator
    alert: SafeguardingAlert
    admin: Principal
    person: User
    former: User
    client: OAuthClient
    retired_client: OAuthClient
    project: EvaluationProject
    subscription: WebhookSubscription
    delivery: WebhookDelivery
    offered: EvaluationProject
    joined: EvaluationProject


async def invited_to(db: AsyncSession, organisation: Organisation, accepted: bool) -> EvaluationProject:
    """Another organisation's project the organisation is invited to (and, if ``accepted``, takes part in)."""
    host = await make_organisation(db)
    project = await make_project(db, host)
    status = InvitationStatus.ACCEPTED if accepted else InvitationStatus.PENDING
    await add(db, EvaluationProjectInvitation(organisation_id=organisation.id, owner_organisation_id=host.id,
                                              evaluation_project_id=project.id, status=status))  # fmt: skip
    if accepted:
        await add(db, EvaluationProjectOrganisation(organisation_id=organisation.id, evaluation_project_id=project.id))
    return project


async def build_world(db: AsyncSession) -> World:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region, **weekly_schedule())
    now = datetime.now(UTC).replace(microsecond=0)
    past = await make_session(db, group, starts_at=now - timedelta(days=2), status=SessionStatus.SCHEDULED)
    future = await make_session(db, group, starts_at=now + timedelta(days=9), status=SessionStatus.SCHEDULED)
    member = await make_participant(db, region)
    enrolment = await enrol(db, member, group)
    outsider = await make_participant(db, region)
    assigned = await make_facilitator(db, organisation)
    await assign(db, group, assigned)
    spare = await make_facilitator(db, organisation)
    await make_consent(db, member)
    response = await make_response(db, member, group)
    alert = SafeguardingAlert(
        organisation_id=organisation.id, response_id=response.id, participant_id=member.id, group_id=group.id,
        reason="PHQ-9: risk answer on item9",
    )  # fmt: skip
    db.add(alert)
    await db.flush()
    person = await add(db, User(organisation_id=organisation.id, email=f"{unique('person')}@example.org",
                                display_name="Pat Coordinator", password_hash="-", role=Role.COORDINATOR))  # fmt: skip
    former = await add(db, User(organisation_id=organisation.id, email=f"{unique('person')}@example.org",
                                display_name="Former Coordinator", password_hash="-", role=Role.COORDINATOR,
                                is_active=False))  # fmt: skip
    client = await client_row(db, await make_client(db, organisation, "programme:read programme:write"))
    retired_client = await client_row(db, await make_client(db, organisation, "programme:read"))
    retired_client.revoked_at = now
    project = await make_project(db, organisation)
    subscription = await add(db, WebhookSubscription(
        organisation_id=organisation.id, client_pk=client.id, url="https://partner.example/hooks",
        event_types=["session.cancelled"], secret="whsec_" + "A" * 32,
    ))  # fmt: skip
    event = await add(db, OutboxEvent(organisation_id=organisation.id, event_type="session.cancelled",
                                      subject_id=future.id, group_id=group.id, payload={"ids": {}, "fields": {}}))  # fmt: skip
    delivery = await add(db, WebhookDelivery(
        organisation_id=organisation.id, subscription_id=subscription.id, event_id=event.id,
        event_type="session.cancelled", status=DeliveryStatus.FAILED, next_attempt_at=now,
    ))  # fmt: skip
    return World(
        organisation, region, group, past, future, member, enrolment, outsider, assigned, spare, alert,
        principal_for(organisation), person, former, client, retired_client, project, subscription, delivery,
        await invited_to(db, organisation, accepted=False), await invited_to(db, organisation, accepted=True),
    )  # fmt: skip


Case = Callable[[World], dict[str, Any]]


def _answers(code: str, value: int) -> list[dict[str, Any]]:
    return [{"item": item["key"], "value": value} for item in shipped_instrument(code).definition["items"]]


def _instrument_gid(code: str) -> Callable[[AsyncSession], Awaitable[str]]:
    async def find(db: AsyncSession) -> str:
        from programme_api.schema.relay import to_global_id

        from .factories import shipped_instrument_ids

        return str(to_global_id("SurveyInstrument", (await shipped_instrument_ids(db))[code]))

    return find


# One successful input per mutation (without the key), built from the world.
CASES: dict[str, Case] = {
    "createRegion": lambda w: {"slug": unique("region"), "name": "North"},
    "updateRegion": lambda w: {"regionId": gid(w.region), "version": w.region.version, "name": "Renamed"},
    "createGroup": lambda w: {"regionId": gid(w.region), "name": "New group", "topic": "ANXIETY",
                              "deliveryMode": "ONLINE"},
    "updateGroup": lambda w: {"groupId": gid(w.group), "version": w.group.version, "name": "Renamed group"},
    "setGroupSchedule": lambda w: {"groupId": gid(w.group), "version": w.group.version, "frequency": "WEEKLY",
                                   "weekday": 3, "startTime": "18:30:00", "durationMinutes": 60,
                                   "anchorDate": "2026-01-01"},
    "scheduleSessions": lambda w: {"groupId": gid(w.group), "from": str(date.today() + timedelta(days=20)),
                                   "to": str(date.today() + timedelta(days=48))},
    "cancelSession": lambda w: {"sessionId": gid(w.future_session), "version": w.future_session.version,
                                "reason": "Venue closed"},
    "rescheduleSession": lambda w: {"sessionId": gid(w.future_session), "version": w.future_session.version,
                                    "startsAt": (w.future_session.starts_at + timedelta(days=1)).isoformat(),
                                    "endsAt": (w.future_session.ends_at + timedelta(days=1)).isoformat(),
                                    "reason": "Venue busy"},
    "assignFacilitator": lambda w: {"groupId": gid(w.group), "facilitatorId": gid(w.spare), "role": "CO_FACILITATOR"},
    "unassignFacilitator": lambda w: {"groupId": gid(w.group), "facilitatorId": gid(w.assigned)},
    "registerParticipant": lambda w: {"reference": unique("ref"), "regionId": gid(w.region)},
    "enrolParticipant": lambda w: {"participantId": gid(w.outsider), "groupId": gid(w.group)},
    "leaveGroup": lambda w: {"enrolmentId": gid(w.enrolment), "version": w.enrolment.version},
    "recordAttendance": lambda w: {"sessionId": gid(w.past_session), "version": w.past_session.version,
                                   "entries": [{"participantId": gid(w.member), "status": "PRESENT"}],
                                   "dropinCount": 2},
    "updateOrganisationSettings": lambda w: {"version": w.organisation.version, "suppressionThreshold": 7},
    "createFacilitator": lambda w: {"displayName": "Sam Taylor"},
    "updateFacilitator": lambda w: {"facilitatorId": gid(w.spare), "version": w.spare.version,
                                    "displayName": "Sam T."},
    "archiveFacilitator": lambda w: {"facilitatorId": gid(w.assigned), "version": w.assigned.version},
    "recordTraining": lambda w: {"facilitatorId": gid(w.spare), "completedOn": str(date.today())},
    "recordBackgroundCheck": lambda w: {"facilitatorId": gid(w.spare), "completedOn": str(date.today()),
                                        "expiresOn": str(date.today() + timedelta(days=1095)), "reference": "DBS-1"},
    "recordConsent": lambda w: {"participantId": gid(w.member), "purpose": "CONTACT", "formVersion": "contact-v2"},
    "withdrawConsent": lambda w: {"participantId": gid(w.member), "purpose": "EVALUATION"},
    "submitSurveyResponse": lambda w: {"participantId": gid(w.member), "groupId": gid(w.group),
                                       "instrumentId": "<gad7>", "timepoint": "EXIT", "answers": _answers("gad7", 1)},
    "acknowledgeSafeguardingAlert": lambda w: {"alertId": gid(w.alert), "note": "Called the participant."},
    "defineCustomInstrument": lambda w: {"code": "belonging", "name": "Belonging",
                                         "definition": shipped_instrument("ucla3").definition},
    "eraseParticipant": lambda w: {"participantId": gid(w.member)},
    "updateParticipant": lambda w: {"participantId": gid(w.member), "version": w.member.version,
                                    "preferredName": "Jo"},
    "createSession": lambda w: {"groupId": gid(w.group),
                                "startsAt": (w.future_session.starts_at + timedelta(days=3)).isoformat(),
                                "endsAt": (w.future_session.ends_at + timedelta(days=3)).isoformat()},
    "completeSession": lambda w: {"sessionId": gid(w.past_session), "version": w.past_session.version},
    "setSessionFacilitators": lambda w: {"sessionId": gid(w.past_session), "version": w.past_session.version,
                                         "facilitatorIds": [gid(w.assigned)]},
    "createUser": lambda w: {"email": f"{unique('new')}@example.org", "role": "COORDINATOR",
                             "displayName": "Robin Coordinator", "regionIds": [gid(w.region)]},
    "disableUser": lambda w: {"userId": gid(w.person), "version": w.person.version},
    "enableUser": lambda w: {"userId": gid(w.former), "version": w.former.version},
    "resetUserPassword": lambda w: {"userId": gid(w.person), "version": w.person.version},
    "setUserRegions": lambda w: {"userId": gid(w.person), "version": w.person.version, "regionIds": [gid(w.region)]},
    "setUserRole": lambda w: {"userId": gid(w.person), "version": w.person.version, "role": "FACILITATOR"},
    "createOAuthClient": lambda w: {"name": "Booking app", "scopes": ["programme:read"]},
    "disableOAuthClient": lambda w: {"oauthClientId": gid(w.client), "version": w.client.version},
    "enableOAuthClient": lambda w: {"oauthClientId": gid(w.retired_client), "version": w.retired_client.version},
    "rotateOAuthClientSecret": lambda w: {"oauthClientId": gid(w.client), "version": w.client.version},
    "setOAuthClientRegions": lambda w: {"oauthClientId": gid(w.client), "version": w.client.version,
                                        "regionIds": [gid(w.region)]},
    "setOAuthClientScopes": lambda w: {"oauthClientId": gid(w.client), "version": w.client.version,
                                       "scopes": ["programme:read"]},
    "createEvaluationProject": lambda w: {"slug": unique("study"), "name": "Wellbeing study",
                                          "instrumentCodes": ["phq9"], "startsOn": "2026-01-01",
                                          "endsOn": "2026-12-31"},
    "updateEvaluationProject": lambda w: {"projectId": gid(w.project), "version": w.project.version,
                                          "name": "Renamed study"},
    "closeEvaluationProject": lambda w: {"projectId": gid(w.project), "version": w.project.version},
    "joinEvaluationProject": lambda w: {"projectId": gid(w.offered)},
    "leaveEvaluationProject": lambda w: {"projectId": gid(w.joined)},
    "createWebhookSubscription": lambda w: {"clientId": w.client.client_id, "url": "http://127.0.0.1:9/hooks",
                                            "eventTypes": ["session.cancelled"]},
    "rotateWebhookSecret": lambda w: {"subscriptionId": gid(w.subscription), "version": w.subscription.version},
    "redeliverWebhook": lambda w: {"deliveryId": gid(w.delivery)},
}  # fmt: skip


# Secrets a mutation generates are in its first answer only; a replay answers the rest of it and null there.
SHOWN_ONCE = ("clientSecret", "password")


def test_every_mutation_in_the_schema_has_a_case() -> None:
    assert sorted(MUTATION_TYPE.fields) == sorted(CASES)


def _errors_field(payload: GraphQLObjectType) -> str:
    """The payload's list of refusals typed by ``UserErrorCode`` (``userErrors``, or ``errors`` on payloads
    published before the enum, whose ``userErrors`` keeps a string code)."""
    typed = [
        name
        for name, field in payload.fields.items()
        if get_named_type(field.type).name == "UserError" and isinstance(field.type, GraphQLNonNull)
        and isinstance(field.type.of_type, GraphQLList)
    ]  # fmt: skip
    assert len(typed) == 1, (payload.name, typed)
    return typed[0]


def _selection(payload: GraphQLObjectType) -> str:
    """Every field of the payload: scalars as they are, objects by their id (or type name)."""
    parts = []
    for name, field in payload.fields.items():
        named = get_named_type(field.type)
        if isinstance(named, GraphQLObjectType):
            inner = "field message code" if named.name.endswith("UserError") else (
                "id" if "id" in named.fields else "__typename"
            )  # fmt: skip
            parts.append(f"{name} {{ {inner} }}")
        else:
            parts.append(name)
    return " ".join(parts)


async def counts(db: AsyncSession) -> dict[str, int]:
    found = {table: int((await db.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one()) for table in COUNTED}
    writes = "SELECT count(*) FROM audit_events WHERE action NOT LIKE '%read%'"
    found["audit_events (writes)"] = int((await db.execute(sa.text(writes))).scalar_one())
    return found


@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_replayed_key_answers_the_first_result_and_writes_nothing(
    name: str, db: AsyncSession, gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROGRAMME_API_WEBHOOK_ALLOWED_NETWORKS", '["127.0.0.0/8"]')  # the hook's loopback URL
    get_settings.cache_clear()
    field = MUTATION_TYPE.fields[name]
    assert "input" in field.args, f"{name} takes no input"
    input_type = get_named_type(field.args["input"].type)
    assert "idempotencyKey" in input_type.fields, f"{name}'s input has no idempotencyKey"  # type: ignore[attr-defined]
    payload = get_named_type(field.type)
    assert isinstance(payload, GraphQLObjectType)
    errors = _errors_field(payload)

    world = await build_world(db)
    values = CASES[name](world)
    if values.get("instrumentId") == "<gad7>":
        values["instrumentId"] = await _instrument_gid("gad7")(db)
    values["idempotencyKey"] = f"phone-{uuid.uuid4()}"
    document = f"mutation($input: {input_type.name}!) {{ {name}(input: $input) {{ {_selection(payload)} }} }}"
    before = await counts(db)

    first = (await gql.data(document, {"input": values}, as_=world.admin))[name]
    assert first[errors] == [], first
    after_first = await counts(db)
    assert after_first["audit_events (writes)"] > before["audit_events (writes)"], "the write was not audited"
    assert after_first["idempotency_records"] == before["idempotency_records"] + 1

    again = (await gql.data(document, {"input": values}, as_=world.admin))[name]
    shown_once = {key for key in SHOWN_ONCE if first.get(key) is not None}
    assert {key: value for key, value in again.items() if key not in shown_once} == {
        key: value for key, value in first.items() if key not in shown_once
    }
    assert all(again[key] is None for key in shown_once), "a secret was shown a second time"
    assert await counts(db) == after_first

    changed = values | {"idempotencyKey": values["idempotencyKey"]}
    changed_input = _changed(values)
    if changed_input is not None:
        reused = (await gql.data(document, {"input": changed_input | {"idempotencyKey": changed["idempotencyKey"]}},
                                 as_=world.admin))[name]  # fmt: skip
        assert [error["code"] for error in reused[errors]] == ["IDEMPOTENCY_KEY_REUSED"]
        assert await counts(db) == after_first


def _changed(values: dict[str, Any]) -> dict[str, Any] | None:
    """Another input for the same mutation (a text field altered), to show a reused key is refused."""
    for key in ("name", "displayName", "reason", "note", "reference", "formVersion"):
        if isinstance(values.get(key), str):
            return values | {key: values[key] + " (again)"}
    return None


@pytest.mark.only_backend("postgresql")
async def test_a_fifteen_person_register_with_a_key_takes_at_most_eight_round_trips(
    db: AsyncSession, gql: GraphQLClient, connection: Any
) -> None:
    """Every statement the request sends, the unit of work's begin and end included (in tests they are the
    savepoint and its release, in the service BEGIN and COMMIT), as an application with a region-bound token
    sends it (the benchmark's request)."""
    import dataclasses

    from benchmarks.shared import RECORD_ATTENDANCE
    from programme_api.domain.models import ActorType

    world = await build_world(db)
    people = [world.member]
    for _ in range(14):
        person = await make_participant(db, world.region)
        await enrol(db, person, world.group)
        people.append(person)
    app = dataclasses.replace(
        principal_for(world.organisation, scopes={"programme:read", "attendance:write"}, role=None,
                      regions=[world.region]),
        actor_type=ActorType.CLIENT,
    )  # fmt: skip
    values = {"sessionId": gid(world.past_session), "version": world.past_session.version, "dropinCount": 1,
              "entries": [{"participantId": gid(p), "status": "PRESENT"} for p in people],
              "idempotencyKey": uuid.uuid4().hex}  # fmt: skip
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    sa.event.listen(connection.sync_connection, "before_cursor_execute", note)
    try:
        data = await gql.data(RECORD_ATTENDANCE, {"input": values}, as_=app)
    finally:
        sa.event.remove(connection.sync_connection, "before_cursor_execute", note)

    assert data["recordAttendance"]["userErrors"] == []
    assert data["recordAttendance"]["session"]["version"] == world.past_session.version + 1
    assert len(sent) <= 8, "\n".join(s[:120] for s in sent)
