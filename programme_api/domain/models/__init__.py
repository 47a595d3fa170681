"""The data model: one module per domain concept, all tables on one metadata."""

from .audit import AuditEvent
from .auth import (
    IdempotencyRecord,
    OAuthAuthorizationCode,
    OAuthClient,
    OAuthClientRegion,
    OAuthToken,
    SignInSessionRecord,
    User,
    UserEmail,
    UserRegion,
)
from .base import Base, utcnow
from .consent import Consent
from .documents import TrustedDocument
from .enums import (
    ActorType,
    AttendanceStatus,
    ConsentPurpose,
    DeliveryMode,
    EnrolmentStatus,
    FacilitatorCheckKind,
    FacilitatorRole,
    GroupStatus,
    InvitationStatus,
    Role,
    ScheduleFrequency,
    SessionSource,
    SessionStatus,
    Timepoint,
    Topic,
)
from .evaluation import EvaluationProject, EvaluationProjectInvitation, EvaluationProjectOrganisation
from .group import Facilitator, FacilitatorAssignment, FacilitatorCheck, Group
from .notification import (
    DeliveryStatus,
    EmailKind,
    NotificationEmail,
    OutboxEvent,
    WebhookDelivery,
    WebhookStatus,
    WebhookSubscription,
)
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
    "DeliveryStatus",
    "EmailKind",
    "Enrolment",
    "EnrolmentStatus",
    "EvaluationProject",
    "EvaluationProjectInvitation",
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
    "InvitationStatus",
    "NotificationEmail",
    "OAuthAuthorizationCode",
    "OAuthClient",
    "OAuthClientRegion",
    "OAuthToken",
    "Organisation",
    "OutboxEvent",
    "Participant",
    "Region",
    "Role",
    "SafeguardingAlert",
    "ScheduleFrequency",
    "SessionFacilitator",
    "SessionSource",
    "SessionStatus",
    "SignInSessionRecord",
    "SurveyInstrument",
    "SurveyResponse",
    "Timepoint",
    "Topic",
    "TrustedDocument",
    "User",
    "UserEmail",
    "UserRegion",
    "WebhookDelivery",
    "WebhookStatus",
    "WebhookSubscription",
    "utcnow",
]
