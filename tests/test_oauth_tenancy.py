"""The row-level security backstop (migrations 0002 and 0006), ``bind_tenant``, and the HTTP tests' role.

The proof runs a deliberately unfiltered query as a non-superuser, non-owner role (created inside the test's
rolled-back transaction), the way the production application role connects.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from programme_api.domain.models import Region
from programme_api.domain.tenancy import bind_tenant
from programme_api.runtime import Runtime

from .api import TokenBook
from .conftest import APP_ROLE
from .factories import become_unprivileged_role, make_organisation, make_region


async def rows(db: AsyncSession, sql: str) -> set[uuid.UUID]:
    return {uuid.UUID(str(value)) for value in (await db.execute(sa.text(sql))).scalars()}


@pytest.mark.only_backend("sqlite")
async def test_bind_tenant_is_a_no_op_on_sqlite(db: AsyncSession, backend: str) -> None:
    organisation = await make_organisation(db)
    await bind_tenant(db, organisation.id, regions=None)
    assert (await db.execute(sa.text("SELECT 1"))).scalar() == 1


@pytest.mark.only_backend("postgresql")
async def test_an_unfiltered_query_sees_only_the_bound_organisation(
    connection: AsyncConnection, db: AsyncSession, backend: str
) -> None:
    org_a, org_b = await make_organisation(db), await make_organisation(db)
    for organisation in (org_a, org_b):
        await make_region(db, organisation)
        await make_region(db, organisation)
    await db.commit()

    role = await become_unprivileged_role(connection, "SELECT, INSERT ON regions, organisations")
    assert (await connection.execute(sa.text("SELECT current_user"))).scalar() == role

    await bind_tenant(db, org_a.id, regions=None)
    assert await rows(db, "SELECT organisation_id FROM regions") == {org_a.id}  # no WHERE clause, on purpose
    assert await rows(db, "SELECT id FROM organisations") == {org_a.id}
    assert len(await rows(db, "SELECT id FROM regions")) == 2

    async def smuggle_a_row_into_the_other_organisation() -> None:
        async with db.begin_nested():
            db.add(Region(organisation_id=org_b.id, slug="smuggled", name="Smuggled"))
            await db.flush()

    with pytest.raises(DBAPIError, match="row-level security"):
        await smuggle_a_row_into_the_other_organisation()

    await bind_tenant(db, org_b.id, regions=None)
    assert await rows(db, "SELECT organisation_id FROM regions") == {org_b.id}
    await bind_tenant(db, org_a.id, regions=None, also=[org_b.id])  # an evaluation project spanning both
    assert await rows(db, "SELECT organisation_id FROM regions") >= {org_a.id, org_b.id}

    await connection.execute(sa.text("RESET ROLE"))


@pytest.mark.only_backend("postgresql")
async def test_the_table_owner_is_not_limited_so_cli_and_migrations_keep_working(
    db: AsyncSession, backend: str
) -> None:
    org_a, org_b = await make_organisation(db), await make_organisation(db)
    await make_region(db, org_a)
    await make_region(db, org_b)
    await bind_tenant(db, org_a.id, regions=None)
    assert {org_a.id, org_b.id} <= await rows(db, "SELECT organisation_id FROM regions")


@pytest.mark.only_backend("postgresql")
async def test_every_tenant_table_has_the_policy(db: AsyncSession, backend: str) -> None:
    tenant_tables = {
        table
        for (table,) in await db.execute(
            sa.text(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND column_name = 'organisation_id'"
            )
        )
    } | {"organisations"}
    protected = {
        name
        for (name,) in await db.execute(
            sa.text(
                "SELECT c.relname FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid "
                "WHERE p.polname = 'tenant_isolation' AND c.relrowsecurity"
            )
        )
    }
    assert tenant_tables == protected


@pytest.mark.only_backend("postgresql")
async def test_http_tests_run_each_request_as_the_non_owner_role(
    http: tuple[httpx.AsyncClient, TokenBook], db: AsyncSession, backend: str
) -> None:
    """The app under test reads as ``programme_app_test``: an unbound read finds nothing; the test's own
    session is the owner again after the request."""
    organisation = await make_organisation(db)
    await make_region(db, organisation)
    await db.commit()

    async def unbound_probe(request: Request) -> Response:
        async with Runtime.of(request).session_maker() as session:
            role = await session.scalar(sa.text("SELECT current_user"))
            regions = await session.scalar(sa.text("SELECT count(*) FROM regions"))
        return JSONResponse({"role": role, "regions": regions})

    client, _tokens = http
    client._transport.app.app.router.routes.append(Route("/_unbound", unbound_probe))  # type: ignore[attr-defined]
    assert (await client.get("/_unbound")).json() == {"role": APP_ROLE, "regions": 0}
    assert (await db.execute(sa.text("SELECT current_user"))).scalar() != APP_ROLE
    assert await rows(db, "SELECT organisation_id FROM regions") >= {organisation.id}
