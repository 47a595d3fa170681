"""GraphQL over HTTP at /graphql: negotiation, limits, authentication, and the request's unit of work.

Follows the GraphQL-over-HTTP draft: ``application/graphql-response+json`` (4xx for request errors) and
``application/json`` (200 with ``errors``); 400 for unparseable JSON, 405 for a mutation over GET, 406 for an
unacceptable ``Accept``, 413 for bodies over the limit, 415 for other media types. The operation commits
only when it produced no error; any error, including a mutation's user errors, rolls everything back.
Audited reads are written in their own transaction once the unit of work has ended, before the answer is
sent; if they cannot be, the answer is withheld (``domain.audit``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
    visit,
)
from graphql.language import Visitor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..db import read_only_session
from ..domain.access import install_guard
from ..domain.audit import AuditUnavailable, ReadLog, write_reads
from ..domain.principal import Principal
from ..domain.tenancy import bind_principal
from ..explorer.page import explorer_page, prefers_html
from ..oauth.errors import AuthenticationError
from ..runtime import Runtime
from ..schema import compiler, schema
from ..schema.context import RequestContext
from ..schema.errors import UNEXPECTED, format_error
from ..schema.limits import LIMIT_RULES, MAX_TOKENS
from . import persisted
from .metrics import GRAPHQL_READS
from .request_id import current_request_id

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
VALIDATION_RULES = (*specified_rules, *LIMIT_RULES)


class HTTPProblem(Exception):
    """A request refused before execution, with its status and (GraphQL-shaped) message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class GraphQLParams:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    # A persisted document named instead of (or beside) the text: ``web/persisted.py``.
    extensions: dict[str, Any] | None = None
    document_id: Any = None


def negotiate(request: Request) -> str:
    """The response media type: graphql-response+json when accepted, else JSON, else 406."""
    accept = request.headers.get("accept", "")
    if not accept.strip():
        return JSON
    offered = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if GRAPHQL_RESPONSE in offered:
        return GRAPHQL_RESPONSE
    if JSON in offered or "*/*" in offered or "application/*" in offered:
        return JSON
    raise HTTPProblem(406, f"cannot answer in {accept!r}; accept {GRAPHQL_RESPONSE} or {JSON}")


