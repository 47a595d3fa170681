"""The root Query: thin resolvers that hand access-filtered statements to the list helpers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any

import strawberry

from ..domain import evaluation_invitations, evaluation_projects, models, programme
from ..domain.access import readable
from ..domain.errors import DomainError, ErrorCode
from ..domain.pagination import Ordering
from ..domain.principal import Principal
from ..oauth import admin as oauth_admin
from .audit_log import AuditEvent
from .context import Info
from .lists import load_node, top_level_connection
from .relay import Connection, Node, expect_global_id, from_global_id
from .types import admin as admin_types
from .types import outcomes as outcome_types
from .types.evaluation_projects import EvaluationProject as EvaluationProjectType
from .types.evaluation_projects import ReceivedEvaluationInvitation
from .types.people import AttendanceRecord, Enrolment, Participant
from .types.programme import Facilitator, Group, GroupSession, Organisation, Region

MAX_NODES = 100

# Global ID type name -> (model, GraphQL type): what node(id) can fetch.
NODE_TYPES: dict[str, tuple[type[Any], Any]] = {
    "Organisation": (models.Organisation, Organisation),
    "Region": (models.Region, Region),
    "Group": (models.Group, Group),
    "GroupSession": (models.GroupSession, GroupSession),
    "Facilitator": (models.Facilitator, Facilitator),
    "Participant": (models.Participant, Participant),
    "Enrolment": (models.Enrolment, Enrolment),
    "AttendanceRecord": (models.Attendance, AttendanceRecord),
    "Consent": (models.Consent, outcome_types.Consent),
    "SurveyInstrument": (models.SurveyInstrument, outcome_types.SurveyInstrument),
    "SurveyResponse": (models.SurveyResponse, outcome_types.SurveyResponse),
    "SafeguardingAlert": (models.SafeguardingAlert, outcome_types.SafeguardingAlert),
    "AuditEvent": (models.AuditEvent, AuditEvent),
    "User": (models.User, admin_types.UserAccount),
    "OAuthClient": (models.OAuthClient, admin_types.OAuthClientAccount),
}


def ids_of(global_ids: list[strawberry.ID] | None, type_name: str, field: str) -> tuple[uuid.UUID, ...] | None:
    if global_ids is None:
        return None
    return tuple(expect_global_id(value, type_name, field) for value in global_ids)


@strawberry.input(description="Narrow a list of groups; all given conditions must hold.")
class GroupFilter:
    region_ids: list[strawberry.ID] | None = None
    statuses: list[models.GroupStatus] | None = None
    topics: list[models.Topic] | None = None
    delivery_modes: list[models.DeliveryMode] | None = None
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive part of the group's name (at most 200 characters)."
    )

    def to_domain(self) -> programme.GroupFilter:
        return programme.GroupFilter(
            region_ids=ids_of(self.region_ids, "Region", "filter.regionIds"),
            statuses=tuple(self.statuses) if self.statuses else None,
            topics=tuple(self.topics) if self.topics else None,
            delivery_modes=tuple(self.delivery_modes) if self.delivery_modes else None,
            search=self.search,
        )


@strawberry.input(description="Narrow a list of sessions; all given conditions must hold.")
class SessionFilter:
    starts_from: datetime | None = strawberry.field(default=None, description="Sessions starting at or after.")
    starts_before: datetime | None = strawberry.field(default=None, description="Sessions starting before.")
    statuses: list[models.SessionStatus] | None = None
    group_ids: list[strawberry.ID] | None = None

    def to_domain(self) -> programme.SessionFilter:
        return programme.SessionFilter(
            starts_from=self.starts_from,
            starts_before=self.starts_before,
            statuses=tuple(self.statuses) if self.statuses else None,
            group_ids=ids_of(self.group_ids, "Group", "filter.groupIds"),
        )


@strawberry.input(description="Narrow a list of participants; all given conditions must hold.")
class ParticipantFilter:
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive part of the reference or the preferred name."
    )
    group_id: strawberry.ID | None = strawberry.field(default=None, description="Enrolled in this group.")
    enrolment_status: models.EnrolmentStatus | None = strawberry.field(
        default=None, description="Has an enrolment in this status (in `groupId`, when given)."
    )
    consecutive_absences_at_least: int | None = strawberry.field(
        default=None, description="Absent (excused or not) at least this many held sessions since last present."
    )

    def to_domain(self) -> programme.ParticipantFilter:
        group_id = None if self.group_id is None else expect_global_id(self.group_id, "Group", "filter.groupId")
        return programme.ParticipantFilter(
            search=self.search,
            group_id=group_id,
            enrolment_status=self.enrolment_status,
            consecutive_absences_at_least=self.consecutive_absences_at_least,
        )


@strawberry.type(description="Who is asking, as the service sees the bearer token.")
class Viewer:
    principal: strawberry.Private[Principal]
    subject: str
    role: models.Role | None
    scopes: list[str]

    @strawberry.field(description="The regions the token reaches (all of the organisation's when not bound).")
    async def regions(self, info: Info) -> list[Region]:
        connection = await top_level_connection(
            info, programme_regions, programme.REGION_ORDER, Region.from_model, 100, None, None, None
        )
        return [edge.node for edge in connection.edges]

    @strawberry.field
    async def organisation(self, info: Info) -> Organisation | None:
        return await load_node(info, models.Organisation, self.principal.organisation_id, Organisation.from_model)


def programme_regions(principal: Principal) -> Any:
    return readable(principal, models.Region)


@strawberry.type
class Query:
    @strawberry.field(description="The caller: subject, role, scopes, organisation and regions.")
    def viewer(self, info: Info) -> Viewer:
        principal = info.context.require_principal()
        return Viewer(
            principal=principal, subject=principal.subject, role=principal.role, scopes=sorted(principal.scopes)
        )

    @strawberry.field(description="The caller's organisation. Requires `programme:read`.")
    async def organisation(self, info: Info) -> Organisation | None:
        principal = info.context.require_principal()
        return await load_node(info, models.Organisation, principal.organisation_id, Organisation.from_model)

    @strawberry.field(description="Regions the caller may read, by name. Requires `programme:read`.")
    async def regions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Region]:
        return await top_level_connection(
            info, programme_regions, programme.REGION_ORDER, Region.from_model, first, after, last, before
        )

    @strawberry.field(description="Groups the caller may read, by name. Requires `programme:read`.")
    async def groups(
        self,
        info: Info,
        filter: GroupFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Group]:
        where = filter.to_domain() if filter else None
        return await top_level_connection(
            info, lambda p: programme.groups(p, where), programme.GROUP_ORDER, Group.from_model,
            first, after, last, before,
        )  # fmt: skip

    @strawberry.field(description="Sessions the caller may read, earliest first. Requires `programme:read`.")
    async def sessions(
        self,
        info: Info,
        filter: SessionFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[GroupSession]:
        where = filter.to_domain() if filter else None
        return await top_level_connection(
            info, lambda p: programme.sessions(p, where), programme.SESSION_ORDER, GroupSession.from_model,
            first, after, last, before,
        )  # fmt: skip

    @strawberry.field(
        description="Facilitators of the organisation, by name, optionally in one compliance state "
        "(`withinDays` sets the expiry warning window, default 30). Requires `programme:read`."
    )
    async def facilitators(
        self,
        info: Info,
        compliance: programme.ComplianceState | None = None,
        within_days: Annotated[
            int,
            strawberry.argument(
                description=f"Days ahead a background check's expiry counts as `CHECK_EXPIRING` "
                f"(0 to {programme.MAX_EXPIRY_WINDOW_DAYS})."
            ),
        ] = programme.DEFAULT_EXPIRY_WINDOW_DAYS,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Facilitator]:
        return await top_level_connection(
            info, lambda p: programme.facilitators(p, compliance, within_days), programme.FACILITATOR_ORDER,
            Facilitator.from_model, first, after, last, before,
        )  # fmt: skip

    @strawberry.field(description="Participants in the caller's reach, by reference. Requires `participants:read`.")
    async def participants(
        self,
        info: Info,
        filter: ParticipantFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Participant]:
        where = filter.to_domain() if filter else None
        return await top_level_connection(
            info, lambda p: programme.participants(p, where), programme.PARTICIPANT_ORDER, Participant.from_model,
            first, after, last, before,
        )  # fmt: skip

    @strawberry.field(description="People of the organisation, by email. Requires `admin`.")
    async def users(
        self,
        info: Info,
        include_disabled: bool = True,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[admin_types.UserAccount]:
        return await top_level_connection(
            info, lambda p: oauth_admin.users(p, include_disabled), Ordering(admin_types.USER_ORDER),
            admin_types.UserAccount.from_model, first, after, last, before,
        )  # fmt: skip

    @strawberry.field(description="OAuth clients of the organisation, by name. Requires `admin`.")
    async def oauth_clients(
        self,
        info: Info,
        include_disabled: bool = True,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[admin_types.OAuthClientAccount]:
        return await top_level_connection(
            info, lambda p: oauth_admin.clients(p, include_disabled), Ordering(admin_types.CLIENT_ORDER),
            admin_types.OAuthClientAccount.from_model, first, after, last, before,
        )  # fmt: skip

    @strawberry.field(description="Evaluation projects your organisation owns, by slug. Requires `admin`.")
    async def evaluation_projects(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[EvaluationProjectType]:
        return await top_level_connection(
            info, evaluation_projects.owned, Ordering((models.EvaluationProject.slug, models.EvaluationProject.id)),
            EvaluationProjectType.from_model, first, after, last, before,
        )  # fmt: skip

    @strawberry.field(
        description="Invitations your organisation received to other organisations' evaluation projects, newest "
        "first (all statuses unless narrowed). Requires `admin`."
    )
    async def evaluation_project_invitations(
        self, info: Info, statuses: list[models.InvitationStatus] | None = None
    ) -> list[ReceivedEvaluationInvitation]:
        found = await info.context.run(evaluation_invitations.invitations_received, statuses)
        return [ReceivedEvaluationInvitation.received(row, project) for row, project in found]

    @strawberry.field(description="Any object by its global ID; null when it does not exist or is not yours.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await resolve_node(info, id)

    @strawberry.field(description=f"Several objects by global ID (at most {MAX_NODES}), in the order asked.")
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise DomainError(ErrorCode.INVALID, f"at most {MAX_NODES} ids per call", "ids")
        return list(await asyncio.gather(*(resolve_node(info, value) for value in ids)))


async def resolve_node(info: Info, global_id: str) -> Node | None:
    """Unknown, malformed and other tenants' IDs all answer null: nothing leaks about what exists.

    Reads of health data and personal fields are recorded by the fields themselves (``schema/audited.py``).
    """
    info.context.require_principal()
    try:
        type_name, row_id = from_global_id(global_id)
    except DomainError:
        return None
    if type_name not in NODE_TYPES:
        return None
    model, graphql_type = NODE_TYPES[type_name]
    node: Node | None = await load_node(info, model, row_id, graphql_type.from_model)
    return node
