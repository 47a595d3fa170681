"""What each batched read field is, for both compiled read paths (``compiled.py`` and ``sqljson.py``).

A root or nested keyset connection, a reference to one row, or a short list under each parent: with the
access-filtered statement (``access.readable`` or the domain builder the resolvers use), the order, and the
column that ties a row to its parent. One table, so the two paths cannot drift apart on which fields they
answer or how they order them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute

from ..domain import models, programme
from ..domain.access import readable
from ..domain.pagination import Ordering
from ..domain.principal import Principal


@dataclass(frozen=True)
class ListSpec:
    """A keyset connection: the access-filtered statement, its order, and (nested) the column naming the parent."""

    build: Callable[[Principal, dict[str, Any]], sa.Select[Any]]
    ordering: Ordering
    parent_column: InstrumentedAttribute[Any] | None = None


@dataclass(frozen=True)
class ReferenceSpec:
    """A reference to one row (``group.region``): null when the caller may not read it."""

    model: type[Any]
    foreign_key: str


@dataclass(frozen=True)
class ChildrenSpec:
    """A short plain list under each parent (``group.facilitators``), in a fixed order."""

    model: type[Any]
    parent_column: InstrumentedAttribute[Any]
    order: tuple[tuple[str, bool], ...]  # (column, descending)

    def order_by(self, rows: Any) -> list[Any]:
        """The order on ``rows``' columns (the model's own, or a derived table's)."""
        return [rows.c[key].desc() if descending else rows.c[key].asc() for key, descending in self.order]


Spec = ListSpec | ReferenceSpec | ChildrenSpec
m = models
SPECS: dict[tuple[str, str], Spec] = {
    ("Query", "regions"): ListSpec(lambda p, _a: readable(p, m.Region), programme.REGION_ORDER),
    ("Query", "groups"): ListSpec(lambda p, _a: programme.groups(p), programme.GROUP_ORDER),
    ("Query", "sessions"): ListSpec(lambda p, _a: programme.sessions(p), programme.SESSION_ORDER),
    ("Query", "participants"): ListSpec(lambda p, _a: programme.participants(p), programme.PARTICIPANT_ORDER),
    ("Query", "facilitators"): ListSpec(
        lambda p, a: programme.facilitators(p, a.get("compliance"), a["withinDays"]), programme.FACILITATOR_ORDER
    ),
    ("Region", "groups"): ListSpec(lambda p, _a: programme.groups(p), programme.GROUP_ORDER, m.Group.region_id),
    ("Group", "sessions"): ListSpec(
        lambda p, _a: programme.sessions(p), programme.SESSION_ORDER, m.GroupSession.group_id
    ),
    ("Group", "region"): ReferenceSpec(m.Region, "region_id"),
    ("GroupSession", "group"): ReferenceSpec(m.Group, "group_id"),
    ("FacilitatorAssignment", "facilitator"): ReferenceSpec(m.Facilitator, "facilitator_id"),
    ("FacilitatorAssignment", "group"): ReferenceSpec(m.Group, "group_id"),
    ("Enrolment", "group"): ReferenceSpec(m.Group, "group_id"),
    ("Enrolment", "participant"): ReferenceSpec(m.Participant, "participant_id"),
    ("AttendanceRecord", "session"): ReferenceSpec(m.GroupSession, "session_id"),
    ("AttendanceRecord", "participant"): ReferenceSpec(m.Participant, "participant_id"),
    ("Group", "facilitators"): ChildrenSpec(
        m.FacilitatorAssignment,
        m.FacilitatorAssignment.group_id,
        (("role", True), ("created_at", False), ("id", False)),
    ),
    ("Facilitator", "assignments"): ChildrenSpec(
        m.FacilitatorAssignment, m.FacilitatorAssignment.facilitator_id, (("created_at", False), ("id", False))
    ),
    ("Participant", "enrolments"): ChildrenSpec(
        m.Enrolment, m.Enrolment.participant_id, (("requested_at", False), ("id", False))
    ),
    ("GroupSession", "attendance"): ChildrenSpec(
        m.Attendance, m.Attendance.session_id, (("recorded_at", False), ("id", False))
    ),
}
