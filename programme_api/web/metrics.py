"""Prometheus metrics: request counts and latencies per route, served at /metrics."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "programme_api_requests_total", "HTTP requests by route and status.", ["route", "method", "status"],
    registry=REGISTRY,
)  # fmt: skip
GRAPHQL_READS = Counter(
    "programme_api_graphql_reads",
    "GraphQL query operations by the path that answered them: one compiled statement, or the resolvers.",
    ["path"],
    registry=REGISTRY,
)
DEPRECATED_USES = Counter(
    "programme_api_deprecated_field_uses",
    "Operations that used a deprecated field or enum value, by OAuth client and member: who still relies on "
    "what before it is removed.",
    ["client", "member"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "programme_api_request_seconds", "Time to answer HTTP requests, by route.", ["route"], registry=REGISTRY
)


def route_name(scope: Scope) -> str:
    """The route template (not the raw path), so metrics do not explode with one series per URL.

    The router records the matched endpoint in the scope; its template is looked up once per endpoint.
    """
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return "unmatched"
    templates: dict[Any, str] = scope["app"].state.__dict__.setdefault("route_templates", {})
    template = templates.get(endpoint)
    if template is None:
        template = next(
            (
                str(getattr(route, "path", "other"))
                for route in scope["app"].routes
                if route.matches(scope)[0] is Match.FULL
            ),
            "other",
        )
        templates[endpoint] = template
    return template


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = route_name(scope)
            REQUESTS.labels(route, scope["method"], str(status)).inc()
            LATENCY.labels(route).observe(time.perf_counter() - started)


async def metrics(_request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"])]
