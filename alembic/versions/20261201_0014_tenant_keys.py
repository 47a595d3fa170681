"""every key of a tenant table holds organisation_id (ready to distribute by organisation, e.g. with Citus)

Revision ID: 0014
Revises: 0015
Create Date: 2026-12-01 23:00:00.000000

A database sharded by organisation (Citus) distributes each tenant table by ``organisation_id`` and then
needs that column in every primary key, unique constraint and foreign key of the table. This migration makes
the schema so, on both databases:

- The primary key of every tenant table becomes ``(id, organisation_id)`` (``sign_in_sessions``:
  ``(token_hash, organisation_id)``). ``id`` leads, so a lookup by id alone still uses the key's index; ids
  are random UUIDs, unique on their own as before.
- Every reference from a tenant table to another tenant table becomes ``(column, organisation_id)`` to the
  parent's ``(id, organisation_id)``, under the name it had. The database then refuses a row that names
  another organisation's row: cross-organisation references, which only the code prevented so far, are
  impossible. The references to a person that emptied themselves when the person went (``SET NULL``) now
  refuse the deletion instead (no action): ``SET NULL`` would empty ``organisation_id`` too, and Citus
  refuses it on a key that holds the distribution column, even in PostgreSQL's ``SET NULL (column)`` form.
  The service deactivates people and never deletes them, so nothing it does changes.
- Unique constraints that lacked ``organisation_id`` gain it, at the end so that their index still serves the
  lookups it served. One thing their indexes did is lost: ``(group_id, starts_at)`` told SQLite that a group's
  sessions in order of start are in a total order, so a page of them needed no sort; with organisation_id in
  the key it no longer does, and SQLite's planner then read the organisation's sessions by start instead.
  An index ``(group_id, starts_at, id)`` (the page's own order) takes that role on both databases. None of these weakens a rule the service relies on: within one organisation each is
  what it was, and the rows of two organisations could not clash anyway (the parents they name belong to
  one organisation), except for server-made random keys (client ids, token ids, hashes of refresh tokens,
  codes and sign-in tokens) whose uniqueness across organisations comes from their randomness.
- ``sign_in_sessions`` (per person) gains the person's ``organisation_id``, copied from ``users``, so that
  its reference to the person can hold the organisation. Being a tenant table now, it gets the fail-closed
  ``tenant_isolation`` policy of migration 0006 on PostgreSQL: the service binds the person's organisation
  (``programme_tenant_of('user', ...)``) before it reads or ends a session.

Kept global, deliberately: ``users.email`` (a person signs in by email before the organisation is known)
and the keys of ``evaluation_projects`` (a project spans organisations; rows of every organisation taking part
name it by id), besides ``organisations`` (the tenants themselves) and ``survey_instruments`` and
``audit_events``, whose rows may have no organisation. ``tests/test_tenant_keys.py`` lists these exceptions with their
reasons and reads the migrated catalog to hold every other key to the rule.

Otherwise only constraints change: on PostgreSQL they are altered in place, so the existing row-level
security policies and triggers stay as they are. SQLite rebuilds each table (batch mode: copy, drop, rename);
no tenant table has a trigger there (the audit log's are on ``audit_events``, which is not rebuilt), and the
rebuild creates the table's indexes and CHECK constraints again (with SQLite's foreign keys off and checked
before commit, as every migration runs there: ``programme_api.migrations.sqlite_foreign_keys_deferred``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORGANISATION = "organisation_id"
POLICY = "tenant_isolation"
MEMBER = (
    "organisation_id = ANY ("
    "(SELECT string_to_array(nullif(current_setting('app.organisation_id', true), ''), ',')::uuid[])::uuid[])"
)

# Every table whose rows belong to one organisation; parents before their children.
TENANT_TABLES = [
    "regions",
    "users",
    "user_regions",
    "oauth_clients",
    "oauth_client_regions",
    "oauth_authorization_codes",
    "oauth_tokens",
    "idempotency_records",
    "trusted_documents",
    "evaluation_project_organisations",
    "groups",
    "facilitators",
    "facilitator_checks",
    "facilitator_assignments",
    "participants",
    "enrolments",
    "group_sessions",
    "session_facilitators",
    "attendance",
    "consents",
    "survey_responses",
    "safeguarding_alerts",
    "outbox_events",
    "webhook_subscriptions",
    "webhook_deliveries",
    "notification_emails",
]
SIGN_IN_SESSIONS = "sign_in_sessions"
SESSIONS_PAGE_INDEX = "ix_group_sessions_group_id_starts_at_id"

# (table, column, parent table, ON DELETE before): references to a tenant parent, which gain organisation_id.
REFERENCES = [
    ("user_regions", "user_id", "users", "CASCADE"),
    ("user_regions", "region_id", "regions", "CASCADE"),
    ("oauth_client_regions", "client_pk", "oauth_clients", "CASCADE"),
    ("oauth_client_regions", "region_id", "regions", "CASCADE"),
    ("oauth_authorization_codes", "client_pk", "oauth_clients", "CASCADE"),
    ("oauth_authorization_codes", "user_id", "users", "CASCADE"),
    ("oauth_tokens", "client_pk", "oauth_clients", "CASCADE"),
    ("oauth_tokens", "user_id", "users", "CASCADE"),
    ("trusted_documents", "client_pk", "oauth_clients", "CASCADE"),
    ("groups", "region_id", "regions", "CASCADE"),
    ("facilitators", "user_id", "users", "SET NULL"),
    ("facilitator_checks", "facilitator_id", "facilitators", "CASCADE"),
    ("facilitator_assignments", "group_id", "groups", "CASCADE"),
    ("facilitator_assignments", "facilitator_id", "facilitators", "CASCADE"),
    ("participants", "region_id", "regions", "CASCADE"),
    ("enrolments", "participant_id", "participants", "CASCADE"),
    ("enrolments", "group_id", "groups", "CASCADE"),
    ("group_sessions", "group_id", "groups", "CASCADE"),
    ("session_facilitators", "session_id", "group_sessions", "CASCADE"),
    ("session_facilitators", "facilitator_id", "facilitators", "CASCADE"),
    ("attendance", "session_id", "group_sessions", "CASCADE"),
    ("attendance", "participant_id", "participants", "CASCADE"),
    ("consents", "participant_id", "participants", "CASCADE"),
    ("consents", "recorded_by_user_id", "users", "SET NULL"),
    ("consents", "withdrawn_by_user_id", "users", "SET NULL"),
    ("survey_responses", "participant_id", "participants", "CASCADE"),
    ("survey_responses", "group_id", "groups", "CASCADE"),
    ("survey_responses", "recorded_by_user_id", "users", "SET NULL"),
    ("safeguarding_alerts", "response_id", "survey_responses", "CASCADE"),
    ("safeguarding_alerts", "participant_id", "participants", "CASCADE"),
    ("safeguarding_alerts", "group_id", "groups", "CASCADE"),
    ("safeguarding_alerts", "acknowledged_by_user_id", "users", "SET NULL"),
    ("webhook_subscriptions", "client_pk", "oauth_clients", "CASCADE"),
    ("webhook_deliveries", "subscription_id", "webhook_subscriptions", "CASCADE"),
    ("webhook_deliveries", "event_id", "outbox_events", "CASCADE"),
    ("notification_emails", "alert_id", "safeguarding_alerts", "CASCADE"),
    (SIGN_IN_SESSIONS, "user_id", "users", "CASCADE"),
]

# (table, columns before, columns after): unique constraints that gain organisation_id, last, so that their
# index still serves the lookups it served.
UNIQUES = [
    ("user_regions", ("user_id", "region_id"), ("user_id", "region_id", "organisation_id")),
    ("oauth_clients", ("client_id",), ("client_id", "organisation_id")),
    ("oauth_client_regions", ("client_pk", "region_id"), ("client_pk", "region_id", "organisation_id")),
    ("oauth_authorization_codes", ("code_hash",), ("code_hash", "organisation_id")),
    ("oauth_tokens", ("jti",), ("jti", "organisation_id")),
    ("oauth_tokens", ("refresh_token_hash",), ("refresh_token_hash", "organisation_id")),
    ("trusted_documents", ("client_pk", "sha256"), ("client_pk", "sha256", "organisation_id")),
    ("trusted_documents", ("client_pk", "document_id"), ("client_pk", "document_id", "organisation_id")),
    ("facilitators", ("user_id",), ("user_id", "organisation_id")),
    ("facilitator_assignments", ("group_id", "facilitator_id"), ("group_id", "facilitator_id", "organisation_id")),
    ("enrolments", ("group_id", "participant_id"), ("group_id", "participant_id", "organisation_id")),
    ("group_sessions", ("group_id", "starts_at"), ("group_id", "starts_at", "organisation_id")),
    ("session_facilitators", ("session_id", "facilitator_id"), ("session_id", "facilitator_id", "organisation_id")),
    ("attendance", ("session_id", "participant_id"), ("session_id", "participant_id", "organisation_id")),
    (
        "survey_responses",
        ("participant_id", "instrument_id", "timepoint"),
        ("participant_id", "instrument_id", "timepoint", "organisation_id"),
    ),
    ("safeguarding_alerts", ("response_id",), ("response_id", "organisation_id")),
    ("webhook_deliveries", ("subscription_id", "event_id"), ("subscription_id", "event_id", "organisation_id")),
    ("notification_emails", ("alert_id", "kind"), ("alert_id", "kind", "organisation_id")),
]


def reference_name(table: str, column: str, parent: str) -> str:
    return f"fk_{table}_{column}_{parent}"


def unique_name(table: str, columns: Sequence[str]) -> str:
    """The naming convention's name, marked so that PostgreSQL shortens it as it shortens the models' names."""
    return op.f(f"uq_{table}_{'_'.join(columns)}")


def key_columns(table: str, tenant: bool) -> list[str]:
    """The primary key's columns: ``(id, organisation_id)`` when ``tenant``, ``(id)`` before this migration."""
    first = "token_hash" if table == SIGN_IN_SESSIONS else "id"
    return [first, ORGANISATION] if tenant else [first]


