"""One access-log line per HTTP request: what an operator needs to follow a request, and nothing private.

Logged: method, path (never the query string, which can carry variables or a token), status, duration,
request id, OAuth client id, GraphQL operation name and cost when the request had them. Never headers,
tokens, bodies or variables' values. With ``LOG_FORMAT=json`` the fields are the JSON line's keys.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from ..request_context import current_request_id
from .middleware import StatusRecorder

log = logging.getLogger("programme_api.access")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorder = StatusRecorder(send)

        try:
            await self.app(scope, receive, recorder)
        finally:
            fields = access_fields(scope, recorder.status, time.perf_counter() - started)
            log.info("%(method)s %(path)s %(status)s %(duration_ms).1fms", fields, extra={"access": fields})


def access_fields(scope: Scope, status: int, seconds: float) -> dict[str, Any]:
    state: dict[str, Any] = scope.get("state", {})
    fields: dict[str, Any] = {
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
        "request_id": current_request_id() or state.get("request_id", ""),
    }
    for key in ("client_id", "operation", "cost"):
        if state.get(key) not in (None, ""):
            fields[key] = state[key]
    return fields
