"""The data model: one module per domain concept, all tables on one metadata."""

from .audit import AuditEvent
from .auth import (
    IdempotencyRecord,
    OAuthAuthorizationCode,
    OAuthClient,
    OAuthClientRegion,
    OAuthToken,
    User,
    UserRegion,
)
from .base import Base, utcnow
from .consent import Consent
from .enums import (
    ActorType,
    AttendanceStatus,
    ConsentPurpose,
    DeliveryMode,
    EnrolmentStatus,
    FacilitatorCheckKind,
    FacilitatorRole,
    GroupStatus,
    Role,
    ScheduleFrequency,
    SessionSource,
    SessionStatus,
    Timepoint,
    Topic,
)
from .evaluation import EvaluationProject, EvaluationProjectOrganisation
from .group import Facilitator, FacilitatorAssignment, FacilitatorCheck, Group
from .organisation import Organisation, Region
from .participant import Enrolment, Participant
from .session import Attendance, GroupSession, SessionFacilitator
from .survey import SafeguardingAlert, SurveyInstrument, SurveyResponse

__all__ = [
    "ActorType",
    "Attendance",
    "AttendanceStatus",
    "AuditEvent",
    "Base",
    "Consent",
    "ConsentPurpose",
    "DeliveryMode",
    "Enrolment",
    "EnrolmentStatus",
    "EvaluationProject",
    "EvaluationProjectOrganisation",
    "Facilitator",
    "FacilitatorAssignment",
    "FacilitatorCheck",
    "FacilitatorCheckKind",
    "FacilitatorRole",
    "Group",
    "GroupSession",
    "GroupStatus",
    "IdempotencyRecord",
    "OAuthAuthorizationCode",
    "OAuthClient",
    "OAuthClientRegion",
    "OAuthToken",
    "Organisation",
    "Participant",
    "Region",
    "Role",
    "SafeguardingAlert",
    "ScheduleFrequency",
    "SessionFacilitator",
    "SessionSource",
    "SessionStatus",
    "SurveyInstrument",
    "SurveyResponse",
    "Timepoint",
    "Topic",
    "User",
    "UserRegion",
    "utcnow",
]
