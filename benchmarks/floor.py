"""The floor: the region dashboard and the session page as a minimal Starlette app with hand-written SQL.

It answers the same JSON documents as the service's ``RegionDashboard``, ``SessionPage`` and
``SessionPageAfter`` operations (``{"data": ...}``, same field names, enum names, timestamps, cursors and
order) for the same variables and caller, with the same access conditions (organisation and region), so its
throughput is what this database and this Python can do with no framework in the way: the number the
service is judged against. It routes by operation name, as a persisted-query endpoint would, and takes any
bearer without checking it (the service validates a real token on every request: that cost is the service's).

Dashboard: three statements (region, groups with facilitators aggregated, the last ``$sessions`` sessions per
group with attendance counts through LATERAL joins). Session pages: one statement each.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .shared import BenchCaller, find_caller, global_id

REGIONS_SQL = """
SELECT id, name FROM regions WHERE organisation_id = $1 AND id = ANY($2::uuid[]) ORDER BY name, id LIMIT 20
"""

GROUPS_SQL = """
SELECT g.id, g.region_id, g.name,
       COALESCE((SELECT json_agg(json_build_object('role', upper(fa.role), 'name', f.display_name)
                                 ORDER BY fa.role DESC, fa.created_at)
                 FROM facilitator_assignments fa JOIN facilitators f ON f.id = fa.facilitator_id
                 WHERE fa.group_id = g.id AND fa.organisation_id = $1)::text, '[]') AS facilitators
FROM (SELECT *, row_number() OVER (PARTITION BY region_id ORDER BY name, id) AS position
      FROM groups WHERE organisation_id = $1 AND region_id = ANY($2::uuid[])) g
WHERE g.position <= 50
ORDER BY g.region_id, g.name, g.id
"""

SESSIONS_SQL = """
SELECT g.id AS group_id, s.starts_at, s.status, s.dropin_count,
       c.present, c.excused, c.unexcused
FROM unnest($2::uuid[]) AS g(id)
CROSS JOIN LATERAL (
    SELECT id, starts_at, status, dropin_count FROM group_sessions
    WHERE group_id = g.id AND organisation_id = $1 ORDER BY starts_at DESC, id DESC LIMIT $3) s
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE status = 'present') AS present,
           count(*) FILTER (WHERE status = 'excused') AS excused,
           count(*) FILTER (WHERE status = 'unexcused') AS unexcused
    FROM attendance a WHERE a.session_id = s.id) c
ORDER BY g.id, s.starts_at, s.id
"""

PAGE_SQL = """
SELECT s.id, s.starts_at, s.ends_at, s.status, s.dropin_count, s.cancellation_reason
FROM group_sessions s JOIN groups g ON g.id = s.group_id
WHERE s.organisation_id = $1 AND g.organisation_id = $1 AND g.region_id = ANY($2::uuid[]) AND s.starts_at >= $3
ORDER BY s.starts_at, s.id LIMIT 101
"""

PAGE_AFTER_SQL = """
SELECT s.id, s.starts_at, s.ends_at, s.status, s.dropin_count, s.cancellation_reason
FROM group_sessions s JOIN groups g ON g.id = s.group_id
WHERE s.organisation_id = $1 AND g.organisation_id = $1 AND g.region_id = ANY($2::uuid[])
  AND (s.starts_at, s.id) > ($3, $4)
