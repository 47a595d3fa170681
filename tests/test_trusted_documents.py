"""Trusted documents: registered per client (CLI, Relay and GraphQL Codegen manifests), sent by hash or id, and
clients marked trusted-only that may run nothing else. Real client-credentials tokens, through HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.app import create_app
from programme_api.cli import _document_problems
from programme_api.config import Settings, get_settings
from programme_api.db import create_engine
from programme_api.domain.errors import DomainError
from programme_api.domain.models import AuditEvent, Organisation, Region, TrustedDocument
from programme_api.oauth.admin import set_client_trusted_documents_only as set_trusted_only
from programme_api.oauth.clients import create_client
from programme_api.oauth.documents import (
    entries_from_manifest,
    entry_from_text,
    register_documents,
)

from .api import without_extensions
from .oauth_support import (
    ISSUER,
    Client,
    World,
    app,
    client_credentials,
    settings,
    web,
    world,
)
from .test_cli import invoke

__all__ = ["app", "settings", "web", "world"]  # fixtures used by name

GRAPHQL_RESPONSE = "application/graphql-response+json"
REGIONS = "query RegionNames { regions(first: 10) { nodes { slug } } }\n"
VIEWER = "query WhoAmI { viewer { subject } }\n"
ANYTHING_ELSE = "query Groups { groups(first: 5) { totalCount } }"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 (Relay's default document id, not security)


async def token_of(web: httpx.AsyncClient, client: Client) -> str:
    response = await client_credentials(web, client)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def post(web: httpx.AsyncClient, token: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": GRAPHQL_RESPONSE}
    return await web.post("/graphql", json=body, headers=headers)


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


def by_hash(text: str) -> dict[str, Any]:
    return {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256(text)}}}


async def register(db: AsyncSession, client: Client, *texts: str) -> None:
    await register_documents(db, client.client_id, [entry_from_text(text) for text in texts], _document_problems)


async def test_a_trusted_only_client_runs_its_registered_documents_and_nothing_else(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    machine = world.clients["machine"]
    await register(db, machine, REGIONS)
    relay = entries_from_manifest(json.dumps({md5(VIEWER): VIEWER}).encode())
    await register_documents(db, machine.client_id, relay, _document_problems)
    await set_trusted_only(db, machine.client_id, True)
    await db.commit()
    token = await token_of(web, machine)

    for body in (by_hash(REGIONS), {"query": REGIONS}, {"documentId": f"sha256:{sha256(REGIONS)}"}):
        answer = await post(web, token, body)
        assert answer.status_code == 200, (body, answer.text)
        assert without_extensions(answer.json()) == {"data": {"regions": {"nodes": [{"slug": "north"}]}}}
    relay_answer = await post(web, token, {"documentId": md5(VIEWER)})  # Relay's id, as its manifest had it
    assert relay_answer.json()["data"]["viewer"]["subject"] == machine.client_id

    refused = await post(web, token, {"query": ANYTHING_ELSE})
    assert refused.status_code == 400
    assert refused.json()["errors"] == [
        {
            "message": "this client may run only its registered documents; this one is not among them",
            "extensions": {"code": "PERSISTED_QUERY_NOT_IN_LIST"},
        }
    ]
    # Sending the text with its hash (APQ registration) is refused too, and teaches the server nothing.
    assert code_of(await post(web, token, {"query": ANYTHING_ELSE, **by_hash(ANYTHING_ELSE)})) == (
        "PERSISTED_QUERY_NOT_IN_LIST"
    )
    assert code_of(await post(web, token, by_hash(ANYTHING_ELSE))) == "PERSISTED_QUERY_NOT_FOUND"
    assert code_of(await post(web, token, {"documentId": "no-such-id"})) == "PERSISTED_QUERY_NOT_FOUND"


async def test_documents_belong_to_their_client_alone(web: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    text = "query OnlyMine { regions(first: 3) { totalCount } }"
    await register(db, world.clients["machine"], text)
    await db.commit()

    for other in (world.clients["machine_b"], world.clients["machine"]):
        answer = await post(web, await token_of(web, other), by_hash(text))
        if other is world.clients["machine"]:
            assert without_extensions(answer.json()) == {"data": {"regions": {"totalCount": 1}}}
        else:  # another organisation's client: as if it did not exist
            assert code_of(answer) == "PERSISTED_QUERY_NOT_FOUND"


async def test_marking_a_client_trusted_only_applies_to_the_tokens_it_already_has(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    machine = world.clients["machine"]
    await register(db, machine, REGIONS)
    await db.commit()
    token = await token_of(web, machine)
    assert (await post(web, token, {"query": ANYTHING_ELSE})).status_code == 200  # remembered as unrestricted

    await set_trusted_only(db, machine.client_id, True)
    await db.commit()
    assert code_of(await post(web, token, {"query": ANYTHING_ELSE})) == "PERSISTED_QUERY_NOT_IN_LIST"
    assert (await post(web, token, {"query": REGIONS})).status_code == 200

    await set_trusted_only(db, machine.client_id, False)
    await db.commit()
    assert (await post(web, token, {"query": ANYTHING_ELSE})).status_code == 200


def test_manifests_of_relay_and_graphql_codegen_are_read_and_their_ids_checked() -> None:
    codegen = entries_from_manifest(json.dumps({sha256(REGIONS): REGIONS}).encode())  # persisted-documents.json
    relay = entries_from_manifest(json.dumps({md5(VIEWER): VIEWER, "custom-id-7": REGIONS}).encode())
    assert [(entry.document_id, entry.sha256) for entry in codegen] == [(sha256(REGIONS), sha256(REGIONS))]
    assert [(entry.document_id, entry.sha256) for entry in relay] == [
        (md5(VIEWER), sha256(VIEWER)),
        ("custom-id-7", sha256(REGIONS)),
    ]
    for bad, message in (
        ({sha256(VIEWER): REGIONS}, "is not the hash of its text"),
        ({md5(VIEWER): REGIONS}, "is not the hash of its text"),
        ({"sha256:" + "0" * 64: REGIONS}, "is not the hash of its text"),
        ({"x": ""}, "is not a non-empty string"),
        ({"x": 3}, "is not a non-empty string"),
        ([REGIONS], "a manifest is a non-empty JSON object"),
        ({}, "a manifest is a non-empty JSON object"),
    ):
        with pytest.raises(DomainError, match=message):
            entries_from_manifest(json.dumps(bad).encode())
    with pytest.raises(DomainError, match="not valid JSON"):
        entries_from_manifest(b"{")


async def test_registration_refuses_invalid_documents_and_changed_texts_and_writes_nothing(
    world: World, db: AsyncSession
) -> None:
    machine = world.clients["machine"]
    count = sa.select(sa.func.count()).select_from(TrustedDocument)
    with pytest.raises(DomainError, match="noSuchField"):
        await register(db, machine, REGIONS, "query Broken { regions(first: 1) { noSuchField } }")
    assert await db.scalar(count) == 0

    first = entries_from_manifest(json.dumps({"doc-1": REGIONS}).encode())
    again = await register_documents(db, machine.client_id, first, _document_problems)
    assert [entry.document_id for entry in again.added] == ["doc-1"]
    repeated = await register_documents(db, machine.client_id, first, _document_problems)
    assert (repeated.added, [entry.document_id for entry in repeated.already]) == ([], ["doc-1"])
    changed = entries_from_manifest(json.dumps({"doc-1": VIEWER}).encode())
    with pytest.raises(DomainError, match="documents never change"):
        await register_documents(db, machine.client_id, changed, _document_problems)
    assert await db.scalar(count) == 1
    actions = await db.scalars(sa.select(AuditEvent.action).where(AuditEvent.target_id == machine.client_id))
    assert list(actions).count("oauth.documents_registered") == 2


# --- the commands, on a SQLite file, then the service on it ------------------------------------------------


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, str, str]]:
    """A migrated SQLite file with one organisation and one client; yields settings, client id and secret."""
    monkeypatch.setenv("PROGRAMME_API_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'documents.db'}")
    monkeypatch.setenv("PROGRAMME_API_ISSUER", ISSUER)
    monkeypatch.setenv("PROGRAMME_API_SECRET_KEY_FILE", str(tmp_path / "keys.json"))
    get_settings.cache_clear()
    assert invoke("db", "upgrade")[0] == 0
    configured = get_settings()

    async def seed() -> tuple[str, str]:
        engine = create_engine(configured)
        async with AsyncSession(engine) as session:
            organisation = Organisation(slug="acme", name="Acme")
            session.add(organisation)
            await session.flush()
            session.add(Region(organisation_id=organisation.id, slug="north", name="North"))
            await session.flush()
            created = await create_client(
                session, organisation_slug="acme", name="Booking app", scope="programme:read", region_slugs=[],
                grants=[], redirect_uris=[], evaluation_project_slug=None, public=False,
            )  # fmt: skip
            client_id = created.client_id
            await session.commit()
        await engine.dispose()
        assert created.client_secret is not None
        return client_id, created.client_secret

    client_id, secret = asyncio.run(seed())
    yield configured, client_id, secret
    get_settings.cache_clear()


def test_the_commands_register_list_and_restrict_and_the_service_obeys(
    cli_database: tuple[Settings, str, str], tmp_path: Path
) -> None:
    configured, client_id, secret = cli_database
    single = tmp_path / "RegionNames.graphql"
    single.write_text(REGIONS)
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(json.dumps({sha256(VIEWER): VIEWER}))

    code, out, err = invoke("documents", "register", client_id, str(single))
    assert (code, out) == (0, f"{sha256(REGIONS)}\tregistered\n"), err
    code, out, err = invoke("documents", "register", client_id, str(manifest), "--json")
    assert code == 0, err
    assert json.loads(out) == [{"document_id": sha256(VIEWER), "sha256": sha256(VIEWER), "added": True}]
    code, out, _ = invoke("documents", "register", client_id, str(single))
    assert out == f"{sha256(REGIONS)}\talready registered\n"

    code, out, err = invoke("documents", "list", client_id, "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [(row["sha256"], row["operations"]) for row in listed] == [
        (sha256(REGIONS), ["RegionNames"]),
        (sha256(VIEWER), ["WhoAmI"]),
    ]

    broken = tmp_path / "broken.graphql"
    broken.write_text("query { nope }")
    code, _, err = invoke("documents", "register", client_id, str(broken))
    assert code == 1
    assert err.startswith("error: document ")
    assert "nope" in err
    for refused_args, message in (
        (["register", "programme-explorer", str(single)], "saved operations"),
        (["register", "no-such-client", str(single)], "not found"),
        (["register", client_id, str(tmp_path / "missing.graphql")], "cannot read"),
        (["trusted-only", "no-such-client"], "not found"),
    ):
        code, _, err = invoke("documents", *refused_args)
        assert code == 1, refused_args
        assert message in err, (refused_args, err)

    code, out, err = invoke("documents", "trusted-only", client_id)
    assert (code, out) == (0, f"client {client_id} may run only its registered documents\n"), err

    async def ask() -> list[httpx.Response]:
        app = create_app(configured)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as client,
        ):
            issued = await client.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
            )
            token = issued.json()["access_token"]
            return [
                await post(client, token, by_hash(REGIONS)),
                await post(client, token, {"query": VIEWER}),
                await post(client, token, {"query": ANYTHING_ELSE}),
            ]

    regions, viewer, other = asyncio.run(ask())
    assert without_extensions(regions.json()) == {"data": {"regions": {"nodes": [{"slug": "north"}]}}}
    assert viewer.json()["data"]["viewer"]["subject"] == client_id
    assert code_of(other) == "PERSISTED_QUERY_NOT_IN_LIST"
