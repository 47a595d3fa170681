"""The service, exactly as ``programme-api serve`` builds it, except for how the caller is identified.

Why this exists: the OAuth token endpoint is not wired in yet, and the read benchmarks need a bearer that
maps to a fixed, region-bound principal. ``create_app`` documents ``authenticate`` as the swap point (the
tests use it too), so everything past authentication - GraphQL execution, access filters, the unit of work -
is the production code path. ``run.py`` serves this with ``uvicorn --factory`` and one worker, the same
settings ``programme-api serve`` passes.
"""

from __future__ import annotations

import os
import uuid

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from programme_api.app import create_app
from programme_api.config import get_settings
from programme_api.domain.models import ActorType
from programme_api.domain.principal import Principal
from programme_api.runtime import Authenticator

from .shared import BENCH_TOKEN, BenchCaller


def bench_principal(caller: BenchCaller) -> Principal:
    """A machine client bound to the dashboard region, reading only (what a partner dashboard would hold)."""
    return Principal(
        subject="client:benchmark",
        actor_type=ActorType.CLIENT,
        organisation_id=caller.organisation_id,
        scopes=frozenset({"programme:read", "attendance:write"}),
        region_ids=frozenset({caller.region_id}),
        client_id="benchmark",
    )


def fixed_authenticator(principal: Principal) -> Authenticator:
    """Accept exactly ``Bearer <BENCH_TOKEN>``; anything else is anonymous (and so refused with 401)."""

    async def authenticate(connection: HTTPConnection) -> Principal | None:
        if connection.headers.get("authorization") == f"Bearer {BENCH_TOKEN}":
            return principal
        return None

    return authenticate


def create() -> Starlette:
    """``uvicorn --factory benchmarks.serve_app:create``; the caller's ids come from ``run.py``'s environment."""
    caller = BenchCaller(
        organisation_id=uuid.UUID(os.environ["BENCH_ORGANISATION_ID"]),
        region_id=uuid.UUID(os.environ["BENCH_REGION_ID"]),
    )
    return create_app(get_settings(), authenticate=fixed_authenticator(bench_principal(caller)))
