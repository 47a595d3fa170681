"""The GraphQL schema: types and thin resolvers over the domain. ``schema.graphql`` is its published form."""

from __future__ import annotations

from pathlib import Path

import strawberry

from .mutation import Mutation
from .query import Query
from .types.people import AttendanceRecord, Enrolment, Participant
from .types.programme import Facilitator, Group, GroupSession, Organisation, Region

schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    types=[Organisation, Region, Group, GroupSession, Facilitator, Participant, Enrolment, AttendanceRecord],
)

PUBLISHED_SCHEMA = Path(__file__).resolve().parent.parent.parent / "schema.graphql"


def print_schema_sdl() -> str:
    return schema.as_str() + "\n"
