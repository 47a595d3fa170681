"""Rate limits at the HTTP edge: cost points per client and per person for GraphQL, requests for sign-in.

GraphQL: every client (``client:<id>``) and every person (``person:<id>``) has a leaky bucket of cost points
(``programme_api.limiter``): ``RATE_LIMIT_POINTS`` when full (or the client's own size, set with
``programme-api clients set-rate-limit``), refilling completely in ``RATE_LIMIT_REFILL_SECONDS``. A request
reserves its requested cost (at least 1) from all of its buckets before it runs and gets back what its answer
did not use. Answers carry the draft IETF ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``
header fields (draft-ietf-httpapi-ratelimit-headers-06: separate fields, reset in seconds until the bucket is
full again), for the bucket closest to empty.

The token, introspection, authorization and sign-in endpoints take one request from a bucket per client
(``AUTH_RATE_LIMIT_REQUESTS`` a minute) and one per address (``AUTH_RATE_LIMIT_ADDRESS_REQUESTS`` a minute),
before anything else; over either, 429 with ``Retry-After``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..db import read_only_session
from ..domain.principal import Principal
from ..domain.tenancy import bind_tenant_of
from ..limiter import Bucket, LocalLimiter, Outcome, RedisLimiter, build_limiter
from ..oauth.admin import client_rate_limit

log = logging.getLogger(__name__)

CLIENT_LIMIT_TTL_SECONDS = 30.0
AUTH_WINDOW_SECONDS = 60.0
AUTH_PATHS = frozenset({"/oauth/token", "/oauth/introspect", "/oauth/authorize", "/login"})


class RateLimits:
    """The app's limiter and the bucket sizes it applies (one per app; workers share state via Redis)."""

    def __init__(self, settings: Settings, session_maker: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.session_maker = session_maker
        self.limiter: LocalLimiter | RedisLimiter = build_limiter(settings.redis_url, settings.rate_limit_redis_prefix)
        self._client_points: dict[str, tuple[int | None, float]] = {}

    @staticmethod
    def of(connection: HTTPConnection) -> RateLimits:
        limits: RateLimits = connection.app.state.rate_limits
        return limits

    async def close(self) -> None:
        if isinstance(self.limiter, RedisLimiter):
            await self.limiter.close()

    def _bucket(self, key: str, points: int) -> Bucket:
        return Bucket(key, float(points), points / self.settings.rate_limit_refill_seconds)

    async def buckets(self, principal: Principal) -> list[Bucket]:
        """The caller's buckets: its client's (own size if the admin set one) and the person's it acts for."""
        default = self.settings.rate_limit_points
        buckets = []
        if principal.client_id is not None:
            points = await self._client_size(principal.client_id)
            buckets.append(self._bucket(f"client:{principal.client_id}", points or default))
        if principal.user_id is not None:
            buckets.append(self._bucket(f"person:{principal.user_id}", default))
        if not buckets:
            buckets.append(self._bucket(f"subject:{principal.subject}", default))
        return buckets

    async def _client_size(self, client_id: str) -> int | None:
        """The client's own bucket size, remembered for a while (a change shows within that while)."""
        now = time.monotonic()
        remembered = self._client_points.get(client_id)
        if remembered is not None and remembered[1] > now:
            return remembered[0]
        try:
            async with read_only_session(self.session_maker) as session:  # never waits for SQLite's write lock
                await bind_tenant_of(session, "client", client_id)
                points = await client_rate_limit(session, client_id)
                await session.rollback()
        except Exception:
            log.exception("rate limits: could not read client %s's limit; using the default", client_id)
            points = None
        if len(self._client_points) > 10_000:
            self._client_points.clear()
        self._client_points[client_id] = (points, now + CLIENT_LIMIT_TTL_SECONDS)
        return points

    async def take(self, buckets: Sequence[Bucket], points: float) -> Outcome:
        return await self.limiter.take(buckets, points)


def rate_limit_headers(outcome: Outcome) -> dict[str, str]:
    state = outcome.tightest
    headers = {
        "RateLimit-Limit": str(int(state.bucket.capacity)),
        "RateLimit-Remaining": str(max(int(state.available), 0)),
        "RateLimit-Reset": str(state.seconds_to_full),
    }
    if not outcome.allowed:
        headers["Retry-After"] = str(outcome.retry_after)
    return headers


def throttle_status(outcome: Outcome) -> dict[str, Any]:
    """GraphQL's ``extensions.cost.throttleStatus`` (Shopify's names) for the bucket closest to empty."""
    state = outcome.tightest
    return {
        "maximumAvailable": int(state.bucket.capacity),
        "currentlyAvailable": max(int(state.available), 0),
        "restoreRate": round(state.bucket.rate, 3),
    }


class AuthEndpointThrottle:
    """Pure-ASGI middleware: the sign-in and token endpoints take one request per client and per address.

    The client is named by HTTP Basic credentials, or by ``client_id`` in the query or the form body (the body
    is read here and handed on unchanged).
    """

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in AUTH_PATHS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        messages: list[Message] = []
        client_id = _basic_client_id(headers.get("authorization", "")) or _first(
            parse_qs(scope.get("query_string", b"").decode("latin-1")).get("client_id")
        )
        if (
            client_id is None
            and scope["method"] == "POST"
            and headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        ):
            body, messages = await _read_body(receive, self.limits.settings.max_body_bytes)
            if body is not None:
                client_id = _first(parse_qs(body.decode("latin-1")).get("client_id"))
        settings = self.limits.settings
        address = scope["client"][0] if scope.get("client") else "unknown"
        buckets = [_per_minute(f"auth:address:{address}", settings.auth_rate_limit_address_requests)]
        if client_id:
            buckets.append(_per_minute(f"auth:client:{client_id[:200]}", settings.auth_rate_limit_requests))
        outcome = await self.limits.take(buckets, 1)
        limit_headers = rate_limit_headers(outcome)
        if not outcome.allowed:
            body_out = orjson.dumps(
                {"error": "temporarily_unavailable", "error_description": "too many requests; retry later"}
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body_out)).encode()),
                        *[(name.lower().encode(), value.encode()) for name, value in limit_headers.items()],
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body_out})
            return

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                mutable = MutableHeaders(scope=message)
                for name, value in limit_headers.items():
                    mutable[name] = value
            await send(message)

        await self.app(scope, replay, send_with_headers)


def _per_minute(key: str, requests: int) -> Bucket:
    return Bucket(key, float(requests), requests / AUTH_WINDOW_SECONDS)


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def _basic_client_id(authorization: str) -> str | None:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, _, _secret = decoded.partition(":")
    return client_id or None


async def _read_body(receive: Receive, max_bytes: int) -> tuple[bytes | None, list[Message]]:
    """The whole body (None when over ``max_bytes``: not parsed, left for the endpoint to refuse) and the
    messages read, to be replayed to the endpoint."""
    messages: list[Message] = []
    body = bytearray()
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        body += message.get("body", b"")
        if len(body) > max_bytes:
            return None, messages
        if not message.get("more_body", False):
            return bytes(body), messages
