"""external references on groups and facilitators (the natural key of spreadsheet imports); evaluation
projects get a version and a closing date

Revision ID: 0011
Revises: 0006
Create Date: 2026-12-01 19:30:00.000000

A programme team's spreadsheets name groups and facilitators by their own codes. Storing that code, unique
within the organisation, lets an import find the row it created before, so importing the same file twice
changes nothing. Regions are keyed by their slug and participants by their reference, which exist already.
The columns are nullable: rows created through the API need none, and unique constraints treat NULLs as
distinct on both databases.

Evaluation projects are now changed by organisations' admins through the API: ``version`` for optimistic
locking like every other changeable row, and ``closed_at``, after which its evaluators read nothing.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0011"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = ("groups", "facilitators")


def upgrade() -> None:
    with op.batch_alter_table("evaluation_projects") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("external_reference", sa.String(length=64), nullable=True))
            batch.create_unique_constraint(
                f"uq_{table}_organisation_id_external_reference", ["organisation_id", "external_reference"]
            )


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_organisation_id_external_reference", type_="unique")
            batch.drop_column("external_reference")
    with op.batch_alter_table("evaluation_projects") as batch:
        batch.drop_column("closed_at")
        batch.drop_column("version")
