"""audit events are append-only: no UPDATE, DELETE (or TRUNCATE) of audit_events

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-01 16:00:00.000000

The audit log is evidence: the service adds events and never changes or removes one (erasing a participant
empties the participant's row and deletes their responses, and records counts in a new event; audit details
name ids, fields and counts, never personal data, so nothing in the log needs erasing). Triggers refuse any
UPDATE or DELETE of an audit row on both databases, for every role, the tables' owner included, until a
migration drops them. Deleting an organisation that has audit events therefore fails too (its foreign key
would cascade into the log): that is deliberate.

On PostgreSQL a statement trigger also refuses TRUNCATE, and UPDATE, DELETE and TRUNCATE on ``audit_events``
are revoked from PUBLIC and from every role that holds them other than the owner (the service's role, if it
was granted ``ALL TABLES`` as migration 0002's operator steps say, or through default privileges). Grant
the service's role only ``SELECT, INSERT`` on ``audit_events`` when granting afresh.

On SQLite, a later migration that rebuilds ``audit_events`` in batch mode (copy, drop, rename) drops these
triggers with the old table: such a migration must create them again.

Downgrading drops the triggers and the function; revoked privileges are not granted back.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSE = "audit events are append-only: they cannot be changed or deleted"

POSTGRESQL_UP = [
    f"""CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{REFUSE} (%)', TG_OP USING ERRCODE = 'insufficient_privilege';
    END
    $$""",
    """CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change()""",
    """CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change()""",
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC",
    """DO $$
    DECLARE
        holder text;
    BEGIN
        FOR holder IN
            SELECT DISTINCT pg_get_userbyid(granted.grantee)
            FROM pg_class AS class, aclexplode(class.relacl) AS granted
            WHERE class.oid = 'audit_events'::regclass
              AND granted.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')
              AND granted.grantee NOT IN (0, class.relowner)
        LOOP
            EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM %I', holder);
        END LOOP;
    END
    $$""",
]
POSTGRESQL_DOWN = [
    "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
    "DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events",
    "DROP FUNCTION IF EXISTS audit_events_refuse_change()",
]
SQLITE_UP = [
    f"""CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, '{REFUSE} (UPDATE)'); END""",
    f"""CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, '{REFUSE} (DELETE)'); END""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS audit_events_no_delete",
    "DROP TRIGGER IF EXISTS audit_events_no_update",
]


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL_UP if postgresql else SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL_DOWN if postgresql else SQLITE_DOWN:
        op.execute(statement)
