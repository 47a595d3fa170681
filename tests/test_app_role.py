"""The service as an operator runs it on PostgreSQL: the owner migrates and loads, the app role serves.

A database of its own, with committed data: ``db upgrade`` and ``demo load`` run with
``PROGRAMME_API_OWNER_DATABASE_URL`` (the owner, here the superuser), and everything else runs with
``PROGRAMME_API_DATABASE_URL`` naming the non-owner role ``programme_app_test``: the per-organisation CLI verbs,
and the app itself on its own engine (sign-in, the explorer page, an OAuth token, a GraphQL read, an export,
introspection and revocation). Row-level security applies to all of it, so any access that forgot to bind its
tenant would find nothing and fail here.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from programme_api.app import create_app
from programme_api.config import Settings, get_settings
from programme_api.db import create_engine, row_security_applies
from programme_api.domain.demo import DEMO_PASSWORD, EVALUATION_SLUG

from .conftest import app_role_url, drop_postgres_database, empty_database_url, grant_app_role
from .oauth_support import ISSUER, sign_in
from .test_cli import invoke

ORGANISATION = "northern-peer-support"


@dataclass
class Deployment:
    owner_url: str
    app_url: str
    key_file: Path


def environment(monkeypatch: pytest.MonkeyPatch, deployment: Deployment) -> None:
    monkeypatch.setenv("PROGRAMME_API_DATABASE_URL", deployment.app_url)
    monkeypatch.setenv("PROGRAMME_API_OWNER_DATABASE_URL", deployment.owner_url)
    monkeypatch.setenv("PROGRAMME_API_ISSUER", ISSUER)
    monkeypatch.setenv("PROGRAMME_API_SECRET_KEY_FILE", str(deployment.key_file))
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Migrated and loaded by the owner through the CLI, the app role granted what the operator steps grant."""
    directory = tmp_path_factory.mktemp("deployment")
    owner_url = asyncio.run(empty_database_url("postgresql", directory, "app_role"))
    found = Deployment(owner_url, app_role_url(owner_url), directory / "keys.json")
    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            environment(monkeypatch, found)
            for command in (["db", "upgrade"], ["demo", "load"]):
                code, _out, err = invoke(*command)
                assert code == 0, err
            asyncio.run(_grant(owner_url))
        yield found
    finally:
        get_settings.cache_clear()
        asyncio.run(drop_postgres_database(make_url(owner_url).database or ""))


async def _grant(url: str) -> None:
    engine = create_engine(Settings(database_url=url))
    await grant_app_role(engine)
    await engine.dispose()