async def read_params(request: Request, max_bytes: int) -> GraphQLParams:
    if request.method == "GET":
        raw: Any = dict(request.query_params)
        for key in ("variables", "extensions"):
            if key in raw:
                raw[key] = _json(raw[key], key)
    else:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != JSON:
            raise HTTPProblem(415, f"send the request as {JSON}")
        raw = _json(await _body(request, max_bytes), "body")
    if isinstance(raw, list):
        raise HTTPProblem(400, "batched requests are not supported: send one operation per request")
    if not isinstance(raw, dict):
        raise HTTPProblem(400, "the request body must be a JSON object")
    query, variables, operation_name = raw.get("query"), raw.get("variables"), raw.get("operationName")
    if query is None and persisted.names_a_document(raw):
        query = ""
    elif not isinstance(query, str) or not query.strip():
        raise HTTPProblem(400, "'query' must be a non-empty string")
    if variables is not None and not isinstance(variables, dict):
        raise HTTPProblem(400, "'variables' must be an object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise HTTPProblem(400, "'operationName' must be a string")
    if raw.get("extensions") is not None and not isinstance(raw["extensions"], dict):
        raise HTTPProblem(400, "'extensions' must be an object")
    return GraphQLParams(query, variables, operation_name, raw.get("extensions"), raw.get("documentId"))


async def _body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPProblem(413, f"request body over {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPProblem(413, f"request body over {max_bytes} bytes")
    return bytes(body)


def _json(text: str | bytes, what: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise HTTPProblem(400, f"{what} is not valid JSON: {exc.msg}") from exc


@lru_cache(maxsize=512)
def parse_document(query: str) -> DocumentNode | GraphQLError:
    try:
        return parse(query, max_tokens=MAX_TOKENS)
    except GraphQLError as error:
        return error


INTROSPECTION_REFUSED = (
    "introspection is for people signed in (the explorer); partner apps use the published schema.graphql"
)


@lru_cache(maxsize=512)
def uses_introspection(query: str) -> bool:
    """Whether a (parsed, valid) document asks for ``__schema`` or ``__type`` (``__typename`` is fine)."""
    document = parse_document(query)
    assert isinstance(document, DocumentNode)
    found = False

    class Finder(Visitor):
        def enter_field(self, node: FieldNode, *_args: Any) -> None:
            nonlocal found
            found = found or node.name.value in ("__schema", "__type")

    visit(document, Finder())
    return found


@lru_cache(maxsize=512)
def validation_errors(query: str) -> tuple[GraphQLError, ...]:
    document = parse_document(query)
    assert isinstance(document, DocumentNode)
    return tuple(validate(schema._schema, document, VALIDATION_RULES))


def respond(payload: dict[str, Any], status: int, media_type: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=media_type, headers=headers)


def request_error(errors: list[dict[str, Any]], media_type: str) -> Response:
    """Errors before execution: 400 with graphql-response+json, 200 with legacy JSON (as the spec advises)."""
    return respond({"errors": errors}, 400 if media_type == GRAPHQL_RESPONSE else 200, media_type)


async def graphql_endpoint(request: Request) -> Response:
    if request.method == "GET" and prefers_html(request.headers.get("accept", "")):
        return await explorer_page(request)  # a browser opening /graphql gets the explorer
    runtime = Runtime.of(request)
    request_id = current_request_id() or ""
    try:
        media_type = negotiate(request)
        principal = await authenticate(request, runtime)
        params = await read_params(request, runtime.settings.max_body_bytes)
    except HTTPProblem as problem:
        return respond({"errors": [{"message": problem.message}]}, problem.status, JSON, problem.headers)
    try:
        text, remember = await persisted.resolve(runtime, principal, params.query, params.extensions,
                                                 params.document_id)  # fmt: skip
    except persisted.DocumentRefused as refused:
        error = [{"message": refused.message, "extensions": {"code": refused.code}}]
        if refused.status is None:
            return request_error(error, media_type)
        return respond({"errors": error}, refused.status, media_type, refused.headers)
    params = replace(params, query=text)
    document = parse_document(params.query)
    if isinstance(document, GraphQLError):
        return request_error([format_error(document, request_id)], media_type)
    errors = validation_errors(params.query)
    if errors:
        return request_error([format_error(error, request_id) for error in errors], media_type)
    if remember is not None:
        remember()
    operation = get_operation_ast(document, params.operation_name)
    if operation is None:
        return request_error([{"message": "name the operation to run with 'operationName'"}], media_type)
    if request.method == "GET" and operation.operation is not OperationType.QUERY:
        return respond({"errors": [{"message": "only queries may be sent with GET; use POST"}]}, 405, JSON,
                       {"Allow": "POST"})  # fmt: skip
    if principal.user_id is None and uses_introspection(params.query):
        refusal = {"message": INTROSPECTION_REFUSED, "extensions": {"code": "FORBIDDEN"}}
        return request_error([refusal], media_type)
    return await run_operation(runtime, principal, document, params, media_type, request_id)


async def authenticate(request: Request, runtime: Runtime) -> Principal:
    try:
        principal = await runtime.authenticate(request)
    except AuthenticationError as exc:
        raise HTTPProblem(exc.status_code, exc.message, {"WWW-Authenticate": exc.www_authenticate}) from exc
    if principal is None:
        raise HTTPProblem(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    return principal


async def run_operation(
    runtime: Runtime,
    principal: Principal,
    document: DocumentNode,
    params: GraphQLParams,
    media_type: str,
    request_id: str,
) -> Response:
    """Execute in one unit of work: commit when the operation raised no error, else roll back; then write the
    audited reads (their own transaction) before anything is sent. A query the compiler answers (it refuses
    audited fields) is one statement outside any unit of work."""
    query = compiler.QueryOperation.of(document, params.query, params.operation_name, params.variables)
    bind = runtime.session_maker.kw.get("bind", runtime.engine)  # the engine, or the tests' connection
    text = await compiler.answer(
        bind, principal, schema, query, enabled=runtime.settings.compiled_reads, request_id=request_id
    )
    if query is not None:
        GRAPHQL_READS.labels(path="executor" if text is None else "compiled").inc()
    if text is not None:
        return respond({"data": orjson.Fragment(text)}, 200, media_type)
    # A query only reads: on SQLite its transaction then runs beside writers instead of queueing on the lock.
    unit_of_work = runtime.session_maker() if query is None else read_only_session(runtime.session_maker)
    async with unit_of_work as session:
        install_guard(session)
        await bind_principal(session, principal)
        reads = ReadLog()
        context = RequestContext(principal=principal, session=session, request_id=request_id, reads=reads)
        result = await _execute(document, params, context)
        await context.finish()
        if result.errors and result.data is None and all(error.path is None for error in result.errors):
            await session.rollback()
            return request_error([format_error(error, request_id) for error in result.errors], media_type)
        failed = bool(result.errors) or context.failed
        try:
            await (session.rollback() if failed else session.commit())
        except Exception:
            log.exception("commit failed")
            await session.rollback()
            error = {"message": UNEXPECTED, "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}}
            return respond({"data": None, "errors": [error]}, 200, media_type)
    try:
        await write_reads(runtime.audit, reads, principal)
    except AuditUnavailable as unavailable:
        error = {
            "message": unavailable.message,
            "extensions": {"code": unavailable.code.value, "requestId": request_id},
        }
        return respond({"data": None, "errors": [error]}, 200, media_type)
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [format_error(error, request_id) for error in result.errors]
    return respond(payload, 200, media_type)


async def _execute(document: DocumentNode, params: GraphQLParams, context: RequestContext) -> ExecutionResult:
    outcome = execute(
        schema._schema,
        document,
        context_value=context,
        variable_values=params.variables,
        operation_name=params.operation_name,
    )
    if isinstance(outcome, ExecutionResult):
        return outcome
    return await outcome


routes = [Route("/graphql", graphql_endpoint, methods=["GET", "POST"])]
