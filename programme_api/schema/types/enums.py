"""GraphQL enums: the domain's own vocabularies, registered with strawberry and used by their domain names.

``strawberry.enum`` decorates the class in place, so types annotate fields with ``models.Topic`` etc.; importing
this module is what makes them GraphQL enums with descriptions.
"""

from __future__ import annotations

import strawberry

from ...domain import models
from ...domain.programme import ComplianceState as DomainComplianceState

Topic = strawberry.enum(models.Topic, description="What a group is for.")
DeliveryMode = strawberry.enum(models.DeliveryMode, description="How a group meets.")
GroupStatus = strawberry.enum(models.GroupStatus, description="Whether a group is running.")
ScheduleFrequency = strawberry.enum(models.ScheduleFrequency, description="How often a group meets.")
FacilitatorRole = strawberry.enum(models.FacilitatorRole, description="A facilitator's part in a group.")
SessionStatus = strawberry.enum(models.SessionStatus, description="What became of a session.")
EnrolmentStatus = strawberry.enum(models.EnrolmentStatus, description="A participant's place in a group.")
AttendanceStatus = strawberry.enum(models.AttendanceStatus, description="Whether a participant came.")
Role = strawberry.enum(models.Role, description="What a person does in the organisation.")
ComplianceState = strawberry.enum(
    DomainComplianceState, description="Whether a facilitator may take new groups (training and background check)."
)
