"""Fanning committed outbox events out: a webhook delivery per matching subscription, a live notification,
and, for a raised safeguarding alert, an email to send.

Several workers may dispatch at once: each takes a batch of undispatched events with ``FOR UPDATE SKIP
LOCKED`` (PostgreSQL; SQLite has one writer), and marks them dispatched in the same transaction as the
deliveries it queues, so an event is fanned out exactly once, and one whose worker died before committing is
taken again by the next.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..config import Settings
from ..domain import outbox
from ..domain.models import (
    ActorType,
    DeliveryStatus,
    EmailKind,
    NotificationEmail,
    OAuthClient,
    OAuthClientRegion,
    OutboxEvent,
    WebhookDelivery,
    WebhookStatus,
    WebhookSubscription,
    utcnow,
)
from ..domain.principal import ALL_SCOPES, Principal
from . import bus
from .messages import Event

BATCH = 100


def client_principal(client: OAuthClient, regions: frozenset[uuid.UUID]) -> Principal:
    """What a partner app's client may read for itself: its allowed scopes, organisation and regions."""
    return Principal(
        subject=f"client:{client.client_id}",
        actor_type=ActorType.CLIENT,
        organisation_id=client.organisation_id,
        scopes=frozenset(client.scope.split()) & ALL_SCOPES,
        region_ids=regions or None,
        client_id=client.client_id,
        evaluation_project_id=client.evaluation_project_id,
    )


async def _subscribers(
    session: AsyncSession, organisation_ids: set[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[WebhookSubscription, Principal]]]:
    rows = (
        await session.execute(
            sa.select(WebhookSubscription, OAuthClient)
            .join(OAuthClient, OAuthClient.id == WebhookSubscription.client_pk)
            .where(
                WebhookSubscription.organisation_id.in_(organisation_ids),
                WebhookSubscription.status != WebhookStatus.DISABLED,
                OAuthClient.revoked_at.is_(None),
            )
        )
    ).all()
    regions: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    if rows:
        bound = await session.execute(
            sa.select(OAuthClientRegion.client_pk, OAuthClientRegion.region_id).where(
                OAuthClientRegion.client_pk.in_({client.id for _subscription, client in rows})
            )
        )
        for client_pk, region_id in bound:
            regions[client_pk].add(region_id)
    found: dict[uuid.UUID, list[tuple[WebhookSubscription, Principal]]] = defaultdict(list)
    for subscription, client in rows:
        found[subscription.organisation_id].append(
            (subscription, client_principal(client, frozenset(regions[client.id])))
        )
    return found


async def dispatch_batch(maker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Dispatch up to ``BATCH`` events; answers how many (0: nothing was waiting)."""
    async with maker() as session:
        events = list(
            (
                await session.scalars(
                    sa.select(OutboxEvent)
                    .where(OutboxEvent.dispatched_at.is_(None))
                    .order_by(OutboxEvent.created_at, OutboxEvent.id)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        )
        if not events:
            await session.rollback()
            return 0
        now = utcnow()
        subscribers = await _subscribers(session, {event.organisation_id for event in events})
        for event in events:
            for subscription, principal in subscribers.get(event.organisation_id, []):
                if event.event_type not in subscription.event_types:
                    continue
                if await outbox.reaches(session, principal, event.event_type, event.group_id, event.participant_id):
                    session.add(
                        WebhookDelivery(
                            organisation_id=event.organisation_id,
                            subscription_id=subscription.id,
                            event_id=event.id,
                            event_type=event.event_type,
                            status=DeliveryStatus.PENDING,
                            next_attempt_at=now,
                        )
                    )
            if event.event_type == "safeguarding_alert.raised":
                session.add(
                    NotificationEmail(
                        organisation_id=event.organisation_id,
                        alert_id=event.subject_id,
                        kind=EmailKind.RAISED,
                        status=DeliveryStatus.PENDING,
                        next_attempt_at=now,
                    )
                )
            event.dispatched_at = now
        live = [Event.of(event) for event in events]
        await session.flush()
        await bus.publish_in_transaction(session, settings, live)
        await session.commit()
        dialect = session.get_bind().dialect.name
    await bus.publish_committed(settings, dialect, live)
    return len(events)
