"""Leaky buckets of points, in this process or shared by every worker and host through Redis.

A bucket holds at most ``capacity`` points and refills at ``rate`` points per second. Taking ``cost`` points
from several buckets at once (a client's and a person's) succeeds only when every one of them holds that
many; otherwise nothing is taken and the caller learns how long to wait. A negative cost gives points back
(a request that cost less than it reserved). In Redis one Lua script reads, refills and takes from all the
buckets atomically, on the server's clock, so concurrent workers cannot both spend the last points and
hosts with skewed clocks agree. If Redis cannot be reached, the process's own buckets take over rather
than letting everything through or refusing everyone.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

_LOCAL_MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class Bucket:
    """Which bucket, how many points it holds when full, and how many points per second flow back."""

    key: str
    capacity: float
    rate: float


@dataclass(frozen=True)
class BucketState:
    bucket: Bucket
    available: float

    @property
    def seconds_to_full(self) -> int:
        return math.ceil(max(self.bucket.capacity - self.available, 0.0) / self.bucket.rate)


@dataclass(frozen=True)
class Outcome:
    """Whether the points were taken, and each bucket's level afterwards (before, when refused)."""

    allowed: bool
    cost: float
    states: tuple[BucketState, ...]

    @property
    def tightest(self) -> BucketState:
        """The bucket closest to empty, relative to its size: the one a caller runs into first."""
        return min(self.states, key=lambda state: state.available / state.bucket.capacity)

    @property
    def retry_after(self) -> int:
        """Whole seconds until every bucket holds ``cost`` points again (0 when allowed)."""
        if self.allowed:
            return 0
        waits = [(self.cost - state.available) / state.bucket.rate for state in self.states]
        return max(1, math.ceil(max(waits)))


class Limiter(Protocol):
    async def take(self, buckets: Sequence[Bucket], cost: float) -> Outcome:
        """Take ``cost`` points from every bucket, or from none; a negative cost gives points back."""


class LocalLimiter:
    """Buckets in this process (one worker, or SQLite's single process), bounded in number."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._levels: dict[str, tuple[float, float]] = {}

    async def take(self, buckets: Sequence[Bucket], cost: float) -> Outcome:
        now = self._clock()
        levels = []
        for bucket in buckets:
            available, at = self._levels.get(bucket.key, (bucket.capacity, now))
            levels.append(min(bucket.capacity, available + max(now - at, 0.0) * bucket.rate))
        allowed = all(level >= cost for level in levels)
        states = []
        for bucket, level in zip(buckets, levels, strict=True):
            if allowed:
                level = min(bucket.capacity, level - cost)
            self._levels[bucket.key] = (level, now)
            states.append(BucketState(bucket, level))
        if len(self._levels) > _LOCAL_MAX_ENTRIES:
            self._levels = dict(list(self._levels.items())[-_LOCAL_MAX_ENTRIES // 2 :])
        return Outcome(allowed, cost, tuple(states))


# KEYS: the buckets; ARGV: cost, then capacity and rate of each bucket. Levels are kept as strings (a Lua
# number in a reply becomes an integer), with the time of the last change in microseconds from TIME.
_SCRIPT = """
local cost = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local levels = {}
local allowed = 1
for i = 1, #KEYS do
  local capacity = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local stored = redis.call('HMGET', KEYS[i], 'level', 'at')
  local level = tonumber(stored[1])
  local at = tonumber(stored[2])
  if level == nil or at == nil then
    level = capacity
    at = now
  end
  level = math.min(capacity, level + math.max(now - at, 0) * rate)
  levels[i] = level
  if level < cost then
    allowed = 0
  end
end
local reply = {allowed}
for i = 1, #KEYS do
  local capacity = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local level = levels[i]
  if allowed == 1 then
    level = math.min(capacity, level - cost)
  end
  redis.call('HSET', KEYS[i], 'level', tostring(level), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[i], math.ceil(capacity / rate) + 1)
  reply[i + 1] = tostring(level)
end
return reply
"""


class RedisLimiter:
    """Buckets shared through Redis (one atomic script per call), under ``prefix``."""

    def __init__(self, redis: Redis, prefix: str, fallback: LocalLimiter | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.fallback = fallback or LocalLimiter()
        self._script = redis.register_script(_SCRIPT)

    async def take(self, buckets: Sequence[Bucket], cost: float) -> Outcome:
        keys = [self.prefix + bucket.key for bucket in buckets]
        arguments: list[float] = [cost]
        for bucket in buckets:
            arguments += [bucket.capacity, bucket.rate]
        try:
            reply = await self._script(keys=keys, args=arguments)
        except RedisError as exc:
            log.warning("rate limits: Redis unavailable (%s); using this process's buckets", exc)
            return await self.fallback.take(buckets, cost)
        allowed, *levels = reply
        states = tuple(BucketState(bucket, float(level)) for bucket, level in zip(buckets, levels, strict=True))
        return Outcome(bool(int(allowed)), cost, states)

    async def close(self) -> None:
        await self.redis.aclose()


def build_limiter(redis_url: str | None, prefix: str) -> LocalLimiter | RedisLimiter:
    if redis_url is None:
        return LocalLimiter()
    return RedisLimiter(Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0), prefix)
