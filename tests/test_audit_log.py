"""The audit log for admins (GraphQL ``auditEvents``), and audit rows that no one can change or delete."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from programme_api.domain.models import ActorType, AuditEvent, Organisation, Role
from programme_api.schema.relay import to_global_id

from .api import GraphQLClient
from .factories import add, make_organisation, make_participant, make_region, principal_for

START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
EVENTS = """query($f: AuditEventFilter, $first: Int, $after: String, $last: Int, $before: String) {
  auditEvents(filter: $f, first: $first, after: $after, last: $last, before: $before) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id action actorType actorId targetType targetId occurredAt details } } } }"""


async def seed(db: AsyncSession, organisation: Organisation, count: int = 6) -> list[AuditEvent]:
    """Events an hour apart, alternating two actors and actions; the last is a read naming two rows."""
    events = []
    for n in range(count):
        events.append(await add(db, AuditEvent(
            organisation_id=organisation.id, occurred_at=START + timedelta(hours=n),
            actor_type=ActorType.USER if n % 2 == 0 else ActorType.CLIENT, actor_id=f"actor-{n % 2}",
            action="group.update" if n % 2 == 0 else "group.create", target_type="Group",
            target_id=str(uuid.UUID(int=n + 1)), request_id=f"r{n}", details={"n": n})))  # fmt: skip
    return events


def actions(data: dict[str, Any]) -> list[int]:
    return [edge["node"]["details"]["n"] for edge in data["auditEvents"]["edges"]]


async def test_admins_page_their_organisations_events_newest_first(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    await seed(db, organisation)
    await seed(db, await make_organisation(db))  # another tenant's log: never seen
    admin = principal_for(organisation, role=Role.ORG_ADMIN)
    only_seeded = {"occurredBefore": (START + timedelta(days=1)).isoformat()}

    first = (await gql.data(EVENTS, {"f": only_seeded, "first": 4}, as_=admin))["auditEvents"]
    assert [e["node"]["details"]["n"] for e in first["edges"]] == [5, 4, 3, 2]
    assert first["totalCount"] == 6
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    rest = await gql.data(EVENTS, {"f": only_seeded, "first": 4, "after": first["pageInfo"]["endCursor"]}, as_=admin)
    assert actions(rest) == [1, 0]
    assert rest["auditEvents"]["pageInfo"]["hasNextPage"] is False
    assert rest["auditEvents"]["pageInfo"]["hasPreviousPage"] is True

    before = rest["auditEvents"]["pageInfo"]["startCursor"]
    back = await gql.data(EVENTS, {"f": only_seeded, "last": 2, "before": before}, as_=admin)
    assert actions(back) == [3, 2]
    assert back["auditEvents"]["pageInfo"]["hasPreviousPage"] is True
    assert actions(await gql.data(EVENTS, {"f": only_seeded, "last": 2}, as_=admin)) == [1, 0]
    node = first["edges"][0]["node"]
    assert node["actorType"] == "CLIENT"
    assert node["occurredAt"].startswith("2026-11-01T14:00:00")


async def test_audit_events_filter_by_actor_action_target_and_time(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    events = await seed(db, organisation)
    admin = principal_for(organisation)

    async def found(where: dict[str, Any]) -> list[int]:
        return sorted(actions(await gql.data(EVENTS, {"f": where}, as_=admin)))

    assert await found({"actorId": "actor-1"}) == [1, 3, 5]
    assert await found({"actorType": "USER", "action": "group.update"}) == [0, 2, 4]
    assert await found({"action": "group.create", "occurredFrom": (START + timedelta(hours=3)).isoformat(),
                        "occurredBefore": (START + timedelta(hours=5)).isoformat()}) == [3]  # fmt: skip
    assert await found({"targetType": "Group", "targetId": events[2].target_id}) == [2]
    assert await found({"targetType": "Region"}) == []


async def test_a_target_id_finds_the_reads_that_listed_it(db: AsyncSession, gql: GraphQLClient) -> None:
    """Given a contact-details read of two participants, the admin finds it by either participant's global ID."""
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    people = [await make_participant(db, region) for _ in range(2)]
    reader = principal_for(organisation, scopes={"participants:read"}, role=None)
    await gql.data("{ participants { nodes { contactEmail } } }", as_=reader)

    admin = principal_for(organisation)
    for person in people:
        where = {"targetId": to_global_id("Participant", person.id), "action": "Participant.read"}
        data = await gql.data(EVENTS, {"f": where}, as_=admin)
        [edge] = data["auditEvents"]["edges"]
        assert edge["node"]["actorId"] == reader.subject
        assert edge["node"]["details"]["fields"] == ["contactEmail"]
    stranger = {"targetId": str(uuid.uuid4()), "action": "Participant.read"}
    assert (await gql.data(EVENTS, {"f": stranger}, as_=admin))["auditEvents"]["totalCount"] == 0


