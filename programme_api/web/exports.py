"""Exports over HTTP: the evaluator's bulk files (CSV, Parquet and the codebook, behind ``evaluation:read``) and
a session's register as CSV (behind ``participants:read`` and the programme's access rules).

Authorisation happens before the response starts (so refusals get a status code), and so does the export's
audit event, in its own transaction: when it cannot be written the answer is 503 and no data is sent. The body
then streams from a server-side cursor. Exports only read: they may be answered by a replica (``replicas``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..domain.audit import AuditUnavailable
from ..domain.errors import DomainError, ErrorCode
from ..domain.exports import PreparedExport, audit_export, codebook_json, export_body, prepare_export
from ..domain.principal import Principal
from ..metrics import EXPORT_BYTES, EXPORT_ROWS
from ..runtime import Runtime

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


class ClosingStreamingResponse(StreamingResponse):
    """A streamed file whose generator is closed as soon as the response ends, however it ends: a client that
    leaves mid-file must not keep the export's database session (and its connection) open until the garbage
    collector finds the abandoned generator."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await cast(AsyncGenerator[bytes, None], self.body_iterator).aclose()


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _principal(request: Request) -> Principal | Response:
    try:
        principal = await Runtime.of(request).authenticate(request)
    except DomainError as exc:
        return _problem(401, exc.message, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if principal is None:
        return _problem(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    return principal


def _refusal(error: DomainError) -> Response:
    if error.code is ErrorCode.INSUFFICIENT_SCOPE:
        return _problem(
            403, error.message, {"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="evaluation:read"'}
        )
    if error.code in (ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND):
        return _problem(403, "this token is not bound to an evaluation project")
    return _problem(400, error.message)


Sessions = async_sessionmaker[AsyncSession]


async def read_sessions(request: Request, principal: Principal) -> Sessions:
    """Sessions on the server that answers this caller's reads: a replica, or the primary."""
    return (await Runtime.of(request).reads.for_read(principal)).session_maker


async def authorised_export(
    request: Request, export_format: str
) -> tuple[Principal, PreparedExport, Sessions] | Response:
    """The caller, its prepared export and the sessions to read it with, audited; or the refusal to answer
    with (401, 403, 400, 503)."""
    principal = await _principal(request)
    if isinstance(principal, Response):
        return principal
    runtime = Runtime.of(request)
    sessions = await read_sessions(request, principal)
    try:
        prepared = await prepare_export(sessions, principal)
    except DomainError as error:
        return _refusal(error)
    try:
        await audit_export(runtime.audit, principal, prepared, export_format)
    except AuditUnavailable as unavailable:
        return _problem(503, unavailable.message)
    return principal, prepared, sessions


async def _export(request: Request, export_format: str) -> Response:
    authorised = await authorised_export(request, export_format)
    if isinstance(authorised, Response):
        return authorised
    principal, prepared, sessions = authorised
    filename = f"{prepared.project.slug}-surveys.{export_format}"
    count_rows = EXPORT_ROWS.labels(export_format).inc
    body = export_body(sessions, principal, prepared, export_format, on_rows=count_rows)
    return ClosingStreamingResponse(
        _counted(body, export_format),
        media_type=MEDIA_TYPES[export_format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


async def _counted(body: AsyncGenerator[bytes, None], export_format: str) -> AsyncGenerator[bytes, None]:
    """The export's bytes, counted for /metrics as they leave; closing this closes the export (its cursor and
    session) at once."""
    async with contextlib.aclosing(body):
        async for chunk in body:
            EXPORT_BYTES.labels(export_format).inc(len(chunk))
            yield chunk


async def surveys_csv(request: Request) -> Response:
    return await _export(request, "csv")


async def surveys_parquet(request: Request) -> Response:
    return await _export(request, "parquet")


async def codebook(request: Request) -> Response:
    principal = await _principal(request)
    if isinstance(principal, Response):
        return principal
    try:
        prepared = await prepare_export(await read_sessions(request, principal), principal)
    except DomainError as error:
        return _refusal(error)
    body = codebook_json(prepared.project, prepared.instruments, prepared.threshold)
    return Response(body, media_type="application/json")


async def register_csv(request: Request) -> Response:
    """``/exports/registers/{sessionId}.csv``: one session's register, audited before it is sent."""
    from ..db import read_only_session
    from ..domain.access import install_guard
    from ..domain.registers import audit_register, register_csv, register_sheet
    from ..domain.tenancy import bind_principal
    from ..schema.relay import expect_global_id

    principal = await _principal(request)
    if isinstance(principal, Response):
        return principal
    runtime = Runtime.of(request)
    try:
        session_id = expect_global_id(request.path_params["session_id"], "GroupSession", "sessionId")
        async with read_only_session(await read_sessions(request, principal)) as session:
            install_guard(session)
            await bind_principal(session, principal)
            sheet = await register_sheet(session, principal, session_id)
    except DomainError as error:
        if error.code is ErrorCode.INSUFFICIENT_SCOPE:
            challenge = 'Bearer error="insufficient_scope", scope="participants:read"'
            return _problem(403, error.message, {"WWW-Authenticate": challenge})
        return _problem(404, "session not found")
    try:
        await audit_register(runtime.audit, principal, sheet)
    except AuditUnavailable as unavailable:
        return _problem(503, unavailable.message)
    filename = f"register-{sheet.session.starts_at:%Y-%m-%d}.csv"
    return Response(
        register_csv(sheet),
        media_type=MEDIA_TYPES["csv"],
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


routes = [
    Route("/exports/registers/{session_id}.csv", register_csv, methods=["GET"]),
    Route("/exports/surveys.csv", surveys_csv, methods=["GET"]),
    Route("/exports/surveys.parquet", surveys_parquet, methods=["GET"]),
    Route("/exports/codebook.json", codebook, methods=["GET"]),
]
