"""The audit log for organisation admins: ``auditEvents``, newest first, filtered, a keyset connection."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from ..domain import audit_log, models
from ..domain.errors import DomainError
from ..domain.pagination import count, page_request
from ..domain.principal import Principal
from .context import Info
from .relay import Connection, Node, connection_from_page, from_global_id, to_global_id

ActorType = strawberry.enum(models.ActorType, description="Who acted: a person, a client for itself, the system.")
SCOPE_NOTE = "Requires `admin`."


@strawberry.type(description=f"Who did what to which row, when, in which request. {SCOPE_NOTE}")
class AuditEvent(Node):
    occurred_at: datetime
    actor_type: models.ActorType
    actor_id: str | None = strawberry.field(description="The actor's subject (a user id, or `client:<client id>`).")
    action: str = strawberry.field(description="What happened, e.g. `group.create` or `SurveyResponse.read`.")
    target_type: str | None
    target_id: str | None = strawberry.field(
        description="The target's row id as recorded (not a global ID); null when an event names several rows."
    )
    request_id: str | None = strawberry.field(description="The `X-Request-ID` of the request that did it.")
    details: JSON = strawberry.field(
        description="What the event concerns: field names, counts, ids (`ids` for reads), never personal data."
    )

    @classmethod
    def from_model(cls, row: models.AuditEvent) -> AuditEvent:
        return cls(
            id=to_global_id("AuditEvent", row.id),
            occurred_at=row.occurred_at,
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            request_id=row.request_id,
            details=cast(JSON, row.details),
        )


@strawberry.input(description="Narrow the audit log; all given conditions must hold.")
class AuditEventFilter:
    actor_id: str | None = strawberry.field(default=None, description="The actor's subject, exactly.")
    actor_type: models.ActorType | None = None
    action: str | None = strawberry.field(default=None, description="The action name, exactly.")
    target_type: str | None = strawberry.field(default=None, description="The target type, e.g. `Participant`.")
    target_id: str | None = strawberry.field(
        default=None,
        description="A row id (or its global ID): events about that row, reads that listed it among others included.",
    )
    occurred_from: datetime | None = strawberry.field(default=None, description="Events at or after.")
    occurred_before: datetime | None = strawberry.field(default=None, description="Events before.")

    def to_domain(self) -> audit_log.AuditFilter:
        return audit_log.AuditFilter(
            actor_id=self.actor_id,
            actor_type=self.actor_type,
            action=self.action,
            target_type=self.target_type,
            target_id=_row_id(self.target_id),
            occurred_from=self.occurred_from,
            occurred_before=self.occurred_before,
        )


def _row_id(value: str | None) -> str | None:
    """Audit rows hold raw ids; a global ID given instead is turned into the row id it names."""
    if value is None:
        return None
    try:
        return str(from_global_id(value)[1])
    except DomainError:
        return value


@strawberry.type
class AuditQuery:
    @strawberry.field(
        description=f"Your organisation's audit log, newest first: every write, export and audited read. {SCOPE_NOTE}"
    )
    async def audit_events(
        self,
        info: Info,
        filter: AuditEventFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[AuditEvent]:
        ctx = info.context
        request = page_request(audit_log.ORDER, first, after, last, before)
        where = filter.to_domain() if filter else None

        async def fetch(session: AsyncSession, principal: Principal) -> Any:
            return await audit_log.newest_first(session, audit_log.events(principal, where), request)

        async def total(session: AsyncSession, principal: Principal) -> int:
            return await count(session, audit_log.events(principal, where))

        page = await ctx.run(fetch)
        return connection_from_page(page, AuditEvent.from_model, lambda: ctx.run(total))
