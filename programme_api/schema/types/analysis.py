"""GraphQL types of the derived outcome figures: change per response, intervals and effect sizes."""

from __future__ import annotations

import strawberry

from ...domain import analysis

ChangeClassification = strawberry.enum(
    analysis.ChangeClass,
    name="ChangeClassification",
    description="A follow-up's change from baseline against the instrument's reliable change threshold.",
)
RecoveryStatus = strawberry.enum(
    analysis.Recovery,
    name="RecoveryStatus",
    description="NHS Talking Therapies recovery (PHQ-9, GAD-7): a case at baseline that is not a case later.",
)


@strawberry.type(description="An estimate with its 95 % confidence interval.")
class ConfidenceInterval:
    estimate: float
    lower: float
    upper: float

    @classmethod
    def from_domain(cls, interval: analysis.Interval | None) -> ConfidenceInterval | None:
        if interval is None:
            return None
        return cls(estimate=interval.estimate, lower=interval.lower, upper=interval.upper)


@strawberry.type(description="A response's change from the same person's first baseline on the instrument.")
class ResponseChange:
    baseline_score: float
    change: float = strawberry.field(description="`score - baselineScore`.")
    reliable_change_threshold: float = strawberry.field(
        description="Score points a change must reach, in either direction, to be reliable."
    )
    reliable_change_source: str = strawberry.field(description="Where the threshold comes from.")
    classification: analysis.ChangeClass
    recovery: analysis.Recovery | None = strawberry.field(
        description="PHQ-9 and GAD-7 only (caseness: PHQ-9 10 or more, GAD-7 8 or more); null for others."
    )

    @classmethod
    def from_domain(cls, change: analysis.ResponseChange | None) -> ResponseChange | None:
        if change is None:
            return None
        return cls(
            baseline_score=change.baseline_score,
            change=change.change,
            reliable_change_threshold=change.reliable_change_threshold,
            reliable_change_source=change.reliable_change_source,
            classification=change.classification,
            recovery=change.recovery,
        )
