"""Rate limits: leaky buckets of cost points per client and per person, in process and in the real Redis.

Each Redis test uses a key prefix of its own, so runs and tests never share a bucket.
"""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.applications import Starlette

from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.domain.models import AuditEvent, OAuthClient
from programme_api.domain.principal import Principal
from programme_api.limiter import Bucket, LocalLimiter, RedisLimiter
from programme_api.oauth import admin

from .api import TokenBook
from .conftest import MigratedDatabase, as_app_role
from .factories import make_group, make_organisation, make_region, principal_for
from .oauth_support import ISSUER, build_app, make_client, oauth_settings
from .test_oauth_cli import cli_settings, invoke, query  # noqa: F401 (a fixture, found by its name)

REDIS_URL = "redis://127.0.0.1:6379/0"
QUERY = "{ groups(first: 10) { nodes { name } } }"  # 11 points


async def redis_reachable() -> bool:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


@pytest.fixture(params=["in-process", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """Settings that put the buckets in this process or in the real Redis (under a fresh prefix)."""
    if request.param == "in-process":
        yield {"redis_url": None}
        return
    if not await redis_reachable():
        pytest.skip("Redis at 127.0.0.1:6379 unreachable")
    prefix = f"programme-api-test:{uuid.uuid4().hex}:"
    yield {"redis_url": REDIS_URL, "rate_limit_redis_prefix": prefix}
    client = Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


AppFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def apps(  # type: ignore[no-untyped-def]
    migrated_database: MigratedDatabase, session_maker: Any, connection: AsyncConnection, store: dict[str, Any]
) -> AsyncIterator[tuple[AppFactory, TokenBook]]:
    """Builds apps (workers) with the given settings, all sharing one token book and the test's transaction."""
    tokens = TokenBook()
    opened: list[httpx.AsyncClient] = []
    built: list[Starlette] = []

    def factory(**overrides: Any) -> httpx.AsyncClient:
        settings = migrated_database.settings.model_copy(update={**store, **overrides})
        app = create_app(settings, engine=migrated_database.engine, session_maker=session_maker,
                         authenticate=tokens.authenticate)  # fmt: skip
        built.append(app)
        served = as_app_role(app, migrated_database.backend, connection)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://t")
        opened.append(client)
        return client

    yield factory, tokens
    for client in opened:
        await client.aclose()
    for app in built:
        await app.state.rate_limits.close()


async def busy_organisation(db: AsyncSession) -> Any:
    """An organisation with 40 groups, so that ``EXPENSIVE`` really returns (and costs) 41 points."""
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    for _ in range(40):
        await make_group(db, region)
    return organisation


EXPENSIVE = "{ groups(first: 40) { nodes { id } } }"


async def ask(client: httpx.AsyncClient, tokens: TokenBook, principal: Principal, query: str = QUERY) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={"query": query},
        headers={"Authorization": f"Bearer {tokens.issue(principal)}", "Accept": "application/graphql-response+json"},
    )


async def test_a_client_over_its_points_gets_429_throttled(apps, db: AsyncSession) -> None:  # type: ignore[no-untyped-def]
    factory, tokens = apps
    worker = factory(rate_limit_points=100, rate_limit_refill_seconds=10_000)
    caller = principal_for(await busy_organisation(db))
    answers = [await ask(worker, tokens, caller, "{ groups(first: 10) { totalCount } }") for _ in range(10)]
    # 1 point each: a connection without items selected; 100 fit
    assert all(answer.status_code == 200 for answer in answers)
    assert answers[-1].headers["RateLimit-Limit"] == "100"
    assert answers[-1].headers["RateLimit-Remaining"] == "90"
    assert int(answers[-1].headers["RateLimit-Reset"]) > 0
    expensive = [await ask(worker, tokens, caller, EXPENSIVE) for _ in range(3)]
    assert [answer.status_code for answer in expensive] == [200, 200, 429]  # 41 points each: 90 - 82 = 8 left
    refused = expensive[-1]
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Remaining"] in ("8", "9")
    body = refused.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 41
    # a cheap query still fits in what is left
    assert (await ask(worker, tokens, caller, "{ viewer { subject } }")).status_code == 200


async def test_buckets_refill_at_the_restore_rate(apps, db: AsyncSession) -> None:  # type: ignore[no-untyped-def]
    factory, tokens = apps
    worker = factory(rate_limit_points=50, rate_limit_refill_seconds=1)  # 50 points a second
    caller = principal_for(await busy_organisation(db))
    query = EXPENSIVE
    assert (await ask(worker, tokens, caller, query)).status_code == 200
    refused = await ask(worker, tokens, caller, query)
    assert refused.status_code == 429
    assert refused.json()["extensions"]["cost"]["throttleStatus"]["restoreRate"] == 50.0
    await asyncio.sleep(int(refused.headers["Retry-After"]))
    assert (await ask(worker, tokens, caller, query)).status_code == 200


async def test_the_person_has_a_bucket_across_clients(apps, db: AsyncSession) -> None:  # type: ignore[no-untyped-def]
    factory, tokens = apps
    worker = factory(rate_limit_points=60, rate_limit_refill_seconds=10_000)
    person = dataclasses.replace(principal_for(await busy_organisation(db)), user_id=uuid.uuid4())
    through_a = dataclasses.replace(person, client_id=f"a-{secrets.token_hex(4)}")
    through_b = dataclasses.replace(person, client_id=f"b-{secrets.token_hex(4)}")
    query = EXPENSIVE
    assert (await ask(worker, tokens, through_a, query)).status_code == 200
    assert (await ask(worker, tokens, through_b, query)).status_code == 429  # each client has 60, the person 19


@pytest.mark.parametrize("store", ["redis"], indirect=True)
async def test_workers_share_buckets_through_redis(apps, db: AsyncSession) -> None:  # type: ignore[no-untyped-def]
    factory, tokens = apps
    workers = [factory(rate_limit_points=100, rate_limit_refill_seconds=10_000) for _ in range(2)]
    caller = principal_for(await busy_organisation(db))
    query = EXPENSIVE
    statuses = [(await ask(workers[i % 2], tokens, caller, query)).status_code for i in range(3)]
    assert statuses == [200, 200, 429]


async def test_the_admin_sets_a_clients_own_limit(apps, db: AsyncSession) -> None:  # type: ignore[no-untyped-def]
    factory, tokens = apps
    worker = factory(rate_limit_points=5000)
    organisation = await make_organisation(db)
    registered = await make_client(db, organisation, "programme:read")
    await admin.set_client_rate_limit(db, registered.client_id, 30)
    await db.flush()
    caller = dataclasses.replace(principal_for(organisation, role=None), client_id=registered.client_id)
    answer = await ask(worker, tokens, caller, "{ groups(first: 10) { nodes { id } } }")
    assert answer.headers["RateLimit-Limit"] == "30"
    assert answer.json()["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 30
    # a query dearer than the client's whole bucket can never run: refused as too costly, naming its limit
    dear = await ask(worker, tokens, caller, "{ groups(first: 40) { nodes { id } } }")
    assert dear.json()["errors"][0]["extensions"]["allowedQueryCost"] == 30
    with pytest.raises(Exception, match="at least 1"):
        await admin.set_client_rate_limit(db, registered.client_id, 0)


@pytest.mark.parametrize("backend_kind", ["in-process", "redis"])
async def test_concurrent_takes_never_overspend(backend_kind: str) -> None:
    """Forty takes at once of 10 points from a 100-point bucket: exactly ten succeed (atomic check and take)."""
    if backend_kind == "redis":
        if not await redis_reachable():
            pytest.skip("Redis at 127.0.0.1:6379 unreachable")
        limiter: Any = RedisLimiter(Redis.from_url(REDIS_URL), f"programme-api-test:{uuid.uuid4().hex}:")
    else:
        limiter = LocalLimiter()
    bucket = Bucket("race", 100.0, 0.001)
    outcomes = await asyncio.gather(*[limiter.take([bucket], 10) for _ in range(40)])
    assert sum(outcome.allowed for outcome in outcomes) == 10
    if backend_kind == "redis":
        await limiter.redis.delete(limiter.prefix + "race")
        await limiter.close()


@pytest.fixture
async def oauth_web(  # type: ignore[no-untyped-def]
    migrated_database: MigratedDatabase, session_maker: Any, connection: AsyncConnection, tmp_path: Path,
    store: dict[str, Any],
) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    settings = oauth_settings(
        migrated_database.url, tmp_path / "keys.json", auth_rate_limit_requests=3,
        auth_rate_limit_address_requests=5, **store,
    )  # fmt: skip
    app = build_app(settings, migrated_database.engine, session_maker)
    served = as_app_role(app, migrated_database.backend, connection)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url=ISSUER) as client:
        yield client
    await app.state.rate_limits.close()


async def test_token_endpoint_is_throttled_per_client(oauth_web: httpx.AsyncClient, db: AsyncSession) -> None:
    registered = await make_client(db, await make_organisation(db), "programme:read")
    auth = (registered.client_id, registered.client_secret or "")
    statuses = []
    for _ in range(4):
        response = await oauth_web.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["RateLimit-Limit"] == "3"
    assert response.json()["error"] == "temporarily_unavailable"
    # the same client named in the form body is the same bucket
    form = {"grant_type": "client_credentials", "client_id": registered.client_id,
            "client_secret": registered.client_secret or ""}  # fmt: skip
    assert (await oauth_web.post("/oauth/token", data=form)).status_code == 429


async def test_sign_in_endpoints_are_throttled_per_address(oauth_web: httpx.AsyncClient) -> None:
    statuses = []
    for path in ("/login", "/oauth/introspect", "/oauth/authorize", "/login", "/oauth/token", "/login"):
        if path == "/login":
            response = await oauth_web.get(path)
        elif path == "/oauth/authorize":
            response = await oauth_web.get(path, params={"client_id": f"c-{secrets.token_hex(3)}"})
        else:
            response = await oauth_web.post(path, data={"client_id": f"c-{secrets.token_hex(3)}"})
        statuses.append(response.status_code)
    assert 429 not in statuses[:5]
    assert statuses[5] == 429
    assert int(response.headers["Retry-After"]) >= 1
    other_paths = await oauth_web.get("/healthz")
    assert other_paths.status_code == 200


def test_the_admin_sets_a_clients_limit_from_the_command_line(cli_settings: Settings) -> None:  # noqa: F811
    code, out, err = invoke(
        "clients", "create", "--organisation", "acme", "--name", "Booking app", "--scope", "programme:read", "--json"
    )
    assert code == 0, err
    created = json.loads(out)
    code, out, err = invoke("clients", "set-rate-limit", created["client_id"], "250")
    assert code == 0, err
    assert query(cli_settings, sa.select(OAuthClient.rate_limit_points)) == [(250,)]
    changes = query(cli_settings, sa.select(AuditEvent.details).where(AuditEvent.action == "oauth.client_changed"))
    assert changes == [({"rate_limit_points": 250},)]

    async def limit_seen() -> str:
        app = create_app(cli_settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as client:
            auth = (created["client_id"], created["client_secret"])
            issued = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
            answer = await client.post(
                "/graphql",
                json={"query": "{ viewer { subject } }"},
                headers={"Authorization": f"Bearer {issued.json()['access_token']}"},
            )
            await app.state.rate_limits.close()
            return answer.headers["RateLimit-Limit"]

    assert asyncio.run(limit_seen()) == "250"
    assert invoke("clients", "set-rate-limit", created["client_id"], "default")[0] == 0
    assert query(cli_settings, sa.select(OAuthClient.rate_limit_points)) == [(None,)]
    code, _out, err = invoke("clients", "set-rate-limit", created["client_id"], "0")
    assert code == 1
    assert "at least 1" in err
    assert invoke("clients", "set-rate-limit", "no-such-client", "10")[0] == 1
