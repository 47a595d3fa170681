"""a region-bound write of attendance checks its own session, not every session of the regions

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-01 23:40:00.000000

The ``attendance`` policy (0006) used one expression for reading and writing: the mark's session is among
the sessions of the bound regions. For reads that is right (a hashed list, built once, serves every row a
read scans). For a write it is not: a register of 15 marks built the list of every session of the caller's
regions, for the insert's check and again for the conflict's update, so its cost grew with the regions'
history. The write check now looks up the one session of each written mark through its key and asks
whether its group is in a bound region; which rows may be written is unchanged. PostgreSQL only (SQLite
has no row-level security).
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None

ORGANISATIONS = (
    "(SELECT string_to_array(nullif(current_setting('app.organisation_id', true), ''), ',')::uuid[])::uuid[]"
)
ALL_REGIONS = "(SELECT current_setting('app.region_ids', true) = '*')"
REGIONS = (
    "(SELECT string_to_array(nullif(nullif(current_setting('app.region_ids', true), ''), '*'), ',')::uuid[])::uuid[]"
)
WRITE_CHECK = (
    f"organisation_id = ANY ({ORGANISATIONS}) AND ({ALL_REGIONS} OR EXISTS ("
    "SELECT 1 FROM group_sessions s JOIN groups g ON g.id = s.group_id"
    f" WHERE s.id = attendance.session_id AND g.region_id = ANY ({REGIONS})))"
)
READ_RULE = "SELECT qual FROM pg_policies WHERE tablename = 'attendance' AND policyname = 'tenant_isolation'"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER POLICY tenant_isolation ON attendance WITH CHECK ({WRITE_CHECK})")


def downgrade() -> None:
    """Back to one expression for both: the read rule, as PostgreSQL holds it."""
    if op.get_bind().dialect.name == "postgresql":
        read_rule = op.get_bind().exec_driver_sql(READ_RULE).scalar_one()
        op.execute(f"ALTER POLICY tenant_isolation ON attendance WITH CHECK ({read_rule})")
