"""a lookup table of sign-in emails; users.email unique per organisation

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-01 23:45:00.000000

Sign-in starts from an email before the person's organisation is known. Until now ``users.email`` was unique
across organisations, the one key of a tenant table without ``organisation_id``, which a database sharded by
organisation (Citus) refuses. The global part moves to ``user_emails (email PRIMARY KEY, user_id,
organisation_id)``, a table that is not distributed (a reference table), filled here from ``users``;
``users.email`` becomes unique per organisation, ``(email, organisation_id)``, whose index still serves a
lookup by email. The service writes both tables in the same transaction.

Row-level security on PostgreSQL: the lookup table gets the fail-closed ``tenant_isolation`` policy of
migration 0006, so the service role sees and writes only the rows of the organisation it is bound to and
cannot list another organisation's people. Sign-in, which is bound to nothing yet, learns the organisation
of one exact email from ``programme_tenant_of('email', ...)`` (``SECURITY DEFINER``), which now reads the lookup
table and still answers with that organisation's id and nothing else. A policy allowing reads "by exact
email" instead would not hold: a policy sees rows, not the query's WHERE clause, so any such policy that lets
one email through lets every email through to a query without a WHERE clause.

The downgrade restores the global unique constraint (the lookup table kept every email unique, so it holds)
and the function reading ``users``, then drops the table.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "user_emails"
POLICY = "tenant_isolation"
MEMBER = (
    "organisation_id = ANY ("
    "(SELECT string_to_array(nullif(current_setting('app.organisation_id', true), ''), ',')::uuid[])::uuid[])"
)
GLOBAL_EMAIL = ("email",)
EMAIL_PER_ORGANISATION = ("email", "organisation_id")

_TENANT_OF = """
CREATE OR REPLACE FUNCTION programme_tenant_of(kind text, key text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT CASE kind
        WHEN 'organisation_slug' THEN (SELECT id FROM public.organisations WHERE slug = key)
        WHEN 'organisation' THEN (SELECT id FROM public.organisations WHERE id::text = key)
        WHEN 'client' THEN (SELECT organisation_id FROM public.oauth_clients WHERE client_id = key)
        WHEN 'user' THEN (SELECT organisation_id FROM public.users WHERE id::text = key)
        WHEN 'email' THEN (SELECT organisation_id FROM public.{emails} WHERE email = key)
        WHEN 'access_token' THEN (SELECT organisation_id FROM public.oauth_tokens WHERE jti = key)
        WHEN 'refresh_token' THEN (SELECT organisation_id FROM public.oauth_tokens WHERE refresh_token_hash = key)
        WHEN 'code' THEN (SELECT organisation_id FROM public.oauth_authorization_codes WHERE code_hash = key)
    END
$$
"""


def _users_email_unique(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f(f"uq_users_{'_'.join(old)}"), type_="unique")
        batch.create_unique_constraint(op.f(f"uq_users_{'_'.join(new)}"), list(new))


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f(f"fk_{TABLE}_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("email", name=op.f(f"pk_{TABLE}")),
        sa.UniqueConstraint("user_id", "organisation_id", name=op.f(f"uq_{TABLE}_user_id_organisation_id")),
    )
    op.create_index(op.f(f"ix_{TABLE}_organisation_id"), TABLE, ["organisation_id"])
    op.execute(f"INSERT INTO {TABLE} (email, user_id, organisation_id) SELECT email, id, organisation_id FROM users")
    _users_email_unique(GLOBAL_EMAIL, EMAIL_PER_ORGANISATION)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {TABLE} USING ({MEMBER}) WITH CHECK ({MEMBER})")
        op.execute(_TENANT_OF.format(emails=TABLE))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_TENANT_OF.format(emails="users"))
    _users_email_unique(EMAIL_PER_ORGANISATION, GLOBAL_EMAIL)
    op.drop_index(op.f(f"ix_{TABLE}_organisation_id"), table_name=TABLE)
    op.drop_table(TABLE)
