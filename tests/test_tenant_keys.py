"""Every key of a tenant table holds ``organisation_id``: read from the migrated database's own catalog.

A database sharded by organisation (Citus) distributes each tenant table by ``organisation_id`` and refuses
a primary key, unique constraint or unique index without it, and a foreign key between two distributed tables
that does not hold it on both sides. The migrated schema is read back from the catalog (``pg_constraint`` and
``pg_index`` on PostgreSQL, the ``PRAGMA`` lists on SQLite), not from the models, so a migration that forgets
the rule fails here whatever the models say. A tenant table is any table with an ``organisation_id`` column;
the tables that are not distributed are listed below with their reasons.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from programme_api import migrations
from programme_api.domain.models import Base, Participant

from .factories import make_organisation, make_participant, make_region

ORGANISATION = "organisation_id"

# Tables that are not distributed by organisation, so their own keys need no organisation_id. References
# from tenant tables to them need none either: a sharded database copies reference tables to every node.
NOT_DISTRIBUTED = {
    "organisations": "the tenants themselves (a reference table)",
    "survey_instruments": "shipped instruments have no organisation and every tenant reads them (a reference table)",
    "evaluation_projects": "a project spans the organisations taking part, whose rows name it by id alone "
    "(a reference table)",
    "user_emails": "a person signs in by email before their organisation is known, so the email names its "
    "organisation here, once across the service (a reference table; users.email is unique per organisation)",
    "audit_events": "events without a tenant (a failed sign-in for an unknown email) have no organisation; the "
    "log stays on the coordinator (a local table) and no key refers to it",
}


@dataclass(frozen=True)
class Key:
    """A primary key, unique constraint, unique index or foreign key, as the catalog reports it."""

    table: str
    kind: str  # "primary", "unique" or "foreign"
    name: str
    columns: tuple[str, ...]
    parent: str | None = None
    parent_columns: tuple[str, ...] = ()


POSTGRESQL_TENANT_TABLES = sa.text(
    "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = :column"
)
# Constraints (p, u, f) and unique indexes that back no constraint, with their columns in key order.
POSTGRESQL_KEYS = sa.text("""
    SELECT c.conrelid::regclass::text AS table_name,
           CASE c.contype WHEN 'p' THEN 'primary' WHEN 'u' THEN 'unique' ELSE 'foreign' END AS kind,
           c.conname AS name,
           ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.n) AS columns,
           c.confrelid::regclass::text AS parent,
           ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.n)
               AS parent_columns
    FROM pg_constraint c JOIN pg_namespace s ON s.oid = c.connamespace
    WHERE s.nspname = 'public' AND c.contype IN ('p', 'u', 'f')
    UNION ALL
    SELECT i.indrelid::regclass::text, 'unique', i.indexrelid::regclass::text,
           ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n),
           NULL, '{}'
    FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace
    WHERE s.nspname = 'public' AND i.indisunique
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
""")


async def postgresql_catalog(connection: AsyncConnection) -> tuple[set[str], list[Key]]:
    tenant = set(await connection.scalars(POSTGRESQL_TENANT_TABLES, {"column": ORGANISATION}))
    rows = (await connection.execute(POSTGRESQL_KEYS)).all()
    keys = [
        Key(row.table_name, row.kind, row.name, tuple(row.columns), row.parent, tuple(row.parent_columns or ()))
        for row in rows
        if row.table_name != "alembic_version"
    ]
    return tenant, keys


async def sqlite_catalog(connection: AsyncConnection) -> tuple[set[str], list[Key]]:
    """The same from SQLite's PRAGMA lists: ``index_list`` (unique constraints and the primary key's own
    index; a primary key without one is read from ``table_info``), ``index_info``, ``foreign_key_list``."""
    run = connection.exec_driver_sql
    tables = [
        name
        for (name,) in (await run("SELECT name FROM sqlite_master WHERE type = 'table'")).all()
        if not name.startswith(("sqlite_", "alembic_"))
    ]
    tenant: set[str] = set()
    keys: list[Key] = []
    for table in tables:
        columns = (await run(f"PRAGMA table_info('{table}')")).all()
        if any(column.name == ORGANISATION for column in columns):
            tenant.add(table)
        primary = tuple(column.name for column in sorted(columns, key=lambda c: c.pk) if column.pk)
        if primary:
            keys.append(Key(table, "primary", f"pk_{table}", primary))
        for index in (await run(f"PRAGMA index_list('{table}')")).all():
            if index.unique and index.origin != "pk":
                info = (await run(f"PRAGMA index_info('{index.name}')")).all()
                keys.append(
                    Key(table, "unique", index.name, tuple(c.name for c in sorted(info, key=lambda c: c.seqno)))
                )
        references: dict[int, list[tuple[int, str, str, str]]] = {}
        for reference in (await run(f"PRAGMA foreign_key_list('{table}')")).all():
            references.setdefault(reference.id, []).append((reference.seq, reference.table, reference[3], reference.to))
        for number, parts in references.items():
            parts.sort()
            keys.append(
                Key(
                    table,
                    "foreign",
                    f"foreign key {number}",
                    tuple(part[2] for part in parts),
                    parts[0][1],
                    tuple(part[3] for part in parts),
                )
            )
    return tenant, keys


async def catalog(connection: AsyncConnection) -> tuple[set[str], list[Key]]:
    if connection.dialect.name == "postgresql":
        return await postgresql_catalog(connection)
    return await sqlite_catalog(connection)


def breaches(tenant: set[str], keys: list[Key]) -> list[Key]:
    """The keys of distributed tenant tables that a database sharded by organisation would refuse."""
    distributed = tenant - NOT_DISTRIBUTED.keys()
    found = []
    for key in keys:
        if key.table not in distributed:
            continue
        if key.kind == "foreign" and key.parent in NOT_DISTRIBUTED:
            continue
        if ORGANISATION not in key.columns:
            found.append(key)
        elif key.kind == "foreign" and key.parent_columns[key.columns.index(ORGANISATION)] != ORGANISATION:
            # organisation_id must meet the parent's organisation_id (or organisations.id, exempt above).
            found.append(key)
    return found


async def test_every_key_of_a_tenant_table_holds_its_organisation(connection: AsyncConnection) -> None:
    tenant, keys = await catalog(connection)
    assert {"groups", "participants", "attendance", "users", "oauth_tokens", "sign_in_sessions"} <= tenant
    assert breaches(tenant, keys) == []
    # The exceptions are real: each names a table the catalog has.
    assert NOT_DISTRIBUTED.keys() <= {key.table for key in keys}
    assert ("users", ("email", ORGANISATION)) in {(key.table, key.columns) for key in keys if key.kind == "unique"}


async def test_the_check_finds_a_key_without_the_organisation(connection: AsyncConnection) -> None:
    """Guards the test above: a unique index on one tenant column is reported, by name."""
    await connection.execute(sa.text("CREATE UNIQUE INDEX probe_groups_name ON groups (name) WHERE name = 'probe'"))
    tenant, keys = await catalog(connection)
    assert [(key.table, key.columns) for key in breaches(tenant, keys)] == [("groups", ("name",))]


async def test_models_declare_the_primary_keys_the_migrations_made(connection: AsyncConnection) -> None:
    """``alembic check`` compares unique constraints, indexes and foreign keys but not primary keys."""
    _tenant, keys = await catalog(connection)
    migrated = {key.table: key.columns for key in keys if key.kind == "primary"}
    declared = {table.name: tuple(column.name for column in table.primary_key) for table in Base.metadata.sorted_tables}
    assert declared["groups"] == ("id", ORGANISATION)
    assert migrated == declared


async def test_the_orm_still_knows_a_tenant_row_by_its_id(db: AsyncSession) -> None:
    organisation = await make_organisation(db)
    participant = await make_participant(db, await make_region(db, organisation))
    db.expunge_all()
    found = await db.get(Participant, participant.id)
    assert found is not None
    assert (found.id, found.organisation_id) == (participant.id, organisation.id)


async def test_a_row_cannot_name_another_organisations_row(db: AsyncSession) -> None:
    """The database itself refuses a reference across organisations (the region of another organisation
    here), whatever the code above it checks; the same row naming its own organisation's region is accepted."""
    ours, theirs = await make_organisation(db), await make_organisation(db)
    our_region, their_region = await make_region(db, ours), await make_region(db, theirs)
    insert = sa.insert(Participant).values(organisation_id=ours.id, reference="CROSS-1")
    with pytest.raises(IntegrityError, match=r"fk_participants_region_id_regions|FOREIGN KEY constraint failed"):
        async with db.begin_nested():
            await db.execute(insert.values(region_id=their_region.id))
    await db.execute(insert.values(region_id=our_region.id))
    assert await db.scalar(sa.select(sa.func.count()).where(Participant.reference == "CROSS-1")) == 1


