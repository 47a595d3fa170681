"""The service, exactly as ``programme-api serve`` builds it, except for how the caller is identified.

Why this exists: the read and write benchmarks need a bearer that maps to a fixed, region-bound principal
without a token round trip per run. ``create_app`` documents ``authenticate`` as the swap point (the tests
use it too), so everything past authentication - GraphQL execution, access filters, the unit of work - is
the production code path. Any other bearer goes to the real resource server (``oauth/resource.py``), so
tokens issued by this app's ``/oauth/token`` work as in production (the token and export scenarios).
``run.py`` serves this with ``uvicorn --factory`` and one worker, the same settings ``programme-api serve``
passes.
"""

from __future__ import annotations

import gc
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
    """A machine client bound to the dashboard region: reads, and records registers (a facilitators' app)."""
    return Principal(
        subject="client:benchmark",
        actor_type=ActorType.CLIENT,
        organisation_id=caller.organisation_id,
        scopes=frozenset({"programme:read", "attendance:write", "participants:read"}),
        region_ids=frozenset({caller.region_id}),
        client_id="benchmark",
    )


def fixed_authenticator(principal: Principal, fallback: Authenticator | None = None) -> Authenticator:
    """``Bearer <BENCH_TOKEN>`` is ``principal``; anything else goes to ``fallback`` (default: anonymous)."""

    async def authenticate(connection: HTTPConnection) -> Principal | None:
        if connection.headers.get("authorization") == f"Bearer {BENCH_TOKEN}":
            return principal
        return None if fallback is None else await fallback(connection)

    return authenticate


def create() -> Starlette:
    """``uvicorn --factory benchmarks.serve_app:create``; the caller's ids come from ``run.py``'s environment."""
    caller = BenchCaller(
        organisation_id=uuid.UUID(os.environ["BENCH_ORGANISATION_ID"]),
        region_id=uuid.UUID(os.environ["BENCH_REGION_ID"]),
    )
    real_tokens: Authenticator | None = None
    try:
        from programme_api.oauth import resource
    except ImportError:  # an older checkout (run.py --source) without the resource server
        pass
    else:
        real_tokens = resource.authenticate
    authenticate = fixed_authenticator(bench_principal(caller), fallback=real_tokens)
    app = create_app(get_settings(), authenticate=authenticate)
    gc.freeze()  # as programme_api.app.create_default_app does for `programme-api serve`
    return app
