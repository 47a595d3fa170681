"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import migrations
from ..db import read_only_engine
from ..runtime import Runtime


async def healthz(_request: Request) -> JSONResponse:
    """The process is up and serving; says nothing about the database."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and its schema is at the code's migration head."""
    runtime = Runtime.of(request)
    try:
        async with read_only_engine(runtime.engine).connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
            reason = await connection.run_sync(migrations.pending_reason)
    except (SQLAlchemyError, OSError) as exc:
        reason = f"database unreachable: {type(exc).__name__}"
    if reason is not None:
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ok"})


routes = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
