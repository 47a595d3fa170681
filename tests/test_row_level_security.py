"""Fail-closed row-level security (migration 0006), proved table by table as the non-owner role.

The demo data set (two organisations, three regions each, every programme table filled) plus one row of each
credential table per organisation is written as the owner; then the test's transaction switches to
``programme_app_test``, the non-owner role the HTTP tests' app also runs as, and reads every tenant table
without a single WHERE clause: unbound, bound to one organisation, bound to one region.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from programme_api.config import Settings
from programme_api.db import create_engine
from programme_api.domain.demo import load_demo
from programme_api.domain.models import (
    EmailKind,
    Facilitator,
    FacilitatorCheck,
    FacilitatorCheckKind,
    IdempotencyRecord,
    NotificationEmail,
    OAuthAuthorizationCode,
    OAuthClient,
    OAuthClientRegion,
    OAuthToken,
    Organisation,
    OutboxEvent,
    Region,
    SafeguardingAlert,
    SignInSessionRecord,
    TrustedDocument,
    User,
    UserEmail,
    WebhookDelivery,
    WebhookSubscription,
    utcnow,
)
from programme_api.domain.tenancy import bind_tenant, bind_tenant_of, tenant_of

from .conftest import APP_ROLE, drop_postgres_database, empty_database_url, grant_app_role, migrate

REGION_SCOPED = ("groups", "participants", "group_sessions", "enrolments", "safeguarding_alerts", "attendance")


async def tenant_tables(db: AsyncSession) -> list[str]:
    """Every table with an ``organisation_id``, from the catalogue (so a new table cannot be forgotten)."""
    found = await db.scalars(
        sa.text(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND column_name = 'organisation_id' ORDER BY table_name"
        )
    )
    return list(found)


async def add_credentials(db: AsyncSession, organisation: Organisation) -> None:
    """One row in each credential table the demo does not fill, for ``organisation``."""
    region = await db.scalar(sa.select(Region).where(Region.organisation_id == organisation.id).limit(1))
    user = await db.scalar(sa.select(User).where(User.organisation_id == organisation.id).limit(1))
    assert region is not None
    assert user is not None
    facilitator = await db.scalar(sa.select(Facilitator).where(Facilitator.organisation_id == organisation.id).limit(1))
    assert facilitator is not None
    tag = uuid.uuid4().hex
    client = OAuthClient(
        organisation_id=organisation.id,
        client_id=f"rls-{tag}",
        client_secret_hash=None,
        name="RLS probe",
        scope="programme:read",
        grant_types=["client_credentials"],
        redirect_uris=[],
    )
    db.add(client)
    await db.flush()
    later = utcnow() + timedelta(hours=1)
    db.add_all(
        [
            OAuthClientRegion(organisation_id=organisation.id, client_pk=client.id, region_id=region.id),
            OAuthToken(
                organisation_id=organisation.id,
                jti=tag,
                family_id=uuid.uuid4(),
                client_pk=client.id,
                scope="programme:read",
                access_expires_at=later,
            ),
            OAuthAuthorizationCode(
                organisation_id=organisation.id,
                code_hash=tag,
                client_pk=client.id,
                user_id=user.id,
                redirect_uri="https://x.example/cb",
                scope="programme:read",
                code_challenge="x" * 43,
                code_challenge_method="S256",
                expires_at=later,
            ),
            TrustedDocument(
                organisation_id=organisation.id,
                client_pk=client.id,
                sha256=tag + tag,
                document_id=tag,
                document="{ viewer { subject } }",
            ),
            FacilitatorCheck(
                organisation_id=organisation.id,
                facilitator_id=facilitator.id,
                kind=FacilitatorCheckKind.TRAINING,
                completed_on=date(2026, 1, 5),
                recorded_by="probe",
            ),
            IdempotencyRecord(
                organisation_id=organisation.id,
                actor_id="probe",
                operation="probe",
                key=tag,
                request_hash="0" * 64,
                response={},
            ),
            SignInSessionRecord(
                token_hash=tag + tag, organisation_id=organisation.id, user_id=user.id, expires_at=later
            ),
        ]
    )
    await db.flush()
    await add_notifications(db, organisation, client)


async def add_notifications(db: AsyncSession, organisation: Organisation, client: OAuthClient) -> None:
    """One row in each change-notification table (outbox, webhooks, safeguarding emails) for ``organisation``."""
    now = utcnow()
    event = OutboxEvent(organisation_id=organisation.id, event_type="session.cancelled", subject_id=uuid.uuid4(),
                        payload={"ids": {}, "fields": {}})  # fmt: skip
    subscription = WebhookSubscription(organisation_id=organisation.id, client_pk=client.id,
                                       url="https://x.example/hooks", event_types=["session.cancelled"],
                                       secret="whsec_probe")  # fmt: skip
    db.add_all([event, subscription])
    await db.flush()
    db.add(WebhookDelivery(organisation_id=organisation.id, subscription_id=subscription.id, event_id=event.id,
                           event_type=event.event_type, next_attempt_at=now))  # fmt: skip
    alert = await db.scalar(
        sa.select(SafeguardingAlert).where(SafeguardingAlert.organisation_id == organisation.id).limit(1)
    )
    if alert is not None:
        db.add(NotificationEmail(organisation_id=organisation.id, alert_id=alert.id, kind=EmailKind.RAISED,
                                 next_attempt_at=now))  # fmt: skip
    await db.flush()


@dataclass
class Filled:
    """A committed database with every tenant table filled: its engine and the demo's organisations."""

    engine: AsyncEngine
    organisations: list[Organisation]


