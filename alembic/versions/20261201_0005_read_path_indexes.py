"""indexes for the read paths: a group's sessions, a session's and a participant's marks

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-01 17:00:00.000000

Every index leads with ``organisation_id`` (the tenant, and the distribution column on Citus) followed by
the key the reads look rows up by, so a statement that filters on both uses all of it. Without them,
SQLite's planner, having only the organisation-only index to match the organisation and a two-column
unique index to match the session, chose the organisation index and read the tenant's whole history.
``env.py`` takes fresh statistics after the upgrade.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEXES = (
    (
        "group_sessions",
        "ix_group_sessions_organisation_id_group_id_starts_at",
        ["organisation_id", "group_id", "starts_at"],
    ),
    ("attendance", "ix_attendance_organisation_id_session_id", ["organisation_id", "session_id"]),
    ("attendance", "ix_attendance_organisation_id_participant_id", ["organisation_id", "participant_id"]),
    ("enrolments", "ix_enrolments_organisation_id_participant_id", ["organisation_id", "participant_id"]),
    ("session_facilitators", "ix_session_facilitators_organisation_id_session_id", ["organisation_id", "session_id"]),
)


def upgrade() -> None:
    for table, name, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for table, name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
