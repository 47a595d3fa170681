"""Creating and changing groups (name, topic, delivery mode, venue, capacity, status).

A group is created in a region the caller reaches (a coordinator's own regions: any other region is
NOT_FOUND, as on reads). Raising the capacity fills the new places from the waitlist in the same
transaction, so a waitlisted participant never waits for a place that is already free.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit, enrolments
from .access import require_scope
from .errors import DomainError, ErrorCode
from .models import DeliveryMode, Group, GroupStatus, Region, Topic
from .principal import Principal
from .regions import clean_name

SCOPE = "programme:write"
MIN_CAPACITY, MAX_CAPACITY = 1, 500
MAX_VENUE = 300


class Keep(enum.Enum):
    """Marks a field an update leaves alone (for fields where None means "clear it")."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class NewGroup:
    region_id: uuid.UUID
    name: str
    topic: Topic
    delivery_mode: DeliveryMode
    venue: str | None = None
    capacity: int = 12
    status: GroupStatus = GroupStatus.ACTIVE


@dataclass(frozen=True)
class GroupChanges:
    """Fields to change: None keeps the value, except ``venue`` where None clears it and KEEP keeps it."""

    name: str | None = None
    topic: Topic | None = None
    delivery_mode: DeliveryMode | None = None
    venue: str | Keep | None = KEEP
    capacity: int | None = None
    status: GroupStatus | None = None


def _clean_venue(venue: str | None) -> str | None:
    if venue is None or not venue.strip():
        return None
    return clean_name(venue, "venue", MAX_VENUE)


def _check_capacity(capacity: int) -> int:
    if not MIN_CAPACITY <= capacity <= MAX_CAPACITY:
        raise DomainError(ErrorCode.INVALID, f"must be {MIN_CAPACITY} to {MAX_CAPACITY}", "capacity")
    return capacity


async def create_group(session: AsyncSession, principal: Principal, data: NewGroup) -> Group:
    require_scope(principal, SCOPE)
    name, venue, capacity = clean_name(data.name), _clean_venue(data.venue), _check_capacity(data.capacity)
    region = await access.get_in_reach(session, principal, Region, data.region_id, "region", "region_id")
    group = Group(
        id=uuid.uuid4(),
        organisation_id=principal.organisation_id,
        region_id=region.id,
        name=name,
        topic=data.topic,
        delivery_mode=data.delivery_mode,
        venue=venue,
        capacity=capacity,
        status=data.status,
    )
    session.add(group)
    await session.flush()
    await audit.record(session, principal, "group.create", group, {"region_id": str(region.id)})
    return group


async def update_group(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, version: int, changes: GroupChanges
) -> Group:
    require_scope(principal, SCOPE)
    wanted: dict[str, Any] = {}
    if changes.name is not None:
        wanted["name"] = clean_name(changes.name)
    if changes.venue is not KEEP:
        wanted["venue"] = _clean_venue(changes.venue)
    if changes.capacity is not None:
        wanted["capacity"] = _check_capacity(changes.capacity)
    for field in ("topic", "delivery_mode", "status"):
        if getattr(changes, field) is not None:
            wanted[field] = getattr(changes, field)
    group = await access.get_in_reach(session, principal, Group, group_id, "group", "group_id", lock=True)
    await audit.bump_version(session, group, version, "group")
    old_capacity = group.capacity
    changed = sorted(field for field, value in wanted.items() if getattr(group, field) != value)
    for field in changed:
        setattr(group, field, wanted[field])
    await session.flush()
    await audit.record(session, principal, "group.update", group, {"changed": changed})
    if group.capacity > old_capacity:
        await enrolments.fill_from_waitlist(session, principal, group)
    return group
