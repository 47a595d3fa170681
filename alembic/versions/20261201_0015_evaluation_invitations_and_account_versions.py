"""invitations to evaluation projects; versions on people and OAuth clients

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-01 22:40:00.000000

An evaluation project's owner invites other organisations through the API; an invited organisation takes
part only once its own admin accepts, and may leave. ``evaluation_project_invitations`` holds each invitation
and its answer. It belongs to two tenants, so on PostgreSQL its policy lets either organisation see and
write it: the owner (``owner_organisation_id``) invites and withdraws, the invited one (``organisation_id``)
accepts and leaves. Two policies of migration 0006 widen accordingly, and only for reading:

- ``evaluation_projects``: an invited organisation sees the project it is invited to (to know what it is
  asked to share);
- ``evaluation_project_organisations``: the owner sees, and may delete, the participation of an
  organisation it invited (withdrawing it); only the organisation itself may insert its participation.

Neither widened policy refers back to a table whose policy refers to it, so PostgreSQL finds no recursion.
``programme_tenant_of`` learns the key kind ``organisation`` (an organisation's id), so that an owner can
tell an unknown organisation from one it may invite without seeing the organisation's row.

Existing participations of organisations other than the owner (shared by the operator) get an accepted
invitation, so the owner sees them and the partner can leave.

``users`` and ``oauth_clients`` get ``version`` (default 1) for optimistic locking like every other
changeable row.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_isolation"
TABLE = "evaluation_project_invitations"
ORGANISATIONS = (
    "(SELECT string_to_array(nullif(current_setting('app.organisation_id', true), ''), ',')::uuid[])::uuid[]"
)


def member(column: str) -> str:
    return f"{column} = ANY ({ORGANISATIONS})"


_PROJECT_MEMBERS = (
    "id IN (SELECT m.evaluation_project_id FROM evaluation_project_organisations m"
    f" WHERE {member('m.organisation_id')})"
)
_PROJECT_INVITEES = f"id IN (SELECT i.evaluation_project_id FROM {TABLE} i WHERE {member('i.organisation_id')})"
_OWNERS_INVITEES = (
    f"evaluation_project_id IN (SELECT i.evaluation_project_id FROM {TABLE} i"
    f" WHERE i.organisation_id = evaluation_project_organisations.organisation_id"
    f" AND {member('i.owner_organisation_id')})"
)

# table -> (USING, WITH CHECK), after this migration and before it (0006).
POLICIES: dict[str, tuple[str, str]] = {
    TABLE: (f"{member('organisation_id')} OR {member('owner_organisation_id')}",) * 2,
    "evaluation_projects": (
        f"{member('organisation_id')} OR {_PROJECT_MEMBERS} OR {_PROJECT_INVITEES}",
        member("organisation_id"),
    ),
    "evaluation_project_organisations": (
        f"{member('organisation_id')} OR {_OWNERS_INVITEES}",
        member("organisation_id"),
    ),
}
OLD_POLICIES: dict[str, tuple[str, str]] = {
    "evaluation_projects": (f"{member('organisation_id')} OR {_PROJECT_MEMBERS}", member("organisation_id")),
    "evaluation_project_organisations": (member("organisation_id"),) * 2,
}

_TENANT_OF = """
CREATE OR REPLACE FUNCTION programme_tenant_of(kind text, key text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT CASE kind
        WHEN 'organisation_slug' THEN (SELECT id FROM public.organisations WHERE slug = key)
        {organisation}WHEN 'client' THEN (SELECT organisation_id FROM public.oauth_clients WHERE client_id = key)
        WHEN 'user' THEN (SELECT organisation_id FROM public.users WHERE id::text = key)
        WHEN 'email' THEN (SELECT organisation_id FROM public.users WHERE email = key)
        WHEN 'access_token' THEN (SELECT organisation_id FROM public.oauth_tokens WHERE jti = key)
        WHEN 'refresh_token' THEN (SELECT organisation_id FROM public.oauth_tokens WHERE refresh_token_hash = key)
        WHEN 'code' THEN (SELECT organisation_id FROM public.oauth_authorization_codes WHERE code_hash = key)
    END
$$
"""
_ORGANISATION_KIND = "WHEN 'organisation' THEN (SELECT id FROM public.organisations WHERE id::text = key)\n        "

_BACKFILL = f"""
INSERT INTO {TABLE} (id, organisation_id, owner_organisation_id, evaluation_project_id, status, responded_at,
                     created_at, version)
SELECT {{new_id}}, m.organisation_id, p.organisation_id, p.id, 'accepted', {{now}}, {{now}}, 1
FROM evaluation_project_organisations m JOIN evaluation_projects p ON p.id = m.evaluation_project_id
WHERE m.organisation_id <> p.organisation_id
"""


def _apply(policies: dict[str, tuple[str, str]]) -> None:
    for table, (using, check) in policies.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({using}) WITH CHECK ({check})")


def upgrade() -> None:
    for table in ("users", "oauth_clients"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    op.create_table(
        TABLE,
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("owner_organisation_id", sa.Uuid(), nullable=False),
        sa.Column("evaluation_project_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "accepted",
                "withdrawn",
                "left",
                name="evaluation_invitation_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_project_id"],
            ["evaluation_projects.id"],
            name=op.f(f"fk_{TABLE}_evaluation_project_id_evaluation_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f(f"fk_{TABLE}_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_organisation_id"],
            ["organisations.id"],
            name=op.f(f"fk_{TABLE}_owner_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", "organisation_id", name=op.f(f"pk_{TABLE}")),
        sa.UniqueConstraint(
            "evaluation_project_id", "organisation_id", name=op.f(f"uq_{TABLE}_evaluation_project_id_organisation_id")
        ),
    )
    op.create_index(op.f(f"ix_{TABLE}_organisation_id"), TABLE, ["organisation_id"])
    op.create_index(op.f(f"ix_{TABLE}_owner_organisation_id"), TABLE, ["owner_organisation_id"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_BACKFILL.format(new_id="gen_random_uuid()", now="now()"))
        _apply(POLICIES)
        op.execute(_TENANT_OF.format(organisation=_ORGANISATION_KIND))
    else:
        op.execute(_BACKFILL.format(new_id="lower(hex(randomblob(16)))", now="CURRENT_TIMESTAMP"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_TENANT_OF.format(organisation=""))
        _apply(OLD_POLICIES)
    op.drop_index(op.f(f"ix_{TABLE}_owner_organisation_id"), table_name=TABLE)
    op.drop_index(op.f(f"ix_{TABLE}_organisation_id"), table_name=TABLE)
    op.drop_table(TABLE)
    for table in ("oauth_clients", "users"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("version")
