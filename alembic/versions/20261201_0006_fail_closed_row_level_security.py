"""fail-closed row-level security, by organisation and region (PostgreSQL)

Revision ID: 0006
Revises: 0002
Create Date: 2026-12-01 16:00:00.000000

Replaces the policies of 0002, which let every row through when no organisation was bound, with policies
that fail closed. Two transaction-local settings, set only by ``programme_api.domain.tenancy`` (with
``set_config(..., true)``, i.e. ``SET LOCAL``, safe behind PgBouncer in transaction mode), decide what a
transaction sees and may write:

- ``app.organisation_id``: the bound organisation, or a comma list of them (an evaluation project that
  spans organisations). Unset or empty: **no row** of any tenant table is visible or writable.
- ``app.region_ids``: on the tables that belong to a region (``REGION_SCOPED``), either ``*`` (the bound
  organisations' every region: an org admin, an evaluator, a client without region binding) or a comma list
  of region ids (a coordinator, a region-bound client). Unset or empty: no row of those tables. "All
  regions" is never implied by a missing value; only the explicit ``*`` marker means it.

Shared survey instruments (``organisation_id`` NULL) stay readable by every bound transaction. An audit
event without an organisation (a failed sign-in for an unknown email) may be written unbound but is read by
no one except the owner. An evaluation project is visible to the organisations that take part in it.

Before the tenant is known (a ``client_id`` at ``/oauth/token``, an email at ``/login``, an access token's
``jti``, a refresh token's or code's hash, an organisation's slug typed at the CLI), the service asks one
narrow ``SECURITY DEFINER`` function, ``programme_tenant_of(kind, key)``, which maps exactly one key to its
organisation id and returns nothing else; the service binds that organisation and then reads normally,
under the policies. ``programme_project_tenants(project)`` lists the organisations an evaluation project
covers, which an evaluator's transaction is bound to. Both run as their owner (the migrating role) with a
pinned ``search_path``; ``PUBLIC`` may not execute them, the application role is granted it.

Row-level security does not apply to superusers nor, without ``FORCE ROW LEVEL SECURITY``, to the tables'
owner. It is deliberately not forced: the owner is the role for system work that is cross-tenant by nature
(migrations, ``demo load``, ``organisations list``), and a forced policy would need a bypass the owner can
switch on, which any code running as the owner could switch on too: the separation that protects is the
role, not a setting. The service therefore runs as a role that neither owns the tables nor is a superuser
(``programme-api serve`` warns at start when it is not so). Operator steps, as the owner:

    CREATE ROLE programme_app LOGIN PASSWORD '...';
    GRANT USAGE ON SCHEMA public TO programme_app;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO programme_app;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO programme_app;
    GRANT EXECUTE ON FUNCTION programme_tenant_of(text, text), programme_project_tenants(uuid) TO programme_app;

then ``PROGRAMME_API_OWNER_DATABASE_URL`` names the owner (migrations, demo load, cross-tenant listings) and
``PROGRAMME_API_DATABASE_URL`` names ``programme_app`` (the service and the per-organisation CLI verbs).

To add a table: put it in ``TENANT_TABLES`` (and in ``REGION_SCOPED`` with its region predicate if its rows
belong to a region) in a new migration that re-creates the policy the same way.

On SQLite this migration does nothing (SQLite has no row-level security).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_isolation"

# Each setting is read once per statement, not once per row: a scalar subquery becomes an InitPlan, and the
# outer cast to the type it already has only makes PostgreSQL parse ``= ANY (...)`` as an array comparison.
ORGANISATIONS = (
    "(SELECT string_to_array(nullif(current_setting('app.organisation_id', true), ''), ',')::uuid[])::uuid[]"
)
ALL_REGIONS = "(SELECT current_setting('app.region_ids', true) = '*')"
REGIONS = (
    "(SELECT string_to_array(nullif(nullif(current_setting('app.region_ids', true), ''), '*'), ',')::uuid[])::uuid[]"
)
_GROUPS_IN_REGIONS = f"(SELECT g.id FROM groups g WHERE g.region_id = ANY ({REGIONS}))"
# The sessions of those groups, found through the (group, start) index rather than by scanning the organisation's.
_SESSIONS_IN_REGIONS = f"(SELECT s.id FROM group_sessions s WHERE s.group_id = ANY (ARRAY{_GROUPS_IN_REGIONS}))"

# Every table whose rows belong to one organisation (through ``organisation_id``).
TENANT_TABLES = [
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

# Tables whose rows also belong to a region: the predicate that keeps a region-bound transaction to its own.
REGION_SCOPED = {
    "groups": f"region_id = ANY ({REGIONS})",
    "participants": f"region_id = ANY ({REGIONS})",
    "group_sessions": f"group_id IN {_GROUPS_IN_REGIONS}",
    "enrolments": f"group_id IN {_GROUPS_IN_REGIONS}",
    "safeguarding_alerts": f"group_id IN {_GROUPS_IN_REGIONS}",
    "attendance": f"session_id IN {_SESSIONS_IN_REGIONS}",
}


def member(column: str) -> str:
    return f"{column} = ANY ({ORGANISATIONS})"


def tenant_rule(table: str) -> str:
    rule = member("organisation_id")
    if table in REGION_SCOPED:
        rule = f"{rule} AND ({ALL_REGIONS} OR {REGION_SCOPED[table]})"
    return rule


# table -> (USING: which rows are visible, WITH CHECK: which rows may be written)
POLICIES: dict[str, tuple[str, str]] = {table: (tenant_rule(table),) * 2 for table in TENANT_TABLES}
POLICIES["organisations"] = (member("id"),) * 2
POLICIES["survey_instruments"] = (f"organisation_id IS NULL OR {member('organisation_id')}", member("organisation_id"))
POLICIES["audit_events"] = (member("organisation_id"), f"organisation_id IS NULL OR {member('organisation_id')}")
POLICIES["evaluation_projects"] = (
    f"{member('organisation_id')} OR id IN (SELECT m.evaluation_project_id FROM evaluation_project_organisations m"
    f" WHERE {member('m.organisation_id')})",
    member("organisation_id"),
)

TENANT_OF = """
CREATE FUNCTION programme_tenant_of(kind text, key text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT CASE kind
        WHEN 'organisation_slug' THEN (SELECT id FROM public.organisations WHERE slug = key)
        WHEN 'client' THEN (SELECT organisation_id FROM public.oauth_clients WHERE client_id = key)
        WHEN 'user' THEN (SELECT organisation_id FROM public.users WHERE id::text = key)
        WHEN 'email' THEN (SELECT organisation_id FROM public.users WHERE email = key)
        WHEN 'access_token' THEN (SELECT organisation_id FROM public.oauth_tokens WHERE jti = key)
        WHEN 'refresh_token' THEN (SELECT organisation_id FROM public.oauth_tokens WHERE refresh_token_hash = key)
        WHEN 'code' THEN (SELECT organisation_id FROM public.oauth_authorization_codes WHERE code_hash = key)
    END
$$
"""
PROJECT_TENANTS = """
CREATE FUNCTION programme_project_tenants(project uuid) RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT coalesce(array_agg(organisation_id), '{}')
    FROM public.evaluation_project_organisations WHERE evaluation_project_id = project
$$
"""
FUNCTIONS = ("programme_tenant_of(text, text)", "programme_project_tenants(uuid)")

# What 0002 had, to go back to.
_OLD_SETTING = "NULLIF(current_setting('app.organisation_id', true), '')"
_OLD_UNBOUND = f"{_OLD_SETTING} IS NULL"


def _old_member(column: str) -> str:
    return f"{column} = ANY (string_to_array({_OLD_SETTING}, ',')::uuid[])"


OLD_POLICIES: dict[str, tuple[str, str]] = {
    table: (f"{_OLD_UNBOUND} OR {_old_member('organisation_id')}",) * 2 for table in TENANT_TABLES
}
OLD_POLICIES["organisations"] = (f"{_OLD_UNBOUND} OR {_old_member('id')}",) * 2
OLD_POLICIES["survey_instruments"] = (
    f"{_OLD_UNBOUND} OR organisation_id IS NULL OR {_old_member('organisation_id')}",
    f"{_OLD_UNBOUND} OR {_old_member('organisation_id')}",
)
OLD_POLICIES["audit_events"] = (
    f"{_OLD_UNBOUND} OR {_old_member('organisation_id')}",
    f"{_OLD_UNBOUND} OR organisation_id IS NULL OR {_old_member('organisation_id')}",
)


def _apply(policies: dict[str, tuple[str, str]]) -> None:
    for table, (using, check) in policies.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({using}) WITH CHECK ({check})")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _apply(POLICIES)
    op.execute(TENANT_OF)
    op.execute(PROJECT_TENANTS)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    _apply(OLD_POLICIES)
