"""The one routing decision: answer a query from one compiled statement, or let the executor answer it.

Decided here only, logged at debug level with the reason. The executor (the strawberry resolvers, the
reference implementation) answers whatever the compiler does not know, every request whose values it would
refuse (a bad cursor, a page size out of range, a missing scope), so that errors, error masking and audits
are always the executor's; and any failure inside the compiler is logged with the request id and the
request answered by the executor, never a bare server error.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from ...domain.access import CompiledRead, compile_read
from ...domain.errors import DomainError
from ...domain.principal import Principal
from ...domain.tenancy import bound_read
from ...request_context import statement_sent
from .build import Builder
from .dialect import DIALECTS, JsonDialect, register_sqlite_functions
from .operation import Fallback, QueryOperation, Selection, Unsupported, coerce_variables, structure_of
from .params import Request, Slots, bind_parameters

log = logging.getLogger(__name__)

CACHE_SIZE = 512
TOO_DEEP = "parser stack overflow"


@dataclass(frozen=True)
class CompiledQuery:
    """One operation's statement for one access shape and structure of variables, and its parameter slots."""

    read: CompiledRead
    slots: Slots


_cache: OrderedDict[Hashable, CompiledQuery | None] = OrderedDict()


def access_shape(principal: Principal) -> Hashable:
    """What of the principal can change a statement's text: never its organisation, region or person IDs
    (those are parameters, a list of regions one array), only its kind, role, scopes, whether regions bind
    it and whether it is a facilitator acting as themselves."""
    return (
        principal.actor_type,
        principal.role,
        principal.scopes,
        principal.region_ids is None,
        principal.facilitator_id is None,
        principal.evaluation_project_id is None,
    )


def cache_key(query: QueryOperation, selection: Selection, principal: Principal, dialect: str, schema: Any) -> Hashable:
    structure = structure_of(selection.variables)
    return (query.source, query.name, structure, access_shape(principal), id(schema), dialect)


async def answer(
    bind: AsyncEngine | AsyncConnection,
    principal: Principal,
    schema: Any,
    query: QueryOperation | None,
    *,
    enabled: bool,
    request_id: str,
) -> str | None:
    """The ``data`` of the operation as JSON text from one statement, or None: the executor answers."""
    if not enabled:
        _executor("compiled reads are off")
        return None
    if query is None:
        _executor("not a query")
        return None
    if principal.evaluation_project_id is not None:
        _executor("evaluators read across organisations: their binding needs a lookup first")
        return None
    try:
        text = await _compiled(bind, principal, schema, query)
    except (Unsupported, Fallback, DomainError, GraphQLError) as reason:
        _executor(str(reason) or type(reason).__name__)
        return None
    except Exception:
        log.exception("the compiled read failed (request %s); the executor answers", request_id)
        return None
    log.debug("compiled read answers %s", query.name or "the operation")
    return text


def _executor(reason: str) -> None:
    log.debug("the executor answers: %s", reason)
    return


async def _compiled(
    bind: AsyncEngine | AsyncConnection, principal: Principal, schema: Any, query: QueryOperation
) -> str:
    dialect = DIALECTS.get(bind.dialect.name)
    if dialect is None:
        raise Unsupported(f"no JSON dialect for {bind.dialect.name}")
    selection = Selection(query.fragments, coerce_variables(schema, query.definition, query.variables or {}))
    request = Request(principal, selection)
    key = cache_key(query, selection, principal, dialect.name, schema)
    if key in _cache:
        _cache.move_to_end(key)
        compiled = _cache[key]
    else:
        try:
            compiled = build(bind.dialect, dialect, schema, query, request)
        except Unsupported:
            _remember(key, None)
            raise
        _remember(key, compiled)
    if compiled is None:
        raise Unsupported("not compiled (remembered)")
    sql, parameters = compiled.read.bound(compiled.slots.values(request))
    try:
        (row,) = await run(bind, dialect, sql, parameters)
    except (sa.exc.OperationalError, sqlite3.OperationalError) as error:
        if dialect.name == "sqlite" and TOO_DEEP in str(error):
            # SQLite's parser (before 3.46) has a fixed stack: a deeply nested query is the executor's.
            _remember(key, None)
            raise Unsupported("nested too deeply for this SQLite's parser") from error
        raise
    return str(row[0])


def _remember(key: Hashable, compiled: CompiledQuery | None) -> None:
    _cache[key] = compiled
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)


def build(
    sa_dialect: sa.Dialect, dialect: JsonDialect, schema: Any, query: QueryOperation, request: Request
) -> CompiledQuery:
    """The operation as one statement returning the ``data`` object as text (nothing is sent here)."""
    builder = Builder(schema, request, dialect, sa_dialect)
    statement = builder.slots.with_tables(dialect.finish(builder.data(query)))
    if dialect.name == "postgresql":
        statement = _bind_tenant(statement, builder.slots, request.principal)
    return CompiledQuery(compile_read(statement, sa_dialect, dialect.rearrange), builder.slots)


def _bind_tenant(statement: sa.Select[Any], slots: Slots, principal: Principal) -> sa.Select[Any]:
    """The statement binding its own transaction to the caller's tenant (``tenancy.bound_read``), for
    row-level security; the binding's values are slots like every other value."""
    before = {id(parameter) for parameter in bind_parameters(statement)}

    def binding(caller: Principal) -> sa.Select[Any]:
        return bound_read(sa.select(sa.literal_column("1")), caller)

    return slots.domain(  # type: ignore[no-any-return]
        bound_read(statement, principal),
        lambda r: binding(r.principal),
        only=lambda parameter: id(parameter) not in before,
        probe=binding(principal),
    )


async def run(
    bind: AsyncEngine | AsyncConnection, dialect: JsonDialect, sql: str, parameters: tuple[Any, ...]
) -> Sequence[Any]:
    """Send the statement. On the engine (the service) it goes straight to a pooled driver connection in
    autocommit: one round trip, no BEGIN or COMMIT (one statement reads one snapshot); on a connection (the
    tests' rolled-back transaction) it runs inside that connection's transaction, in a savepoint."""
    if isinstance(bind, AsyncConnection):
        if dialect.name == "sqlite":
            await register_sqlite_functions((await bind.get_raw_connection()).driver_connection)
        # In a savepoint, so that a statement that fails leaves the transaction usable for the executor, as
        # the service's own connection (outside any transaction) leaves the executor's untouched.
        async with bind.begin_nested():
            return (await bind.exec_driver_sql(sql, parameters)).all()
    pooled = await bind.raw_connection()
    statement_sent()  # past SQLAlchemy's events, so counted here
    try:
        driver: Any = pooled.driver_connection
        if dialect.name == "sqlite":
            await register_sqlite_functions(driver)
            try:
                return list(await driver.execute_fetchall(sql, parameters))
            except asyncio.CancelledError:
                # Past the request's deadline: stop the statement in SQLite's thread too, or it would run on
                # unseen and hold the connection (PostgreSQL's statement_timeout does this on the server).
                await driver.interrupt()
                raise
        return list(await driver.fetch(sql, *parameters))
    finally:
        await greenlet_spawn(pooled.close)  # back to the pool (its reset runs the driver's rollback)
