"""What the service, the floor and the load client must agree on: the caller and the write.

The region-bound benchmark caller is a machine client of ``bench-org`` bound to one region: a region-bound
principal makes the service apply its full access filter (organisation *and* region), and the floor and
PostGraphile apply the same two conditions by hand, so all do the same work and return the same rows.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

import asyncpg

from .generate import DASHBOARD_REGION_SLUG, ORGANISATION_SLUG

REGISTER_SIZE = 15
"""People on each register the attendance scenario records (every generated group has 23 active enrolments)."""

RECORD_ATTENDANCE = """mutation RecordRegister($input: RecordAttendanceInput!) {
  recordAttendance(input: $input) { session { id version status } userErrors { field message code } }
}"""


def global_id(type_name: str, row_id: uuid.UUID | str) -> str:
    """The service's opaque Relay ID (``schema/relay.py``), built here so the client needs no import of it."""
    return base64.urlsafe_b64encode(f"{type_name}:{row_id}".encode()).decode().rstrip("=")


@dataclass(frozen=True)
class BenchCaller:
    """The ids the benchmark principal is built from, looked up by slug in the loaded database."""

    organisation_id: uuid.UUID
    region_id: uuid.UUID


async def find_caller(connection: asyncpg.Connection) -> BenchCaller:
    row = await connection.fetchrow(
        "SELECT o.id AS organisation_id, r.id AS region_id FROM organisations o"
        " JOIN regions r ON r.organisation_id = o.id WHERE o.slug = $1 AND r.slug = $2",
        ORGANISATION_SLUG,
        DASHBOARD_REGION_SLUG,
    )
    if row is None:
        raise RuntimeError(f"no {ORGANISATION_SLUG}/{DASHBOARD_REGION_SLUG}: run benchmarks/generate.py first")
    return BenchCaller(organisation_id=row["organisation_id"], region_id=row["region_id"])
