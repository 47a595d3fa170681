"""createSession, cancelSession, rescheduleSession, completeSession and setSessionFacilitators."""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain import models, sessions
from ...domain.principal import Principal
from ..context import Info
from ..relay import expect_global_id
from ..types.programme import GroupSession
from .common import MutationInput, MutationPayload, perform

SCOPE = sessions.SCOPE
VERSION_HELP = "The session's version you read; a stale one is refused with `CONFLICT`."


@strawberry.input(description="Cancel a scheduled session.")
class CancelSessionInput(MutationInput):
    session_id: strawberry.ID
    version: int = strawberry.field(description=VERSION_HELP)
    reason: str = strawberry.field(description="Why (required, at most 500 characters); shown with the session.")


@strawberry.input(description="Move a scheduled session to another time.")
class RescheduleSessionInput(MutationInput):
    session_id: strawberry.ID
    version: int = strawberry.field(description=VERSION_HELP)
    starts_at: datetime = strawberry.field(description="New start, with a UTC offset.")
    ends_at: datetime = strawberry.field(description="New end, 15 to 480 minutes after the start.")
    reason: str = strawberry.field(description="Why (required, at most 500 characters); kept in the audit log.")


@strawberry.type(description="The session changed, or why not.")
class SessionPayload(MutationPayload):
    session: GroupSession | None = None


def _present(row: models.GroupSession) -> SessionPayload:
    return SessionPayload(session=GroupSession.from_model(row))


async def cancel_session(info: Info, input: CancelSessionInput) -> SessionPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.GroupSession:
        session_id = expect_global_id(input.session_id, "GroupSession", "input.sessionId")
        return await sessions.cancel_session(session, principal, session_id, input.version, input.reason)

    return await perform(
        info,
        operation="cancelSession",
        scope=SCOPE,
        input=input,
        result_type=models.GroupSession,
        work=work,
        payload=SessionPayload,
        present=_present,
    )


async def reschedule_session(info: Info, input: RescheduleSessionInput) -> SessionPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.GroupSession:
        session_id = expect_global_id(input.session_id, "GroupSession", "input.sessionId")
        return await sessions.reschedule_session(
            session, principal, session_id, input.version, input.starts_at, input.ends_at, input.reason
        )

    return await perform(
        info,
        operation="rescheduleSession",
        scope=SCOPE,
        input=input,
        result_type=models.GroupSession,
        work=work,
        payload=SessionPayload,
        present=_present,
    )


@strawberry.input(description="A one-off meeting of an active group, outside its schedule.")
class CreateSessionInput(MutationInput):
    group_id: strawberry.ID
    starts_at: datetime = strawberry.field(description="Start, with a UTC offset.")
    ends_at: datetime = strawberry.field(description="End, 15 to 480 minutes after the start.")


@strawberry.input(description="Mark a session that has started as held.")
class CompleteSessionInput(MutationInput):
    session_id: strawberry.ID
    version: int = strawberry.field(description=VERSION_HELP)


@strawberry.input(description="Exactly the facilitators who ran a session (each assigned to its group).")
class SetSessionFacilitatorsInput(MutationInput):
    session_id: strawberry.ID
    version: int = strawberry.field(description=VERSION_HELP)
    facilitator_ids: list[strawberry.ID]


async def create_session(info: Info, input: CreateSessionInput) -> SessionPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.GroupSession:
        group_id = expect_global_id(input.group_id, "Group", "input.groupId")
        return await sessions.create_session(session, principal, group_id, input.starts_at, input.ends_at)

    return await perform(
        info, operation="createSession", scope=SCOPE, input=input, result_type=models.GroupSession, work=work,
        payload=SessionPayload, present=_present,
    )  # fmt: skip


async def complete_session(info: Info, input: CompleteSessionInput) -> SessionPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.GroupSession:
        session_id = expect_global_id(input.session_id, "GroupSession", "input.sessionId")
        return await sessions.complete_session(session, principal, session_id, input.version)

    return await perform(
        info, operation="completeSession", scope=SCOPE, input=input, result_type=models.GroupSession, work=work,
        payload=SessionPayload, present=_present,
    )  # fmt: skip


async def set_session_facilitators(info: Info, input: SetSessionFacilitatorsInput) -> SessionPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.GroupSession:
        session_id = expect_global_id(input.session_id, "GroupSession", "input.sessionId")
        facilitator_ids = [
            expect_global_id(value, "Facilitator", f"input.facilitatorIds.{index}")
            for index, value in enumerate(input.facilitator_ids)
        ]
        return await sessions.set_session_facilitators(session, principal, session_id, input.version, facilitator_ids)

    return await perform(
        info, operation="setSessionFacilitators", scope=SCOPE, input=input, result_type=models.GroupSession,
        work=work, payload=SessionPayload, present=_present,
    )  # fmt: skip
