"""Announcing that what a principal may do has changed, so every worker's cached view drops it.

Whoever revokes a token family, disables a client or person, or changes scopes, role or regions calls
``announce`` (or ``announce_async``) in the same transaction as the change, naming tags:
``family:<id>`` (a token family), ``client:<row id>``, ``user:<id>``. Then:

- On PostgreSQL the tags are sent with ``pg_notify`` inside that transaction: PostgreSQL delivers them to
  every listening worker when, and only if, the transaction commits.
- After the commit, this process's caches drop the tags at once (the ``after_commit`` session hook), so the
  worker that made the change refuses the old view on its very next request.
- With ``REDIS_URL`` set the committer also publishes the tags on Redis after the commit (``publish_committed``),
  for workers that cannot ``LISTEN`` (behind PgBouncer in transaction mode, say).

A rolled-back transaction announces nothing. Caches register themselves here (``register``); the registry
is process-wide, so every app in the process hears local changes.
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Iterable
from typing import Protocol

import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: The PostgreSQL notification channel and the Redis pub/sub channel.
CHANNEL = "programme_api_principals"
#: Sent instead of tags when a listener must drop everything (a payload too long for one notification).
EVERYTHING = "*"
_PENDING = "programme_api.pending_invalidations"
_COMMITTED = "programme_api.committed_invalidations"
_MAX_PAYLOAD = 7000  # PostgreSQL refuses notification payloads of 8000 bytes or more


class Invalidated(Protocol):
    def invalidate(self, tags: Iterable[str]) -> None: ...

    def clear(self) -> None: ...


_caches: weakref.WeakSet[Invalidated] = weakref.WeakSet()


def register(cache: Invalidated) -> None:
    _caches.add(cache)


def family_tag(family_id: uuid.UUID) -> str:
    return f"family:{family_id}"


def client_tag(client_pk: uuid.UUID) -> str:
    return f"client:{client_pk}"


def user_tag(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


def encode(tags: Iterable[str]) -> str:
    payload = " ".join(sorted(set(tags)))
    return payload if len(payload) < _MAX_PAYLOAD else EVERYTHING


def decode(payload: str) -> list[str]:
    return payload.split()


def deliver_locally(tags: Iterable[str]) -> None:
    """Drop the tags from every cache in this process (``*`` drops everything)."""
    wanted = list(tags)
    for cache in list(_caches):
        if EVERYTHING in wanted:
            cache.clear()
        else:
            cache.invalidate(wanted)


def announce(session: Session, *tags: str) -> None:
    """Record the tags in the session's transaction (and notify PostgreSQL's listeners on commit)."""
    if not tags:
        return
    session.info.setdefault(_PENDING, set()).update(tags)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_notify(CHANNEL, encode(tags))))


async def announce_async(session: AsyncSession, *tags: str) -> None:
    await session.run_sync(lambda sync: announce(sync, *tags))


@event.listens_for(Session, "after_commit")
def _delivered_on_commit(session: Session) -> None:
    tags = session.info.pop(_PENDING, None)
    if tags:
        session.info.setdefault(_COMMITTED, set()).update(tags)
        deliver_locally(tags)


@event.listens_for(Session, "after_rollback")
def _forgotten_on_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


async def publish_committed(session: AsyncSession, redis_url: str | None) -> None:
    """After a commit: publish what it announced on Redis (when configured). Failure is logged, not raised:
    the change is committed, and every worker also drops entries older than ``MAX_TRUST_SECONDS``."""
    tags = session.sync_session.info.pop(_COMMITTED, None)
    if not tags or redis_url is None:
        return
    client = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.publish(CHANNEL, encode(tags))
    except (RedisError, OSError):
        log.exception("could not publish principal invalidations %s on Redis", sorted(tags))
    finally:
        await client.aclose()
