"""The transactional outbox and webhooks, through HTTP and the worker's steps, on SQLite and PostgreSQL.

The worker's steps (dispatch, delivery) run here on the tests' shared connection, one at a time; running
several worker processes against a committed database is in ``test_notifications_processes.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.config import Settings, get_settings
from programme_api.domain.models import (
    DeliveryStatus,
    GroupSession,
    OAuthClient,
    Role,
    SessionStatus,
    WebhookDelivery,
    WebhookStatus,
    WebhookSubscription,
)
from programme_api.notifications import delivery, dispatch

from .api import GraphQLClient
from .conftest import MigratedDatabase
from .factories import (
    audit_events,
    gid,
    make_group,
    make_organisation,
    make_participant,
    make_region,
    make_session,
    principal_for,
)
from .notification_support import Receiver, outbox_events, running
from .oauth_support import make_client

CANCEL = """mutation($input: CancelSessionInput!) { cancelSession(input: $input) {
  session { id status } userErrors { field code } } }"""
ENROL = """mutation($input: EnrolParticipantInput!) { enrolParticipant(input: $input) {
  enrolment { id status version } userErrors { field code } } }"""
LEAVE = """mutation($input: LeaveGroupInput!) { leaveGroup(input: $input) {
  enrolment { id status } promoted { id } userErrors { field code } } }"""
CREATE = """mutation($input: CreateWebhookSubscriptionInput!) { createWebhookSubscription(input: $input) {
  subscription { id url eventTypes status version } secret userErrors { field message code } } }"""
ROTATE = """mutation($input: RotateWebhookSecretInput!) { rotateWebhookSecret(input: $input) {
  subscription { id version } secret userErrors { field code } } }"""
REDELIVER = """mutation($input: RedeliverWebhookInput!) { redeliverWebhook(input: $input) {
  delivery { id status attempts } userErrors { field code } } }"""
SUBSCRIPTIONS = """query { webhookSubscriptions { totalCount nodes { id url status eventTypes
  deliveries { nodes { id eventType status attempts lastResponseCode lastError deliveredAt } } } } }"""


@pytest.fixture
def loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The receivers in these tests listen on 127.0.0.1, which the SSRF defence refuses unless allowed."""
    monkeypatch.setenv("PROGRAMME_API_WEBHOOK_ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def worker_settings(migrated_database: MigratedDatabase, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"webhook_allowed_networks": ["127.0.0.0/8"], "webhook_backoff_seconds": 0.01}
    return migrated_database.settings.model_copy(update=values | overrides)


async def scene(db: AsyncSession) -> dict[str, Any]:
    organisation = await make_organisation(db)
    north, south = await make_region(db, organisation), await make_region(db, organisation)
    group = await make_group(db, north)
    other = await make_group(db, south)
    return {
        "organisation": organisation,
        "north": north,
        "south": south,
        "group": group,
        "other": other,
        "session": await make_session(db, group, status=SessionStatus.SCHEDULED),
        "other_session": await make_session(db, other, status=SessionStatus.SCHEDULED),
        "admin": principal_for(organisation),
    }


async def cancel(gql: GraphQLClient, session: GroupSession, admin: Any, version: int = 1) -> dict[str, Any]:
    variables = {"input": {"sessionId": gid(session), "version": version, "reason": "Venue flooded"}}
    data = await gql.data(CANCEL, variables, as_=admin)
    return data["cancelSession"]  # type: ignore[no-any-return]


async def subscribe(
    gql: GraphQLClient, s: dict[str, Any], client: OAuthClient, url: str, *types: str
) -> dict[str, Any]:
    variables = {
        "input": {"clientId": client.client_id, "url": url, "eventTypes": list(types or ["session.cancelled"])}
    }
    data = await gql.data(CREATE, variables, as_=s["admin"])
    return data["createWebhookSubscription"]  # type: ignore[no-any-return]


# --- the outbox ------------------------------------------------------------------------------------------


async def test_a_change_writes_its_event_in_the_same_transaction_with_ids_only(
    gql: GraphQLClient, db: AsyncSession
) -> None:
    s = await scene(db)
    assert (await cancel(gql, s["session"], s["admin"]))["userErrors"] == []
    events = await outbox_events(db)
    assert [(e.event_type, e.organisation_id, e.subject_id, e.group_id) for e in events] == [
        ("session.cancelled", s["organisation"].id, s["session"].id, s["group"].id)
    ]
    assert events[0].payload["ids"] == {"session": str(s["session"].id), "group": str(s["group"].id)}
    assert events[0].dispatched_at is None


async def test_a_refused_or_rolled_back_change_writes_no_event(gql: GraphQLClient, db: AsyncSession) -> None:
    s = await scene(db)
    stale = await cancel(gql, s["session"], s["admin"], version=7)
    assert stale["userErrors"] == [{"field": "input.version", "code": "CONFLICT"}]
    assert await outbox_events(db) == []


async def test_leaving_a_full_group_records_the_leave_and_the_promotion(gql: GraphQLClient, db: AsyncSession) -> None:
    s = await scene(db)
    group = await make_group(db, s["north"], capacity=1)
    first, second = await make_participant(db, s["north"]), await make_participant(db, s["north"])
    enrolments = []
    for participant in (first, second):
        variables = {"input": {"participantId": gid(participant), "groupId": gid(group)}}
        enrolments.append((await gql.data(ENROL, variables, as_=s["admin"]))["enrolParticipant"]["enrolment"])
    assert [e["status"] for e in enrolments] == ["ACTIVE", "WAITLISTED"]
    variables = {"input": {"enrolmentId": enrolments[0]["id"], "version": enrolments[0]["version"]}}
    assert (await gql.data(LEAVE, variables, as_=s["admin"]))["leaveGroup"]["userErrors"] == []
    events = await outbox_events(db)
    assert [(e.event_type, e.payload["fields"].get("status")) for e in events] == [
        ("participant.enrolled", "active"),
        ("participant.enrolled", "waitlisted"),
        ("participant.left", "left"),
        ("enrolment.promoted", "active"),
    ]
    assert {e.participant_id for e in events} == {first.id, second.id}


# --- subscribing -----------------------------------------------------------------------------------------


async def test_an_admin_subscribes_a_client_and_sees_the_secret_once(
    gql: GraphQLClient, db: AsyncSession, loopback_allowed: None
) -> None:
    s = await scene(db)
    client = await make_client(db, s["organisation"], "programme:read participants:read")
    created = await subscribe(gql, s, client, "https://127.0.0.1:9/hooks", "session.cancelled", "participant.left")
    assert created["userErrors"] == []
    assert created["secret"].startswith("whsec_")
    assert len(created["secret"]) > 40
    assert created["subscription"]["eventTypes"] == ["participant.left", "session.cancelled"]
    listed = (await gql.data(SUBSCRIPTIONS, as_=s["admin"]))["webhookSubscriptions"]
    assert [node["id"] for node in listed["nodes"]] == [created["subscription"]["id"]]
    assert created["secret"] not in str(listed)
    assert [e.action for e in await audit_events(db, "webhook_subscription.create")] == ["webhook_subscription.create"]
    rotated = (await gql.data(ROTATE, {"input": {"subscriptionId": created["subscription"]["id"], "version": 1}},
                              as_=s["admin"]))["rotateWebhookSecret"]  # fmt: skip
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != created["secret"]
    assert rotated["subscription"]["version"] == 2


@pytest.mark.parametrize(
    ("url", "types", "field"),
    [
        ("http://example.org/hooks", ["session.cancelled"], "input.url"),  # plain http beyond loopback
        ("https://10.1.2.3/hooks", ["session.cancelled"], "input.url"),  # private address
        ("https://169.254.169.254/latest", ["session.cancelled"], "input.url"),  # link-local (cloud metadata)
        ("https://127.0.0.1/hooks", ["session.cancelled"], "input.url"),  # loopback, not on the allow-list here
        ("https://user:pw@partner.example/hooks", ["session.cancelled"], "input.url"),
        ("https://93.184.216.34/hooks", ["no.such.event"], "input.eventTypes.0"),
        (
            "https://93.184.216.34/hooks",
            ["safeguarding_alert.raised"],
            "input.eventTypes.0",
        ),  # client lacks surveys:read
    ],
)
async def test_unsafe_urls_and_unfit_event_types_are_refused(
    gql: GraphQLClient, db: AsyncSession, url: str, types: list[str], field: str
) -> None:
    get_settings.cache_clear()
    s = await scene(db)
    client = await make_client(db, s["organisation"], "programme:read")
    refused = await subscribe(gql, s, client, url, *types)
    assert refused["subscription"] is None
    assert refused["secret"] is None
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(field, "INVALID")]
    assert (await db.execute(sa.select(sa.func.count()).select_from(WebhookSubscription))).scalar_one() == 0


