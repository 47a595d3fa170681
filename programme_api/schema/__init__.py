"""The GraphQL schema: types and thin resolvers over the domain. ``schema.graphql`` is its published form."""

from __future__ import annotations

from pathlib import Path

import strawberry
import strawberry.tools

from . import audited, inputs
from .audit_log import AuditEvent, AuditQuery
from .mutation import Mutation
from .outcomes import OutcomesMutation, OutcomesQuery
from .query import Query
from .subscriptions import ChangeEvent, Subscription
from .types.outcomes import Consent, SafeguardingAlert, SurveyInstrument, SurveyResponse
from .types.people import AttendanceRecord, Enrolment, Participant
from .types.programme import Facilitator, Group, GroupSession, Organisation, Region
from .webhooks import WebhookDelivery, WebhooksMutation, WebhooksQuery, WebhookSubscription

schema = strawberry.Schema(
    query=strawberry.tools.merge_types("Query", (Query, OutcomesQuery, AuditQuery, WebhooksQuery)),
    mutation=strawberry.tools.merge_types("Mutation", (Mutation, OutcomesMutation, WebhooksMutation)),
    subscription=Subscription,
    types=[
        Organisation,
        Region,
        Group,
        GroupSession,
        Facilitator,
        Participant,
        Enrolment,
        AttendanceRecord,
        Consent,
        SurveyInstrument,
        SurveyResponse,
        SafeguardingAlert,
        AuditEvent,
        WebhookSubscription,
        WebhookDelivery,
        ChangeEvent,
    ],
)
audited.install(schema._schema)
inputs.install(schema)

PUBLISHED_SCHEMA = Path(__file__).resolve().parent.parent.parent / "schema.graphql"


def print_schema_sdl() -> str:
    return schema.as_str() + "\n"
