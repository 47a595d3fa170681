"""The published schema at /schema.graphql: what code generators and partner developers build against.

It is the same SDL as the committed ``schema.graphql`` and needs no token, like an OpenAPI document: it
describes the contract, not anyone's data (introspection, which is live, stays for signed-in callers).
"""

from __future__ import annotations

from functools import lru_cache

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..schema import print_schema_sdl


@lru_cache(maxsize=1)
def _sdl() -> bytes:
    return print_schema_sdl().encode()


async def published_schema(_request: Request) -> Response:
    return Response(_sdl(), media_type="application/graphql; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=300"})  # fmt: skip


routes = [Route("/schema.graphql", published_schema, methods=["GET"])]