async def test_only_admins_subscribe(gql: GraphQLClient, db: AsyncSession) -> None:
    s = await scene(db)
    client = await make_client(db, s["organisation"], "programme:read")
    coordinator = principal_for(s["organisation"], role=Role.COORDINATOR, regions=[s["north"]])
    variables = {
        "input": {"clientId": client.client_id, "url": "https://93.184.216.34/", "eventTypes": ["session.cancelled"]}
    }
    body = await gql.execute(CREATE, variables, as_=coordinator)
    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    assert (await db.execute(sa.select(sa.func.count()).select_from(WebhookSubscription))).scalar_one() == 0


# --- delivering ------------------------------------------------------------------------------------------


async def deliver_until(session_maker: Any, settings: Settings, done: Any, rounds: int = 60) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(rounds):
            await dispatch.dispatch_batch(session_maker, settings)
            await delivery.deliver_due(session_maker, http, settings)
            if await done():
                return
            await asyncio.sleep(0.03)
    raise AssertionError("not delivered in time")


async def deliveries(db: AsyncSession) -> list[WebhookDelivery]:
    statement = sa.select(WebhookDelivery).order_by(WebhookDelivery.created_at)
    return list((await db.scalars(statement.execution_options(populate_existing=True))).all())


async def test_deliveries_are_signed_per_standard_webhooks_and_retried_until_the_receiver_recovers(
    gql: GraphQLClient, db: AsyncSession, session_maker: Any, migrated_database: MigratedDatabase,
    loopback_allowed: None,
) -> None:  # fmt: skip
    s = await scene(db)
    client = await make_client(db, s["organisation"], "programme:read")
    with running(Receiver(fail_first=2)) as receiver:
        created = await subscribe(gql, s, client, receiver.url)
        receiver.secret = created["secret"]
        await cancel(gql, s["session"], s["admin"])
        settings = worker_settings(migrated_database)

        async def delivered() -> bool:
            return [d.status for d in await deliveries(db)] == [DeliveryStatus.DELIVERED]

        await deliver_until(session_maker, settings, delivered)
    assert len(receiver.requests) == 3
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1  # one message, retried
    assert receiver.bad_signatures == 0
    [payload] = receiver.verified.values()
    assert payload["type"] == "session.cancelled"
    assert payload["data"]["sessionId"] == gid(s["session"])
    assert payload["data"]["groupId"] == gid(s["group"])
    assert payload["data"]["status"] == "cancelled"
    assert set(payload["data"]) == {"eventId", "sessionId", "groupId", "status", "startsAt", "endsAt"}
    log = (await gql.data(SUBSCRIPTIONS, as_=s["admin"]))["webhookSubscriptions"]["nodes"][0]
    [entry] = log["deliveries"]["nodes"]
    assert (entry["status"], entry["attempts"], entry["lastResponseCode"]) == ("DELIVERED", 3, 204)
    assert log["status"] == "ACTIVE"