def reference_columns(column: str, tenant: bool) -> tuple[list[str], list[str]]:
    """The reference's own columns and its parent's."""
    return ([column, ORGANISATION], ["id", ORGANISATION]) if tenant else ([column], ["id"])


def reference_ondelete(before: str, tenant: bool) -> str | None:
    """``SET NULL`` becomes no action (see above); ``CASCADE`` stays."""
    return None if tenant and before == "SET NULL" else before


def references_of(table: str) -> list[tuple[str, str, str]]:
    return [(column, parent, ondelete) for name, column, parent, ondelete in REFERENCES if name == table]


def uniques_of(table: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    return [(before, after) for name, before, after in UNIQUES if name == table]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql(tenant=True)
    else:
        _sqlite(tenant=True)
    op.create_index(SESSIONS_PAGE_INDEX, "group_sessions", ["group_id", "starts_at", "id"])


def downgrade() -> None:
    op.drop_index(SESSIONS_PAGE_INDEX, "group_sessions")
    if op.get_bind().dialect.name == "postgresql":
        _postgresql(tenant=False)
    else:
        _sqlite(tenant=False)


# PostgreSQL: constraints change in place (no table is rebuilt, so policies and triggers are untouched).


def _postgresql(tenant: bool) -> None:
    if tenant:
        _add_sign_in_session_organisations()
    for table, column, parent, _ondelete in REFERENCES:
        op.drop_constraint(reference_name(table, column, parent), table, type_="foreignkey")
    for table, before, after in UNIQUES:
        old, new = (before, after) if tenant else (after, before)
        op.drop_constraint(unique_name(table, old), table, type_="unique")
        op.create_unique_constraint(unique_name(table, new), table, list(new))
    for table in [*TENANT_TABLES, SIGN_IN_SESSIONS]:
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, key_columns(table, tenant))
    for table, column, parent, ondelete in REFERENCES:
        columns, parent_columns = reference_columns(column, tenant)
        name = reference_name(table, column, parent)
        op.create_foreign_key(
            name, table, parent, columns, parent_columns, ondelete=reference_ondelete(ondelete, tenant)
        )
    if not tenant:
        _drop_sign_in_session_organisations()


