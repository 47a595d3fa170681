"""Read replicas, against a real streaming replica: a private primary cluster and a hot standby made from it
with ``pg_basebackup -R`` (``benchmarks/cluster.py``), one pair for the module.

Where a read was answered is proved by what it sees: with WAL replay paused on the standby, a change
committed on the primary is invisible there, so an answer without it came from the replica and an answer
with it came from the primary. The app runs as the non-owner role on both, so row-level security's binding
is in force on the replica as on the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.cluster import HOST, Cluster, private_cluster, standby
from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.db import create_engine, session_factory
from programme_api.domain.models import Region
from programme_api.domain.principal import Principal
from programme_api.metrics import REGISTRY

from .api import GraphQLClient, TokenBook
from .conftest import IN_CI, REDIS_URL, app_role_url, grant_app_role, migrate, redis_available
from .factories import evaluator_for, gid, make_organisation, make_project, make_region, principal_for

pytestmark = pytest.mark.only_backend("postgresql")

# Small, quick clusters: durability is not what is tested here.
CLUSTER_SETTINGS = {"listen_addresses": HOST, "max_connections": "60", "shared_buffers": "16MB", "fsync": "off",
                    "wal_level": "replica", "max_wal_senders": "5"}  # fmt: skip
REGIONS = "{ regions { nodes { id name } } }"
RENAME = """
mutation($input: UpdateRegionInput!) { updateRegion(input: $input) { region { name } userErrors { code } } }
"""


def url_of(cluster: Cluster) -> str:
    return f"postgresql+asyncpg://postgres@{HOST}:{cluster.port}/postgres"


def reads(server: str) -> float:
    return REGISTRY.get_sample_value("programme_api_database_reads_total", {"server": server}) or 0.0


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Cluster]]:
    """A primary and its streaming standby; missing server binaries fail in CI and skip elsewhere."""
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_basebackup")):
        message = "PostgreSQL server binaries (initdb, pg_basebackup, postgres) are not installed"
        if IN_CI:
            pytest.fail(message + " (CI=true: the replica tests may not be skipped)")
        pytest.skip(message)
    logs = tmp_path_factory.mktemp("replica-logs")
    with (
        private_cluster(logs / "primary.log", CLUSTER_SETTINGS, prefix="programme-primary-pg-") as primary,
        standby(primary, logs / "standby.log", CLUSTER_SETTINGS) as replica,
    ):
        yield primary, replica


@dataclass
class Setup:
    primary: AsyncEngine  # as the tables' owner (a superuser), for changes made behind the app's back
    replica: AsyncEngine  # as a superuser on the standby: pausing replay, reading what it holds
    primary_cluster: Cluster
    region: Region
    writer: Principal
    reader: Principal
    evaluator: Principal

    async def caught_up(self, replica: AsyncEngine | None = None) -> None:
        """Wait until the standby has replayed everything the primary has written out so far (its write position:
        after a WAL segment switch the insert position already points past the next page's header)."""
        async with self.primary.connect() as connection:
            target = await connection.scalar(sa.text("SELECT pg_current_wal_lsn()::text"))
        async with (replica or self.replica).connect() as connection:
            for _ in range(200):
                query = sa.text("SELECT pg_last_wal_replay_lsn() >= CAST(CAST(:target AS text) AS pg_lsn)")
                if await connection.scalar(query, {"target": target}):
                    return
                await asyncio.sleep(0.05)
        raise AssertionError("the standby did not catch up within 10 s")

    async def set_replay(self, paused: bool) -> None:
        async with self.replica.connect() as connection:
            await connection.execute(sa.text(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()"))
            for _ in range(100):
                state = await connection.scalar(sa.text("SELECT pg_get_wal_replay_pause_state()"))
                if (state == "paused") == paused:
                    return
                await asyncio.sleep(0.05)
        raise AssertionError(f"replay did not become {'paused' if paused else 'active'}")

    async def rename_directly(self, name: str) -> None:
        """Someone else's change, committed on the primary."""
        async with self.primary.begin() as connection:
            await connection.execute(sa.text("UPDATE regions SET name = :name WHERE id = :id"),
                                     {"name": name, "id": self.region.id})  # fmt: skip

    async def name_on(self, engine: AsyncEngine) -> str:
        async with engine.connect() as connection:
            query = sa.text("SELECT name FROM regions WHERE id = :id")
            return str(await connection.scalar(query, {"id": self.region.id}))


@pytest.fixture(scope="module")
async def setup(clusters: tuple[Cluster, Cluster]) -> AsyncIterator[Setup]:
    primary_cluster, replica_cluster = clusters
    primary = create_engine(Settings(database_url=url_of(primary_cluster)))
    replica = create_engine(Settings(database_url=url_of(replica_cluster)))
    await migrate(primary)
    await grant_app_role(primary)
    async with session_factory(primary)() as db:
        organisation = await make_organisation(db)
        region = await make_region(db, organisation, name="Before")
        evaluator = evaluator_for(organisation, await make_project(db, organisation, name="Study"))
        await db.commit()
    setup = Setup(primary, replica, primary_cluster, region, principal_for(organisation), principal_for(organisation),
                  evaluator)  # fmt: skip
    await setup.caught_up()
    yield setup
    await primary.dispose()
    await replica.dispose()


@pytest.fixture(autouse=True)
async def fresh(setup: Setup) -> AsyncIterator[None]:
    """Each test starts with replay running, the names reset, and the standby caught up; and leaves
    replay running whatever happened."""
    await setup.set_replay(paused=False)
    await setup.rename_directly("Before")
    async with setup.primary.begin() as connection:
        await connection.execute(sa.text("UPDATE evaluation_projects SET name = 'Study'"))
    await setup.caught_up()
    yield
    await setup.set_replay(paused=False)


@contextlib.asynccontextmanager
async def serving(setup: Setup, replicas: list[str], **settings: Any) -> AsyncIterator[GraphQLClient]:
    """The app as one worker would run it, as the non-owner role on the primary and on ``replicas``."""
    configured = Settings(
        database_url=app_role_url(url_of(setup.primary_cluster)),
        database_replica_urls=",".join(app_role_url(url) for url in replicas),
        **({"redis_url": None} | settings),
    )
    tokens = TokenBook()
    app = create_app(configured, authenticate=tokens.authenticate)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            yield GraphQLClient(http, tokens)
    finally:
        await app.state.runtime.reads.close()
        await app.state.runtime.engine.dispose()


@pytest.fixture(params=[True, False], ids=["compiled", "executor"])
async def gql(
    request: pytest.FixtureRequest, setup: Setup, clusters: tuple[Cluster, Cluster]
) -> AsyncIterator[GraphQLClient]:
    """The app with the standby as its replica; queries answered by one compiled statement, or the resolvers."""
    async with serving(setup, [url_of(clusters[1])], compiled_reads=request.param) as client:
        yield client


async def region_names(gql: GraphQLClient, caller: Principal) -> list[str]:
    data = await gql.data(REGIONS, as_=caller)
    return [node["name"] for node in data["regions"]["nodes"]]


async def rename(gql: GraphQLClient, setup: Setup, name: str) -> None:
    """The writer renames the region through the API (a mutation)."""
    async with setup.primary.connect() as connection:
        version = await connection.scalar(
            sa.text("SELECT version FROM regions WHERE id = :id"), {"id": setup.region.id}
        )
    variables = {"input": {"regionId": gid(setup.region), "version": version, "name": name}}
    result = (await gql.data(RENAME, variables, as_=setup.writer))["updateRegion"]
    assert result == {"region": {"name": name}, "userErrors": []}


async def test_a_query_is_answered_by_the_replica(setup: Setup, gql: GraphQLClient) -> None:
    await setup.set_replay(paused=True)
    await setup.rename_directly("After")
    assert await setup.name_on(setup.replica) == "Before"
    before = reads("replica")

    assert await region_names(gql, setup.reader) == ["Before"]  # the primary would have said "After"
    assert reads("replica") == before + 1


async def test_a_mutation_goes_to_the_primary_and_its_author_reads_it_back(
    setup: Setup, gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="programme_api.replicas")
    await setup.set_replay(paused=True)

    await rename(gql, setup, "Written")  # a replica would refuse it: read-only transaction
    assert await setup.name_on(setup.primary) == "Written"
    assert await setup.name_on(setup.replica) == "Before"

    primary_reads = reads("primary")
    assert await region_names(gql, setup.writer) == ["Written"]  # replay is paused: only the primary has it
    assert reads("primary") == primary_reads + 1
    assert "has not replayed the caller's last write yet" in caplog.text
    assert await region_names(gql, setup.reader) == ["Before"]  # someone else may read the replica's state

    await setup.set_replay(paused=False)
    # The author's remembered position is the primary's insert position, which may sit just past a page header
    # until more WAL is written; someone else's write makes sure it is replayed.
    await setup.rename_directly("Written")
    await setup.caught_up()
    replica_reads = reads("replica")
    assert await region_names(gql, setup.writer) == ["Written"]
    assert reads("replica") == replica_reads + 1  # replayed: the author is back on the replica


async def test_a_write_through_one_worker_sends_its_author_to_the_primary_on_another(
    setup: Setup, clusters: tuple[Cluster, Cluster]
) -> None:
    """Two workers share the write positions through Redis: the author's next read may land on either."""
    await redis_available()
    replica = [url_of(clusters[1])]
    async with serving(setup, replica, redis_url=REDIS_URL) as one, serving(setup, replica, redis_url=REDIS_URL) as two:
        await setup.set_replay(paused=True)
        await rename(one, setup, "Written")
        assert await region_names(two, setup.writer) == ["Written"]
        assert await region_names(two, setup.reader) == ["Before"]


async def test_a_stopped_replica_is_skipped_and_the_primary_answers(setup: Setup, tmp_path: Path) -> None:
    with standby(setup.primary_cluster, tmp_path / "doomed.log", CLUSTER_SETTINGS) as doomed:
        doomed_engine = create_engine(Settings(database_url=url_of(doomed)))
        try:
            await setup.caught_up(doomed_engine)
        finally:
            await doomed_engine.dispose()
        async with serving(setup, [url_of(doomed)]) as gql:
            replica_reads = reads("replica")
            assert await region_names(gql, setup.reader) == ["Before"]
            assert reads("replica") == replica_reads + 1  # its pool now holds a connection to the doomed standby

            doomed.stop()
            await setup.rename_directly("After")  # so that the answer shows which server gave it
            primary_reads = reads("primary")
            assert await region_names(gql, setup.reader) == ["After"]
            assert await region_names(gql, setup.reader) == ["After"]
            assert reads("primary") == primary_reads + 2


async def test_a_replica_that_never_answered_is_skipped(setup: Setup) -> None:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe socket is closed
    async with serving(setup, [f"postgresql+asyncpg://postgres@{HOST}:{port}/postgres"]) as gql:
        primary_reads = reads("primary")
        assert await region_names(gql, setup.reader) == ["Before"]
        assert reads("primary") == primary_reads + 1


async def test_other_organisations_rows_stay_hidden_on_the_replica(setup: Setup, gql: GraphQLClient) -> None:
    """The replica's reads are bound to the caller's organisation like the primary's."""
    async with session_factory(setup.primary)() as db:
        stranger = principal_for(await make_organisation(db))
        await db.commit()
    await setup.caught_up()
    replica_reads = reads("replica")
    assert await region_names(gql, stranger) == []
    assert reads("replica") == replica_reads + 1


async def test_evaluator_exports_are_read_from_the_replica(setup: Setup, gql: GraphQLClient) -> None:
    await setup.set_replay(paused=True)
    async with setup.primary.begin() as connection:
        await connection.execute(sa.text("UPDATE evaluation_projects SET name = 'Renamed'"))
    headers = {"Authorization": f"Bearer {gql.tokens.issue(setup.evaluator)}"}
    replica_reads = reads("replica")

    codebook = await gql.http.get("/exports/codebook.json", headers=headers)
    assert codebook.status_code == 200, codebook.text
    assert codebook.json()["project"]["name"] == "Study"  # the primary would have said "Renamed"
    export = await gql.http.get("/exports/surveys.csv", headers=headers)
    assert export.status_code == 200, export.text
    assert export.text.splitlines()[0].startswith("pseudonym,region,")
    assert reads("replica") == replica_reads + 2
