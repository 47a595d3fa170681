"""Shared pieces for the change-notification tests: a webhook receiver that checks signatures with the
``standardwebhooks`` package, and reading the outbox (clients come from ``oauth_support.make_client``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from programme_api.domain.models import OutboxEvent


@dataclass
class Receiver:
    """A local HTTP endpoint. It answers ``fail_first`` requests with 500, then 200; every request is checked
    with the independent ``standardwebhooks`` implementation, and deliveries are deduplicated by webhook-id."""

    secret: str | None = None
    fail_first: int = 0
    delay_seconds: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad_signatures: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Event = field(default_factory=threading.Event)

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        import time

        with self.lock:
            self.requests.append({"headers": headers, "body": body})
            failing = len(self.requests) <= self.fail_first
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if failing:
            return 500
        if self.secret is not None:
            try:
                payload = Webhook(self.secret).verify(body, headers)
            except WebhookVerificationError:
                with self.lock:
                    self.bad_signatures += 1
                return 401
            with self.lock:
                self.verified.setdefault(headers["webhook-id"], payload)
        self.arrived.set()
        return 204


@contextmanager
def running(receiver: Receiver) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            status = receiver.handle({key.lower(): value for key, value in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


async def outbox_events(db: AsyncSession, event_type: str | None = None) -> list[OutboxEvent]:
    statement = sa.select(OutboxEvent).order_by(OutboxEvent.created_at)
    if event_type is not None:
        statement = statement.where(OutboxEvent.event_type == event_type)
    return list((await db.scalars(statement.execution_options(populate_existing=True))).all())


def body_of(request: dict[str, Any]) -> Any:
    return orjson.loads(request["body"])