async def test_a_tampered_body_fails_verification(migrated_database: MigratedDatabase) -> None:
    """Guards the receiver's check itself: a signature over another body is rejected by the package."""
    from programme_api.domain.webhooks import new_secret

    secret = new_secret()
    headers = delivery.signed_headers(secret, "msg_1", b'{"a":1}', datetime.now(UTC))
    receiver = Receiver(secret=secret)
    assert receiver.handle(headers, b'{"a":1}') == 204
    assert receiver.handle(headers, b'{"a":2}') == 401


async def test_after_the_retry_window_the_delivery_fails_the_subscription_is_failing_and_can_be_redelivered(
    gql: GraphQLClient, db: AsyncSession, session_maker: Any, migrated_database: MigratedDatabase,
    loopback_allowed: None,
) -> None:  # fmt: skip
    s = await scene(db)
    client = await make_client(db, s["organisation"], "programme:read")
    with running(Receiver(fail_first=1)) as receiver:
        created = await subscribe(gql, s, client, receiver.url)
        receiver.secret = created["secret"]
        await cancel(gql, s["session"], s["admin"])
        give_up_at_once = worker_settings(migrated_database, webhook_retry_seconds=0.001)

        async def failed() -> bool:
            return [d.status for d in await deliveries(db)] == [DeliveryStatus.FAILED]

        await deliver_until(session_maker, give_up_at_once, failed)
        subscription = (
            await db.scalars(sa.select(WebhookSubscription).execution_options(populate_existing=True))
        ).one()
        assert subscription.status is WebhookStatus.FAILING
        assert subscription.failing_since is not None
        [row] = await deliveries(db)
        again = await gql.data(REDELIVER, {"input": {"deliveryId": gid_of_delivery(row)}}, as_=s["admin"])
        assert again["redeliverWebhook"]["delivery"]["status"] == "PENDING"

        async def delivered() -> bool:
            return [d.status for d in await deliveries(db)] == [DeliveryStatus.DELIVERED]

        await deliver_until(session_maker, worker_settings(migrated_database), delivered)
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1
    subscription = (await db.scalars(sa.select(WebhookSubscription).execution_options(populate_existing=True))).one()
    assert subscription.status is WebhookStatus.ACTIVE


