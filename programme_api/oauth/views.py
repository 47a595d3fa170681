"""One worker's cached views of tokens and clients, and the channel that keeps them current.

Built with the app (no I/O), started and stopped by its lifespan: ``start`` subscribes the channel
(``listeners.py``). The token view maps a bearer token, exactly as presented, to what the resource server
decided about it (the principal, or the refusal); the client view maps a client id to the record the token
endpoint authenticates against. Both are dropped by tag when ``invalidation.announce`` reports a change.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import HTTPConnection

from ..config import Settings
from ..domain.principal import Principal
from . import invalidation
from .cache import TaggedCache
from .clients import ClientRecord
from .listeners import Channel, build_channel


@dataclass(frozen=True)
class TokenView:
    """What a verified token amounts to now: a principal, or the reason it is refused."""

    principal: Principal | None
    refusal: str | None
    expires_at: int
    key_generation: int


@dataclass
class CachedViews:
    channel: Channel
    tokens: TaggedCache[TokenView]
    clients: TaggedCache[ClientRecord]

    async def start(self) -> None:
        await self.channel.start()

    async def stop(self) -> None:
        await self.channel.stop()


def build_views(settings: Settings, engine: AsyncEngine) -> CachedViews:
    views = CachedViews(channel=build_channel(settings, engine), tokens=TaggedCache(), clients=TaggedCache())
    invalidation.register(views.tokens)
    invalidation.register(views.clients)
    return views


def views_of(connection: HTTPConnection) -> CachedViews:
    views: CachedViews = connection.app.state.cached_views
    return views