@pytest.fixture(scope="module")
async def filled(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Filled]:
    """Built once for the module (loading the demo takes seconds): migrated, granted, filled, committed."""
    url = await empty_database_url("postgresql", tmp_path_factory.mktemp("rls"), "rls")
    engine = create_engine(Settings(database_url=url))
    try:
        await migrate(engine)
        await grant_app_role(engine)
        async with AsyncSession(engine, expire_on_commit=False) as db:
            await load_demo(db)
            organisations = list(await db.scalars(sa.select(Organisation).order_by(Organisation.slug)))
            for organisation in organisations:
                await add_credentials(db, organisation)
            await db.commit()
        yield Filled(engine, organisations)
    finally:
        await engine.dispose()
        await drop_postgres_database(make_url(url).database or "")


@pytest.fixture
async def db(filled: Filled) -> AsyncIterator[AsyncSession]:
    """A session on the filled database whose transaction runs as the app role, rolled back afterwards."""
    async with filled.engine.connect() as connection:
        transaction = await connection.begin()
        await connection.execute(sa.text(f"SET LOCAL ROLE {APP_ROLE}"))
        async with AsyncSession(connection, expire_on_commit=False) as db:
            yield db
        await transaction.rollback()


@pytest.fixture
def world(filled: Filled) -> list[Organisation]:
    return filled.organisations


async def count(db: AsyncSession, table: str, where: str = "true") -> int:
    return int(await db.scalar(sa.text(f"SELECT count(*) FROM {table} WHERE {where}")) or 0)


async def test_unbound_the_app_role_sees_no_row_of_any_tenant_table(
    db: AsyncSession, world: list[Organisation]
) -> None:
    tables = await tenant_tables(db)
    assert len(tables) >= 22
    await db.execute(
        sa.text("SELECT set_config('app.organisation_id', '', true), set_config('app.region_ids', '', true)")
    )

    seen = {table: await count(db, table) for table in [*tables, "organisations"]}
    # Shared survey instruments belong to no organisation and stay readable: they are not tenant data.
    assert seen.pop("survey_instruments") == await count(db, "survey_instruments", "organisation_id IS NULL")
    assert seen == dict.fromkeys(seen, 0)

    await db.execute(sa.text("RESET ROLE"))  # the owner sees the rows the app role did not
    assert all([await count(db, table) > 0 for table in seen])


async def test_unbound_the_app_role_cannot_write(db: AsyncSession, world: list[Organisation]) -> None:
    organisation = world[0]
    attempts = [
        f"INSERT INTO regions (id, organisation_id, slug, name, created_at, version) "
        f"VALUES (gen_random_uuid(), '{organisation.id}', 'smuggled', 'Smuggled', now(), 1)",
        "INSERT INTO organisations (id, slug, name, timezone, suppression_threshold, created_at, version) "
        "VALUES (gen_random_uuid(), 'smuggled', 'Smuggled', 'UTC', 5, now(), 1)",
        f"UPDATE groups SET name = 'renamed' WHERE organisation_id = '{organisation.id}'",
    ]
    for statement in attempts[:2]:
        with pytest.raises(DBAPIError, match="row-level security"):
            async with db.begin_nested():
                await db.execute(sa.text(statement))
    # An UPDATE finds no row to change: nothing is visible.
    assert (await db.execute(sa.text(attempts[2]))).rowcount == 0  # type: ignore[attr-defined]


