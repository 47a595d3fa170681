"""Webhook subscriptions: an organisation admin points an OAuth client's endpoint at some event types.

Rules kept here, for the GraphQL mutations and the CLI alike:

- the URL is ``https``, or plain ``http`` to a loopback address only (a receiver on the same machine); it
  carries no credentials or fragment. Where it resolves to is checked too (``url_safety``): an address that is
  private, link-local, loopback or otherwise not public is refused unless an allow-list setting permits it, so
  a subscription cannot point the worker at the internal network;
- the event types are known ones (``outbox.EVENT_TYPES``) that the client's allowed scopes may hear;
- the signing secret (``whsec_`` + 32 random bytes, base64) is generated here and answered once, at creation
  and at each rotation; it is never listed afterwards;
- a redelivery puts a delivery back in the queue for an immediate attempt, under its original ``webhook-id``.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit
from .access import require_scope
from .errors import DomainError, ErrorCode, NotFound
from .models import DeliveryStatus, OAuthClient, WebhookDelivery, WebhookStatus, WebhookSubscription, utcnow
from .outbox import EVENT_TYPES
from .principal import Principal

SCOPE = "admin"
MAX_URL = 2000
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
LOOPBACK_NAMES = frozenset({"localhost"})

access.register_rule(
    WebhookSubscription, SCOPE, lambda p: sa.and_(WebhookSubscription.organisation_id == p.organisation_id)
)
access.register_rule(WebhookDelivery, SCOPE, lambda p: sa.and_(WebhookDelivery.organisation_id == p.organisation_id))


@dataclass(frozen=True)
class NewWebhook:
    client_id: str
    url: str
    event_types: Sequence[str]


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _is_loopback_host(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """The URL's form: https anywhere, http to loopback only; no credentials, no fragment."""
    cleaned = url.strip()
    if not cleaned or len(cleaned) > MAX_URL:
        raise DomainError(ErrorCode.INVALID, f"must be a URL of at most {MAX_URL} characters", "url")
    try:
        parts = urlsplit(cleaned)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise DomainError(ErrorCode.INVALID, "is not a valid URL", "url") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DomainError(ErrorCode.INVALID, "must be an https:// URL", "url")
    if parts.scheme == "http" and not _is_loopback_host(parts.hostname):
        raise DomainError(ErrorCode.INVALID, "must be https:// (plain http only to a loopback address)", "url")
    if parts.username or parts.password or parts.fragment:
        raise DomainError(ErrorCode.INVALID, "must not carry credentials or a fragment", "url")
    return cleaned


def check_event_types(event_types: Sequence[str], client_scopes: frozenset[str]) -> list[str]:
    wanted = sorted(set(event_types))
    if not wanted:
        raise DomainError(ErrorCode.INVALID, "name at least one event type", "event_types")
    for index, name in enumerate(event_types):
        if name not in EVENT_TYPES:
            known = ", ".join(sorted(EVENT_TYPES))
            raise DomainError(ErrorCode.INVALID, f"unknown event type {name!r}; known: {known}", f"event_types.{index}")
        needed = EVENT_TYPES[name].scope
        if needed not in client_scopes:
            raise DomainError(
                ErrorCode.INVALID, f"the client is not allowed {needed!r}, which {name!r} needs", f"event_types.{index}"
            )
    return wanted


async def _client(session: AsyncSession, principal: Principal, client_id: str) -> OAuthClient:
    """The admin's organisation's client with that public id, or NOT_FOUND.

    Trusted filter: OAuth clients have no read rule; an admin (the caller already holds ``admin``) manages
    the clients of their own organisation, which is exactly the filter here.
    """
    statement = sa.select(OAuthClient).where(
        OAuthClient.organisation_id == principal.organisation_id,
        OAuthClient.client_id == client_id,
        OAuthClient.revoked_at.is_(None),
    )
    row = await session.scalar(access.trusted(statement, reason="an admin's own organisation's client"))
    if row is None:
        raise NotFound("client", "client_id")
    return row


async def create_subscription(
    session: AsyncSession, principal: Principal, data: NewWebhook, *, safe_url: bool = True
) -> WebhookSubscription:
    """Subscribe a client's endpoint; ``safe_url`` is whether the caller checked where the URL resolves to
    (``url_safety.refuse_unsafe``, network I/O kept out of the domain)."""
    require_scope(principal, SCOPE)
    url = check_url(data.url)
    if not safe_url:
        raise DomainError(ErrorCode.INVALID, "resolves to an address that is not allowed", "url")
    client = await _client(session, principal, data.client_id.strip())
    event_types = check_event_types(data.event_types, frozenset(client.scope.split()))
    row = WebhookSubscription(
        id=uuid.uuid4(),
        organisation_id=principal.organisation_id,
        client_pk=client.id,
        url=url,
        event_types=event_types,
        secret=new_secret(),
        status=WebhookStatus.ACTIVE,
    )
    session.add(row)
    await session.flush()
    details = {"client_id": client.client_id, "event_types": event_types}
    await audit.record(session, principal, "webhook_subscription.create", row, details)
    return row


async def rotate_secret(
    session: AsyncSession, principal: Principal, subscription_id: uuid.UUID, version: int
) -> WebhookSubscription:
    """A new signing secret, in force for the next delivery; the old one stops signing at once."""
    require_scope(principal, SCOPE)
    row = await access.get_in_reach(
        session, principal, WebhookSubscription, subscription_id, "webhook subscription", "subscription_id", lock=True
    )
    await audit.bump_version(session, row, version, "webhook subscription")
    row.secret = new_secret()
    await session.flush()
    await audit.record(session, principal, "webhook_subscription.rotate_secret", row)
    return row


async def set_enabled(
    session: AsyncSession, principal: Principal, subscription_id: uuid.UUID, version: int, enabled: bool
) -> WebhookSubscription:
    """Pause (no new deliveries are queued) or resume a subscription; resuming clears a failing mark."""
    require_scope(principal, SCOPE)
    row = await access.get_in_reach(
        session, principal, WebhookSubscription, subscription_id, "webhook subscription", "subscription_id", lock=True
    )
    await audit.bump_version(session, row, version, "webhook subscription")
    row.status = WebhookStatus.ACTIVE if enabled else WebhookStatus.DISABLED
    row.failing_since = None
    await session.flush()
    await audit.record(session, principal, "webhook_subscription.set_enabled", row, {"enabled": enabled})
    return row


async def redeliver(session: AsyncSession, principal: Principal, delivery_id: uuid.UUID) -> WebhookDelivery:
    """Queue a delivery again for an attempt now (the same ``webhook-id``); its attempt count starts afresh."""
    require_scope(principal, SCOPE)
    row = await access.get_in_reach(
        session, principal, WebhookDelivery, delivery_id, "webhook delivery", "delivery_id", lock=True
    )
    row.status = DeliveryStatus.PENDING
    row.attempts = 0
    row.next_attempt_at = utcnow()
    row.leased_until = None
    row.created_at = utcnow()  # the retry window runs from the redelivery
    await session.flush()
    await audit.record(session, principal, "webhook_delivery.redeliver", row)
    return row


def subscriptions(principal: Principal) -> sa.Select[WebhookSubscription]:
    return access.readable(principal, WebhookSubscription)


def deliveries(principal: Principal, subscription_id: uuid.UUID) -> sa.Select[WebhookDelivery]:
    return access.readable(principal, WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
