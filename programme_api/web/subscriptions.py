"""GraphQL subscriptions over WebSocket at ``/graphql``, speaking graphql-transport-ws (the protocol of the
``graphql-ws`` library); the HTTP endpoint at the same path is untouched (``web/graphql.py``).

The connection is authenticated once by its ``connection_init`` (``{"Authorization": "Bearer ..."}`` in the
payload) and refused with close code 4403 when the token is missing, unknown, revoked or expired. After that
the token is checked again before every event and every ``RECHECK_SECONDS``: a token revoked or expired later
closes the connection with 4403, and a principal whose scopes or regions shrank stops receiving what it no
longer reaches, because each event is checked against the access rules with the principal of that moment.
Other closes follow the protocol: 4400 bad message, 4401 subscribe before ack, 4406 wrong subprotocol, 4408 no
init in time, 4409 duplicate subscription id, 4429 repeated init.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import DocumentNode, ExecutionResult, GraphQLError, OperationType, get_operation_ast, subscribe
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..db import read_only_session
from ..domain import outbox
from ..domain.principal import Principal
from ..domain.tenancy import bind_principal
from ..notifications.bus import BUS
from ..notifications.messages import Event
from ..oauth.errors import AuthenticationError
from ..runtime import Runtime
from ..schema import schema
from ..schema.errors import format_error
from .graphql import parse_document, validation_errors

log = logging.getLogger(__name__)

PROTOCOL = "graphql-transport-ws"
INIT_TIMEOUT_SECONDS = 5.0
RECHECK_SECONDS = 5.0
MAX_SUBSCRIPTIONS = 20


class Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class LiveContext:
    """The context a subscription resolver gets: its feed of events the connection may know about."""

    feed: Any
    principal: Principal


class LiveConnection:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.runtime = Runtime.of(websocket)
        self.token: str | None = None
        self.principal: Principal | None = None
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.send_lock = asyncio.Lock()
        self.closing: Closed | None = None

    async def send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.websocket.send_text(orjson.dumps(message).decode())

    async def current_principal(self) -> Principal:
        """The token's principal now, or ``Closed(4403)`` when it is no longer accepted."""
        headers = [(k, v) for k, v in self.websocket.scope.get("headers", []) if k != b"authorization"]
        headers.append((b"authorization", f"Bearer {self.token}".encode()))
        connection = HTTPConnection({**self.websocket.scope, "type": "http", "headers": headers})
        try:
            principal = await self.runtime.authenticate(connection)
        except AuthenticationError as error:
            raise Closed(4403, "Forbidden") from error
        if principal is None:
            raise Closed(4403, "Forbidden")
        return principal

    async def serve(self) -> None:
        try:
            await self._serve()
        except Closed as closed:
            await self._close(closed)
        except WebSocketDisconnect:
            pass
        finally:
            for task in self.tasks.values():
                task.cancel()

    async def _close(self, closed: Closed) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(closed.code, closed.reason)

    async def _receive(self, seconds: float) -> dict[str, Any] | None:
        try:
            text = await asyncio.wait_for(self.websocket.receive_text(), seconds)
        except TimeoutError:
            return None
        except (KeyError, RuntimeError) as error:  # a binary frame, or the socket already closed
            raise Closed(4400, "Invalid message") from error
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise Closed(4400, "Invalid message: not JSON") from error
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise Closed(4400, "Invalid message: no type")
        return message

    async def _serve(self) -> None:
        first = await self._receive(INIT_TIMEOUT_SECONDS)
        if first is None:
            raise Closed(4408, "Connection initialisation timeout")
        if first["type"] != "connection_init":
            raise Closed(4401, "Unauthorized")
        payload = first.get("payload") or {}
        header = (
            str(payload.get("Authorization") or payload.get("authorization") or "") if isinstance(payload, dict) else ""
        )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Closed(4403, "Forbidden")
        self.token = token.strip()
        self.principal = await self.current_principal()
        await self.send({"type": "connection_ack"})
        while True:
            if self.closing is not None:
                raise self.closing
            message = await self._receive(RECHECK_SECONDS)
            if self.closing is not None:
                raise self.closing
            if message is None:
                self.principal = await self.current_principal()
                continue
            await self._handle(message)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ping":
            await self.send({"type": "pong"})
        elif kind == "pong":
            return
        elif kind == "connection_init":
            raise Closed(4429, "Too many initialisation requests")
        elif kind == "subscribe":
            await self._subscribe(message)
        elif kind == "complete":
            task = self.tasks.pop(str(message.get("id")), None)
            if task is not None:
                task.cancel()
        else:
            raise Closed(4400, f"Unknown message type {kind!r}")

    async def _subscribe(self, message: dict[str, Any]) -> None:
        operation_id = message.get("id")
        payload = message.get("payload")
        if not isinstance(operation_id, str) or not operation_id or not isinstance(payload, dict):
            raise Closed(4400, "Invalid subscribe message")
        if operation_id in self.tasks:
            raise Closed(4409, f"Subscriber for {operation_id} already exists")
        if len(self.tasks) >= MAX_SUBSCRIPTIONS:
            await self._error(operation_id, [{"message": f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection"}])
            return
        query, variables = payload.get("query"), payload.get("variables")
        operation_name = payload.get("operationName")
        if not isinstance(query, str) or (variables is not None and not isinstance(variables, dict)):
            raise Closed(4400, "Invalid subscribe payload")
        request_id = uuid.uuid4().hex
        document = parse_document(query)
        if isinstance(document, GraphQLError):
            await self._error(operation_id, [format_error(document, request_id)])
            return
        errors = validation_errors(query)
        if errors:
            await self._error(operation_id, [format_error(error, request_id) for error in errors])
            return
        operation = get_operation_ast(document, operation_name if isinstance(operation_name, str) else None)
        if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
            refusal = "only subscriptions are served over WebSocket; send queries and mutations to POST /graphql"
            await self._error(operation_id, [{"message": refusal}])
            return
        queue = BUS.subscribe()  # before anything else can happen: no event committed from now on is missed
        task = asyncio.create_task(self._run(operation_id, document, variables, operation_name, queue, request_id))
        self.tasks[operation_id] = task

    async def _error(self, operation_id: str, errors: list[dict[str, Any]]) -> None:
        await self.send({"id": operation_id, "type": "error", "payload": errors})

    async def _run(
        self,
        operation_id: str,
        document: DocumentNode,
        variables: dict[str, Any] | None,
        operation_name: Any,
        queue: asyncio.Queue[Event | None],
        request_id: str,
    ) -> None:
        assert self.principal is not None
        context = LiveContext(feed=lambda: self._feed(queue), principal=self.principal)
        try:
            outcome: Any = subscribe(
                schema._schema, document, context_value=context, variable_values=variables,
                operation_name=operation_name if isinstance(operation_name, str) else None,
            )  # fmt: skip
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if isinstance(outcome, ExecutionResult):
                await self._error(operation_id, [format_error(error, request_id) for error in outcome.errors or []])
                return
            results: AsyncIterator[ExecutionResult] = outcome
            async for result in results:
                body: dict[str, Any] = {"data": result.data}
                if result.errors:
                    body["errors"] = [format_error(error, request_id) for error in result.errors]
                await self.send({"id": operation_id, "type": "next", "payload": body})
            await self.send({"id": operation_id, "type": "complete"})
        except Closed as closed:
            self.closing = closed
            await self._close(closed)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            BUS.unsubscribe(queue)
            self.tasks.pop(operation_id, None)

    async def _feed(self, queue: asyncio.Queue[Event | None]) -> AsyncIterator[Event]:
        assert self.principal is not None
        organisation_id = self.principal.organisation_id
        while True:
            event = await queue.get()
            if event is None:
                raise Closed(4500, "Too slow: events were dropped")
            if event.organisation_id != organisation_id:
                continue
            self.principal = await self.current_principal()
            if await self._may_hear(self.principal, event):
                yield event

    async def _may_hear(self, principal: Principal, event: Event) -> bool:
        async with read_only_session(self.runtime.session_maker) as session:
            await bind_principal(session, principal)
            return await outbox.reaches(session, principal, event.event_type, event.group_id, event.participant_id)


async def graphql_websocket(websocket: WebSocket) -> None:
    if PROTOCOL not in websocket.scope.get("subprotocols", []):
        await websocket.close(4406, "Subprotocol not acceptable")
        return
    await websocket.accept(subprotocol=PROTOCOL)
    await LiveConnection(websocket).serve()


routes: list[BaseRoute] = [WebSocketRoute("/graphql", graphql_websocket)]
