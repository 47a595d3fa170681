"""The floor: the region dashboard and the session page as a minimal Starlette app with hand-written SQL.

It answers the same JSON documents as the service's ``RegionDashboard`` and ``SessionPage`` operations
(``{"data": ...}``, same field names, enum names, timestamps and order), for the same bearer and caller, with
the same access conditions (organisation and region), so its throughput is what this database and this
Python can do with no framework in the way: the number the service is judged against.

Dashboard: three statements (region, groups with facilitators aggregated, last 20 sessions per group with
attendance counts through LATERAL joins). Session page: one statement.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .shared import BENCH_TOKEN, BenchCaller, find_caller

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
    WHERE group_id = g.id AND organisation_id = $1 ORDER BY starts_at DESC, id DESC LIMIT 20) s
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
WHERE s.organisation_id = $1 AND g.organisation_id = $1 AND g.region_id = ANY($2::uuid[])
ORDER BY s.starts_at, s.id LIMIT 100
"""


def global_id(type_name: str, row_id: uuid.UUID) -> str:
    """The service's opaque Relay ID, so the floor's session page is byte-for-byte comparable."""
    return base64.urlsafe_b64encode(f"{type_name}:{row_id}".encode()).decode().rstrip("=")


async def dashboard(connection: asyncpg.Connection, caller: BenchCaller) -> dict[str, Any]:
    regions = [caller.region_id]
    region_rows = await connection.fetch(REGIONS_SQL, caller.organisation_id, regions)
    group_rows = await connection.fetch(GROUPS_SQL, caller.organisation_id, [row["id"] for row in region_rows])
    session_rows = await connection.fetch(SESSIONS_SQL, caller.organisation_id, [row["id"] for row in group_rows])
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


async def session_page(connection: asyncpg.Connection, caller: BenchCaller) -> dict[str, Any]:
    rows = await connection.fetch(PAGE_SQL, caller.organisation_id, [caller.region_id])
    edges = [{"node": {
        "id": global_id("GroupSession", row["id"]), "startsAt": row["starts_at"], "endsAt": row["ends_at"],
        "status": row["status"].upper(), "dropinCount": row["dropin_count"],
        "cancellationReason": row["cancellation_reason"],
    }} for row in rows]  # fmt: skip
    return {"sessions": {"edges": edges}}


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
        if request.headers.get("authorization") != f"Bearer {BENCH_TOKEN}":
            return Response(b'{"errors":[{"message":"a bearer token is required"}]}', 401,
                            media_type="application/json")  # fmt: skip
        body = orjson.loads(await request.body())
        operation = body.get("operationName") or ("SessionPage" if "SessionPage" in body["query"] else "")
        pool, caller = await self.ready()
        async with pool.acquire() as connection, connection.transaction(readonly=True):
            data = await (session_page if operation == "SessionPage" else dashboard)(connection, caller)
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
