"""Acknowledging a safeguarding alert, with real tokens: a person in the group's reach, never an application.

Given a risk answer's alert in one region, when its coordinator (signed in through the explorer flow)
acknowledges it, then the alert says who, when and what was done, and the audit log has the event. An
application's client-credentials token with ``surveys:read`` is refused, and so is a coordinator of another
region (the alert answers like a missing one); neither writes anything.
"""

# ruff: noqa: F401, F811

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import AuditEvent, Role, SafeguardingAlert

from .factories import enrol, gid, make_group, make_organisation, make_participant, make_region, make_response
from .oauth_support import app, bearer, client_credentials, make_client, make_person, person_tokens, settings, web

ACKNOWLEDGE = """
mutation($input: AcknowledgeSafeguardingAlertInput!) {
  acknowledgeSafeguardingAlert(input: $input) {
    alert { id acknowledgedAt acknowledgedBy acknowledgementNote }
    errors { field message code }
  }
}
"""
VIEWER = "{ viewer { subject } }"


async def post(web: httpx.AsyncClient, token: dict[str, Any] | str, query: str, variables: Any = None) -> Any:
    response = await web.post("/graphql", json={"query": query, "variables": variables or {}}, headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


async def an_alert(db: AsyncSession) -> tuple[Any, Any, SafeguardingAlert]:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    participant = await make_participant(db, region)
    await enrol(db, participant, group)
    response = await make_response(db, participant, group)
    alert = SafeguardingAlert(
        organisation_id=organisation.id, response_id=response.id, participant_id=participant.id, group_id=group.id,
        reason="PHQ-9: risk answer on item9",
    )  # fmt: skip
    db.add(alert)
    await db.flush()
    return organisation, region, alert


async def acknowledgement(db: AsyncSession, alert: SafeguardingAlert) -> tuple[Any, ...]:
    row = (
        await db.execute(
            sa.select(
                SafeguardingAlert.acknowledged_at,
                SafeguardingAlert.acknowledged_by_user_id,
                SafeguardingAlert.acknowledgement_note,
            ).where(SafeguardingAlert.id == alert.id)
        )
    ).one()
    return tuple(row)


async def acknowledged_events(db: AsyncSession) -> int:
    statement = sa.select(sa.func.count()).where(AuditEvent.action == "safeguarding_alert.acknowledged")
    return int(await db.scalar(statement) or 0)


async def test_the_groups_coordinator_acknowledges_and_the_alert_records_who_when_and_the_note(
    db: AsyncSession, web: httpx.AsyncClient
) -> None:
    organisation, region, alert = await an_alert(db)
    coordinator = await make_person(db, organisation, Role.COORDINATOR, (region,))
    token = await person_tokens(web, coordinator.email)
    subject = (await post(web, token, VIEWER))["viewer"]["subject"]
    before = datetime.now(UTC)

    answer = await post(
        web, token, ACKNOWLEDGE, {"input": {"alertId": gid(alert), "note": " Phoned them; GP informed. "}}
    )

    result = answer["acknowledgeSafeguardingAlert"]
    assert result["errors"] == []
    assert result["alert"]["acknowledgedBy"] == subject == str(coordinator.id)
    assert result["alert"]["acknowledgementNote"] == "Phoned them; GP informed."
    assert datetime.fromisoformat(result["alert"]["acknowledgedAt"]) >= before.replace(microsecond=0)
    acknowledged_at, by, note = await acknowledgement(db, alert)
    assert (by, note) == (coordinator.id, "Phoned them; GP informed.")
    assert acknowledged_at is not None
    assert await acknowledged_events(db) == 1


async def test_an_application_token_with_surveys_read_is_refused_and_nothing_is_written(
    db: AsyncSession, web: httpx.AsyncClient
) -> None:
    organisation, _region, alert = await an_alert(db)
    client = await make_client(db, organisation, "surveys:read programme:read", grants=["client_credentials"])
    issued = await client_credentials(web, client, "surveys:read")
    assert issued.status_code == 200, issued.text

    answer = await post(
        web, issued.json()["access_token"], ACKNOWLEDGE, {"input": {"alertId": gid(alert), "note": "x"}}
    )

    result = answer["acknowledgeSafeguardingAlert"]
    assert result["alert"] is None
    assert [(e["field"], e["code"]) for e in result["errors"]] == [("input.alertId", "FORBIDDEN")]
    assert await acknowledgement(db, alert) == (None, None, None)
    assert await acknowledged_events(db) == 0


async def test_a_coordinator_of_another_region_cannot_see_the_alert_to_acknowledge_it(
    db: AsyncSession, web: httpx.AsyncClient
) -> None:
    organisation, _region, alert = await an_alert(db)
    elsewhere = await make_region(db, organisation)
    coordinator = await make_person(db, organisation, Role.COORDINATOR, (elsewhere,))
    token = await person_tokens(web, coordinator.email)

    answer = await post(web, token, ACKNOWLEDGE, {"input": {"alertId": gid(alert), "note": "Done."}})

    result = answer["acknowledgeSafeguardingAlert"]
    assert result["alert"] is None
    assert [(e["field"], e["code"]) for e in result["errors"]] == [("input.alertId", "NOT_FOUND")]
    assert await acknowledgement(db, alert) == (None, None, None)
    assert await acknowledged_events(db) == 0
