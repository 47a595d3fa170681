"""What a running app holds: settings, the engine, the session factory, and how callers are identified."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from .config import Settings
from .domain.principal import Principal

Authenticator = Callable[[HTTPConnection], Awaitable[Principal | None]]


async def anonymous(_connection: HTTPConnection) -> Principal | None:
    return None


@dataclass
class Runtime:
    """Shared, immutable per-process state; requests reach it through ``Runtime.of(request)``.

    ``authenticate`` turns a request into a ``Principal`` (``None`` when it carries no credentials) or raises
    ``AuthenticationError``; the OAuth resource server provides it, tests may swap in their own.
    """

    settings: Settings
    engine: AsyncEngine
    session_maker: async_sessionmaker[AsyncSession]
    authenticate: Authenticator = anonymous

    @staticmethod
    def of(connection: HTTPConnection) -> Runtime:
        runtime: Runtime = connection.app.state.runtime
        return runtime
