"""SQLite as the embedded default: WAL, reads in deferred transactions beside a writer, writers queueing.

The shared test connection serialises everything, so these tests get their own file-backed database with
committed data and an app whose engine gives each request its own pooled connection, as ``serve`` does. A
second, plain ``sqlite3`` connection plays the other writer: it holds the write lock (an open ``BEGIN
IMMEDIATE``) while requests arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.db import create_engine, session_factory
from programme_api.domain.models import Organisation, Region

from .api import GraphQLClient, TokenBook
from .conftest import empty_database_url, migrate
from .factories import make_group, make_organisation, make_region, principal_for
from .oauth_support import client_credentials, make_client, oauth_settings

PROMPTLY = 10.0
"""Seconds a read may take while the write lock is held (the busy timeout a queued reader would wait is 30)."""

READ = "{ regions { edges { node { slug groups { totalCount edges { node { name } } } } } } }"
CREATE_REGION = """
mutation($input: CreateRegionInput!) {
  createRegion(input: $input) { region { slug } userErrors { field message code } }
}
"""


@dataclass
class FileDatabase:
    path: Path
    settings: Settings
    web: httpx.AsyncClient
    gql: GraphQLClient
    organisation: Organisation
    region: Region
    client: Any


@pytest.fixture
async def file_db(tmp_path: Path) -> AsyncIterator[FileDatabase]:
    url = await empty_database_url("sqlite", tmp_path, "embedded")
    settings = oauth_settings(url, tmp_path / "keys.json")
    engine = create_engine(settings)
    try:
        await migrate(engine)
        async with session_factory(engine)() as db:
            organisation = await make_organisation(db)
            region = await make_region(db, organisation, slug="north")
            await make_group(db, region, name="Tuesday circle")
            client = await make_client(db, organisation, "programme:read", grants=["client_credentials"])
            await db.commit()
        tokens = TokenBook()
        app = create_app(settings, engine=engine)
        app.state.runtime.authenticate = _test_tokens_or(tokens, app.state.runtime.authenticate)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://programme.test") as web:
            path = Path(make_url(url).database or "")
            yield FileDatabase(path, settings, web, GraphQLClient(web, tokens), organisation, region, client)
    finally:
        await engine.dispose()


def _test_tokens_or(tokens: TokenBook, real: Any) -> Any:
    """Test bearers map to principals directly; any other bearer goes to the real resource server."""

    async def authenticate(connection: Any) -> Any:
        return await tokens.authenticate(connection) or await real(connection)

    return authenticate


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection in the middle of a write transaction (it holds SQLite's one write lock)."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE regions SET name = name")
        yield other
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_the_database_runs_in_wal_mode(file_db: FileDatabase) -> None:
    engine = create_engine(file_db.settings)
    try:
        async with engine.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
    finally:
        await engine.dispose()
    assert mode == "wal"
    with contextlib.closing(sqlite3.connect(file_db.path)) as plain:  # WAL is a property of the file
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_query_answers_while_another_connection_holds_the_write_lock(file_db: FileDatabase) -> None:
    reader = principal_for(file_db.organisation)
    with write_lock_held(file_db.path):
        data = await asyncio.wait_for(file_db.gql.data(READ, as_=reader), PROMPTLY)
        ready = await asyncio.wait_for(file_db.web.get("/readyz"), PROMPTLY)
    [region] = data["regions"]["edges"]
    assert region["node"]["slug"] == "north"
    assert region["node"]["groups"]["edges"] == [{"node": {"name": "Tuesday circle"}}]
    assert ready.status_code == 200, ready.text


async def test_a_query_with_a_real_bearer_token_answers_while_the_write_lock_is_held(file_db: FileDatabase) -> None:
    """The token lookup of the resource server reads too: it must not queue behind the writer either."""
    issued = await client_credentials(file_db.web, file_db.client)
    assert issued.status_code == 200, issued.text
    headers = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    with write_lock_held(file_db.path):
        response = await asyncio.wait_for(file_db.web.post("/graphql", json={"query": READ}, headers=headers), PROMPTLY)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["regions"]["edges"][0]["node"]["slug"] == "north"


async def test_two_mutations_wait_for_the_write_lock_and_both_succeed(file_db: FileDatabase) -> None:
    """Writers take the lock up front (``BEGIN IMMEDIATE``) and wait for it; a deferred transaction that read
    first and then tried to write would fail at once with "database is locked"."""
    admin = principal_for(file_db.organisation)

    def create(slug: str) -> Any:
        return file_db.gql.data(CREATE_REGION, {"input": {"slug": slug, "name": slug.title()}}, as_=admin)

    with write_lock_held(file_db.path):
        writers = [asyncio.ensure_future(create(slug)) for slug in ("east", "west")]
        done, _pending = await asyncio.wait(writers, timeout=1.0)
        assert not done, "a mutation finished while another connection held the write lock"
    results = await asyncio.wait_for(asyncio.gather(*writers), 30)

    assert [result["createRegion"]["userErrors"] for result in results] == [[], []]
    slugs = await file_db.gql.data("{ regions { edges { node { slug } } } }", as_=admin)
    assert sorted(edge["node"]["slug"] for edge in slugs["regions"]["edges"]) == ["east", "north", "west"]


async def test_concurrent_mutations_without_an_outside_writer_both_succeed(file_db: FileDatabase) -> None:
    admin = principal_for(file_db.organisation)
    results = await asyncio.gather(
        *(
            file_db.gql.data(CREATE_REGION, {"input": {"slug": f"r{index}", "name": f"R{index}"}}, as_=admin)
            for index in range(4)
        )
    )
    assert all(result["createRegion"]["userErrors"] == [] for result in results)
    engine = create_engine(file_db.settings)
    try:
        async with engine.connect() as connection:
            total = (await connection.execute(sa.text("SELECT count(*) FROM regions"))).scalar_one()
    finally:
        await engine.dispose()
    assert total == 5
