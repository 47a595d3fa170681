"""How each worker hears about changes made by others, and so how long it may trust what it cached.

A cached entry is used only while ``trusts(entry.loaded_at)`` holds; otherwise the resource server reads the
database as it would without a cache (fail safe). The three kinds:

- ``LocalChannel`` (SQLite, one process, no ``REDIS_URL``): changes made in this process arrive through
  ``invalidation.deliver_locally`` at commit. A change made by another process (the CLI) has no way in, so an
  entry is trusted for ``LOCAL_TRUST_SECONDS`` only.
- ``PostgresListener``: ``LISTEN`` on a dedicated asyncpg connection (not one of the pool's); each
  notification drops its tags in this process's caches.
- ``RedisListener`` (``REDIS_URL`` set): the same over Redis pub/sub.
- ``DeafChannel`` (PostgreSQL behind PgBouncer in transaction mode, no ``REDIS_URL``): ``LISTEN`` would be
  session state on a shared server connection, so nothing is heard and nothing cached is trusted.

A listener is healthy while its connection answered a heartbeat in the last ``HEALTHY_WINDOW_SECONDS``. When
it is not (never started, connection lost, heartbeat unanswered), nothing cached is trusted: every request
checks the database until the listener has subscribed again, and subscribing drops every cache first, so
nothing missed in between survives. Even while healthy an entry is trusted for ``MAX_TRUST_SECONDS`` at
most, which bounds how long a change that bypassed ``announce`` (a hand-written SQL update) goes unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any, Protocol

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import Settings
from . import invalidation

log = logging.getLogger(__name__)

LOCAL_TRUST_SECONDS = 1.0
MAX_TRUST_SECONDS = 30.0
HEARTBEAT_SECONDS = 1.0
HEALTHY_WINDOW_SECONDS = 2.5
RECONNECT_SECONDS = 0.5
#: How the listening connection names itself in ``pg_stat_activity``.
APPLICATION_NAME = "programme-api listener"


class Channel(Protocol):
    def trusts(self, loaded_at: float) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class LocalChannel:
    """One process: local changes arrive at commit; anything else within ``LOCAL_TRUST_SECONDS``."""

    def trusts(self, loaded_at: float) -> bool:
        return time.monotonic() - loaded_at < LOCAL_TRUST_SECONDS

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class Listener:
    """The reconnecting loop shared by the PostgreSQL and Redis listeners; subclasses implement ``_listen``."""

    name = "listener"
    #: The notification (pub/sub) channel listened to.
    channel = invalidation.CHANNEL

    def __init__(self) -> None:
        self.healthy_until = 0.0
        self.subscribed_at = float("inf")
        self._task: asyncio.Task[None] | None = None

    def trusts(self, loaded_at: float) -> bool:
        now = time.monotonic()
        return now < self.healthy_until and loaded_at >= self.subscribed_at and now - loaded_at < MAX_TRUST_SECONDS

    @property
    def healthy(self) -> bool:
        return time.monotonic() < self.healthy_until

    async def start(self) -> None:
        """Start listening and wait (briefly) for the first subscription, so a fresh worker caches at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"principal {self.name}")
        for _ in range(50):
            if self.healthy:
                return
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.healthy_until = 0.0
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _subscribed(self) -> None:
        """Called once the subscription is in place: what was cached before may have missed changes.
        The listener counts as healthy from its first heartbeat answered on this subscription."""
        invalidation.deliver_locally([invalidation.EVERYTHING])
        self.subscribed_at = time.monotonic()

    def _heard(self) -> None:
        self.healthy_until = time.monotonic() + HEALTHY_WINDOW_SECONDS

    def _lost(self) -> None:
        self.healthy_until = 0.0

    def _deliver(self, payload: str) -> None:
        invalidation.deliver_locally(invalidation.decode(payload))

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("principal %s lost its connection; checking the database until it is back", self.name,
                            exc_info=True)  # fmt: skip
            self._lost()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen(self) -> None:
        raise NotImplementedError


class PostgresListener(Listener):
    """``LISTEN`` on its own asyncpg connection, with the engine's connection arguments.

    The heartbeat is a notification to a channel only this worker listens to: it is healthy only while its
    own notifications come back, so a connection that can run queries but not receive notifications
    (``LISTEN`` through PgBouncer in transaction mode) fails safe instead of trusting a deaf cache.
    """

    name = "PostgreSQL listener"

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        _args, self._connect_kwargs = engine.dialect.create_connect_args(engine.url)
        settings = dict(self._connect_kwargs.get("server_settings") or {})
        self._connect_kwargs["server_settings"] = {**settings, "application_name": APPLICATION_NAME}
        self._beacon = f"{invalidation.CHANNEL}_{secrets.token_hex(6)}"

    async def _listen(self) -> None:
        connection: Any = await asyncio.wait_for(asyncpg.connect(**self._connect_kwargs), HEALTHY_WINDOW_SECONDS * 4)
        try:
            connection.add_termination_listener(lambda _connection: self._lost())
            await connection.add_listener(self.channel, lambda *args: self._deliver(args[3]))
            await connection.add_listener(self._beacon, lambda *_args: self._heard())
            self._subscribed()
            while True:
                beacon = connection.execute("SELECT pg_notify($1, '')", self._beacon)
                await asyncio.wait_for(beacon, HEALTHY_WINDOW_SECONDS)
                await asyncio.sleep(HEARTBEAT_SECONDS)
        finally:
            self._lost()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 1)


class RedisListener(Listener):
    """Redis pub/sub; the heartbeat is a ``PING`` on the subscribed connection, answered in order."""

    name = "Redis listener"

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url

    async def _listen(self) -> None:
        client = Redis.from_url(self._url, socket_connect_timeout=HEALTHY_WINDOW_SECONDS * 2)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            pinged = time.monotonic()
            while True:
                message = await pubsub.get_message(timeout=HEARTBEAT_SECONDS)
                if message is not None:
                    self._handle(message)
                if time.monotonic() - pinged >= HEARTBEAT_SECONDS:
                    await pubsub.ping()
                    pinged = time.monotonic()
        finally:
            self._lost()
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            self._subscribed()
            self._heard()  # confirmed on the subscribed connection itself
        elif kind == "pong":
            self._heard()
        elif kind == "message":
            data = message.get("data")
            self._deliver(data.decode() if isinstance(data, bytes) else str(data))


class DeafChannel:
    """Nothing can be heard (PostgreSQL behind PgBouncer without ``REDIS_URL``): nothing cached is trusted,
    every request checks the database."""

    def trusts(self, loaded_at: float) -> bool:
        return False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def listens_on_postgres(settings: Settings, engine: AsyncEngine) -> bool:
    """Whether changes may be heard through ``LISTEN``: on PostgreSQL reached directly, not behind PgBouncer in
    transaction mode (``STATEMENT_CACHE_SIZE=0``, README). There a ``LISTEN`` stays registered on whichever
    pooled server connection ran it, after the listener has moved on: notifications then reach another client,
    or none, and PgBouncer stalls that server connection, leaving the requests queued on it waiting forever."""
    return engine.dialect.name == "postgresql" and settings.statement_cache_size != 0


def build_channel(settings: Settings, engine: AsyncEngine) -> Channel:
    if settings.redis_url is not None:
        return RedisListener(settings.redis_url)
    if listens_on_postgres(settings, engine):
        return PostgresListener(engine)
    return DeafChannel() if engine.dialect.name == "postgresql" else LocalChannel()
