"""Read replicas: which server answers a read-only unit of work, decided here and nowhere else.

With ``PROGRAMME_API_DATABASE_REPLICA_URLS`` (PostgreSQL streaming replicas of the primary), GraphQL queries
and evaluator exports read from a replica; everything that writes, and every read the routing does not name
(token and rate-limit lookups, sign-in, subscriptions that follow change notifications), stays on the primary.

Read-your-writes: after a caller's unit of work commits a write, the primary's WAL insert position is
remembered for that caller (``WritePositions``: in this process, and in Redis when ``REDIS_URL`` is set, so
the other workers see it too). A later read by the same caller goes to a replica only once that replica's
``pg_last_wal_replay_lsn()`` has reached the remembered position; until then the primary answers. Other
callers read from the replica at once: what a replica has not replayed yet is only seconds old.

The replica's replay position is asked for on every routed read, in one statement outside any transaction,
and that statement is also the replica's health check: a replica that does not answer within
``PROBE_SECONDS`` (stopped, unreachable, refusing connections) is skipped for ``DOWN_SECONDS`` and its idle
connections are discarded, so the primary answers instead of the request failing. Tenant binding and
statement timeouts need nothing special: they are transaction-local settings, which a hot standby accepts.

SQLite has no replicas: the setting is ignored there.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import greenlet_spawn

from .config import Settings
from .db import create_engine, is_sqlite, session_factory
from .domain.principal import Principal
from .metrics import DATABASE_READS
from .request_context import statement_sent

log = logging.getLogger(__name__)

REMEMBER_SECONDS = 300.0
"""How long a caller's last write position is kept: far past any healthy replica's lag. A replica more than
this far behind could answer that caller with data older than its own write."""
PROBE_SECONDS = 2.0
DOWN_SECONDS = 5.0
REDIS_PREFIX = "programme-api:write-position:"
EVERYTHING = 2**64 - 1
"""The position remembered when the primary's own could not be read: no replica has replayed it, so the
caller reads from the primary for ``REMEMBER_SECONDS``."""

_REPLAYED = "SELECT pg_last_wal_replay_lsn()::text"
_WRITTEN = "SELECT pg_current_wal_insert_lsn()::text"
# Keep the larger of two positions (fixed-width hex compares as text), and the record alive for a while.
_REMEMBER_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current or current < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
"""

Server = Literal["primary", "replica"]


def lsn_value(text: str) -> int:
    """PostgreSQL's ``pg_lsn`` text (``16/B374D848``) as a number that orders as the WAL does."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def caller_key(principal: Principal) -> str:
    """Whose writes a read must see: the same person or machine client, in the same organisation."""
    return f"{principal.organisation_id}/{principal.subject}"


class PositionsUnknown(Exception):
    """The shared write positions could not be read; the read goes to the primary."""


class WritePositions:
    """The WAL position of each caller's last committed write, for ``REMEMBER_SECONDS``."""

    MAX_LOCAL = 10_000  # entries kept in process before expired ones are swept

    def __init__(self, redis: Redis | None = None) -> None:
        self.redis = redis
        self._local: dict[str, tuple[int, float]] = {}
        self._script = redis.register_script(_REMEMBER_SCRIPT) if redis is not None else None

    async def remember(self, key: str, position: int) -> None:
        now = time.monotonic()
        known, expires = self._local.get(key, (0, 0.0))
        self._local[key] = (max(position, known) if expires > now else position, now + REMEMBER_SECONDS)
        if len(self._local) > self.MAX_LOCAL:
            self._local = {name: entry for name, entry in self._local.items() if entry[1] > now}
        if self._script is not None:
            try:
                await self._script(keys=[REDIS_PREFIX + key], args=[f"{position:016x}", int(REMEMBER_SECONDS * 1000)])
            except RedisError as error:
                log.warning("the write position could not be shared through Redis: %s", error)

    async def required(self, key: str) -> int | None:
        """The position a replica must have replayed to answer this caller, or None when any replica may."""
        position, expires = self._local.get(key, (0, 0.0))
        local = position if expires > time.monotonic() else None
        if self.redis is None:
            return local
        try:
            shared = await self.redis.get(REDIS_PREFIX + key)
        except RedisError as error:
            raise PositionsUnknown(f"Redis is unreachable: {error}") from error
        if shared is None:
            return local
        return max(int(shared, 16), local or 0)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


@dataclass(frozen=True)
class ReadTarget:
    """Where a read goes: sessions for the executor, and the bind for a compiled read's single statement."""

    server: Server
    session_maker: async_sessionmaker[AsyncSession]
    bind: AsyncEngine | AsyncConnection