@pytest.fixture
def operator(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    environment(monkeypatch, deployment)
    yield deployment
    get_settings.cache_clear()


def serve(deployment: Deployment) -> Any:
    """The app as ``serve`` builds it: its own engine, from the app role's URL."""
    return create_app(Settings(database_url=deployment.app_url, issuer=ISSUER, secret_key_file=deployment.key_file))


def test_the_app_role_is_under_row_level_security_and_the_owner_is_not(operator: Deployment) -> None:
    async def applies(url: str) -> bool:
        engine = create_engine(Settings(database_url=url))
        try:
            return await row_security_applies(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(applies(operator.app_url)) is True
    assert asyncio.run(applies(operator.owner_url)) is False


def test_cli_verbs_for_an_organisation_work_as_the_app_role(operator: Deployment) -> None:
    code, out, err = invoke("regions", "list", "--organisation", ORGANISATION, "--json")
    assert code == 0, err
    assert len(json.loads(out)) == 3
    code, out, err = invoke("organisations", "list", "--json")  # system work: as the owner
    assert code == 0, err
    assert len(json.loads(out)) == 2

    code, out, err = invoke(
        "users", "create", "--organisation", ORGANISATION, "--email", "new.coordinator@rls.example",
        "--role", "coordinator", "--region", "tyneside", "--password-stdin", stdin="a long enough password\n",
    )  # fmt: skip
    assert code == 0, err
    # An email taken in the other organisation is refused, although the app role cannot see that person.
    code, _out, err = invoke(
        "users", "create", "--organisation", ORGANISATION, "--email", "admin@coastal-wellbeing.example",
        "--role", "org_admin", "--password-stdin", stdin="a long enough password\n",
    )  # fmt: skip
    assert code == 1
    assert "already exists" in err


def test_token_read_export_introspection_and_revocation_as_the_app_role(operator: Deployment, tmp_path: Path) -> None:
    code, out, err = invoke(
        "clients", "create", "--organisation", ORGANISATION, "--name", "Booking app",
        "--scope", "programme:read", "--region", "tyneside", "--json",
    )  # fmt: skip
    assert code == 0, err
    booking = json.loads(out)
    code, out, err = invoke(
        "clients", "create", "--organisation", ORGANISATION, "--name", "Evaluator script",
        "--scope", "evaluation:read", "--evaluation-project", EVALUATION_SLUG, "--json",
    )  # fmt: skip
    assert code == 0, err
    evaluator = json.loads(out)

    async def scenario() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=serve(operator)), base_url=ISSUER) as http:
            seen: dict[str, Any] = {}
            token = await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                    auth=(booking["client_id"], booking["client_secret"]))  # fmt: skip
            assert token.status_code == 200, token.text
            bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
            read = await http.post("/graphql", json={"query": "{ regions { nodes { slug } } groups { totalCount } }"},
                                   headers=bearer)  # fmt: skip
            seen["read"] = read.json()
            auth = (booking["client_id"], booking["client_secret"])
            seen["introspected"] = (await http.post("/oauth/introspect", data={"token": token.json()["access_token"]},
                                                    auth=auth)).json()  # fmt: skip
            seen["revoked"] = (await http.post("/oauth/revoke", data={"token": token.json()["access_token"]},
                                               auth=auth)).status_code  # fmt: skip
            seen["after_revocation"] = (await http.post("/graphql", json={"query": "{ groups { totalCount } }"},
                                                        headers=bearer)).status_code  # fmt: skip
            export_token = await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                           auth=(evaluator["client_id"], evaluator["client_secret"]))  # fmt: skip
            assert export_token.status_code == 200, export_token.text
            export = await http.get(
                "/exports/surveys.csv", headers={"Authorization": f"Bearer {export_token.json()['access_token']}"}
            )
            seen["export"] = (export.status_code, export.text)
            return seen

    seen = asyncio.run(scenario())
    assert seen["read"]["data"]["regions"]["nodes"] == [{"slug": "tyneside"}], seen["read"]
    assert seen["read"]["data"]["groups"]["totalCount"] > 0
    assert seen["introspected"]["active"] is True
    assert seen["revoked"] == 200
    assert seen["after_revocation"] == 401
    status, text = seen["export"]
    assert status == 200, text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) > 10  # the project's consented responses, across both organisations it covers

    output = tmp_path / "export.csv"
    code, _out, err = invoke("export", "surveys", "--client-id", evaluator["client_id"], "--output", str(output))
    assert code == 0, err
    assert len(list(csv.DictReader(output.open()))) == len(rows)


def test_sign_in_and_the_explorer_page_as_the_app_role(operator: Deployment) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=serve(operator)), base_url=ISSUER) as http:
            wrong = await sign_in(http, f"admin@{ORGANISATION}.example", "not the password")
            signed_in = await sign_in(http, f"coordinator.north@{ORGANISATION}.example", DEMO_PASSWORD)
            page = await http.get("/graphql", headers={"Accept": "text/html"})
            return wrong, signed_in, page

    wrong, signed_in, page = asyncio.run(scenario())
    assert wrong.status_code == 400
    assert signed_in.status_code == 303, signed_in.text
    assert page.status_code == 200
    assert f"coordinator.north@{ORGANISATION}.example" in page.text
