"""updateOrganisationSettings through HTTP: an admin's changes, each audited; refusals write nothing; a new
timezone keeps schedules' local times for sessions generated afterwards."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import Role

from .api import GraphQLClient
from .factories import (
    audit_events,
    enrol,
    gid,
    make_group,
    make_organisation,
    make_participant,
    make_region,
    principal_for,
    weekly_schedule,
)

SETTINGS = "id name timezone suppressionThreshold defaultConsentFormVersion version"
UPDATE = f"""mutation($input: UpdateOrganisationSettingsInput!) {{ updateOrganisationSettings(input: $input) {{
  organisation {{ {SETTINGS} }} userErrors {{ field code message }} }} }}"""
READ = f"{{ organisation {{ {SETTINGS} }} }}"
SCHEDULE = """mutation($input: ScheduleSessionsInput!) { scheduleSessions(input: $input) {
  sessions { startsAt } userErrors { field code } } }"""


async def update(gql: GraphQLClient, as_: Any, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(UPDATE, {"input": fields}, as_=as_))["updateOrganisationSettings"]
    return result


async def test_an_admin_changes_each_setting_and_each_change_is_audited(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db, name="Old name", suppression_threshold=10)
    admin = principal_for(organisation)

    result = await update(
        gql, admin, version=1, name=" Peer Support North ", timezone="America/New_York", suppressionThreshold=5,
        defaultConsentFormVersion="consent-v3",
    )  # fmt: skip

    assert result["userErrors"] == []
    expected = {
        "id": gid(organisation), "name": "Peer Support North", "timezone": "America/New_York",
        "suppressionThreshold": 5, "defaultConsentFormVersion": "consent-v3", "version": 2,
    }  # fmt: skip
    assert result["organisation"] == expected
    assert (await gql.data(READ, as_=admin))["organisation"] == expected
    changes = {e.details["setting"]: (e.details["from"], e.details["to"]) for e in await audit_events(db)}
    assert changes == {
        "name": ("Old name", "Peer Support North"),
        "timezone": ("Europe/London", "America/New_York"),
        "suppression_threshold": (10, 5),
        "default_consent_form_version": (None, "consent-v3"),
    }
    assert {e.action for e in await audit_events(db)} == {"organisation.setting_changed"}


async def test_refusals_name_the_field_and_write_nothing(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    admin = principal_for(organisation)
    cases = [
        ({"suppressionThreshold": 4}, "input.suppressionThreshold", "INVALID"),
        ({"timezone": "Mars/Olympus_Mons"}, "input.timezone", "INVALID"),
        ({"timezone": "localtime"}, "input.timezone", "INVALID"),
        ({"name": "  "}, "input.name", "INVALID"),
        ({"name": "Fine", "version": 7}, "input.version", "CONFLICT"),
        ({}, None, "INVALID"),
    ]
    for fields, field, code in cases:
        result = await update(gql, admin, **({"version": 1} | fields))
        assert [(e["field"], e["code"]) for e in result["userErrors"]] == [(field, code)], fields
        assert result["organisation"] is None
    coordinator = principal_for(organisation, role=Role.COORDINATOR)
    denied = await gql.execute(UPDATE, {"input": {"version": 1, "name": "Mine"}}, as_=coordinator)
    assert denied["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    other = principal_for(await make_organisation(db, name="Other"))
    await update(gql, other, version=1, name="Other renamed")
    assert (await gql.data(READ, as_=admin))["organisation"]["name"] == "Test Organisation"
    assert [e.organisation_id for e in await audit_events(db)] == [other.organisation_id]


async def test_a_new_timezone_keeps_local_times_for_sessions_generated_afterwards(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    organisation = await make_organisation(db, timezone="Europe/London")
    region = await make_region(db, organisation)
    group = await make_group(db, region, **weekly_schedule(weekday=2, start=time(19, 0)))  # Wednesdays 19:00
    admin = principal_for(organisation)

    first = (await gql.data(SCHEDULE, {"input": {"groupId": gid(group), "from": "2027-01-04", "to": "2027-01-10"}},
                            as_=admin))["scheduleSessions"]  # fmt: skip
    assert [s["startsAt"] for s in first["sessions"]] == ["2027-01-06T19:00:00+00:00"]

    assert (await update(gql, admin, version=1, timezone="America/New_York"))["userErrors"] == []
    later = (await gql.data(SCHEDULE, {"input": {"groupId": gid(group), "from": "2027-01-11", "to": "2027-01-17"}},
                            as_=admin))["scheduleSessions"]  # fmt: skip
    # 19:00 in New York in January is midnight UTC: the meeting keeps its local time in the new zone.
    assert [s["startsAt"] for s in later["sessions"]] == ["2027-01-14T00:00:00+00:00"]
    starts = datetime.fromisoformat(later["sessions"][0]["startsAt"])
    from zoneinfo import ZoneInfo

    assert starts.astimezone(ZoneInfo("America/New_York")).time() == time(19, 0)
    again = (await gql.data(SCHEDULE, {"input": {"groupId": gid(group), "from": "2027-01-04", "to": "2027-01-10"}},
                            as_=admin))["scheduleSessions"]  # fmt: skip
    assert [s["startsAt"] for s in again["sessions"]] == ["2027-01-06T19:00:00+00:00"], "earlier sessions keep theirs"


async def test_a_consent_without_a_form_version_records_the_default(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    participant = await make_participant(db, region)
    await enrol(db, participant, group)
    admin = principal_for(organisation)
    consent = """mutation($input: RecordConsentInput!) { recordConsent(input: $input) {
      consent { formVersion } errors { field code } } }"""
    values = {"input": {"participantId": gid(participant), "purpose": "EVALUATION"}}

    missing = (await gql.data(consent, values, as_=admin))["recordConsent"]
    assert missing["errors"] == [{"field": "input.formVersion", "code": "INVALID"}]
    await update(gql, admin, version=1, defaultConsentFormVersion="evaluation-2027")
    recorded = (await gql.data(consent, values, as_=admin))["recordConsent"]
    assert recorded == {"consent": {"formVersion": "evaluation-2027"}, "errors": []}