ORDER BY s.starts_at, s.id LIMIT 101
"""
"""Both pages fetch one row more than they show, which says whether there is a next page."""


async def dashboard(connection: asyncpg.Connection, caller: BenchCaller, variables: dict[str, Any]) -> dict[str, Any]:
    regions = [caller.region_id]
    region_rows = await connection.fetch(REGIONS_SQL, caller.organisation_id, regions)
    group_rows = await connection.fetch(GROUPS_SQL, caller.organisation_id, [row["id"] for row in region_rows])
    session_rows = await connection.fetch(
        SESSIONS_SQL, caller.organisation_id, [row["id"] for row in group_rows], int(variables["sessions"])
    )
    sessions: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for row in session_rows:
        sessions[row["group_id"]].append({"node": {
            "startsAt": row["starts_at"], "status": row["status"].upper(),
            "attendanceCounts": {"present": row["present"], "excused": row["excused"],
                                 "unexcused": row["unexcused"], "dropins": row["dropin_count"]},
        }})  # fmt: skip
    groups: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for row in group_rows:
        facilitators = [{"role": item["role"], "facilitator": {"displayName": item["name"]}}
                        for item in orjson.loads(row["facilitators"])]  # fmt: skip
        groups[row["region_id"]].append({"node": {
            "name": row["name"], "facilitators": facilitators, "sessions": {"edges": sessions[row["id"]]},
        }})  # fmt: skip
    edges = [{"node": {"name": row["name"], "groups": {"edges": groups[row["id"]]}}} for row in region_rows]
    return {"regions": {"edges": edges}}


async def session_page(
    connection: asyncpg.Connection, caller: BenchCaller, variables: dict[str, Any]
) -> dict[str, Any]:
    """The first page from a date on (``SessionPage``)."""
    starts = datetime.fromisoformat(variables["from"])
    rows = await connection.fetch(PAGE_SQL, caller.organisation_id, [caller.region_id], starts)
    return _sessions(rows, with_cursors=False)


async def session_page_after(
    connection: asyncpg.Connection, caller: BenchCaller, variables: dict[str, Any]
) -> dict[str, Any]:
    """A later page after a cursor (``SessionPageAfter``): the service's keyset cursor decoded by hand."""
    starts, session_id = decode_cursor(variables["after"])
    rows = await connection.fetch(PAGE_AFTER_SQL, caller.organisation_id, [caller.region_id], starts, session_id)
    return _sessions(rows, with_cursors=True)


def _sessions(rows: list[asyncpg.Record], *, with_cursors: bool) -> dict[str, Any]:
    shown = rows[:100]
    edges = []
    for row in shown:
        edge: dict[str, Any] = {"node": {
            "id": global_id("GroupSession", row["id"]), "startsAt": row["starts_at"], "endsAt": row["ends_at"],
            "status": row["status"].upper(), "dropinCount": row["dropin_count"],
            "cancellationReason": row["cancellation_reason"],
        }}  # fmt: skip
        if with_cursors:
            edge = {"cursor": encode_cursor(row["starts_at"], row["id"]), **edge}
        edges.append(edge)
    end = encode_cursor(shown[-1]["starts_at"], shown[-1]["id"]) if shown else None
    return {"sessions": {"pageInfo": {"hasNextPage": len(rows) > 100, "endCursor": end}, "edges": edges}}


def encode_cursor(starts: datetime, session_id: uuid.UUID) -> str:
    """The service's keyset cursor (``domain/pagination.py``): URL-safe base64 of a JSON array of the key."""
    payload = orjson.dumps([{"t": starts.astimezone(UTC).isoformat()}, {"u": session_id.hex}])
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    starts, session_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return datetime.fromisoformat(starts["t"]), uuid.UUID(session_id["u"])


HANDLERS = {"RegionDashboard": dashboard, "SessionPage": session_page, "SessionPageAfter": session_page_after}


class Floor:
    """Holds the pool, created on first use so the app also works in-process without a lifespan (tests)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.pool: asyncpg.Pool | None = None
        self.caller: BenchCaller | None = None
        self.lock = asyncio.Lock()

    async def ready(self) -> tuple[asyncpg.Pool, BenchCaller]:
        async with self.lock:
            if self.pool is None:
                self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=10)
                async with self.pool.acquire() as connection:
                    self.caller = await find_caller(connection)
        assert self.caller is not None
        return self.pool, self.caller

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def graphql(self, request: Request) -> Response:
        """Route by operation name, as a persisted-query endpoint would; the document itself is not parsed."""
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return Response(b'{"errors":[{"message":"a bearer token is required"}]}', 401,
                            media_type="application/json")  # fmt: skip
        body = orjson.loads(await request.body())
        handler = HANDLERS[body["operationName"]]
        pool, caller = await self.ready()
        async with pool.acquire() as connection, connection.transaction(readonly=True):
            data = await handler(connection, caller, body.get("variables") or {})
        return Response(orjson.dumps({"data": data}), media_type="application/json")


def create_floor(dsn: str) -> Starlette:
    floor = Floor(dsn)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await floor.close()

    app = Starlette(routes=[Route("/graphql", floor.graphql, methods=["POST"])], lifespan=lifespan)
    app.state.floor = floor
    return app


def create() -> Starlette:
    """``uvicorn --factory benchmarks.floor:create``; ``BENCH_DSN`` is the plain asyncpg DSN of the bench DB."""
    return create_floor(os.environ["BENCH_DSN"])
