"""An organisation's admin manages people and OAuth clients through GraphQL, with real tokens.

Given the OAuth world (two organisations, an admin, a coordinator, a region-bound machine client), when the
admin disables, re-scopes or rotates through GraphQL, then the tokens already issued change at once; secrets
appear once; nobody grants more than they hold; the other organisation's rows answer like missing ones.
"""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.applications import Starlette

from programme_api.domain.models import AuditEvent, OAuthClient, User
from programme_api.oauth.clients import EXPLORER_CLIENT_ID
from programme_api.schema.relay import to_global_id

from .conftest import seeing_test_writes
from .oauth_support import (
    EXPLORER_REDIRECT,
    ISSUER,
    Client,
    World,
    app,
    bearer,
    client_credentials,
    exchange,
    get_code,
    make_client,
    person_tokens,
    pkce_pair,
    settings,
    sign_in,
    web,
    world,
)

USERS = "{ users { totalCount edges { node { id email role active regions { slug } } } } }"
CLIENTS = "{ oauthClients { edges { node { id clientId name scopes enabled public regions { slug } } } } }"
CLIENT_FIELDS = "userErrors { field code message } clientSecret oauthClient { id clientId scopes enabled }"
USER_FIELDS = "userErrors { field code message } password user { id email role active }"


@pytest.fixture
async def live(app: Starlette, backend: str, connection: AsyncConnection) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=seeing_test_writes(app, backend, connection))
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


