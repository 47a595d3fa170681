"""The closed vocabularies of the domain, stored as checked strings."""

from __future__ import annotations

import enum


class Topic(enum.StrEnum):
    DEPRESSION = "depression"
    ANXIETY = "anxiety"
    BURNOUT = "burnout"
    LONG_TERM_CONDITIONS = "long_term_conditions"
    BEREAVEMENT = "bereavement"
    LONELINESS = "loneliness"


class DeliveryMode(enum.StrEnum):
    IN_PERSON = "in_person"
    ONLINE = "online"
    HYBRID = "hybrid"


class GroupStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    CLOSED = "closed"


class ScheduleFrequency(enum.StrEnum):
    WEEKLY = "weekly"
    FORTNIGHTLY = "fortnightly"
    MONTHLY = "monthly"


class FacilitatorRole(enum.StrEnum):
    LEAD = "lead"
    CO_FACILITATOR = "co_facilitator"


class EnrolmentStatus(enum.StrEnum):
    WAITLISTED = "waitlisted"
    ACTIVE = "active"
    LEFT = "left"


class SessionStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    HELD = "held"
    CANCELLED = "cancelled"


class SessionSource(enum.StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"


class AttendanceStatus(enum.StrEnum):
    PRESENT = "present"
    EXCUSED = "excused"
    UNEXCUSED = "unexcused"


class ConsentPurpose(enum.StrEnum):
    SERVICE_DELIVERY = "service_delivery"
    EVALUATION = "evaluation"
    RESEARCH_SHARING = "research_sharing"
    CONTACT = "contact"


class InvitationStatus(enum.StrEnum):
    """Where an organisation stands with an evaluation project it was invited to."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    WITHDRAWN = "withdrawn"
    LEFT = "left"


class Timepoint(enum.StrEnum):
    BASELINE = "baseline"
    FOLLOW_UP_1 = "follow_up_1"
    FOLLOW_UP_2 = "follow_up_2"
    FOLLOW_UP_3 = "follow_up_3"
    EXIT = "exit"


class Role(enum.StrEnum):
    ORG_ADMIN = "org_admin"
    COORDINATOR = "coordinator"
    FACILITATOR = "facilitator"
    EVALUATOR = "evaluator"


class ActorType(enum.StrEnum):
    USER = "user"
    CLIENT = "client"
    SYSTEM = "system"


class FacilitatorCheckKind(enum.StrEnum):
    """What a facilitator's compliance record is of."""

    TRAINING = "training"
    BACKGROUND_CHECK = "background_check"
