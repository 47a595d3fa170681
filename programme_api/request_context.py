"""What the current request is, for the layers that must not know what a request is.

The HTTP edge (``web/request_id.py``) decides a request's id and binds it here; the domain (audit events)
and the log formatter read it from here. Keeping the context variable in a module of its own lets
``domain/`` record which request did something without importing anything of the web layer.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served, or None outside a request (CLI, worker, tests)."""
    return _request_id.get()


def bind_request_id(request_id: str) -> contextvars.Token[str | None]:
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    _request_id.reset(token)


class StatementCount:
    """SQL statements the current request has sent so far (for the statements-per-request histogram)."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = 0


_statements: contextvars.ContextVar[StatementCount | None] = contextvars.ContextVar("statements", default=None)


@contextlib.contextmanager
def count_statements() -> Iterator[StatementCount]:
    count = StatementCount()
    token = _statements.set(count)
    try:
        yield count
    finally:
        _statements.reset(token)


def statement_sent() -> None:
    """Called for each statement sent to the database; counts it for the request being served, if any."""
    count = _statements.get()
    if count is not None:
        count.sent += 1
