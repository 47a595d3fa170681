"""Slowing down password guessing at ``/login``: after 5 failures for one email from one address, wait.

Failures are counted per (email, client IP) in a fixed 15-minute window that starts at the first failure.
With ``REDIS_URL`` set the counts live in Redis, so every worker and host sees the same numbers; otherwise
they live in the process (fine for the single-process SQLite set-up). If Redis cannot be reached the
process-local counter takes over rather than letting guesses through unthrottled or locking everyone out.
Keys are hashes, so neither emails nor addresses are written to Redis.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .users import normalise_email

log = logging.getLogger(__name__)

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60
_LOCAL_MAX_ENTRIES = 100_000


def throttle_key(email: str, address: str) -> str:
    """Counted per sign-in email as ``/login`` compares it (``normalise_email``), so case cannot dodge the limit."""
    return hashlib.sha256(f"{normalise_email(email)}\n{address}".encode()).hexdigest()


class SignInThrottle(Protocol):
    async def retry_after(self, key: str) -> int:
        """Seconds until another attempt is allowed (0: allowed now)."""

    async def record_failure(self, key: str) -> None: ...

    async def clear(self, key: str) -> None: ...


class LocalThrottle:
    """Per-process counts, bounded in size so a flood of distinct keys cannot exhaust memory."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window_seconds: int = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self._clock = clock
        self._entries: dict[str, tuple[int, float]] = {}

    async def retry_after(self, key: str) -> int:
        count, ends = self._entries.get(key, (0, 0.0))
        remaining = ends - self._clock()
        if count < self.max_failures or remaining <= 0:
            return 0
        return math.ceil(remaining)

    async def record_failure(self, key: str) -> None:
        now = self._clock()
        count, ends = self._entries.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + self.window_seconds
        self._entries[key] = (count + 1, ends)
        if len(self._entries) > _LOCAL_MAX_ENTRIES:
            self._prune(now)

    async def clear(self, key: str) -> None:
        self._entries.pop(key, None)

    def _prune(self, now: float) -> None:
        live = {key: entry for key, entry in self._entries.items() if entry[1] > now}
        if len(live) > _LOCAL_MAX_ENTRIES:
            newest = sorted(live.items(), key=lambda item: item[1][1])[-_LOCAL_MAX_ENTRIES // 2 :]
            live = dict(newest)
        self._entries = live


class RedisThrottle:
    """Counts shared by every worker through Redis (``SET NX EX`` starts the window, ``INCR`` counts)."""

    PREFIX = "programme-api:sign-in-failures:"

    def __init__(
        self,
        redis: Redis,
        *,
        max_failures: int = MAX_FAILURES,
        window_seconds: int = WINDOW_SECONDS,
        fallback: LocalThrottle | None = None,
    ) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.fallback = fallback or LocalThrottle(max_failures=max_failures, window_seconds=window_seconds)

    async def retry_after(self, key: str) -> int:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(self.PREFIX + key)
                pipe.ttl(self.PREFIX + key)
                count, ttl = await pipe.execute()
        except RedisError as exc:
            log.warning("sign-in throttle: Redis unavailable (%s); using this process's counts", exc)
            return await self.fallback.retry_after(key)
        if count is None or int(count) < self.max_failures or ttl is None or int(ttl) <= 0:
            return 0
        return int(ttl)

    async def record_failure(self, key: str) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(self.PREFIX + key, 0, ex=self.window_seconds, nx=True)
                pipe.incr(self.PREFIX + key)
                await pipe.execute()
        except RedisError as exc:
            log.warning("sign-in throttle: Redis unavailable (%s); using this process's counts", exc)
            await self.fallback.record_failure(key)

    async def clear(self, key: str) -> None:
        try:
            await self.redis.delete(self.PREFIX + key)
        except RedisError as exc:
            log.warning("sign-in throttle: Redis unavailable (%s)", exc)
        await self.fallback.clear(key)


def build_throttle(redis_url: str | None) -> SignInThrottle:
    if redis_url is None:
        return LocalThrottle()
    return RedisThrottle(Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0))
