"""Webhook subscriptions for organisation admins: subscribe a client's endpoint, rotate its secret, read its
delivery log, redeliver. Thin resolvers over ``domain.webhooks``; every write follows the mutation convention
(``mutations.common.perform``). Requires `admin`."""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ..config import get_settings
from ..domain import models, webhooks
from ..domain.pagination import Ordering
from ..domain.principal import Principal
from ..notifications import url_safety
from .context import Info
from .lists import top_level_connection
from .mutations.common import MutationInput, MutationPayload, perform
from .relay import Connection, Node, expect_global_id, to_global_id

SCOPE_NOTE = "Requires `admin`."
SUBSCRIPTION_ORDER = Ordering((models.WebhookSubscription.created_at, models.WebhookSubscription.id))
DELIVERY_ORDER = Ordering((models.WebhookDelivery.created_at, models.WebhookDelivery.id))

WebhookStatus = strawberry.enum(
    models.WebhookStatus, description="`FAILING`: deliveries gave up after 24 h of retries; a success clears it."
)
DeliveryStatus = strawberry.enum(models.DeliveryStatus, description="Where a delivery stands.")


@strawberry.type(description=f"One event for one subscription, and how its attempts went. {SCOPE_NOTE}")
class WebhookDelivery(Node):
    event_id: strawberry.ID = strawberry.field(description="The event (`data.eventId` in the body).")
    event_type: str
    status: models.DeliveryStatus
    attempts: int
    last_response_code: int | None = strawberry.field(description="The HTTP status of the last attempt, if any.")
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = strawberry.field(description="When it is tried next, while pending.")
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def from_model(cls, row: models.WebhookDelivery) -> WebhookDelivery:
        pending = row.status is models.DeliveryStatus.PENDING
        return cls(
            id=to_global_id("WebhookDelivery", row.id),
            event_id=strawberry.ID(str(row.event_id)),
            event_type=row.event_type,
            status=row.status,
            attempts=row.attempts,
            last_response_code=row.last_response_code,
            last_error=row.last_error,
            last_attempt_at=row.last_attempt_at,
            next_attempt_at=row.next_attempt_at if pending else None,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
        )


@strawberry.type(description=f"A client's endpoint and the event types sent to it. {SCOPE_NOTE}")
class WebhookSubscription(Node):
    model: strawberry.Private[models.WebhookSubscription]
    url: str
    event_types: list[str]
    status: models.WebhookStatus
    failing_since: datetime | None
    created_at: datetime
    version: int

    @classmethod
    def from_model(cls, row: models.WebhookSubscription) -> WebhookSubscription:
        return cls(
            model=row,
            id=to_global_id("WebhookSubscription", row.id),
            url=row.url,
            event_types=list(row.event_types),
            status=row.status,
            failing_since=row.failing_since,
            created_at=row.created_at,
            version=row.version,
        )

    @strawberry.field(description="The delivery log, oldest first.")
    async def deliveries(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[WebhookDelivery]:
        subscription_id = self.model.id
        return await top_level_connection(
            info, lambda p: webhooks.deliveries(p, subscription_id), DELIVERY_ORDER, WebhookDelivery.from_model,
            first, after, last, before,
        )  # fmt: skip


@strawberry.type
class WebhooksQuery:
    @strawberry.field(description=f"Your organisation's webhook subscriptions, oldest first. {SCOPE_NOTE}")
    async def webhook_subscriptions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[WebhookSubscription]:
        return await top_level_connection(
            info, webhooks.subscriptions, SUBSCRIPTION_ORDER, WebhookSubscription.from_model,
            first, after, last, before,
        )  # fmt: skip


@strawberry.input(description="Subscribe a partner app's client to event types.")
class CreateWebhookSubscriptionInput(MutationInput):
    client_id: str = strawberry.field(description="The client's public id (as used at `/oauth/token`).")
    url: str = strawberry.field(description="`https://` endpoint (plain `http://` only to a loopback address).")
    event_types: list[str] = strawberry.field(description="Event types to send; each needs a scope the client has.")


@strawberry.input(description="Give a subscription a new signing secret.")
class RotateWebhookSecretInput(MutationInput):
    subscription_id: strawberry.ID
    version: int = strawberry.field(description="The subscription's version you read.")


@strawberry.input(description="Attempt a delivery again now, under its original `webhook-id`.")
class RedeliverWebhookInput(MutationInput):
    delivery_id: strawberry.ID


@strawberry.type(description="The subscription and its signing secret (shown only here), or why not.")
class WebhookSecretPayload(MutationPayload):
    subscription: WebhookSubscription | None = None
    secret: str | None = strawberry.field(
        default=None, description="`whsec_...`: verify deliveries with it (Standard Webhooks). Store it now."
    )


@strawberry.type(description="The delivery queued again, or why not.")
class RedeliverWebhookPayload(MutationPayload):
    delivery: WebhookDelivery | None = None


def _with_secret(row: models.WebhookSubscription) -> WebhookSecretPayload:
    return WebhookSecretPayload(subscription=WebhookSubscription.from_model(row), secret=row.secret)


@strawberry.type
class WebhooksMutation:
    @strawberry.mutation(
        description="Subscribe a client's endpoint to event types; answers the signing secret once. The URL "
        f"must resolve to a public address. {SCOPE_NOTE}"
    )
    async def create_webhook_subscription(
        self, info: Info, input: CreateWebhookSubscriptionInput
    ) -> WebhookSecretPayload:
        async def work(session: AsyncSession, principal: Principal) -> models.WebhookSubscription:
            webhooks.check_url(input.url)
            safe = await url_safety.is_safe(input.url.strip(), get_settings().webhook_allowed_networks)
            data = webhooks.NewWebhook(client_id=input.client_id, url=input.url, event_types=input.event_types)
            return await webhooks.create_subscription(session, principal, data, safe_url=safe)

        return await perform(
            info, operation="createWebhookSubscription", scope=webhooks.SCOPE, input=input,
            result_type=models.WebhookSubscription, work=work, payload=WebhookSecretPayload, present=_with_secret,
        )  # fmt: skip

    @strawberry.mutation(description=f"Replace a subscription's signing secret; answers the new one once. {SCOPE_NOTE}")
    async def rotate_webhook_secret(self, info: Info, input: RotateWebhookSecretInput) -> WebhookSecretPayload:
        async def work(session: AsyncSession, principal: Principal) -> models.WebhookSubscription:
            subscription_id = expect_global_id(input.subscription_id, "WebhookSubscription", "input.subscriptionId")
            return await webhooks.rotate_secret(session, principal, subscription_id, input.version)

        return await perform(
            info, operation="rotateWebhookSecret", scope=webhooks.SCOPE, input=input,
            result_type=models.WebhookSubscription, work=work, payload=WebhookSecretPayload, present=_with_secret,
        )  # fmt: skip

    @strawberry.mutation(description=f"Attempt a webhook delivery again now. {SCOPE_NOTE}")
    async def redeliver_webhook(self, info: Info, input: RedeliverWebhookInput) -> RedeliverWebhookPayload:
        async def work(session: AsyncSession, principal: Principal) -> models.WebhookDelivery:
            delivery_id = expect_global_id(input.delivery_id, "WebhookDelivery", "input.deliveryId")
            return await webhooks.redeliver(session, principal, delivery_id)

        return await perform(
            info, operation="redeliverWebhook", scope=webhooks.SCOPE, input=input,
            result_type=models.WebhookDelivery, work=work, payload=RedeliverWebhookPayload,
            present=lambda row: RedeliverWebhookPayload(delivery=WebhookDelivery.from_model(row)),
        )  # fmt: skip
