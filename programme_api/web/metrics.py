"""Prometheus metrics at /metrics, one page for all workers of a ``serve --workers N``.

With several workers each process writes its samples to files in ``PROMETHEUS_MULTIPROC_DIR`` (``serve`` sets
one up) and the page sums them (prometheus_client's multiprocess mode), so a scrape reads the whole service,
not whichever worker answered it. The page is for the operator's scraper: it answers loopback peers and
addresses in ``METRICS_ALLOW_IPS``, or anyone with the ``METRICS_TOKEN`` bearer, and no one else.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..metrics import (
    DEPRECATED_USES,
    EXPORT_BYTES,
    GRAPHQL_READS,
    LATENCY,
    MULTIPROCESS_DIRECTORY,
    OPERATIONS,
    REGISTRY,
    REQUESTS,
    STATEMENTS,
)
from ..request_context import count_statements
from ..runtime import Runtime
from .middleware import StatusRecorder

__all__ = ["DEPRECATED_USES", "EXPORT_BYTES", "GRAPHQL_READS", "REGISTRY", "routes"]


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


def observe_operation(operation_type: str, name: str | None, seconds: float) -> None:
    OPERATIONS.labels(operation_type, (name or "")[:64]).observe(seconds)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorder = StatusRecorder(send)

        with count_statements() as statements:
            try:
                await self.app(scope, receive, recorder)
            finally:
                route = route_name(scope)
                REQUESTS.labels(route, scope["method"], str(recorder.status)).inc()
                LATENCY.labels(route).observe(time.perf_counter() - started)
                STATEMENTS.observe(statements.sent)


def exposition() -> bytes:
    """Every worker's samples summed when workers share a multiprocess directory, else this process's."""
    if os.environ.get(MULTIPROCESS_DIRECTORY):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def may_scrape(request: Request) -> bool:
    settings = Runtime.of(request).settings
    token = settings.metrics_token
    offered = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if token and offered and hmac.compare_digest(offered.encode(), token.encode()):
        return True
    peer = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return address.is_loopback or any(address in network for network in settings.metrics_allow_networks)


async def metrics(request: Request) -> Response:
    if not may_scrape(request):
        return Response("metrics are for the operator's scraper: send the metrics token, or scrape from an "
                        "allowed address\n", status_code=403, media_type="text/plain")  # fmt: skip
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


def worker_exited() -> None:
    """Drop this worker's live gauges from the shared page (its counters keep counting in the sums)."""
    if os.environ.get(MULTIPROCESS_DIRECTORY):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


routes = [Route("/metrics", metrics, methods=["GET"])]
