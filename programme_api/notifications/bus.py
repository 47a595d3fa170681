"""Committed events reach every process that serves live subscriptions.

The worker that dispatches an event publishes it once; every serving process hears it and hands it to its
own subscribers (``BUS``), which filter it per connection. How it travels, chosen like the principal
invalidations (``oauth/listeners.py``, whose reconnecting listeners are reused here):

- ``REDIS_URL`` set: Redis pub/sub, published right after the dispatch commits;
- PostgreSQL: ``pg_notify`` inside the dispatch transaction, so listeners hear it exactly when it commits;
- SQLite (one process): handed to ``BUS`` in this process after the commit.

Live delivery is at most once (a subscriber that is not connected when an event is dispatched misses it);
webhooks are the at-least-once path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ..config import Settings
from ..oauth.listeners import Channel, LocalChannel, PostgresListener, RedisListener, listens_on_postgres
from .messages import Event

log = logging.getLogger(__name__)

CHANNEL = "programme_api_events"
QUEUE_SIZE = 1000


class EventBus:
    """This process's live subscribers: each holds a bounded queue; a subscriber too slow to keep up is
    told so (``None`` in its queue) and dropped, rather than letting the process's memory grow."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Event | None]] = set()

    def subscribe(self) -> asyncio.Queue[Event | None]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self._queues.discard(queue)

    def deliver(self, event: Event) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._queues.discard(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    def deliver_json(self, payload: str) -> None:
        try:
            event = Event.from_json(orjson.loads(payload))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed event notification")
            return
        self.deliver(event)


BUS = EventBus()


class _Hearing:
    """What the event listeners do differently from the principal listeners: hand events to ``BUS``."""

    name = "event listener"
    channel = CHANNEL

    def _subscribed(self) -> None:
        self.subscribed_at = time.monotonic()

    def _deliver(self, payload: str) -> None:
        BUS.deliver_json(payload)


class PostgresEventListener(_Hearing, PostgresListener):
    pass


class RedisEventListener(_Hearing, RedisListener):
    pass


def build_listener(settings: Settings, engine: AsyncEngine) -> Channel:
    if settings.redis_url is not None:
        return RedisEventListener(settings.redis_url)
    if listens_on_postgres(settings, engine):
        return PostgresEventListener(engine)
    return LocalChannel()


async def publish_in_transaction(session: AsyncSession, settings: Settings, events: list[Event]) -> None:
    """On PostgreSQL without Redis: queue the notifications in the dispatch transaction (sent on commit)."""
    if settings.redis_url is None and session.get_bind().dialect.name == "postgresql":
        for event in events:
            await session.execute(sa.select(sa.func.pg_notify(CHANNEL, _encoded(event))))


async def publish_committed(settings: Settings, dialect: str, events: list[Event]) -> None:
    """After the dispatch committed: Redis, or this process's subscribers on SQLite."""
    if not events:
        return
    if settings.redis_url is not None:
        client: Any = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            for event in events:
                await client.publish(CHANNEL, _encoded(event))
        except (RedisError, OSError):
            log.exception("could not publish %d events on Redis", len(events))
        finally:
            await client.aclose()
    elif dialect != "postgresql":
        for event in events:
            BUS.deliver(event)


def _encoded(event: Event) -> str:
    return orjson.dumps(event.to_json()).decode()
