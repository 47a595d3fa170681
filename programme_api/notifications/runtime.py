"""What a serving process runs for change notifications: the event listener that feeds its live
subscribers and, when it serves as one process, the outbox worker."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import Settings
from . import bus, worker


@contextlib.asynccontextmanager
async def serving(settings: Settings, engine: AsyncEngine) -> AsyncIterator[None]:
    listener = bus.build_listener(settings, engine)
    await listener.start()
    try:
        async with worker.running_in_background(settings) if settings.worker_in_serve else contextlib.nullcontext():
            yield
    finally:
        await listener.stop()