async def test_bound_to_an_organisation_every_table_shows_only_its_rows(
    db: AsyncSession, world: list[Organisation]
) -> None:
    tables = await tenant_tables(db)
    await db.execute(sa.text("RESET ROLE"))
    owned = {(table, o.id): await count(db, table, f"organisation_id = '{o.id}'") for table in tables for o in world}
    await db.execute(sa.text(f"SET LOCAL ROLE {APP_ROLE}"))
    for organisation in world:
        await bind_tenant(db, organisation.id, regions=None)
        for table in tables:
            visible = set(await db.scalars(sa.text(f"SELECT DISTINCT organisation_id FROM {table}")))
            allowed: set[uuid.UUID | None] = {organisation.id}
            if table == "survey_instruments":
                allowed.add(None)  # the shipped instruments, shared by every organisation
            if table == "evaluation_projects":
                allowed |= {o.id for o in world}  # a project it takes part in, owned by another
            if table in ("evaluation_project_invitations", "evaluation_project_organisations"):
                allowed |= {o.id for o in world}  # the owner sees whom it invited to its project, and their answer
            assert visible <= allowed, table
            mine = await count(db, table, f"organisation_id = '{organisation.id}'")
            assert mine == owned[(table, organisation.id)], table
        assert await count(db, "organisations") == 1
    assert all(owned[("groups", o.id)] > 0 for o in world)


async def test_bound_to_a_region_the_region_tables_show_only_its_rows(
    db: AsyncSession, world: list[Organisation]
) -> None:
    organisation = world[0]
    await bind_tenant(db, organisation.id, regions=None)
    everywhere = {table: await count(db, table) for table in REGION_SCOPED}
    region_id = await db.scalar(sa.select(Region.id).where(Region.organisation_id == organisation.id).limit(1))
    in_region = {
        "groups": f"region_id = '{region_id}'",
        "participants": f"region_id = '{region_id}'",
        "group_sessions": f"group_id IN (SELECT id FROM groups WHERE region_id = '{region_id}')",
        "enrolments": f"group_id IN (SELECT id FROM groups WHERE region_id = '{region_id}')",
        "safeguarding_alerts": f"group_id IN (SELECT id FROM groups WHERE region_id = '{region_id}')",
        "attendance": "session_id IN (SELECT s.id FROM group_sessions s JOIN groups g ON g.id = s.group_id "
        f"WHERE g.region_id = '{region_id}')",
    }
    expected = {table: await count(db, table, in_region[table]) for table in REGION_SCOPED}

    await bind_tenant(db, organisation.id, regions=frozenset({region_id}))
    seen = {table: await count(db, table) for table in REGION_SCOPED}
    assert seen == expected
    assert all(0 < seen[table] < everywhere[table] for table in REGION_SCOPED if table != "safeguarding_alerts")
    assert await count(db, "facilitators") > 0  # organisation-wide tables are not narrowed by region

    await bind_tenant(db, organisation.id, regions=frozenset())  # a coordinator without regions
    assert {table: await count(db, table) for table in REGION_SCOPED} == dict.fromkeys(REGION_SCOPED, 0)
    # The organisation alone does not mean "every region": without the explicit marker, nothing.
    await db.execute(sa.text("SELECT set_config('app.region_ids', '', true)"))
    assert await count(db, "groups") == 0


async def test_bound_to_a_region_attendance_is_written_only_for_its_sessions(
    db: AsyncSession, world: list[Organisation]
) -> None:
    """The write check of ``attendance`` follows each mark's own session (migration 0016): a mark for a session
    of the bound region is written, one for another region's session of the same organisation is refused, and
    moving a mark to another region's session is refused too."""
    organisation = world[0]
    await bind_tenant(db, organisation.id, regions=None)
    sessions = (
        await db.execute(
            sa.text(
                "SELECT DISTINCT ON (g.region_id) g.region_id, s.id FROM group_sessions s JOIN groups g"
                " ON g.id = s.group_id WHERE g.organisation_id = :o ORDER BY g.region_id, s.starts_at"
            ),
            {"o": organisation.id},
        )
    ).all()
    (region, ours), (_, theirs) = sessions[0], sessions[1]
    participant = await db.scalar(sa.text("SELECT id FROM participants WHERE organisation_id = :o LIMIT 1"),
                                  {"o": organisation.id})  # fmt: skip
    await bind_tenant(db, organisation.id, regions=frozenset({region}))

    def mark(session: uuid.UUID) -> sa.TextClause:
        return sa.text(
            "INSERT INTO attendance (id, organisation_id, session_id, participant_id, status, recorded_at)"
            f" VALUES (gen_random_uuid(), '{organisation.id}', '{session}', '{participant}', 'present', now())"
            " RETURNING id"
        )

    with pytest.raises(DBAPIError, match="row-level security"):
        async with db.begin_nested():
            await db.execute(mark(theirs))
    async with db.begin_nested():
        written = await db.scalar(mark(ours))
    assert await count(db, "attendance", f"id = '{written}'") == 1
    with pytest.raises(DBAPIError, match="row-level security"):
        async with db.begin_nested():
            await db.execute(sa.text(f"UPDATE attendance SET session_id = '{theirs}' WHERE id = '{written}'"))


