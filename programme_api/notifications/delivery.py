"""Webhook deliveries: signed POSTs, retried with exponential backoff and jitter, logged per subscription.

Each attempt follows the Standard Webhooks specification: the body is the event's JSON, and three headers
let the receiver check it came from us, unchanged and recently: ``webhook-id`` (the delivery's id, the same
on every attempt, so a receiver can drop duplicates), ``webhook-timestamp`` (seconds since the epoch) and
``webhook-signature`` (``v1,`` + base64 HMAC-SHA256 over ``id.timestamp.body`` with the subscription's secret).

A worker claims due deliveries by leasing them (``leased_until``) in a short transaction (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so concurrent workers take different rows), makes the attempts outside any
transaction, and records each outcome in another. A worker that dies mid-attempt leaves its lease to run out;
the delivery is then attempted again: at least once, never lost. A 2xx answer delivers; anything else (or no
answer) is retried after ``backoff`` until ``webhook_retry_seconds`` (24 h) have passed since the delivery was
queued; then the delivery has failed and its subscription is marked failing (a later success clears it).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from ..config import Settings
from ..domain.models import (
    DeliveryStatus,
    OutboxEvent,
    WebhookDelivery,
    WebhookStatus,
    WebhookSubscription,
    utcnow,
)
from . import url_safety
from .messages import Event, webhook_body

log = logging.getLogger(__name__)

BATCH = 20
MAX_BACKOFF_SECONDS = 3600.0
USER_AGENT = "programme-api-webhooks/1"


@dataclass(frozen=True)
class Attempt:
    delivery_id: uuid.UUID
    subscription_id: uuid.UUID
    url: str
    secret: str
    event: Event
    attempts: int
    queued_at: datetime


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None
    error: str | None


def backoff(attempts: int, base: float) -> float:
    """Seconds before the next attempt after ``attempts`` failures: doubling, capped at an hour, with jitter
    (between half and all of it), so many deliveries failing together do not retry in lockstep."""
    delay = min(MAX_BACKOFF_SECONDS, base * 2.0 ** max(0, attempts - 1))
    return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret


def signed_headers(secret: str, message_id: str, body: bytes, when: datetime) -> dict[str, str]:
    signature = Webhook(secret).sign(message_id, when, body.decode())
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


async def claim(maker: async_sessionmaker[AsyncSession], settings: Settings) -> list[Attempt]:
    """Lease up to ``BATCH`` due deliveries to this worker."""
    now = utcnow()
    async with maker() as session:
        rows = (
            await session.execute(
                sa.select(WebhookDelivery, WebhookSubscription, OutboxEvent)
                .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
                .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                    sa.or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < now),
                    WebhookSubscription.status != WebhookStatus.DISABLED,
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True, of=WebhookDelivery)
            )
        ).all()
        if not rows:
            await session.rollback()
            return []
        lease = now + timedelta(seconds=settings.webhook_lease_seconds)
        await session.execute(
            sa.update(WebhookDelivery)
            .where(WebhookDelivery.id.in_([delivery.id for delivery, _s, _e in rows]))
            .values(leased_until=lease)
        )
        await session.commit()
    return [
        Attempt(
            delivery.id,
            subscription.id,
            subscription.url,
            subscription.secret,
            Event.of(event),
            delivery.attempts,
            delivery.created_at,
        )
        for delivery, subscription, event in rows
    ]


async def attempt(http: httpx.AsyncClient, settings: Settings, work: Attempt) -> Outcome:
    """One signed POST; redirects are not followed (the URL was checked, where it redirects to was not)."""
    try:
        await url_safety.refuse_unsafe(work.url, settings.webhook_allowed_networks)
    except url_safety.UnsafeURL as refusal:
        return Outcome(False, None, str(refusal)[:300])
    body = orjson.dumps(webhook_body(work.event))
    headers = signed_headers(work.secret, str(work.delivery_id), body, utcnow())
    try:
        response = await http.post(work.url, content=body, headers=headers, follow_redirects=False)
    except httpx.HTTPError as error:
        return Outcome(False, None, f"{type(error).__name__}: {error}"[:300])
    delivered = 200 <= response.status_code < 300
    return Outcome(delivered, response.status_code, None if delivered else f"HTTP {response.status_code}")


async def record(maker: async_sessionmaker[AsyncSession], settings: Settings, work: Attempt, outcome: Outcome) -> None:
    now = utcnow()
    attempts = work.attempts + 1
    values: dict[str, object] = {
        "attempts": attempts,
        "leased_until": None,
        "last_attempt_at": now,
        "last_response_code": outcome.status_code,
        "last_error": outcome.error,
    }
    subscription: dict[str, object] | None = None
    if outcome.delivered:
        values |= {"status": DeliveryStatus.DELIVERED, "delivered_at": now}
        subscription = {"status": WebhookStatus.ACTIVE, "failing_since": None}
        still_failing = WebhookSubscription.status == WebhookStatus.FAILING
    else:
        retry_at = now + timedelta(seconds=backoff(attempts, settings.webhook_backoff_seconds))
        if retry_at - work.queued_at > timedelta(seconds=settings.webhook_retry_seconds):
            values |= {"status": DeliveryStatus.FAILED}
            subscription = {"status": WebhookStatus.FAILING, "failing_since": now}
            still_failing = WebhookSubscription.status == WebhookStatus.ACTIVE
        else:
            values |= {"next_attempt_at": retry_at}
    async with maker() as session:
        await session.execute(sa.update(WebhookDelivery).where(WebhookDelivery.id == work.delivery_id).values(values))
        if subscription is not None:
            await session.execute(
                sa.update(WebhookSubscription)
                .where(WebhookSubscription.id == work.subscription_id, still_failing)
                .values(subscription)
            )
        await session.commit()


async def deliver_due(maker: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, settings: Settings) -> int:
    """Claim a batch, attempt it (concurrently: one slow receiver does not hold up the others), and record
    the outcomes one after the other (short transactions); answers how many attempts were made."""
    batch = await claim(maker, settings)
    outcomes = await asyncio.gather(*(attempt(http, settings, work) for work in batch))
    for work, outcome in zip(batch, outcomes, strict=True):
        if not outcome.delivered:
            log.info("webhook delivery %s failed (attempt %d): %s", work.delivery_id, work.attempts + 1, outcome.error)
        await record(maker, settings, work, outcome)
    return len(batch)