async def test_only_admins_read_the_audit_log(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    await seed(db, organisation, count=1)
    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[await make_region(db, organisation)])
    body = await gql.execute(EVENTS, as_=coordinator)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    [event] = (await db.execute(sa.select(AuditEvent).where(AuditEvent.organisation_id == organisation.id))).all()
    node = await gql.execute("query($id: ID!) { node(id: $id) { id } }",
                             {"id": to_global_id("AuditEvent", event[0].id)}, as_=coordinator)  # fmt: skip
    assert node["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"


@pytest.mark.parametrize("change", ["UPDATE audit_events SET action = 'nothing.happened'", "DELETE FROM audit_events"])
async def test_audit_rows_cannot_be_updated_or_deleted(db: AsyncSession, connection: AsyncConnection,
                                                       change: str) -> None:  # fmt: skip
    organisation = await make_organisation(db)
    [event] = await seed(db, organisation, count=1)
    await db.commit()  # a savepoint released inside the test's transaction
    nested = await connection.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        await connection.execute(sa.text(f"{change} WHERE id = :id"), {"id": event.id.hex if _sqlite(db) else event.id})
    await nested.rollback()
    stored = (await connection.execute(sa.select(AuditEvent.action).where(AuditEvent.id == event.id))).scalar_one()
    assert stored == "group.update"


def _sqlite(db: AsyncSession) -> bool:
    return db.get_bind().dialect.name == "sqlite"


@pytest.mark.only_backend("postgresql")
async def test_audit_rows_cannot_be_truncated_on_postgresql(db: AsyncSession, connection: AsyncConnection) -> None:
    await seed(db, await make_organisation(db), count=1)
    await db.commit()
    nested = await connection.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        await connection.execute(sa.text("TRUNCATE audit_events CASCADE"))
    await nested.rollback()


@pytest.mark.only_backend("postgresql")
async def test_migration_revokes_update_and_delete_from_the_services_role(backend: str, tmp_path: Any) -> None:
    """Given a service role granted every privilege on the tables (as operators grant ``ALL TABLES``), after
    the upgrade it may still read and add audit rows, but not change, delete or truncate them."""
    from sqlalchemy.engine import make_url

    from programme_api import migrations
    from programme_api.config import Settings
    from programme_api.db import create_engine

    from .conftest import drop_postgres_database, empty_database_url

    url = await empty_database_url(backend, tmp_path, "audit_grants")
    engine = create_engine(Settings(database_url=url))
    role = f"programme_audit_service_{uuid.uuid4().hex[:8]}"
    try:
        async with engine.connect() as connection:
            await connection.run_sync(lambda c: migrations.upgrade(c, "0002"))
            await connection.execute(sa.text(f'CREATE ROLE "{role}" NOLOGIN'))
            await connection.execute(sa.text(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"'))
            await connection.run_sync(lambda c: migrations.upgrade(c))
            privileges = {
                privilege: (await connection.execute(
                    sa.text("SELECT has_table_privilege(:role, 'audit_events', :privilege)"),
                    {"role": role, "privilege": privilege})).scalar_one()
                for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
            }  # fmt: skip
            assert privileges == {"SELECT": True, "INSERT": True, "UPDATE": False, "DELETE": False, "TRUNCATE": False}
            assert (await connection.execute(
                sa.text("SELECT has_table_privilege(:role, 'groups', 'UPDATE')"), {"role": role})).scalar_one()  # fmt: skip
            await connection.execute(sa.text(f'DROP OWNED BY "{role}"'))
            await connection.execute(sa.text(f'DROP ROLE "{role}"'))
            await connection.commit()
    finally:
        await engine.dispose()
        await drop_postgres_database(make_url(url).database or "")