async def gql(http: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = await http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


async def admin_token(http: httpx.AsyncClient, world: World) -> str:
    token: str = (await person_tokens(http, world.people["admin"].email))["access_token"]
    return token


async def machine_token(http: httpx.AsyncClient, client: Client) -> str:
    response = await client_credentials(http, client)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def probe(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.get("/_probe", headers=bearer(token))


async def client_node_id(db: AsyncSession, client_id: str) -> str:
    pk = await db.scalar(sa.select(OAuthClient.id).where(OAuthClient.client_id == client_id))
    assert pk is not None
    return str(to_global_id("OAuthClient", pk))


async def test_the_admin_lists_people_and_clients_of_their_organisation_only(live: httpx.AsyncClient,
                                                                              world: World) -> None:  # fmt: skip
    token = await admin_token(live, world)
    people = (await gql(live, token, USERS))["data"]["users"]
    emails = {edge["node"]["email"] for edge in people["edges"]}
    assert world.people["coordinator"].email in emails
    assert world.people["admin_b"].email not in emails
    assert people["totalCount"] == 3
    coordinator = next(e["node"] for e in people["edges"] if e["node"]["email"] == world.people["coordinator"].email)
    assert coordinator["regions"] == [{"slug": "north"}]
    clients = [edge["node"] for edge in (await gql(live, token, CLIENTS))["data"]["oauthClients"]["edges"]]
    assert sorted(c["name"] for c in clients) == ["Attendance app", "Booking app", "Browser app"]
    machine = next(c for c in clients if c["name"] == "Attendance app")
    assert machine["regions"] == [{"slug": "north"}]
    assert machine["enabled"]
    assert not machine["public"]


async def test_people_and_clients_need_the_admin_scope(live: httpx.AsyncClient, world: World) -> None:
    token = (await person_tokens(live, world.people["coordinator"].email))["access_token"]
    body = await gql(live, token, USERS)
    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"


async def test_disabling_a_client_refuses_its_live_token_at_once_and_enabling_restores_it(
    live: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    token, machine = await admin_token(live, world), world.clients["machine"]
    machine_access = await machine_token(live, machine)
    assert (await probe(live, machine_access)).status_code == 200
    node_id = await client_node_id(db, machine.client_id)
    mutation = f"mutation($id: ID!) {{ disableOAuthClient(input: {{oauthClientId: $id}}) {{ {CLIENT_FIELDS} }} }}"
    body = await gql(live, token, mutation, {"id": node_id})
    assert "errors" not in body, body
    disabled = body["data"]["disableOAuthClient"]
    assert disabled["userErrors"] == []
    assert disabled["oauthClient"]["enabled"] is False
    assert disabled["clientSecret"] is None
    assert (await probe(live, machine_access)).status_code == 401
    assert (await client_credentials(live, machine)).status_code == 401
    enable = mutation.replace("disableOAuthClient", "enableOAuthClient")
    assert (await gql(live, token, enable, {"id": node_id}))["data"]["enableOAuthClient"]["userErrors"] == []
    assert (await probe(live, machine_access)).status_code == 200
    changed = sa.select(AuditEvent).where(AuditEvent.action == "oauth.client_changed")
    events = list(await db.scalars(changed.order_by(AuditEvent.occurred_at)))
    assert [e.details for e in events] == [{"enabled": False}, {"enabled": True}]
    assert {e.actor_id for e in events} == {f"user:{world.people['admin'].id}"} or all(e.actor_type.value == "user"
                                                                                      for e in events)  # fmt: skip


async def test_narrowing_a_clients_scopes_narrows_its_live_token_and_widening_gives_it_nothing(
    live: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    token, machine = await admin_token(live, world), world.clients["machine"]
    machine_access = await machine_token(live, machine)
    node_id = await client_node_id(db, machine.client_id)
    mutation = "mutation($id: ID!, $s: [String!]!) { setOAuthClientScopes(input: {oauthClientId: $id, scopes: $s}) " \
               f"{{ {CLIENT_FIELDS} }} }}"  # fmt: skip
    narrowed = await gql(live, token, mutation, {"id": node_id, "s": ["programme:read"]})
    assert narrowed["data"]["setOAuthClientScopes"]["oauthClient"]["scopes"] == ["programme:read"]
    assert (await probe(live, machine_access)).json()["scopes"] == ["programme:read"]
    widened = await gql(live, token, mutation, {"id": node_id, "s": ["programme:read", "attendance:write",
                                                                       "participants:read"]})  # fmt: skip
    assert widened["data"]["setOAuthClientScopes"]["userErrors"] == []
    # The live token was issued for two scopes; widening the client later cannot add a third to it.
    assert (await probe(live, machine_access)).json()["scopes"] == ["attendance:write", "programme:read"]


async def test_a_new_client_secret_is_shown_once_and_works(live: httpx.AsyncClient, world: World,
                                                           db: AsyncSession) -> None:  # fmt: skip
    token = await admin_token(live, world)
    mutation = f"""mutation($key: String) {{ createOAuthClient(input: {{name: "Register app",
        scopes: ["programme:read", "attendance:write"], idempotencyKey: $key}}) {{ {CLIENT_FIELDS} }} }}"""
    created = (await gql(live, token, mutation, {"key": "create-1"}))["data"]["createOAuthClient"]
    assert created["userErrors"] == []
    assert len(created["clientSecret"]) >= 40
    client_id = created["oauthClient"]["clientId"]
    stored = await db.scalar(sa.select(OAuthClient).where(OAuthClient.client_id == client_id))
    assert stored is not None
    assert stored.client_secret_hash != created["clientSecret"]
    issued = await client_credentials(live, Client(client_id, created["clientSecret"], world.org_a.id))
    assert issued.status_code == 200
    replay = (await gql(live, token, mutation, {"key": "create-1"}))["data"]["createOAuthClient"]
    assert replay["oauthClient"]["clientId"] == client_id
    assert replay["clientSecret"] is None
    assert await db.scalar(sa.select(sa.func.count()).select_from(OAuthClient).where(
        OAuthClient.name == "Register app")) == 1  # fmt: skip


async def test_rotating_a_secret_retires_the_old_secret_and_its_tokens(
    live: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    token, machine = await admin_token(live, world), world.clients["machine"]
    old_access = await machine_token(live, machine)
    node_id = await client_node_id(db, machine.client_id)
    mutation = f"mutation($id: ID!) {{ rotateOAuthClientSecret(input: {{oauthClientId: $id}}) {{ {CLIENT_FIELDS} }} }}"
    rotated = (await gql(live, token, mutation, {"id": node_id}))["data"]["rotateOAuthClientSecret"]
    new_secret = rotated["clientSecret"]
    assert new_secret
    assert new_secret != machine.client_secret
    assert (await probe(live, old_access)).status_code == 401
    assert (await client_credentials(live, machine)).status_code == 401
    assert (await client_credentials(live, Client(machine.client_id, new_secret, world.org_a.id))).status_code == 200


async def test_nobody_grants_more_than_they_hold(live: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    """A client holding only `admin` and `programme:read` can neither make a wider client nor an admin."""
    narrow = await make_client(db, world.org_a, "admin programme:read", name="Narrow admin app")
    await db.commit()
    token = await machine_token(live, narrow)
    wider = f"""mutation {{ createOAuthClient(input: {{name: "Wider", scopes: ["programme:read", "participants:read"]}})
        {{ {CLIENT_FIELDS} }} }}"""
    refused = (await gql(live, token, wider))["data"]["createOAuthClient"]
    assert refused["userErrors"] == [
        {
            "field": "input.scope",
            "code": "FORBIDDEN",
            "message": "you cannot grant scopes you do not hold: participants:read",
        }
    ]
    assert refused["oauthClient"] is None
    assert refused["clientSecret"] is None
    person = (
        f"""mutation {{ createUser(input: {{email: "new.admin@example.org", role: ORG_ADMIN}}) {{ {USER_FIELDS} }} }}"""
    )
    refused_person = (await gql(live, token, person))["data"]["createUser"]
    assert refused_person["userErrors"][0]["code"] == "FORBIDDEN"
    assert refused_person["userErrors"][0]["field"] == "input.role"
    names = set(await db.scalars(sa.select(OAuthClient.name)))
    assert "Wider" not in names
    assert await db.scalar(sa.select(User.id).where(User.email == "new.admin@example.org")) is None
    # The same client may hand out what it holds.
    same = wider.replace('"programme:read", "participants:read"', '"programme:read"')
    assert (await gql(live, token, same))["data"]["createOAuthClient"]["userErrors"] == []


async def test_another_organisations_client_is_not_found(live: httpx.AsyncClient, world: World,
                                                         db: AsyncSession) -> None:  # fmt: skip
    token = await admin_token(live, world)
    node_id = await client_node_id(db, world.clients["machine_b"].client_id)
    mutation = f"mutation($id: ID!) {{ disableOAuthClient(input: {{oauthClientId: $id}}) {{ {CLIENT_FIELDS} }} }}"
    refused = (await gql(live, token, mutation, {"id": node_id}))["data"]["disableOAuthClient"]
    assert refused["userErrors"][0]["code"] == "NOT_FOUND"
    assert (await client_credentials(live, world.clients["machine_b"])).status_code == 200


async def test_an_email_taken_in_another_organisation_is_refused(
    live: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    """Emails stay unique across the service although ``users`` holds them unique per organisation only: the
    other organisation's person's email is refused with the error an email of one's own gets, in any case."""
    token = await admin_token(live, world)
    create = f"mutation($e: String!) {{ createUser(input: {{email: $e, role: ORG_ADMIN}}) {{ {USER_FIELDS} }} }}"
    for taken in (world.people["admin_b"].email, world.people["coordinator"].email):
        refused = (await gql(live, token, create, {"e": taken.upper()}))["data"]["createUser"]
        message = f"a user with email {taken!r} already exists"
        assert refused["userErrors"] == [{"field": "input.email", "code": "DUPLICATE", "message": message}]
        assert refused["user"] is None
        assert await db.scalar(sa.select(sa.func.count()).where(User.email == taken)) == 1
    fresh = (await gql(live, token, create, {"e": "fresh.admin@example.org"}))["data"]["createUser"]
    assert fresh["userErrors"] == []


async def test_people_created_reset_and_disabled_through_graphql(
    live: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    token = await admin_token(live, world)
    north = str(to_global_id("Region", world.north.id))
    create = f"""mutation($r: ID!) {{ createUser(input: {{email: "Casey@Example.org", role: COORDINATOR,
        regionIds: [$r]}}) {{ {USER_FIELDS} }} }}"""
    created = (await gql(live, token, create, {"r": north}))["data"]["createUser"]
    assert created["userErrors"] == []
    assert created["user"]["email"] == "casey@example.org"
    first_password = created["password"]
    assert first_password
    assert len(first_password) >= 12
    stored = await db.scalar(sa.select(User).where(User.email == "casey@example.org"))
    assert stored is not None
    assert first_password not in stored.password_hash
    person_access = (await _person_token(live, "casey@example.org", first_password))["access_token"]
    assert (await probe(live, person_access)).json()["region_ids"] == [str(world.north.id)]

    user_id = created["user"]["id"]
    reset = f"mutation($id: ID!) {{ resetUserPassword(input: {{userId: $id}}) {{ {USER_FIELDS} }} }}"
    new_password = (await gql(live, token, reset, {"id": user_id}))["data"]["resetUserPassword"]["password"]
    assert new_password
    assert new_password != first_password
    assert (await probe(live, person_access)).status_code == 401  # what the old password obtained is gone
    fresh = (await _person_token(live, "casey@example.org", new_password))["access_token"]
    disable = f"mutation($id: ID!) {{ disableUser(input: {{userId: $id}}) {{ {USER_FIELDS} }} }}"
    disabled = (await gql(live, token, disable, {"id": user_id}))["data"]["disableUser"]
    assert disabled["user"]["active"] is False
    assert disabled["password"] is None
    assert (await probe(live, fresh)).status_code == 401


async def _person_token(live: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    live.cookies.clear()
    await sign_in(live, email, password)
    verifier, challenge = pkce_pair()
    code = await get_code(live, EXPLORER_CLIENT_ID, EXPLORER_REDIRECT, challenge)
    response = await exchange(live, EXPLORER_CLIENT_ID, code, verifier, EXPLORER_REDIRECT)
    assert response.status_code == 200, response.text
    token: dict[str, Any] = response.json()
    return token


async def test_client_changes_carry_the_version_read_and_a_stale_one_is_refused(
    live: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    token, machine = await admin_token(live, world), world.clients["machine"]
    node_id = await client_node_id(db, machine.client_id)
    read = "query($id: ID!) { node(id: $id) { ... on OAuthClient { version scopes } } }"
    assert (await gql(live, token, read, {"id": node_id}))["data"]["node"]["version"] == 1
    scopes = """mutation($id: ID!, $v: Int) { setOAuthClientScopes(input: {oauthClientId: $id, version: $v,
        scopes: ["programme:read"]}) { userErrors { field code } oauthClient { scopes version } } }"""
    changed = (await gql(live, token, scopes, {"id": node_id, "v": 1}))["data"]["setOAuthClientScopes"]
    assert changed == {"userErrors": [], "oauthClient": {"scopes": ["programme:read"], "version": 2}}
    disable = """mutation($id: ID!, $v: Int) { disableOAuthClient(input: {oauthClientId: $id, version: $v}) {
        userErrors { field code } oauthClient { enabled version } } }"""
    stale = (await gql(live, token, disable, {"id": node_id, "v": 1}))["data"]["disableOAuthClient"]
    assert stale == {"userErrors": [{"field": "input.version", "code": "CONFLICT"}], "oauthClient": None}
    assert (await client_credentials(live, machine)).status_code == 200  # the stale write changed nothing
    rotate = """mutation($id: ID!, $v: Int) { rotateOAuthClientSecret(input: {oauthClientId: $id, version: $v}) {
        userErrors { code } clientSecret } }"""
    refused = (await gql(live, token, rotate, {"id": node_id, "v": 7}))["data"]["rotateOAuthClientSecret"]
    assert refused == {"userErrors": [{"code": "CONFLICT"}], "clientSecret": None}
    done = (await gql(live, token, disable, {"id": node_id, "v": 2}))["data"]["disableOAuthClient"]
    assert done == {"userErrors": [], "oauthClient": {"enabled": False, "version": 3}}
    assert (await gql(live, token, read, {"id": node_id}))["data"]["node"] == {"version": 3,
                                                                              "scopes": ["programme:read"]}  # fmt: skip


async def test_person_changes_carry_the_version_read_and_a_stale_one_is_refused(
    live: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    token = await admin_token(live, world)
    coordinator = world.people["coordinator"]
    user_id = str(to_global_id("User", coordinator.id))
    south = str(to_global_id("Region", world.south.id))
    regions = """mutation($id: ID!, $v: Int, $r: ID!) { setUserRegions(input: {userId: $id, version: $v,
        regionIds: [$r]}) { userErrors { field code } user { version regions { slug } } } }"""
    moved = (await gql(live, token, regions, {"id": user_id, "v": 1, "r": south}))["data"]["setUserRegions"]
    assert moved == {"userErrors": [], "user": {"version": 2, "regions": [{"slug": "south"}]}}
    for mutation, extra in (("setUserRole", ", role: ORG_ADMIN"), ("disableUser", ""), ("resetUserPassword", "")):
        stale = f"""mutation($id: ID!) {{ {mutation}(input: {{userId: $id, version: 1{extra}}}) {{
            userErrors {{ field code }} password user {{ version }} }} }}"""
        answer = (await gql(live, token, stale, {"id": user_id}))["data"][mutation]
        assert answer == {"userErrors": [{"field": "input.version", "code": "CONFLICT"}], "password": None,
                          "user": None}, mutation  # fmt: skip
    stored = await db.scalar(sa.select(User).where(User.id == coordinator.id).execution_options(populate_existing=True))
    assert stored is not None
    assert (stored.version, stored.is_active, stored.role.value) == (2, True, "coordinator")
    disable = """mutation($id: ID!) { disableUser(input: {userId: $id, version: 2}) { userErrors { code }
        user { active version } } }"""
    assert (await gql(live, token, disable, {"id": user_id}))["data"]["disableUser"] == {
        "userErrors": [], "user": {"active": False, "version": 3}}  # fmt: skip
