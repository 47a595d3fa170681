"""change notifications: outbox events, webhook subscriptions and deliveries, safeguarding emails

Revision ID: 0013
Revises: 0006
Create Date: 2026-12-01 19:30:00.000000

Four tenant tables, each with ``organisation_id`` and, on PostgreSQL, the fail-closed ``tenant_isolation``
policy of migration 0006 (no organisation bound: no row). The service's role writes outbox events in the
request's transaction and manages subscriptions for its own organisation; the delivery worker is system work
across organisations and runs as the tables' owner (``PROGRAMME_API_OWNER_DATABASE_URL``).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_isolation"
ORGANISATIONS = (
    "(SELECT string_to_array(nullif(current_setting('app.organisation_id', true), ''), ',')::uuid[])::uuid[]"
)
TABLES = ["outbox_events", "webhook_subscriptions", "webhook_deliveries", "notification_emails"]


def _organisation() -> sa.Column[sa.Uuid]:
    return sa.Column("organisation_id", sa.Uuid(), nullable=False)


def _organisation_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organisation_id"],
        ["organisations.id"],
        name=op.f(f"fk_{table}_organisation_id_organisations"),
        ondelete="CASCADE",
    )


def _status(name: str, column: str = "status") -> sa.Column[str]:
    return sa.Column(
        column,
        sa.Enum("pending", "delivered", "failed", name=name, native_enum=False, create_constraint=True, length=32),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "outbox_events",
        _organisation(),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("participant_id", sa.Uuid(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _organisation_fk("outbox_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
    )
    op.create_index(op.f("ix_outbox_events_organisation_id"), "outbox_events", ["organisation_id"])
    op.create_index("ix_outbox_events_dispatched_at_created_at", "outbox_events", ["dispatched_at", "created_at"])

    op.create_table(
        "webhook_subscriptions",
        _organisation(),
        sa.Column("client_pk", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "failing",
                "disabled",
                name="webhook_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_pk"],
            ["oauth_clients.id"],
            name=op.f("fk_webhook_subscriptions_client_pk_oauth_clients"),
            ondelete="CASCADE",
        ),
        _organisation_fk("webhook_subscriptions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    op.create_index(op.f("ix_webhook_subscriptions_client_pk"), "webhook_subscriptions", ["client_pk"])
    op.create_index(op.f("ix_webhook_subscriptions_organisation_id"), "webhook_subscriptions", ["organisation_id"])

    op.create_table(
        "webhook_deliveries",
        _organisation(),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        _status("delivery_status"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_response_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["outbox_events.id"],
            name=op.f("fk_webhook_deliveries_event_id_outbox_events"),
            ondelete="CASCADE",
        ),
        _organisation_fk("webhook_deliveries"),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name=op.f("fk_webhook_deliveries_subscription_id_webhook_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("subscription_id", "event_id", name=op.f("uq_webhook_deliveries_subscription_id_event_id")),
    )
    op.create_index(op.f("ix_webhook_deliveries_organisation_id"), "webhook_deliveries", ["organisation_id"])
    op.create_index(op.f("ix_webhook_deliveries_subscription_id"), "webhook_deliveries", ["subscription_id"])
    op.create_index("ix_webhook_deliveries_status_next_attempt_at", "webhook_deliveries", ["status", "next_attempt_at"])

    op.create_table(
        "notification_emails",
        _organisation(),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("raised", "escalated", name="email_kind", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        _status("email_status"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["safeguarding_alerts.id"],
            name=op.f("fk_notification_emails_alert_id_safeguarding_alerts"),
            ondelete="CASCADE",
        ),
        _organisation_fk("notification_emails"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_emails")),
        sa.UniqueConstraint("alert_id", "kind", name=op.f("uq_notification_emails_alert_id_kind")),
    )
    op.create_index(op.f("ix_notification_emails_organisation_id"), "notification_emails", ["organisation_id"])

    if op.get_bind().dialect.name == "postgresql":
        rule = f"organisation_id = ANY ({ORGANISATIONS})"
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({rule}) WITH CHECK ({rule})")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
