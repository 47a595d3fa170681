"""GraphQL over HTTP at /graphql: negotiation, limits, authentication, and the request's unit of work.

Follows the GraphQL-over-HTTP draft: ``application/graphql-response+json`` (4xx for request errors) and
``application/json`` (200 with ``errors``); 400 for unparseable JSON, 405 for a mutation over GET, 406 for an
unacceptable ``Accept``, 413 for bodies over the limit, 415 for other media types. The operation commits
only when it produced no error; any error, including a mutation's user errors, rolls everything back.
Audited reads are written in their own transaction once the unit of work has ended, before the answer is
sent; if they cannot be, the answer is withheld (``domain.audit``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationType,
    execute,
    get_operation_ast,
    parse,
)
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..db import read_only_session
from ..domain.access import install_guard
from ..domain.audit import AuditUnavailable, ReadLog, write_reads
from ..domain.principal import Principal
from ..domain.tenancy import bind_principal
from ..explorer.page import explorer_page, prefers_html
from ..limiter import Bucket, Outcome
from ..oauth.errors import AuthenticationError
from ..runtime import Runtime
from ..schema import compiler, evolution, schema
from ..schema.context import RequestContext
from ..schema.cost import CostAnalysis
from ..schema.errors import UNEXPECTED, format_error
from ..schema.limits import MAX_TOKENS
from ..schema.validation import validation_errors as schema_validation_errors
from . import persisted
from .metrics import DEPRECATED_USES, GRAPHQL_READS, observe_operation
from .rate_limit import RateLimits, rate_limit_headers, throttle_status
from .request_id import current_request_id

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


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


@lru_cache(maxsize=512)
def validation_errors(query: str) -> tuple[GraphQLError, ...]:
    document = parse_document(query)
    assert isinstance(document, DocumentNode)
    return schema_validation_errors(schema._schema, document)


@lru_cache(maxsize=512)
def deprecated_members(query: str) -> tuple[str, ...]:
    document = parse_document(query)
    assert isinstance(document, DocumentNode)
    return evolution.deprecated_uses(schema._schema, document)


def respond(payload: dict[str, Any], status: int, media_type: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=media_type, headers=headers)


def request_error_status(media_type: str) -> int:
    """Errors before execution: 400 with graphql-response+json, 200 with legacy JSON (as the spec advises)."""
    return 400 if media_type == GRAPHQL_RESPONSE else 200


async def graphql_endpoint(request: Request) -> Response:
    if request.method == "GET" and prefers_html(request.headers.get("accept", "")):
        return await explorer_page(request)  # a browser opening /graphql gets the explorer
    runtime = Runtime.of(request)
    request_id = current_request_id() or ""
    try:
        media_type = negotiate(request)
        principal = await authenticate(request, runtime)
        request.state.client_id = principal.client_id or ""
        params = await read_params(request, runtime.settings.max_body_bytes)
    except HTTPProblem as problem:
        return respond({"errors": [{"message": problem.message}]}, problem.status, JSON, problem.headers)
    limits = RateLimits.of(request)
    buckets = await limits.buckets(principal)
    try:
        text, remember = await persisted.resolve(runtime, principal, params.query, params.extensions,
                                                 params.document_id)  # fmt: skip
    except persisted.DocumentRefused as refused:
        refusal = [{"message": refused.message, "extensions": {"code": refused.code}}]
        if refused.status is None:
            return await refuse(refusal, media_type, limits, buckets)
        return respond({"errors": refusal}, refused.status, media_type, refused.headers)
    params = replace(params, query=text)
    document = parse_document(params.query)
    if isinstance(document, GraphQLError):
        return await refuse([format_error(document, request_id)], media_type, limits, buckets)
    errors = validation_errors(params.query)
    if errors:
        return await refuse([format_error(error, request_id) for error in errors], media_type, limits, buckets)
    for member in deprecated_members(params.query):
        DEPRECATED_USES.labels(client=principal.client_id or "", member=member).inc()
    if remember is not None:
        remember()
    operation = get_operation_ast(document, params.operation_name)
    if operation is None:
        return await refuse(
            [{"message": "name the operation to run with 'operationName'"}], media_type, limits, buckets
        )
    if request.method == "GET" and operation.operation is not OperationType.QUERY:
        return respond({"errors": [{"message": "only queries may be sent with GET; use POST"}]}, 405, JSON,
                       {"Allow": "POST"})  # fmt: skip
    analysis = CostAnalysis(schema._schema, document, params.operation_name, params.variables or {})
    requested = analysis.requested()
    settings = runtime.settings
    allowed = min(settings.max_query_cost, *(int(bucket.capacity) for bucket in buckets))
    if requested.points > allowed:
        message = f"the query would cost {requested.points} points; at most {allowed} are allowed per request"
        extensions = {"code": "QUERY_TOO_COSTLY", "requestedQueryCost": requested.points, "allowedQueryCost": allowed}
        return await refuse(
            [{"message": message, "extensions": extensions}], media_type, limits, buckets, requested.points
        )
    if requested.nodes > settings.max_query_nodes:
        message = f"the query may return {requested.nodes} nodes; at most {settings.max_query_nodes} are allowed"
        extensions = {"code": "MAX_NODE_LIMIT_EXCEEDED", "requestedNodes": requested.nodes,
                      "allowedNodes": settings.max_query_nodes}  # fmt: skip
        return await refuse(
            [{"message": message, "extensions": extensions}], media_type, limits, buckets, requested.points
        )
    reserved = max(requested.points, 1)
    outcome = await limits.take(buckets, reserved)
    if not outcome.allowed:
        wait = outcome.retry_after
        error = {
            "message": f"rate limit exceeded: this query needs {reserved} points; retry in {wait} s",
            "extensions": {"code": "THROTTLED", "retryAfter": wait},
        }
        payload = {"errors": [error], "extensions": cost_extension(requested.points, 0, outcome)}
        return respond(payload, 429, media_type, rate_limit_headers(outcome))
    name = operation.name.value if operation.name else None
    request.state.operation = name or ""
    started = time.perf_counter()
    with runtime.tracer.start_as_current_span(f"{operation.operation.value} {name or ''}".strip()) as span:
        span.set_attribute("graphql.operation.type", operation.operation.value)
        span.set_attribute("graphql.operation.name", name or "")
        payload, status, actual = await run_operation(
            runtime, principal, document, params, media_type, request_id, analysis
        )
    observe_operation(operation.operation.value, name, time.perf_counter() - started)
    request.state.cost = actual
    if actual < reserved:
        outcome = await limits.take(buckets, actual - reserved)  # give back what the answer did not use
    payload["extensions"] = cost_extension(requested.points, actual, outcome)
    return respond(payload, status, media_type, rate_limit_headers(outcome))


def cost_extension(requested: int, actual: int, outcome: Outcome) -> dict[str, Any]:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": throttle_status(outcome),
        }
    }


async def refuse(
    errors: list[dict[str, Any]], media_type: str, limits: RateLimits, buckets: list[Bucket], requested: int = 0
) -> Response:
    """An answer refused before execution (nothing charged), with the caller's cost and throttle status."""
    outcome = await limits.take(buckets, 0)
    payload = {"errors": errors, "extensions": cost_extension(requested, 0, outcome)}
    return respond(payload, request_error_status(media_type), media_type, rate_limit_headers(outcome))


