"""The request id: given to every response, every log line and every audit event of one request.

The id lives in ``request_context`` (so the domain can read it without importing the web layer); this
module decides what the id of an incoming request is.
"""

from __future__ import annotations

import re
import secrets

from ..request_context import bind_request_id, current_request_id, reset_request_id

_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

__all__ = ["bind_request_id", "current_request_id", "new_request_id", "reset_request_id"]


def new_request_id(offered: str | None) -> str:
    """Reuse a well-formed id from a proxy's ``X-Request-ID``, otherwise make a fresh one."""
    if offered and _ACCEPTABLE.match(offered):
        return offered
    return secrets.token_hex(12)
