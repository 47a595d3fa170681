"""How errors reach callers: expected ones with a code, unexpected ones masked with the request id.

Domain refusals (``DomainError``) keep their message and carry ``extensions.code`` (and ``field``); GraphQL's
own parse and validation errors pass as they are (``validation`` gives them their codes); a variable whose
value GraphQL cannot coerce (a string for an ``Int``, a missing required one) is ``INVALID`` naming it in
``extensions.field`` (``$days``); anything else becomes "Unexpected error" and its trace goes to the log,
never to the client.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError, VariableDefinitionNode

from ..domain.errors import DomainError, ErrorCode
from .validation import VALIDATION_FAILED

log = logging.getLogger("programme_api.errors")

UNEXPECTED = "Unexpected error"


def format_error(error: GraphQLError, request_id: str) -> dict[str, Any]:
    original = error.original_error
    variable = _refused_variable(error)
    if variable is not None:
        return _with(error, error.message, {"code": ErrorCode.INVALID.value, "field": f"${variable}"})
    if original is None:
        formatted: dict[str, Any] = dict(error.formatted)
        formatted.setdefault("extensions", {}).setdefault("code", VALIDATION_FAILED)
        return formatted
    if isinstance(original, DomainError):
        extensions: dict[str, Any] = {"code": original.code.value}
        if original.field:
            extensions["field"] = original.field
        return _with(error, original.message, extensions)
    if isinstance(original, GraphQLError):  # e.g. a scalar that refused its input value
        return format_error(original, request_id)
    log.error("unexpected error in %s", ".".join(map(str, error.path or [])), exc_info=original)
    return _with(error, UNEXPECTED, {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id})


def _refused_variable(error: GraphQLError) -> str | None:
    """The variable whose value execution refused before it began. Validation's errors on a variable's
    definition (an unused one, say) already carry their code, so an uncoded error there is about the value."""
    if (error.extensions or {}).get("code") or not error.nodes:
        return None
    node = error.nodes[0]
    return node.variable.name.value if isinstance(node, VariableDefinitionNode) else None


def _with(error: GraphQLError, message: str, extensions: dict[str, Any]) -> dict[str, Any]:
    formatted: dict[str, Any] = {"message": message}
    if error.locations:
        formatted["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        formatted["path"] = error.path
    formatted["extensions"] = extensions
    return formatted