async def authenticate(request: Request, runtime: Runtime) -> Principal:
    try:
        principal = await runtime.authenticate(request)
    except AuthenticationError as exc:
        raise HTTPProblem(exc.status_code, exc.message, {"WWW-Authenticate": exc.www_authenticate}) from exc
    if principal is None:
        raise HTTPProblem(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    return principal


Answer = tuple[dict[str, Any], int, int]
"""An operation's answer before its cost extension: the payload, the HTTP status and the actual cost."""


async def run_operation(
    runtime: Runtime,
    principal: Principal,
    document: DocumentNode,
    params: GraphQLParams,
    media_type: str,
    request_id: str,
    analysis: CostAnalysis,
) -> Answer:
    """Execute in one unit of work: commit when the operation raised no error, else roll back; then write the
    audited reads (their own transaction) before anything is sent. A query the compiler answers (it refuses
    audited fields) is one statement outside any unit of work.

    All of it within ``REQUEST_TIMEOUT_SECONDS``: on PostgreSQL each transaction's ``statement_timeout`` is
    the time left (``SET LOCAL``, so it ends with the transaction, PgBouncer's transaction mode included),
    on SQLite a progress handler interrupts a statement past the deadline; past it the operation is rolled
    back and answered with ``TIMEOUT``."""
    seconds = runtime.settings.request_timeout_seconds
    deadline = time.monotonic() + seconds
    query = compiler.QueryOperation.of(document, params.query, params.operation_name, params.variables)
    try:
        async with asyncio.timeout(seconds):
            # A query may read from a replica; anything else writes, on the primary (``replicas``).
            target = runtime.reads.primary if query is None else await runtime.reads.for_read(principal)
            text = await compiler.answer(
                target.bind, principal, schema, query, enabled=runtime.settings.compiled_reads,
                request_id=request_id,
            )  # fmt: skip
    except TimeoutError:
        return timed_out(seconds, request_id)
    if query is not None:
        GRAPHQL_READS.labels(path="executor" if text is None else "compiled").inc()
    if text is not None:
        return {"data": orjson.Fragment(text)}, 200, analysis.actual(orjson.loads(text))
    # A query only reads: on SQLite its transaction then runs beside writers instead of queueing on the lock.
    unit_of_work = runtime.session_maker() if query is None else read_only_session(target.session_maker)
    async with unit_of_work as session:
        install_guard(session)
        await bind_principal(session, principal, statement_timeout_ms=milliseconds_left(deadline))
        reads = ReadLog()
        context = RequestContext(principal=principal, session=session, request_id=request_id, reads=reads)
        async with statement_deadline(session, deadline):
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                    result = await _execute(document, params, context)
            except TimeoutError:
                result = None
            await context.finish()
        if result is None or ((result.errors or context.failed) and time.monotonic() >= deadline):
            await session.rollback()
            return timed_out(seconds, request_id)
        if result.errors and result.data is None and all(error.path is None for error in result.errors):
            await session.rollback()
            errors = [format_error(error, request_id) for error in result.errors]
            return {"errors": errors}, request_error_status(media_type), 0
        failed = bool(result.errors) or context.failed
        try:
            await (session.rollback() if failed else session.commit())
        except Exception:
            log.exception("commit failed")
            await session.rollback()
            error = {"message": UNEXPECTED, "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}}
            return {"data": None, "errors": [error]}, 200, 0
    if query is None and not failed:
        await runtime.reads.wrote(principal)  # this caller's next reads wait for a replica to replay it
    actual = analysis.actual(result.data)
    try:
        await write_reads(runtime.audit, reads, principal)
    except AuditUnavailable as unavailable:
        error = {
            "message": unavailable.message,
            "extensions": {"code": unavailable.code.value, "requestId": request_id},
        }
        return {"data": None, "errors": [error]}, 200, actual
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [format_error(error, request_id) for error in result.errors]
    return payload, 200, actual


def timed_out(seconds: float, request_id: str) -> Answer:
    """The answer past the deadline: nothing of the operation was kept."""
    message = f"the operation took longer than {seconds:g} s and was stopped; nothing was changed"
    error = {"message": message, "extensions": {"code": "TIMEOUT", "requestId": request_id}}
    return {"data": None, "errors": [error]}, 200, 0


def milliseconds_left(deadline: float) -> int:
    """PostgreSQL's ``statement_timeout`` for the rest of the request (set with the tenant binding)."""
    return max(int((deadline - time.monotonic()) * 1000), 1)


SQLITE_PROGRESS_STEPS = 1000  # virtual machine instructions between deadline checks (well under a millisecond)


class statement_deadline:
    """Bound every statement of the session's transaction by ``deadline`` (a ``time.monotonic`` value) on
    SQLite, with a progress handler; on PostgreSQL the binding already set ``statement_timeout``."""

    def __init__(self, session: AsyncSession, deadline: float) -> None:
        self.session = session
        self.deadline = deadline
        self.sqlite: Any = None

    async def __aenter__(self) -> None:
        connection = await self.session.connection()
        if connection.dialect.name == "sqlite":
            self.sqlite = (await connection.get_raw_connection()).driver_connection
            deadline = self.deadline
            await self.sqlite.set_progress_handler(lambda: int(time.monotonic() > deadline), SQLITE_PROGRESS_STEPS)

    async def __aexit__(self, *_exc: object) -> None:
        if self.sqlite is not None:
            await self.sqlite.set_progress_handler(None, 0)


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
