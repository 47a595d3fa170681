"""``programme-api worker`` and ``programme-api webhooks ...``: the operator's side of change notifications."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain import webhooks
from ..domain.errors import DomainError, ErrorCode
from ..domain.models import ActorType
from ..domain.principal import Principal
from ..domain.tenancy import tenant_of
from . import url_safety

ADMIN = frozenset({"admin"})

webhooks_app = typer.Typer(help="Webhook subscriptions of partner apps' clients.", no_args_is_help=True)


def operator(organisation_id: uuid.UUID) -> Principal:
    """The operator at the command line, as an admin of one organisation."""
    return Principal(subject="cli", actor_type=ActorType.SYSTEM, organisation_id=organisation_id, scopes=ADMIN)


@webhooks_app.command("create")
def webhooks_create(
    client_id: str = typer.Option(..., "--client-id", help="The partner app's client id."),
    url: str = typer.Option(..., "--url", help="The receiving endpoint (https://...)."),
    event_type: list[str] = typer.Option(..., "--event-type", help="An event type to send (repeat for more)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Subscribe a client's endpoint to event types; prints the signing secret (shown this once)."""
    from ..cli import fail, one_line_errors, run_for_key, settings

    @one_line_errors
    def run() -> None:
        configured = settings()
        if not asyncio.run(url_safety.is_safe(url, configured.webhook_allowed_networks)):
            fail("url: resolves to an address that is not allowed (private, loopback or link-local)")

        async def work(session: AsyncSession) -> dict[str, str]:
            organisation_id = await tenant_of(session, "client", client_id)
            if organisation_id is None:
                raise DomainError(ErrorCode.NOT_FOUND, f"client {client_id!r} not found")
            data = webhooks.NewWebhook(client_id=client_id, url=url, event_types=event_type)
            row = await webhooks.create_subscription(session, operator(organisation_id), data)
            return {"subscription_id": str(row.id), "secret": row.secret}

        created = run_for_key("client", client_id, work)
        if as_json:
            typer.echo(json.dumps(created))
        else:
            typer.echo(f"subscription {created['subscription_id']}\nsecret {created['secret']} (shown once)")

    run()


def worker() -> None:
    """Dispatch committed events and deliver webhooks and safeguarding emails until stopped."""
    from ..cli import one_line_errors, settings
    from ..logging import configure_logging
    from . import worker as outbox_worker

    @one_line_errors
    def run() -> None:
        configured = settings()
        configure_logging(configured.log_format)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(outbox_worker.main(configured))

    run()