def gid_of_delivery(row: WebhookDelivery) -> str:
    from programme_api.schema.relay import to_global_id

    return str(to_global_id("WebhookDelivery", row.id))


async def test_a_region_bound_client_is_not_sent_another_regions_events(
    gql: GraphQLClient, db: AsyncSession, session_maker: Any, migrated_database: MigratedDatabase,
    loopback_allowed: None,
) -> None:  # fmt: skip
    s = await scene(db)
    north_only = await make_client(db, s["organisation"], "programme:read", region_slugs=[s["north"].slug])
    with running(Receiver()) as receiver:
        created = await subscribe(gql, s, north_only, receiver.url)
        receiver.secret = created["secret"]
        await cancel(gql, s["other_session"], s["admin"])  # south
        await cancel(gql, s["session"], s["admin"])  # north

        async def one_delivered() -> bool:
            return [d.status for d in await deliveries(db)] == [DeliveryStatus.DELIVERED]

        await deliver_until(session_maker, worker_settings(migrated_database), one_delivered)
    [payload] = receiver.verified.values()
    assert payload["data"]["sessionId"] == gid(s["session"])
    assert all(e.dispatched_at is not None for e in await outbox_events(db))


async def test_delivery_refuses_an_address_not_allowed_at_the_time_of_sending(
    gql: GraphQLClient, db: AsyncSession, session_maker: Any, migrated_database: MigratedDatabase,
    loopback_allowed: None,
) -> None:  # fmt: skip
    s = await scene(db)
    client = await make_client(db, s["organisation"], "programme:read")
    with running(Receiver()) as receiver:
        await subscribe(gql, s, client, receiver.url)
        await cancel(gql, s["session"], s["admin"])
        nothing_allowed = worker_settings(migrated_database, webhook_allowed_networks=[])
        async with httpx.AsyncClient() as http:
            await dispatch.dispatch_batch(session_maker, nothing_allowed)
            assert await delivery.deliver_due(session_maker, http, nothing_allowed) == 1
    assert receiver.requests == []
    [row] = await deliveries(db)
    assert row.status is DeliveryStatus.PENDING
    assert row.attempts == 1
    assert "not a public address" in (row.last_error or "")
