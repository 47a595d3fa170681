"""row-level security backstop for tenant tables (PostgreSQL)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 20:45:00.000000

Every tenant table gets a policy keyed on the per-transaction setting ``app.organisation_id`` (a UUID, or a
comma-separated list of UUIDs for an evaluation project that spans organisations), which the request edge
sets with ``programme_api.domain.tenancy.bind_tenant`` (``set_config(..., true)``, i.e. ``SET LOCAL``: it
ends with the transaction, so it is safe behind PgBouncer in transaction mode). When the setting is present
a query sees and writes only that organisation's rows, even if it forgot its own filter. When it is absent
(the CLI, migrations, the demo loader, token lookups made before the caller's organisation is known) the
policy lets rows through, so those keep working. Rows of ``survey_instruments`` without an organisation are
shared instruments, readable by every tenant; ``audit_events`` rows without one (failed sign-ins for
unknown emails) are visible only when no tenant is bound.

Row-level security does not apply to superusers, nor to a table's owner unless forced, so the migrations
and tests (which run as the owner) are unaffected. To make it bite in production, run the service as a
role that does not own the tables:

    CREATE ROLE programme_app LOGIN PASSWORD '...';
    GRANT USAGE ON SCHEMA public TO programme_app;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO programme_app;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO programme_app;

then run ``programme-api db upgrade`` with the owner's URL and ``programme-api serve`` with
``PROGRAMME_API_DATABASE_URL`` naming ``programme_app``.

On SQLite this migration does nothing (SQLite has no row-level security).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_isolation"
_SETTING = "NULLIF(current_setting('app.organisation_id', true), '')"
_UNBOUND = f"{_SETTING} IS NULL"


def _member(column: str) -> str:
    return f"{column} = ANY (string_to_array({_SETTING}, ',')::uuid[])"


# table -> (USING: which rows are visible, WITH CHECK: which rows may be written)
_TENANT_TABLES = [
    "attendance",
    "consents",
    "enrolments",
    "evaluation_project_organisations",
    "evaluation_projects",
    "facilitator_assignments",
    "facilitators",
    "group_sessions",
    "groups",
    "idempotency_records",
    "oauth_authorization_codes",
    "oauth_client_regions",
    "oauth_clients",
    "oauth_tokens",
    "participants",
    "regions",
    "safeguarding_alerts",
    "session_facilitators",
    "survey_responses",
    "user_regions",
    "users",
]
POLICIES: dict[str, tuple[str, str]] = {
    table: (f"{_UNBOUND} OR {_member('organisation_id')}",) * 2 for table in _TENANT_TABLES
}
POLICIES["organisations"] = (f"{_UNBOUND} OR {_member('id')}",) * 2
POLICIES["survey_instruments"] = (
    f"{_UNBOUND} OR organisation_id IS NULL OR {_member('organisation_id')}",
    f"{_UNBOUND} OR {_member('organisation_id')}",
)
POLICIES["audit_events"] = (
    f"{_UNBOUND} OR {_member('organisation_id')}",
    f"{_UNBOUND} OR organisation_id IS NULL OR {_member('organisation_id')}",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, (using, check) in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({using}) WITH CHECK ({check})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in POLICIES:
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
