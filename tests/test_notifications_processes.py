"""Change notifications between real processes, on a committed database (SQLite and PostgreSQL): outbox
workers started as ``programme-api worker`` (killed mid-delivery, several at once), and live GraphQL
subscriptions over graphql-transport-ws against a served app, with the ``gql`` websockets client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
import uvicorn
import websockets
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.db import create_engine, session_factory
from programme_api.domain import sessions, webhooks
from programme_api.domain.models import (
    DeliveryStatus,
    GroupSession,
    SessionStatus,
    WebhookDelivery,
    WebhookSubscription,
)
from programme_api.domain.principal import Principal

from .api import TokenBook, without_extensions
from .conftest import BACKENDS, drop_postgres_database, empty_database_url, migrate
from .factories import gid, make_group, make_organisation, make_region, make_session, principal_for
from .notification_support import Receiver, running
from .oauth_support import make_client


@dataclass
class LiveDatabase:
    backend: str
    url: str
    engine: AsyncEngine
    log: Path

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.url,
            "webhook_allowed_networks": ["127.0.0.0/8"],
            "webhook_backoff_seconds": 0.05,
            "worker_poll_seconds": 0.05,
        }
        return Settings(**(values | overrides))


@pytest.fixture(params=BACKENDS)
async def live(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LiveDatabase]:
    url = await empty_database_url(request.param, tmp_path, "notify")
    engine = create_engine(Settings(database_url=url))
    await migrate(engine)
    yield LiveDatabase(request.param, url, engine, tmp_path / "worker.log")
    await engine.dispose()
    if request.param == "postgresql":
        await drop_postgres_database(make_url(url).database or "")


async def committed(live: LiveDatabase, work: Any) -> Any:
    async with session_factory(live.engine)() as db:
        result = await work(db)
        await db.commit()
        return result


async def scene(live: LiveDatabase, sessions_per_region: int = 1) -> dict[str, Any]:
    async def build(db: AsyncSession) -> dict[str, Any]:
        organisation = await make_organisation(db)
        north, south = await make_region(db, organisation), await make_region(db, organisation)
        north_group, south_group = await make_group(db, north), await make_group(db, south)
        return {
            "organisation": organisation,
            "north": north,
            "south": south,
            "north_sessions": [
                await make_session(db, north_group, status=SessionStatus.SCHEDULED) for _ in range(sessions_per_region)
            ],
            "south_sessions": [
                await make_session(db, south_group, status=SessionStatus.SCHEDULED) for _ in range(sessions_per_region)
            ],
            "admin": principal_for(organisation),
        }

    return await committed(live, build)  # type: ignore[no-any-return]


async def cancel(live: LiveDatabase, admin: Principal, row: GroupSession) -> None:
    async def work(db: AsyncSession) -> None:
        await sessions.cancel_session(db, admin, row.id, 1, "Venue closed")

    await committed(live, work)


async def subscribed(live: LiveDatabase, s: dict[str, Any], url: str) -> str:
    async def work(db: AsyncSession) -> str:
        client = await make_client(db, s["organisation"], "programme:read")
        data = webhooks.NewWebhook(client_id=client.client_id, url=url, event_types=["session.cancelled"])
        return (await webhooks.create_subscription(db, s["admin"], data)).secret

    return await committed(live, work)  # type: ignore[no-any-return]


def start_worker(live: LiveDatabase, **settings: str) -> subprocess.Popen[bytes]:
    env = (
        os.environ
        | {
            "PROGRAMME_API_DATABASE_URL": live.url,
            "PROGRAMME_API_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
            "PROGRAMME_API_WORKER_POLL_SECONDS": "0.05",
            "PROGRAMME_API_WEBHOOK_BACKOFF_SECONDS": "0.05",
        }
        | {f"PROGRAMME_API_{key.upper()}": value for key, value in settings.items()}
    )
    command = [sys.executable, "-c", "from programme_api.cli import main; main()", "worker"]
    log = live.log.open("ab")  # the worker's stderr, to read when a test fails
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)


@contextlib.contextmanager
def workers(live: LiveDatabase, count: int, **settings: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    started = [start_worker(live, **settings) for _ in range(count)]
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def wait_for(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition() if asyncio.iscoroutinefunction(condition) else condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def delivery_statuses(live: LiveDatabase) -> list[DeliveryStatus]:
    async with live.engine.connect() as connection:
        return list((await connection.scalars(sa.select(WebhookDelivery.status))).all())


# --- workers ---------------------------------------------------------------------------------------------


async def test_a_worker_killed_mid_delivery_loses_nothing_and_the_receiver_deduplicates(live: LiveDatabase) -> None:
    s = await scene(live)
    with running(Receiver(delay_seconds=2.0)) as receiver:
        receiver.secret = await subscribed(live, s, receiver.url)
        await cancel(live, s["admin"], s["north_sessions"][0])
        with workers(live, 1, webhook_lease_seconds="1.5") as [first]:
            await wait_for(lambda: len(receiver.requests) >= 1, 90)
            first.kill()  # mid-delivery: the receiver has the request, the worker never hears the answer
            first.wait()
        receiver.delay_seconds = 0
        assert await delivery_statuses(live) == [DeliveryStatus.PENDING]
        with workers(live, 1, webhook_lease_seconds="1.5"):

            async def delivered() -> bool:
                return await delivery_statuses(live) == [DeliveryStatus.DELIVERED]

            await wait_for(delivered, 90)
    assert len(receiver.requests) == 2  # at least once: the interrupted attempt was made again
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1
    assert len(receiver.verified) == 1
    assert receiver.bad_signatures == 0


async def test_several_workers_deliver_each_event_exactly_once(live: LiveDatabase) -> None:
    s = await scene(live, sessions_per_region=8)
    with running(Receiver()) as receiver:
        receiver.secret = await subscribed(live, s, receiver.url)
        for row in s["north_sessions"] + s["south_sessions"]:
            await cancel(live, s["admin"], row)
        with workers(live, 3):

            async def all_delivered() -> bool:
                statuses = await delivery_statuses(live)
                return len(statuses) == 16 and set(statuses) == {DeliveryStatus.DELIVERED}

            await wait_for(all_delivered, 120)
    ids = [r["headers"]["webhook-id"] for r in receiver.requests]
    assert len(ids) == 16
    assert len(set(ids)) == 16
    assert {payload["data"]["sessionId"] for payload in receiver.verified.values()} == {
        gid(row) for row in s["north_sessions"] + s["south_sessions"]
    }


# --- live subscriptions ----------------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    tokens: TokenBook


#: Longer than the server's own bounded shutdown (the in-process worker's webhook timeout + 5 s).
SHUTDOWN_SECONDS = Settings.model_fields["webhook_timeout_seconds"].default + 20


@pytest.fixture
async def served(live: LiveDatabase) -> AsyncIterator[Served]:
    """The app served on a real port, running the outbox worker in-process (one process)."""
    tokens = TokenBook()
    app = create_app(live.settings(worker_in_serve=True), authenticate=tokens.authenticate)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, 30)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Served(f"127.0.0.1:{port}", tokens)
    server.should_exit = True
    # Shutdown lets the in-process worker finish its round (bounded by the webhook timeout + 5 s): allow that
    # on a loaded machine rather than failing a test whose point is elsewhere.
    await asyncio.wait_for(task, SHUTDOWN_SECONDS)


CHANGES = gql("subscription { changes { id type sessionId groupId status } }")
CANCEL = """mutation($input: CancelSessionInput!) { cancelSession(input: $input) { userErrors { code } } }"""


def transport(served: Served, token: str) -> WebsocketsTransport:
    return WebsocketsTransport(
        url=f"ws://{served.url}/graphql",
        init_payload={"Authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        connect_timeout=5,
    )


async def cancel_over_http(served: Served, admin: Principal, row: GroupSession) -> float:
    token = served.tokens.issue(admin)
    async with httpx.AsyncClient(base_url=f"http://{served.url}") as http:
        response = await http.post(
            "/graphql",
            json={"query": CANCEL, "variables": {"input": {"sessionId": gid(row), "version": 1, "reason": "Snow"}}},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert without_extensions(response.json()) == {"data": {"cancelSession": {"userErrors": []}}}
    return time.monotonic()


class Heard:
    """What a subscription receives, collected by a task of its own, so that waiting for the next event with a
    timeout does not cancel the subscription itself."""

    def __init__(self, session: Any, document: Any = None) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.task = asyncio.create_task(self._collect(session.subscribe(document or CHANGES)))

    async def _collect(self, stream: Any) -> None:
        try:
            async for item in stream:
                await self.queue.put(item)
        except Exception as error:
            await self.queue.put(error)

    async def next(self, seconds: float) -> dict[str, Any]:
        item = await asyncio.wait_for(self.queue.get(), seconds)
        if isinstance(item, Exception):
            raise item
        return item  # type: ignore[no-any-return]


async def test_a_subscriber_hears_a_change_within_a_second_of_the_mutation(live: LiveDatabase, served: Served) -> None:
    s = await scene(live)
    token = served.tokens.issue(s["admin"])
    async with Client(transport=transport(served, token)) as session:
        heard = Heard(session)
        await asyncio.sleep(0.5)  # the subscription is registered
        sent = await cancel_over_http(served, s["admin"], s["north_sessions"][0])
        event = await heard.next(5)
        elapsed = time.monotonic() - sent
    assert event["changes"]["type"] == "session.cancelled"
    assert event["changes"]["sessionId"] == gid(s["north_sessions"][0])
    assert event["changes"]["status"] == "cancelled"
    assert elapsed < 1.0, f"heard {elapsed:.2f} s after the mutation"


async def test_a_region_bound_subscriber_hears_nothing_of_another_region_nor_after_losing_its_region(
    live: LiveDatabase, served: Served
) -> None:
    s = await scene(live, sessions_per_region=2)
    north_coordinator = principal_for(s["organisation"], scopes={"programme:read"}, regions=[s["north"]], role=None)
    token = served.tokens.issue(north_coordinator)
    async with Client(transport=transport(served, token)) as session:
        heard = Heard(session)
        await asyncio.sleep(0.5)
        await cancel_over_http(served, s["admin"], s["south_sessions"][0])
        await cancel_over_http(served, s["admin"], s["north_sessions"][0])
        first = await heard.next(5)
        assert first["changes"]["sessionId"] == gid(s["north_sessions"][0])  # the south one never came
        # The token's region is taken away: the next north event is not heard.
        served.tokens.principals[token] = principal_for(
            s["organisation"], scopes={"programme:read"}, regions=[s["south"]], role=None
        )
        await cancel_over_http(served, s["admin"], s["north_sessions"][1])
        with pytest.raises(TimeoutError):
            await heard.next(1.5)
        # Now a south event is in reach again.
        await cancel_over_http(served, s["admin"], s["south_sessions"][1])
        assert (await heard.next(5))["changes"]["sessionId"] == gid(s["south_sessions"][1])


async def closed_code(connection: Any, seconds: float) -> int:
    """Read until the server closes the connection; its close code."""

    async def until_closed() -> None:
        while True:
            await connection.recv()

    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(until_closed(), seconds)
    assert closed.value.rcvd is not None
    return int(closed.value.rcvd.code)


async def test_an_unknown_revoked_or_missing_token_is_closed_with_4403(live: LiveDatabase, served: Served) -> None:
    """At the protocol level (the raw graphql-transport-ws messages), to see the close codes."""
    s = await scene(live)
    url = f"ws://{served.url}/graphql"
    for payload in ({"Authorization": "Bearer not-a-token"}, {}):
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as connection:  # type: ignore[list-item]
            await connection.send(orjson.dumps({"type": "connection_init", "payload": payload}).decode())
            assert await closed_code(connection, 10) == 4403
    token = served.tokens.issue(s["admin"])
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as connection:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await connection.send(orjson.dumps(init).decode())
        assert orjson.loads(await connection.recv()) == {"type": "connection_ack"}
        subscribe = {"id": "1", "type": "subscribe", "payload": {"query": "subscription { changes { id } }"}}
        await connection.send(orjson.dumps(subscribe).decode())
        await asyncio.sleep(0.5)
        served.tokens.principals[token] = None  # type: ignore[assignment]  # revoked: the token is refused now
        await cancel_over_http(served, s["admin"], s["north_sessions"][0])
        assert await closed_code(connection, 10) == 4403


@pytest.mark.only_backend("postgresql")
async def test_events_from_a_separate_worker_reach_subscribers_of_another_process_by_notify(
    live: LiveDatabase,
) -> None:
    """PostgreSQL NOTIFY carries the event between processes (SQLite has no such channel: Redis below)."""
    await events_reach_subscribers_of_another_process(live, "database")


async def test_events_from_a_separate_worker_reach_subscribers_of_another_process_by_redis(
    live: LiveDatabase,
) -> None:
    await events_reach_subscribers_of_another_process(live, "redis")


async def events_reach_subscribers_of_another_process(live: LiveDatabase, channel: str) -> None:
    """The served app runs no worker: a ``programme-api worker`` process dispatches, and the event reaches the
    server's subscriber by PostgreSQL NOTIFY, or by Redis pub/sub when ``REDIS_URL`` is set."""
    redis_url = None
    if channel == "redis":
        from .test_oauth_workers import REDIS_URL, redis_available

        await redis_available()
        redis_url = REDIS_URL
    s = await scene(live)
    tokens = TokenBook()
    app = create_app(live.settings(worker_in_serve=False, redis_url=redis_url), authenticate=tokens.authenticate)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, 10)
        served = Served(f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", tokens)
        extra = {"redis_url": redis_url} if redis_url else {}
        with workers(live, 1, **extra):
            async with Client(transport=transport(served, tokens.issue(s["admin"]))) as session:
                heard = Heard(session)
                await asyncio.sleep(0.5)
                await cancel_over_http(served, s["admin"], s["north_sessions"][0])
                event = await heard.next(60)  # the worker process may still be starting
        assert event["changes"]["sessionId"] == gid(s["north_sessions"][0])
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def run_cli(live: LiveDatabase, *args: str, allowed: str = "[]") -> tuple[int, str, str]:
    env = os.environ | {"PROGRAMME_API_DATABASE_URL": live.url, "PROGRAMME_API_WEBHOOK_ALLOWED_NETWORKS": allowed}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from programme_api.cli import main; main()", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_cli_subscribes_a_client_and_refuses_a_private_address(live: LiveDatabase) -> None:
    s = await scene(live)

    async def client_id(db: AsyncSession) -> str:
        return (await make_client(db, s["organisation"], "programme:read")).client_id

    partner = await committed(live, client_id)
    create = ("webhooks", "create", "--client-id", partner, "--event-type", "session.cancelled", "--json")
    code, out, err = await run_cli(live, *create, "--url", "https://10.0.0.8/hooks")
    assert code == 1
    assert err.strip().startswith("error: url:")
    assert "Traceback" not in err
    code, out, err = await run_cli(live, *create, "--url", "http://127.0.0.1:9/hooks", allowed='["127.0.0.0/8"]')
    assert code == 0, err
    created = orjson.loads(out)
    assert created["secret"].startswith("whsec_")
    async with live.engine.connect() as connection:
        urls = (await connection.scalars(sa.select(WebhookSubscription.url))).all()
    assert urls == ["http://127.0.0.1:9/hooks"]
