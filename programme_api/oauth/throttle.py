"""Slowing down password guessing at ``/login``: after 5 failures for one email from one address, wait.

Attempts are counted per (email, client IP) in a fixed 15-minute window that starts at the first one, before
the password is checked (a success clears the count, so what remains are failures and attempts in flight).
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
    async def attempt(self, key: str) -> int:
        """Count one sign-in attempt and answer the seconds to wait (0: check the password now).

        Counting and deciding are one atomic step, so a burst of simultaneous attempts cannot all pass the
        check before any of them is counted: at most ``max_failures`` per window are let through."""

    async def clear(self, key: str) -> None:
        """A successful sign-in forgets the key's count."""


class LocalThrottle:
    """Per-process counts, bounded in size so a flood of distinct keys cannot exhaust memory.

    ``attempt`` reads and writes the count without awaiting in between, so on the event loop it is atomic."""

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

    async def attempt(self, key: str) -> int:
        now = self._clock()
        count, ends = self._entries.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + self.window_seconds
        self._entries[key] = (count + 1, ends)
        if len(self._entries) > _LOCAL_MAX_ENTRIES:
            self._prune(now)
        return 0 if count < self.max_failures else max(1, math.ceil(ends - now))

    async def clear(self, key: str) -> None:
        self._entries.pop(key, None)

    def _prune(self, now: float) -> None:
        live = {key: entry for key, entry in self._entries.items() if entry[1] > now}
        if len(live) > _LOCAL_MAX_ENTRIES:
            newest = sorted(live.items(), key=lambda item: item[1][1])[-_LOCAL_MAX_ENTRIES // 2 :]
            live = dict(newest)
        self._entries = live


class RedisThrottle:
    """Counts shared by every worker through Redis: one ``MULTI`` of ``SET NX EX`` (starts the window),
    ``INCR`` (counts this attempt) and ``TTL``, so the count each attempt sees is exact."""

    PREFIX = "programme-api:sign-in-failures:"

    def __init__(
        self,
        redis: Redis,
        *,
        max_failures: int = MAX_FAILURES,
        window_seconds: int = WINDOW_SECONDS,
        fallback: LocalThrottle | None = None,
        prefix: str = PREFIX,
    ) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.prefix = prefix
        self.fallback = fallback or LocalThrottle(max_failures=max_failures, window_seconds=window_seconds)

    async def attempt(self, key: str) -> int:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(self.prefix + key, 0, ex=self.window_seconds, nx=True)
                pipe.incr(self.prefix + key)
                pipe.ttl(self.prefix + key)
                _started, count, ttl = await pipe.execute()
        except RedisError as exc:
            log.warning("sign-in throttle: Redis unavailable (%s); using this process's counts", exc)
            return await self.fallback.attempt(key)
        if int(count) <= self.max_failures:
            return 0
        return max(1, int(ttl))

    async def clear(self, key: str) -> None:
        try:
            await self.redis.delete(self.prefix + key)
        except RedisError as exc:
            log.warning("sign-in throttle: Redis unavailable (%s)", exc)
        await self.fallback.clear(key)


def build_throttle(redis_url: str | None) -> SignInThrottle:
    if redis_url is None:
        return LocalThrottle()
    return RedisThrottle(Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0))
