"""The per-request GraphQL context: who asks, the request's unit of work, and its DataLoaders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from ..domain.audit import ReadLog
from ..domain.errors import DomainError, ErrorCode
from ..domain.principal import Principal

T = TypeVar("T")
K = TypeVar("K")
P = ParamSpec("P")


class RequestFinishedError(RuntimeError):
    """A resolver ran after its request was answered; its result could never be used."""


@dataclass
class RequestContext:
    """Everything a resolver may use. Resolvers never touch ``session`` directly: they go through ``run``.

    Strawberry resolves sibling fields concurrently, and one ``AsyncSession`` must never be used by two
    coroutines at once, so every database call of the request is serialised by ``lock``. DataLoaders still
    batch: they collect keys from all siblings first and then run one statement under the lock.
    """

    principal: Principal | None
    session: AsyncSession
    request_id: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loaders: dict[Hashable, DataLoader[Any, Any]] = field(default_factory=dict)
    # Audited reads of this request (``domain.audit.record_read``): the edge writes them before answering.
    reads: ReadLog = field(default_factory=ReadLog)
    # Set when a mutation answered with user errors: the edge then rolls the whole operation back.
    failed: bool = False
    # Set by the edge once the answer is decided: resolvers graphql-core abandoned (siblings of a field whose
    # error nulled the whole response) must not touch the session while it commits or rolls back.
    finished: bool = False

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise DomainError(ErrorCode.UNAUTHENTICATED, "a bearer token is required")
        return self.principal

    async def run(
        self,
        work: Callable[Concatenate[AsyncSession, Principal, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run one domain function with this request's session and principal, one at a time."""
        principal = self.require_principal()
        async with self.lock:
            if self.finished:
                raise RequestFinishedError("the request has already been answered")
            # graphql-core cancels sibling resolvers when an error nulls their parent; a database call cut off
            # half-way would leave the session's transaction unusable, so it is let finish before the lock goes.
            call = asyncio.ensure_future(work(self.session, principal, *args, **kwargs))
            try:
                return await asyncio.shield(call)
            except asyncio.CancelledError:
                await asyncio.wait([call])
                if not call.cancelled():
                    call.exception()  # retrieved: nobody is left to report it to
                raise

    async def finish(self) -> None:
        """Wait for the database call in flight, then refuse any later one (see ``finished``)."""
        async with self.lock:
            self.finished = True

    def loader(self, key: Hashable, batch: Callable[[list[K]], Awaitable[list[T]]]) -> DataLoader[K, T]:
        """The request's DataLoader for ``key`` (one per relation and argument set), created on first use."""
        existing = self.loaders.get(key)
        if existing is None:
            existing = DataLoader(load_fn=batch)
            self.loaders[key] = existing
        return existing

    async def load(self, key: Hashable, batch: Callable[[list[K]], Awaitable[list[T]]], item: K) -> T:
        """One value through the request's DataLoader for ``key``.

        The loader hands every field asking for the same item one shared future. When the executor cancels
        one of those fields (a sibling failed and nulled their parent), that must not cancel the future the
        other fields still wait for, so each waits through a shield.
        """
        shared = asyncio.ensure_future(self.loader(key, batch).load(item))  # the loader's own future
        shared.add_done_callback(_observed)  # its error is the waiting fields' to report, or nobody's
        return await asyncio.shield(shared)


def _observed(future: asyncio.Future[Any]) -> None:
    """Mark a shared future's error as seen: when every field waiting for it was cancelled, nobody else will."""
    if not future.cancelled():
        future.exception()


Info = strawberry.Info[RequestContext, None]
