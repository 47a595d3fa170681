"""trusted documents per client, and clients that may run only those

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-01 19:30:00.000000

``trusted_documents`` holds the GraphQL documents registered for a client (``programme-api documents
register``); ``oauth_clients.trusted_documents_only`` marks a client that may run nothing else. The table
belongs to an organisation and gets the same fail-closed row-level security policy as every tenant table
of 0006 (on PostgreSQL; SQLite has none).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_isolation"
ORGANISATIONS = (
    "(SELECT string_to_array(nullif(current_setting('app.organisation_id', true), ''), ',')::uuid[])::uuid[]"
)
TENANT_RULE = f"organisation_id = ANY ({ORGANISATIONS})"


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch_op:
        batch_op.add_column(
            sa.Column("trusted_documents_only", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "trusted_documents",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("client_pk", sa.Uuid(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document_id", sa.String(length=200), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_pk"],
            ["oauth_clients.id"],
            name=op.f("fk_trusted_documents_client_pk_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_trusted_documents_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trusted_documents")),
        sa.UniqueConstraint("client_pk", "document_id", name=op.f("uq_trusted_documents_client_pk_document_id")),
        sa.UniqueConstraint("client_pk", "sha256", name=op.f("uq_trusted_documents_client_pk_sha256")),
    )
    op.create_index(op.f("ix_trusted_documents_organisation_id"), "trusted_documents", ["organisation_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE trusted_documents ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON trusted_documents USING ({TENANT_RULE}) WITH CHECK ({TENANT_RULE})")


def downgrade() -> None:
    op.drop_index(op.f("ix_trusted_documents_organisation_id"), table_name="trusted_documents")
    op.drop_table("trusted_documents")
    with op.batch_alter_table("oauth_clients") as batch_op:
        batch_op.drop_column("trusted_documents_only")