ORGANISATIONS = sa.table(
    "organisations",
    *(sa.column(name, sa.String) for name in ("slug", "name", "timezone")),
    sa.column("id", sa.Uuid),
    sa.column("suppression_threshold", sa.Integer),
    sa.column("version", sa.Integer),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
REGIONS = sa.table(
    "regions",
    *(sa.column(name, sa.Uuid) for name in ("id", "organisation_id")),
    *(sa.column(name, sa.String) for name in ("slug", "name")),
    sa.column("version", sa.Integer),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
PARTICIPANTS = sa.table(
    "participants",
    *(sa.column(name, sa.Uuid) for name in ("id", "organisation_id", "region_id")),
    sa.column("reference", sa.String),
    sa.column("version", sa.Integer),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
USERS = sa.table(
    "users",
    *(sa.column(name, sa.Uuid) for name in ("id", "organisation_id")),
    *(sa.column(name, sa.String) for name in ("email", "display_name", "password_hash", "role")),
    sa.column("is_active", sa.Boolean),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
SIGN_IN_SESSIONS = sa.table(
    "sign_in_sessions",
    sa.column("token_hash", sa.String),
    *(sa.column(name, sa.Uuid) for name in ("user_id", "organisation_id")),
    *(sa.column(name, sa.DateTime(timezone=True)) for name in ("expires_at", "created_at")),
)


async def test_the_migration_keeps_every_row_both_ways(empty_engine: AsyncEngine) -> None:
    """Rows written before the keys changed survive it and its downgrade. On SQLite each table is rebuilt, and
    dropping a parent table with foreign keys on would delete its children (``ON DELETE CASCADE``): the
    participant of a rebuilt region is the proof. A sign-in session gains its person's organisation."""
    organisation, region, participant, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    async with empty_engine.connect() as connection:
        await connection.run_sync(lambda sync: migrations.upgrade(sync, "0011"))
        for statement in (
            ORGANISATIONS.insert().values(
                id=organisation, slug="keys", name="Keys", timezone="UTC", suppression_threshold=10, version=1
            ),
            REGIONS.insert().values(id=region, organisation_id=organisation, slug="north", name="North", version=1),
            PARTICIPANTS.insert().values(
                id=participant, organisation_id=organisation, region_id=region, reference="P-1", version=1
            ),
            USERS.insert().values(
                id=user,
                organisation_id=organisation,
                email="keys@example.org",
                display_name="Keys",
                password_hash="-",
                role="coordinator",
                is_active=True,
            ),
            SIGN_IN_SESSIONS.insert().values(token_hash="f" * 64, user_id=user, expires_at=now),
        ):
            await connection.execute(statement.values(created_at=now))
        await connection.commit()

        await connection.run_sync(lambda sync: migrations.upgrade(sync))
        await connection.commit()
        assert await connection.scalar(sa.select(PARTICIPANTS.c.region_id)) == region
        assert await connection.scalar(sa.select(SIGN_IN_SESSIONS.c.organisation_id)) == organisation

        await connection.run_sync(lambda sync: migrations.downgrade("0011", sync))
        await connection.commit()
        assert await connection.scalar(sa.select(PARTICIPANTS.c.region_id)) == region
        assert await connection.scalar(sa.select(sa.func.count()).select_from(SIGN_IN_SESSIONS)) == 1


USER_EMAILS = sa.table(
    "user_emails", sa.column("email", sa.String), *(sa.column(name, sa.Uuid) for name in ("user_id", "organisation_id"))
)


async def test_the_lookup_of_emails_is_filled_from_users_and_holds_them_unique(empty_engine: AsyncEngine) -> None:
    """Migration 0018: every person's email gets its row in ``user_emails`` on the way up; ``users`` then
    accepts an email in two organisations (only the lookup table refuses it), and on the way down the global
    constraint is back."""
    before = ScriptDirectory.from_config(migrations.alembic_config()).get_revision("0018").down_revision
    organisations, people = [uuid.uuid4(), uuid.uuid4()], [uuid.uuid4(), uuid.uuid4()]
    now = datetime.now(UTC)

    def person(user: uuid.UUID, organisation: uuid.UUID, email: str) -> sa.Insert:
        return USERS.insert().values(id=user, organisation_id=organisation, email=email, display_name="P",
                                     password_hash="-", role="coordinator", is_active=True, created_at=now)  # fmt: skip

    async with empty_engine.connect() as connection:
        await connection.run_sync(lambda sync: migrations.upgrade(sync, str(before)))
        for number, (organisation, user) in enumerate(zip(organisations, people, strict=True)):
            await connection.execute(ORGANISATIONS.insert().values(
                id=organisation, slug=f"lookup-{number}", name="Lookup", timezone="UTC", suppression_threshold=10,
                version=1, created_at=now))  # fmt: skip
            await connection.execute(person(user, organisation, f"person{number}@example.org"))
        await connection.commit()

        await connection.run_sync(lambda sync: migrations.upgrade(sync, "0018"))
        await connection.commit()
        rows = set((await connection.execute(sa.select(USER_EMAILS))).all())
        assert rows == {(f"person{n}@example.org", people[n], organisations[n]) for n in (0, 1)}
        # ``users`` takes it: only the lookup table (and the service, which writes both) refuses it.
        accepted = await connection.begin_nested()
        await connection.execute(person(uuid.uuid4(), organisations[1], "person0@example.org"))
        await accepted.rollback()

        await connection.run_sync(lambda sync: migrations.downgrade(str(before), sync))
        await connection.commit()
        with pytest.raises(IntegrityError):
            async with connection.begin_nested():
                await connection.execute(person(uuid.uuid4(), organisations[1], "person0@example.org"))
