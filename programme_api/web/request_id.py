"""The request id: given to every response, every log line and every audit event of one request."""

from __future__ import annotations

import contextvars
import re
import secrets

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def current_request_id() -> str | None:
    return _request_id.get()


def new_request_id(offered: str | None) -> str:
    """Reuse a well-formed id from a proxy's ``X-Request-ID``, otherwise make a fresh one."""
    if offered and _ACCEPTABLE.match(offered):
        return offered
    return secrets.token_hex(12)


def bind_request_id(request_id: str) -> contextvars.Token[str | None]:
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    _request_id.reset(token)