@dataclass
class Replica:
    name: str
    engine: AsyncEngine
    target: ReadTarget
    down_until: float = 0.0


class ReadRouter:
    """The one routing decision: primary or which replica, with the reason logged at debug level."""

    def __init__(
        self, primary: ReadTarget, replicas: list[Replica], positions: WritePositions, primary_engine: AsyncEngine
    ) -> None:
        self.primary = primary
        self.replicas = replicas
        self.positions = positions
        self.primary_engine = primary_engine
        self._turn = itertools.count()

    @classmethod
    def build(
        cls, settings: Settings, engine: AsyncEngine, session_maker: async_sessionmaker[AsyncSession]
    ) -> ReadRouter:
        """The router for these settings: no replicas on SQLite or without the setting."""
        primary = ReadTarget("primary", session_maker, session_maker.kw.get("bind", engine))
        urls = () if is_sqlite(settings.database_url) else settings.replica_urls
        replicas = [_replica(settings, url) for url in urls]
        redis = None
        if replicas and settings.redis_url is not None:
            redis = Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        return cls(primary, replicas, WritePositions(redis), engine)

    async def for_read(self, principal: Principal) -> ReadTarget:
        """The server to answer ``principal``'s read-only unit of work."""
        if not self.replicas:
            return self.primary
        try:
            required = await self.positions.required(caller_key(principal))
        except PositionsUnknown as unknown:
            return self._chosen(self.primary, str(unknown))
        reasons = []
        for replica in self._rotation():
            problem = await self._cannot_answer(replica, required)
            if problem is None:
                reason = "the caller has no recent write" if required is None else "it has replayed the caller's write"
                return self._chosen(replica.target, f"replica {replica.name}: {reason}")
            reasons.append(problem)
        return self._chosen(self.primary, "; ".join(reasons))

    async def wrote(self, principal: Principal) -> None:
        """Remember where the primary's WAL is now, just after ``principal``'s write committed."""
        if not self.replicas:
            return
        try:
            async with asyncio.timeout(PROBE_SECONDS):
                text = await _single_value(self.primary_engine, _WRITTEN)
            position = lsn_value(text) if text is not None else EVERYTHING
        except Exception as error:
            log.warning("the primary's WAL position could not be read; the caller reads from it: %s", error)
            position = EVERYTHING
        await self.positions.remember(caller_key(principal), position)

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.engine.dispose()
        await self.positions.close()

    def _rotation(self) -> list[Replica]:
        start = next(self._turn) % len(self.replicas)
        return self.replicas[start:] + self.replicas[:start]

    async def _cannot_answer(self, replica: Replica, required: int | None) -> str | None:
        """Why ``replica`` cannot answer this read now (down, just found unreachable, not a standby, or behind the
        caller's last write), or None when it can."""
        now = time.monotonic()
        if replica.down_until > now:
            return f"replica {replica.name} is skipped after a failure"
        try:
            async with asyncio.timeout(PROBE_SECONDS):
                text = await _single_value(replica.engine, _REPLAYED)
        except Exception as error:
            replica.down_until = now + DOWN_SECONDS
            log.warning("replica %s is unreachable, skipped for %g s: %r", replica.name, DOWN_SECONDS, error)
            await replica.engine.dispose()  # its other idle connections are as dead as this one
            return f"replica {replica.name} is unreachable"
        if text is None:
            return f"replica {replica.name} is not replaying WAL (not a standby)"
        if required is not None and lsn_value(text) < required:
            return f"replica {replica.name} has not replayed the caller's last write yet"
        return None

    @staticmethod
    def _chosen(target: ReadTarget, reason: str) -> ReadTarget:
        log.debug("read goes to the %s: %s", target.server, reason)
        DATABASE_READS.labels(server=target.server).inc()
        return target


def _replica(settings: Settings, url: str) -> Replica:
    # Last in, first out: the connection the replay position was just read on is the one the read gets.
    engine = create_engine(settings.model_copy(update={"database_url": url}), pool_use_lifo=True)
    maker = session_factory(engine)
    parsed = make_url(url)
    return Replica(f"{parsed.host}:{parsed.port or 5432}", engine, ReadTarget("replica", maker, engine))


async def _single_value(engine: AsyncEngine, sql: str) -> str | None:
    """One value from one statement on a pooled connection, outside any transaction (one round trip)."""
    pooled = await engine.raw_connection()
    try:
        statement_sent()
        value: str | None = await pooled.driver_connection.fetchval(sql)  # type: ignore[union-attr]
    except BaseException:
        await greenlet_spawn(pooled.invalidate)
        raise
    await greenlet_spawn(pooled.close)
    return value
