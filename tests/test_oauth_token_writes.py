"""Issued tokens written together: one statement for the tokens that wait at the same time, each request still
answered only once its own row and audit event are committed, and a bad row refusing only its own request."""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from programme_api.domain.models import AuditEvent, OAuthClient, OAuthToken, utcnow
from programme_api.oauth import token_writes
from programme_api.oauth.token_writes import TokenWriter, write_batch

from .conftest import APP_ROLE
from .oauth_support import World, world

Batch = Sequence[tuple[dict[str, Any], dict[str, Any]]]


def rows(client_pk: uuid.UUID, organisation_id: uuid.UUID, jti: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A token row and its event as the issuing endpoint builds them."""
    now = utcnow()
    token = {
        "id": uuid.uuid4(), "organisation_id": organisation_id, "jti": jti, "family_id": uuid.uuid4(),
        "client_pk": client_pk, "user_id": None, "scope": "programme:read",
        "access_expires_at": now + timedelta(hours=1), "refresh_token_hash": None, "refresh_expires_at": None,
        "refresh_used_at": None, "revoked_at": None, "created_at": now,
    }  # fmt: skip
    event = {
        "id": uuid.uuid4(), "organisation_id": organisation_id, "occurred_at": now, "actor_type": "client",
        "actor_id": jti, "action": "oauth.token_issued", "target_type": "oauth_token", "target_id": jti,
        "request_id": None, "details": {"grant_type": "client_credentials", "jti": jti},
    }  # fmt: skip
    return token, event


class RecordingDatabase:
    """``write_batch`` standing in for PostgreSQL: records each statement's batch, holds it until released,
    and refuses any batch holding a token whose ``jti`` starts with ``bad``."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.sent = asyncio.Event()

    async def in_flight(self, count: int) -> None:
        """Wait until ``count`` statements have been sent."""
        while len(self.batches) < count:
            self.sent.clear()
            await self.sent.wait()

    async def write_batch(self, _bind: Any, batch: Batch) -> None:
        self.batches.append([token["jti"] for token, _event in batch])
        self.sent.set()
        await self.release.wait()
        if any(token["jti"].startswith("bad") for token, _event in batch):
            raise ValueError("refused by the database")


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> RecordingDatabase:
    recording = RecordingDatabase()
    monkeypatch.setattr(token_writes, "write_batch", recording.write_batch)
    return recording


def token(jti: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return rows(uuid.uuid4(), uuid.uuid4(), jti)


async def test_tokens_that_wait_together_share_the_next_statement(database: RecordingDatabase) -> None:
    writer = TokenWriter(bind=None)  # type: ignore[arg-type]
    first = asyncio.create_task(writer.write(*token("t0")))
    await database.in_flight(1)
    others = [asyncio.create_task(writer.write(*token(f"t{n}"))) for n in range(1, 6)]
    await asyncio.sleep(0.01)
    assert not first.done()  # nobody is answered before their row is committed
    database.release.set()
    await asyncio.gather(first, *others)
    assert database.batches == [["t0"], ["t1", "t2", "t3", "t4", "t5"]]


async def test_a_batch_is_no_larger_than_its_bound(database: RecordingDatabase) -> None:
    writer = TokenWriter(bind=None, max_batch=2)  # type: ignore[arg-type]
    waiting = [asyncio.create_task(writer.write(*token(f"t{n}"))) for n in range(5)]
    database.release.set()
    await asyncio.gather(*waiting)
    assert database.batches == [["t0", "t1"], ["t2", "t3"], ["t4"]]


async def test_a_refused_token_fails_its_own_request_only(database: RecordingDatabase) -> None:
    writer = TokenWriter(bind=None)  # type: ignore[arg-type]
    blocker = asyncio.create_task(writer.write(*token("t0")))
    await database.in_flight(1)
    good, bad = asyncio.create_task(writer.write(*token("t1"))), asyncio.create_task(writer.write(*token("bad")))
    database.release.set()
    await asyncio.gather(blocker, good)
    with pytest.raises(ValueError, match="refused by the database"):
        await bad
    assert database.batches == [["t0"], ["t1", "bad"], ["t1"], ["bad"]]  # the batch failed, then each alone


async def test_a_caller_that_goes_away_leaves_the_batch_written(database: RecordingDatabase) -> None:
    writer = TokenWriter(bind=None)  # type: ignore[arg-type]
    blocker = asyncio.create_task(writer.write(*token("t0")))
    await database.in_flight(1)
    gone, stays = asyncio.create_task(writer.write(*token("t1"))), asyncio.create_task(writer.write(*token("t2")))
    await asyncio.sleep(0.01)
    gone.cancel()
    database.release.set()
    await asyncio.gather(blocker, stays)
    assert gone.cancelled()
    assert database.batches == [["t0"], ["t1", "t2"]]


@pytest.mark.only_backend("postgresql")
async def test_one_statement_writes_the_tokens_and_events_of_several_organisations_under_row_security(
    connection: AsyncConnection, db: AsyncSession, world: World
) -> None:
    clients = [world.clients["machine"], world.clients["machine_b"]]
    pks = {c.client_id: await db.scalar(sa.select(OAuthClient.id).where(OAuthClient.client_id == c.client_id))
           for c in clients}  # fmt: skip
    batch = [rows(pks[c.client_id], c.organisation_id, f"jti-{n}-{uuid.uuid4().hex}") for n, c in enumerate(clients)]
    await db.flush()
    await connection.exec_driver_sql(f"SET ROLE {APP_ROLE}")  # as the service's role: the policies apply
    try:
        await write_batch(connection, batch)
    finally:
        await connection.exec_driver_sql("RESET ROLE")
    for token_row, event in batch:
        written = await db.scalar(sa.select(OAuthToken).where(OAuthToken.jti == token_row["jti"]))
        assert written is not None
        assert written.organisation_id == token_row["organisation_id"]
        audited = await db.scalar(sa.select(AuditEvent).where(AuditEvent.target_id == token_row["jti"]))
        assert audited is not None
        assert audited.organisation_id == token_row["organisation_id"]
        assert audited.details == event["details"]


@pytest.mark.only_backend("postgresql")
async def test_a_value_too_long_for_its_column_is_refused_not_cut(
    connection: AsyncConnection, db: AsyncSession, world: World
) -> None:
    client = world.clients["machine"]
    pk = await db.scalar(sa.select(OAuthClient.id).where(OAuthClient.client_id == client.client_id))
    await db.flush()
    token_row, event = rows(pk, client.organisation_id, "x" * 200)  # jti is at most 64 characters
    with pytest.raises(sa.exc.DBAPIError, match="too long"):
        async with connection.begin_nested():
            await write_batch(connection, [(token_row, event)])