# SQLite: each table is rebuilt with its new keys (batch mode), parents before children.


def _sqlite(tenant: bool) -> None:
    if tenant:
        _add_sign_in_session_organisations()
    for table in [*TENANT_TABLES, SIGN_IN_SESSIONS]:
        with op.batch_alter_table(table, recreate="always") as batch:
            for column, parent, ondelete in references_of(table):
                name = reference_name(table, column, parent)
                columns, parent_columns = reference_columns(column, tenant)
                batch.drop_constraint(name, type_="foreignkey")
                batch.create_foreign_key(
                    name, parent, columns, parent_columns, ondelete=reference_ondelete(ondelete, tenant)
                )
            for before, after in uniques_of(table):
                old, new = (before, after) if tenant else (after, before)
                batch.drop_constraint(unique_name(table, old), type_="unique")
                batch.create_unique_constraint(unique_name(table, new), list(new))
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", key_columns(table, tenant))
    if not tenant:
        _drop_sign_in_session_organisations()


# sign_in_sessions: the person's organisation, copied from users.


def _add_sign_in_session_organisations() -> None:
    with op.batch_alter_table(SIGN_IN_SESSIONS) as batch:
        batch.add_column(sa.Column(ORGANISATION, sa.Uuid(), nullable=True))
    op.execute(
        f"UPDATE {SIGN_IN_SESSIONS} SET {ORGANISATION} = "
        f"(SELECT users.organisation_id FROM users WHERE users.id = {SIGN_IN_SESSIONS}.user_id)"
    )
    with op.batch_alter_table(SIGN_IN_SESSIONS) as batch:
        batch.alter_column(ORGANISATION, existing_type=sa.Uuid(), nullable=False)
        batch.create_foreign_key(
            f"fk_{SIGN_IN_SESSIONS}_{ORGANISATION}_organisations",
            "organisations",
            [ORGANISATION],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(f"ix_{SIGN_IN_SESSIONS}_{ORGANISATION}", [ORGANISATION])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {SIGN_IN_SESSIONS} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {SIGN_IN_SESSIONS} USING ({MEMBER}) WITH CHECK ({MEMBER})")


def _drop_sign_in_session_organisations() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {SIGN_IN_SESSIONS}")
        op.execute(f"ALTER TABLE {SIGN_IN_SESSIONS} DISABLE ROW LEVEL SECURITY")
    with op.batch_alter_table(SIGN_IN_SESSIONS) as batch:
        batch.drop_index(f"ix_{SIGN_IN_SESSIONS}_{ORGANISATION}")
        batch.drop_constraint(f"fk_{SIGN_IN_SESSIONS}_{ORGANISATION}_organisations", type_="foreignkey")
        batch.drop_column(ORGANISATION)
