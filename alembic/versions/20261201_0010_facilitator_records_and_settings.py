"""facilitators as records: check and training history, archiving; an organisation's default consent form

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-01 19:30:00.000000

``facilitator_checks`` keeps every training and background check recorded for a facilitator (the
facilitator's own columns hold the latest, which compliance is computed from). It is a tenant table, so on
PostgreSQL it gets the fail-closed policy of 0006: a row is visible and writable only when its organisation
is bound. ``facilitators.archived_at`` retires a facilitator without losing their history, and
``organisations.default_consent_form_version`` is the form version a consent records when it names none.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
ORGANISATIONS = (
    "(SELECT string_to_array(nullif(current_setting('app.organisation_id', true), ''), ',')::uuid[])::uuid[]"
)
MEMBER = f"organisation_id = ANY ({ORGANISATIONS})"


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch_op:
        batch_op.add_column(sa.Column("default_consent_form_version", sa.String(length=100), nullable=True))
    with op.batch_alter_table("facilitators") as batch_op:
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "facilitator_checks",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("facilitator_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "training",
                "background_check",
                name="facilitator_check_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("completed_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_facilitator_checks_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["facilitator_id"],
            ["facilitators.id"],
            name=op.f("fk_facilitator_checks_facilitator_id_facilitators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facilitator_checks")),
    )
    with op.batch_alter_table("facilitator_checks") as batch_op:
        batch_op.create_index(batch_op.f("ix_facilitator_checks_organisation_id"), ["organisation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_facilitator_checks_facilitator_id"), ["facilitator_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE facilitator_checks ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON facilitator_checks USING ({MEMBER}) WITH CHECK ({MEMBER})")


def downgrade() -> None:
    with op.batch_alter_table("facilitator_checks") as batch_op:
        batch_op.drop_index(batch_op.f("ix_facilitator_checks_facilitator_id"))
        batch_op.drop_index(batch_op.f("ix_facilitator_checks_organisation_id"))
    op.drop_table("facilitator_checks")
    with op.batch_alter_table("facilitators") as batch_op:
        batch_op.drop_column("archived_at")
    with op.batch_alter_table("organisations") as batch_op:
        batch_op.drop_column("default_consent_form_version")
