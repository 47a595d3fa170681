"""What a running app holds: settings, the engine, the session factory, and how callers are identified."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from .config import Settings
from .domain.audit import AuditWriter, SessionAuditWriter
from .domain.principal import Principal
from .replicas import ReadRouter

Authenticator = Callable[[HTTPConnection], Awaitable[Principal | None]]


async def anonymous(_connection: HTTPConnection) -> Principal | None:
    return None


@dataclass
class Runtime:
    """Shared, immutable per-process state; requests reach it through ``Runtime.of(request)``.

    ``authenticate`` turns a request into a ``Principal`` (``None`` when it carries no credentials) or raises
    ``AuthenticationError``; the OAuth resource server provides it, tests may swap in their own.
    ``audit_writer`` writes audited reads in a transaction of their own (``domain.audit``); by default on a
    session of ``session_maker`` (the engine's own connection when served); tests may swap in a failing one.
    ``reads`` says which server answers a read-only unit of work (the primary, or a replica: ``replicas``).
    """

    settings: Settings
    engine: AsyncEngine
    session_maker: async_sessionmaker[AsyncSession]
    reads: ReadRouter
    authenticate: Authenticator = anonymous
    audit_writer: AuditWriter | None = None
    tracer: trace.Tracer = field(default_factory=trace.NoOpTracer)

    def __post_init__(self) -> None:
        if self.audit_writer is None:
            self.audit_writer = SessionAuditWriter(self.session_maker)

    @property
    def audit(self) -> AuditWriter:
        assert self.audit_writer is not None  # set in __post_init__
        return self.audit_writer

    @staticmethod
    def of(connection: HTTPConnection) -> Runtime:
        runtime: Runtime = connection.app.state.runtime
        return runtime