async def test_a_key_binds_its_own_organisation_and_an_unknown_key_binds_nothing(
    db: AsyncSession, world: list[Organisation]
) -> None:
    organisation = world[1]
    assert await tenant_of(db, "organisation_slug", organisation.slug) == organisation.id
    await bind_tenant_of(db, "organisation_slug", organisation.slug)
    assert await count(db, "organisations") == 1
    assert await count(db, "users", f"organisation_id <> '{organisation.id}'") == 0
    assert await count(db, "users") > 0
    assert await tenant_of(db, "organisation_slug", "no-such-organisation") is None
    await bind_tenant_of(db, "email", "nobody@nowhere.example")
    assert await count(db, "users") == 0


async def test_an_owner_withdraws_another_organisation_but_cannot_take_part_for_it(
    db: AsyncSession, world: list[Organisation]
) -> None:
    await db.execute(sa.text("RESET ROLE"))
    project_id, owner_id = (await db.execute(sa.text("SELECT id, organisation_id FROM evaluation_projects"))).one()
    partner_id = next(o.id for o in world if o.id != owner_id)
    await db.execute(sa.text(f"SET LOCAL ROLE {APP_ROLE}"))
    await bind_tenant(db, owner_id, regions=None)
    assert await count(db, "evaluation_project_invitations", f"organisation_id = '{partner_id}'") == 1
    withdrawn = await db.execute(
        sa.text(f"DELETE FROM evaluation_project_organisations WHERE organisation_id = '{partner_id}'")
    )
    assert withdrawn.rowcount == 1  # type: ignore[attr-defined]
    with pytest.raises(DBAPIError, match="row-level security"):
        async with db.begin_nested():
            await db.execute(sa.text(
                "INSERT INTO evaluation_project_organisations (id, organisation_id, evaluation_project_id) "
                f"VALUES (gen_random_uuid(), '{partner_id}', '{project_id}')"
            ))  # fmt: skip
    # The partner sees its own invitation and the project it is about, and only it can take part again.
    await bind_tenant(db, partner_id, regions=None)
    assert await count(db, "evaluation_project_invitations") == 1
    assert await count(db, "evaluation_projects", f"id = '{project_id}'") == 1
    await db.execute(sa.text(
        "INSERT INTO evaluation_project_organisations (id, organisation_id, evaluation_project_id) "
        f"VALUES (gen_random_uuid(), '{partner_id}', '{project_id}')"
    ))  # fmt: skip


async def test_the_app_role_cannot_list_another_organisations_sign_in_emails(
    db: AsyncSession, world: list[Organisation]
) -> None:
    """``user_emails`` holds every organisation's emails in one table that is not distributed; the app role
    lists only its bound organisation's rows, and learns of another organisation's email only what
    ``programme_tenant_of`` answers for that one exact email: the organisation. It cannot claim, move or free
    another organisation's email either."""
    ours, theirs = world
    await db.execute(sa.text("RESET ROLE"))
    emails = {o.id: set(await db.scalars(sa.select(UserEmail.email).where(UserEmail.organisation_id == o.id)))
              for o in world}  # fmt: skip
    assert all(emails.values())
    theirs_one = min(emails[theirs.id])
    await db.execute(sa.text(f"SET LOCAL ROLE {APP_ROLE}"))

    assert await count(db, "user_emails") == 0  # unbound: nothing
    await bind_tenant(db, ours.id, regions=None)
    assert set(await db.scalars(sa.text("SELECT email FROM user_emails"))) == emails[ours.id]
    assert await count(db, "user_emails", f"email = '{theirs_one}'") == 0
    assert await tenant_of(db, "email", theirs_one) == theirs.id

    for statement in (
        f"UPDATE user_emails SET email = 'moved@example.org' WHERE email = '{theirs_one}'",
        f"DELETE FROM user_emails WHERE email = '{theirs_one}'",
    ):
        assert (await db.execute(sa.text(statement))).rowcount == 0  # type: ignore[attr-defined]
    with pytest.raises(DBAPIError, match="row-level security"):
        async with db.begin_nested():
            await db.execute(sa.text(
                "INSERT INTO user_emails (email, user_id, organisation_id) "
                f"VALUES ('smuggled@example.org', gen_random_uuid(), '{theirs.id}')"
            ))  # fmt: skip
    assert await tenant_of(db, "email", theirs_one) == theirs.id
