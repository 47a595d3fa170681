"""Two real worker processes (``programme-api serve``) on one PostgreSQL database: a change made on one
worker, or by an operator, reaches the other's remembered token verdicts within a second.

Each worker is its own uvicorn process, so nothing is shared but the database (and Redis in the Redis
variant). Both have seen the token before the change, so each would answer from its cache if it missed the
notification. The worker that revokes refuses at once; the other is polled against a one-second deadline.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from programme_api.config import Settings
from programme_api.db import create_engine, session_factory
from programme_api.oauth import admin
from programme_api.oauth.clients import create_client
from programme_api.oauth.invalidation import publish_committed

from .api import free_port
from .conftest import REDIS_URL, create_postgres_database, drop_postgres_database, migrate, redis_available
from .factories import make_organisation, make_region

DEADLINE_SECONDS = 1.0
VIEWER = {"query": "{ viewer { subject regions { slug } } }"}


@dataclass
class Workers:
    a: httpx.AsyncClient
    b: httpx.AsyncClient
    engine: AsyncEngine
    redis_url: str | None
    organisation_slug: str

    async def change(self, work: Callable[[AsyncSession], Awaitable[Any]]) -> None:
        """An operator's change, committed (and published) the way ``run_in_session`` does it."""
        async with session_factory(self.engine)() as session:
            await work(session)
            await session.commit()
            await publish_committed(session, self.redis_url)

    async def client(self, regions: list[str]) -> tuple[str, str]:
        async with session_factory(self.engine)() as session:
            created = await create_client(
                session,
                organisation_slug=self.organisation_slug,
                name="Attendance app",
                scope="programme:read",
                region_slugs=regions,
                grants=[],
                redirect_uris=[],
                evaluation_project_slug=None,
                public=False,
            )
            await session.commit()
        assert created.client_secret is not None
        return created.client_id, created.client_secret


def start_server(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from programme_api.cli import main; main()", "serve", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def wait_until_ready(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        while True:
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start: {log.read_text()}")  # noqa: ASYNC240 (failing anyway)
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module", params=["postgres-notify", "redis"])
async def workers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Workers]:
    redis_url = REDIS_URL if request.param == "redis" else None
    if redis_url is not None:
        await redis_available()
    name = f"programme_api_workers_{os.getpid()}_{request.param.replace('-', '_')}"
    url = await create_postgres_database(name)
    engine = create_engine(Settings(database_url=url))
    await migrate(engine)
    async with session_factory(engine)() as session:
        organisation = await make_organisation(session)
        for slug in ("north", "south"):
            await make_region(session, organisation, slug=slug)
        await session.commit()

    directory = tmp_path_factory.mktemp("workers")
    ports = free_port(), free_port()
    env = {
        **os.environ,
        "PROGRAMME_API_DATABASE_URL": url,
        "PROGRAMME_API_SECRET_KEY_FILE": str(directory / "keys.json"),
        "PROGRAMME_API_ISSUER": f"http://127.0.0.1:{ports[0]}",
        "PROGRAMME_API_LOG_FORMAT": "console",
    }
    env.pop("PROGRAMME_API_REDIS_URL", None)
    if redis_url is not None:
        env["PROGRAMME_API_REDIS_URL"] = redis_url
    logs = [directory / f"worker-{index}.log" for index in range(2)]
    servers = [start_server(port, env, log) for port, log in zip(ports, logs, strict=True)]
    try:
        for port, server, log in zip(ports, servers, logs, strict=True):
            await wait_until_ready(f"http://127.0.0.1:{port}", server, log)
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}", timeout=10) as a,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[1]}", timeout=10) as b,
        ):
            yield Workers(a, b, engine, redis_url, organisation.slug)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        await engine.dispose()
        await drop_postgres_database(make_url(url).database or "")


async def issue(workers: Workers, client_id: str, secret: str) -> str:
    response = await workers.a.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def viewer(worker: httpx.AsyncClient, token: str) -> httpx.Response:
    return await worker.post("/graphql", json=VIEWER, headers={"Authorization": f"Bearer {token}"})


def regions_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [region["slug"] for region in response.json()["data"]["viewer"]["regions"]]


async def accepted_by_both(workers: Workers, token: str) -> None:
    for worker in (workers.a, workers.b, workers.a, workers.b):  # the second round is answered from memory
        assert (await viewer(worker, token)).status_code == 200


async def within_deadline(worker: httpx.AsyncClient, token: str, done: Callable[[httpx.Response], bool]) -> float:
    """Seconds until ``done`` holds for the worker's answer, failing once the deadline has passed."""
    started = time.monotonic()
    while True:
        response = await viewer(worker, token)
        elapsed = time.monotonic() - started
        if done(response):
            return elapsed
        assert elapsed < DEADLINE_SECONDS, f"still {response.status_code} {response.text} after {elapsed:.2f} s"
        await asyncio.sleep(0.02)


def refused(response: httpx.Response) -> bool:
    return response.status_code == 401


async def test_a_token_revoked_on_one_worker_is_refused_by_the_other_within_a_second(workers: Workers) -> None:
    client_id, secret = await workers.client([])
    token = await issue(workers, client_id, secret)
    await accepted_by_both(workers, token)

    revoked = await workers.a.post("/oauth/revoke", data={"token": token}, auth=(client_id, secret))
    assert revoked.status_code == 200
    assert refused(await viewer(workers.a, token))  # the revoking worker: at once
    await within_deadline(workers.b, token, refused)


async def test_a_disabled_client_is_refused_by_both_workers_within_a_second(workers: Workers) -> None:
    client_id, secret = await workers.client([])
    token = await issue(workers, client_id, secret)
    await accepted_by_both(workers, token)

    await workers.change(lambda session: admin.operator_set_client_enabled(session, client_id, False))
    for worker in (workers.a, workers.b):
        await within_deadline(worker, token, refused)


async def test_a_narrowed_region_binding_reaches_both_workers_within_a_second(workers: Workers) -> None:
    client_id, secret = await workers.client(["north", "south"])
    token = await issue(workers, client_id, secret)
    await accepted_by_both(workers, token)
    assert regions_of(await viewer(workers.b, token)) == ["north", "south"]

    await workers.change(lambda session: admin.operator_set_client_regions(session, client_id, ["north"]))
    for worker in (workers.a, workers.b):
        await within_deadline(worker, token, lambda response: regions_of(response) == ["north"])
