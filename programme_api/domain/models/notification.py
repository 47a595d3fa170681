"""Change notifications: the transactional outbox, webhook subscriptions and their deliveries, and the
safeguarding emails.

An event is written to ``outbox_events`` in the same transaction as the change it describes (so a rolled-back
change leaves no event, and a committed one cannot be lost); the worker later fans each event out to the
matching webhook subscriptions (``webhook_deliveries``), to live GraphQL subscribers, and, for safeguarding
alerts, to people by email (``notification_emails``). Payloads name rows by id and carry no personal or
health data.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, TenantKey, Versioned, enum_column, tenant_reference


class OutboxEvent(TenantKey, CreatedAt, Base):
    """One domain event, committed with its change; ``dispatched_at`` is set once the worker has fanned it out.

    ``group_id`` and ``participant_id`` say where the event belongs, so each recipient's reach is checked at the
    time the event is sent. ``payload`` holds ids and the few non-personal fields the event type declares.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (sa.Index("ix_outbox_events_dispatched_at_created_at", "dispatched_at", "created_at"),)

    event_type: Mapped[str] = mapped_column(sa.String(64))
    subject_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    group_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    participant_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    payload: Mapped[dict[str, Any]]
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    dispatched_at: Mapped[datetime | None]


class WebhookStatus(enum.StrEnum):
    ACTIVE = "active"
    FAILING = "failing"
    DISABLED = "disabled"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookSubscription(TenantKey, CreatedAt, Versioned, Base):
    """An OAuth client's endpoint for some event types.

    The signing secret is kept as issued (``whsec_`` + base64): HMAC signing needs the secret itself, so it
    cannot be stored hashed the way client secrets are. It is shown to the admin once, at creation or rotation.
    """

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (tenant_reference("client_pk", "oauth_clients"),)

    client_pk: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    event_types: Mapped[list[Any]]
    secret: Mapped[str] = mapped_column(sa.String(100))
    status: Mapped[WebhookStatus] = enum_column(WebhookStatus, "webhook_status", default=WebhookStatus.ACTIVE)
    failing_since: Mapped[datetime | None]


class WebhookDelivery(TenantKey, CreatedAt, Base):
    """One event for one subscription; its id is the ``webhook-id`` header, the same on every attempt, so a
    receiver can drop a message it already processed. ``leased_until`` marks an attempt in flight: a worker
    that dies mid-attempt leaves a lease that runs out, and another worker tries again (at least once)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "event_id", "organisation_id"),
        tenant_reference("subscription_id", "webhook_subscriptions"),
        tenant_reference("event_id", "outbox_events"),
        sa.Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    subscription_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    event_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    event_type: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[DeliveryStatus] = enum_column(DeliveryStatus, "delivery_status", default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    leased_until: Mapped[datetime | None]
    last_response_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(300))
    last_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]


class EmailKind(enum.StrEnum):
    RAISED = "raised"
    ESCALATED = "escalated"


class NotificationEmail(TenantKey, CreatedAt, Base):
    """An email about a safeguarding alert: when raised (coordinators and the lead), when escalated (the lead)."""

    __tablename__ = "notification_emails"
    __table_args__ = (
        sa.UniqueConstraint("alert_id", "kind", "organisation_id"),
        tenant_reference("alert_id", "safeguarding_alerts"),
    )

    alert_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    kind: Mapped[EmailKind] = enum_column(EmailKind, "email_kind")
    status: Mapped[DeliveryStatus] = enum_column(DeliveryStatus, "email_status", default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    leased_until: Mapped[datetime | None]
    recipients: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(300))
    sent_at: Mapped[datetime | None]
