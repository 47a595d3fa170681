"""Issued tokens' rows and their audit events, written to PostgreSQL together when requests arrive together.

A token is answered only after its row and its ``oauth.token_issued`` event are committed (the resource server
reads the row the first time the token is presented). Each commit on PostgreSQL costs a statement, a
transaction and a wait for the write-ahead log to reach the disk, and under load that wait, not the work, is
what limits how many tokens a worker can issue. So the worker writes them the way PostgreSQL's own group
commit works: the first token waiting starts a writer; tokens that arrive while a statement is in flight wait
for the next one, which writes all of them (up to ``MAX_BATCH``) as one statement and one commit. Alone, a
token is written at once, as before; under load, many share one round trip and one flush.

The statement binds the transaction to the batch's organisations (row-level security), then inserts the
tokens and their events from arrays, so its text does not depend on the batch's size and PostgreSQL prepares
it once. If a batch fails, each of its tokens is tried alone, so one bad row refuses only its own request.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..domain.models import AuditEvent, OAuthToken
from ..domain.tenancy import SETTING, setting_value

log = logging.getLogger(__name__)

MAX_BATCH = 64
"""Tokens written by one statement at most: enough to absorb a burst, small enough to keep each commit short."""

TOKEN_COLUMNS = (
    "id", "organisation_id", "jti", "family_id", "client_pk", "user_id", "scope", "access_expires_at",
    "refresh_token_hash", "refresh_expires_at", "refresh_used_at", "revoked_at", "created_at",
)  # fmt: skip
AUDIT_COLUMNS = (
    "id", "organisation_id", "occurred_at", "actor_type", "actor_id", "action", "target_type", "target_id",
    "request_id", "details",
)  # fmt: skip

Row = dict[str, Any]
Pending = tuple[Row, Row, "asyncio.Future[None]"]


def _array_type(table: sa.Table, name: str) -> str:
    """The PostgreSQL array type a column's values travel in.

    Strings travel as text, so the insert's own conversion to ``VARCHAR(n)`` refuses an over-long value (a cast
    to ``VARCHAR(n)[]`` would cut it short); JSON travels as text and is cast back in the statement.
    """
    column_type = table.c[name].type
    if isinstance(column_type, sa.TypeDecorator):
        column_type = column_type.impl_instance
    if isinstance(column_type, sa.String | sa.JSON):
        return "TEXT[]"
    if isinstance(column_type, sa.Uuid):
        return "UUID[]"
    if isinstance(column_type, sa.DateTime):
        return "TIMESTAMPTZ[]"
    raise TypeError(f"{table.name}.{name}: no array type for {column_type!r}")


def _value(table: sa.Table, name: str) -> str:
    return f"u.{name}::json" if isinstance(table.c[name].type, sa.JSON) else f"u.{name}"


def _insert_from_arrays(table: sa.Table, columns: Sequence[str], first: int) -> str:
    arrays = ", ".join(f"${first + i}::{_array_type(table, name)}" for i, name in enumerate(columns))
    values = ", ".join(_value(table, name) for name in columns)
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"SELECT {values} FROM tenant_binding, unnest({arrays}) AS u({', '.join(columns)})"
    )


def _batch_sql() -> str:
    """Bind the tenant first (a materialised CTE both inserts read from), then insert the tokens and the events.

    The policies see the binding because each insert selects from it; the statement is one transaction, so an
    event exists exactly when its token does.
    """
    tokens: sa.Table = OAuthToken.__table__  # type: ignore[assignment]
    events: sa.Table = AuditEvent.__table__  # type: ignore[assignment]
    positions = itertools.count(2, len(TOKEN_COLUMNS))
    token_insert = _insert_from_arrays(tokens, TOKEN_COLUMNS, next(positions))
    event_insert = _insert_from_arrays(events, AUDIT_COLUMNS, next(positions))
    return (
        f"WITH tenant_binding AS MATERIALIZED (SELECT set_config('{SETTING}', $1, true) AS bound), "
        f"issued AS ({token_insert} RETURNING id) {event_insert}"
    )


BATCH_SQL = _batch_sql()


def batch_parameters(batch: Sequence[tuple[Row, Row]]) -> tuple[Any, ...]:
    """The statement's parameters: the batch's organisations, then one array per column."""
    organisations = [token["organisation_id"] for token, _event in batch]
    return (
        setting_value(organisations[0], organisations[1:]),
        *([token[name] for token, _event in batch] for name in TOKEN_COLUMNS),
        *([_driver_value(name, event[name]) for _token, event in batch] for name in AUDIT_COLUMNS),
    )


def _driver_value(name: str, value: Any) -> Any:
    """An audit column as the driver takes it: JSON as text, the actor type as its value."""
    if name == "details":
        return json.dumps(value)
    return str(value) if name == "actor_type" else value


async def write_batch(bind: AsyncEngine | AsyncConnection, batch: Sequence[tuple[Row, Row]]) -> None:
    """One statement for the batch: on a connection as it is (the tests' transaction), else alone in autocommit
    on a pooled driver connection (the statement commits on its own)."""
    parameters = batch_parameters(batch)
    if isinstance(bind, AsyncConnection):
        await bind.exec_driver_sql(BATCH_SQL, parameters)
        return
    pooled = await bind.raw_connection()
    try:
        await pooled.driver_connection.execute(BATCH_SQL, *parameters)  # type: ignore[union-attr]
    finally:
        pooled.close()  # back to the pool


class TokenWriter:
    """Writes the tokens of one worker, batching those that wait at the same time (see the module's text)."""

    def __init__(self, bind: AsyncEngine | AsyncConnection, max_batch: int = MAX_BATCH) -> None:
        self.bind = bind
        self.max_batch = max_batch
        self._queue: list[Pending] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, token: Row, event: Row) -> None:
        """Return once the token's row and event are committed; raise what the database raised for them."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((token, event, future))
        if self._writer is None or self._writer.done():
            # A context of its own: the writer serves many requests, so it must not carry the first one's id.
            self._writer = asyncio.create_task(self._drain(), context=contextvars.Context())
        # Shielded: a request that goes away leaves its token to be written, and the others' batch intact.
        await asyncio.shield(future)

    async def _drain(self) -> None:
        batch: list[Pending] = []
        try:
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                await self._settle(batch)
                batch = []
        except BaseException as stopped:  # cancelled at shutdown: nobody may wait for ever
            for _token, _event, future in [*batch, *self._queue]:
                _fail(future, stopped if isinstance(stopped, Exception) else RuntimeError("token writer stopped"))
            self._queue.clear()
            raise

    async def _settle(self, batch: list[Pending]) -> None:
        try:
            await write_batch(self.bind, [(token, event) for token, event, _future in batch])
        except Exception as error:
            if len(batch) == 1:
                _fail(batch[0][2], error)
                return
            log.warning("token writes: a batch of %d failed (%s); writing each alone", len(batch), error)
            for pending in batch:
                await self._settle([pending])
            return
        for _token, _event, future in batch:
            if not future.done():
                future.set_result(None)


def _fail(future: asyncio.Future[None], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
