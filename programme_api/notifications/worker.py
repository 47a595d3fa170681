"""The outbox worker: dispatches committed events, delivers webhooks, sends and escalates safeguarding emails.

``programme-api worker`` runs it on its own; ``serve`` runs it inside the server when it is one process
(``worker_in_serve``). Any number of workers may run against one PostgreSQL database: every step claims its
rows with ``FOR UPDATE SKIP LOCKED`` and leases (see ``dispatch`` and ``delivery``). It works across
organisations, so it connects as the tables' owner (``PROGRAMME_API_OWNER_DATABASE_URL``), like the other
cross-tenant system work. A step that fails is logged and tried again on the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ..config import Settings
from ..db import create_engine, session_factory
from . import delivery, dispatch, email

log = logging.getLogger(__name__)


async def run_once(maker: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, settings: Settings) -> int:
    """One round of every step; answers how much work it found (0: the worker may sleep)."""
    steps: list[tuple[str, Callable[[], Awaitable[int]]]] = [
        ("dispatch", lambda: dispatch.dispatch_batch(maker, settings)),
        ("webhook delivery", lambda: delivery.deliver_due(maker, http, settings)),
        ("escalation", lambda: email.escalate_overdue(maker, settings)),
        ("email", lambda: email.send_due(maker, settings)),
    ]
    busy = 0
    for name, step in steps:
        try:
            busy += await step()
        except Exception:
            log.exception("outbox worker: %s step failed; retrying on the next round", name)
    return busy


async def run(settings: Settings, maker: async_sessionmaker[AsyncSession], stop: asyncio.Event | None = None) -> None:
    """Work until ``stop`` is set (or the task is cancelled), sleeping ``worker_poll_seconds`` when idle."""
    stop = stop or asyncio.Event()
    async with httpx.AsyncClient(timeout=settings.webhook_timeout_seconds) as http:
        while not stop.is_set():
            if await run_once(maker, http, settings):
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.worker_poll_seconds)


def owner_engine(settings: Settings) -> AsyncEngine:
    return create_engine(settings.as_owner())


@contextlib.asynccontextmanager
async def running_in_background(settings: Settings) -> AsyncIterator[None]:
    """The worker as a task of this process for the duration of the block (``serve`` as one process)."""
    engine = owner_engine(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, session_factory(engine), stop), name="outbox worker")
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, settings.webhook_timeout_seconds + 5)
        await engine.dispose()


async def main(settings: Settings) -> None:
    engine = owner_engine(settings)
    try:
        await run(settings, session_factory(engine))
    finally:
        await engine.dispose()
