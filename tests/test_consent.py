"""Consent through HTTP: record, withdraw, history on participants, and who may do it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import AuditEvent, Consent, Role
from programme_api.schema.relay import to_global_id

from .api import GraphQLClient
from .factories import make_organisation, make_participant, make_region, principal_for

RECORD = """mutation R($p: ID!, $purpose: ConsentPurpose!) {
  recordConsent(participantId: $p, purpose: $purpose, formVersion: "evaluation-v2") {
    consent { purpose formVersion inForce } userErrors { field message code } } }"""
WITHDRAW = """mutation W($p: ID!) { withdrawConsent(participantId: $p, purpose: EVALUATION) {
  withdrawn { purpose withdrawnAt inForce } userErrors { field code } } }"""
HISTORY = (
    """query { participants { edges { node { reference consents { purpose formVersion inForce withdrawnAt } } } } }"""
)


async def consents(db: AsyncSession) -> list[Consent]:
    return list((await db.execute(sa.select(Consent).order_by(Consent.created_at))).scalars())


async def test_record_then_withdraw_keeps_history(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    participant = await make_participant(db, await make_region(db, organisation))
    admin = principal_for(organisation)
    pid = to_global_id("Participant", participant.id)

    recorded = await gql.data(RECORD, {"p": pid, "purpose": "EVALUATION"}, as_=admin)
    assert recorded["recordConsent"] == {
        "consent": {"purpose": "EVALUATION", "formVersion": "evaluation-v2", "inForce": True}, "userErrors": [],
    }  # fmt: skip
    withdrawn = await gql.data(WITHDRAW, {"p": pid}, as_=admin)
    assert withdrawn["withdrawConsent"]["withdrawn"][0]["inForce"] is False
    again = await gql.data(RECORD, {"p": pid, "purpose": "EVALUATION"}, as_=admin)
    assert again["recordConsent"]["consent"]["inForce"] is True

    history = await gql.data(HISTORY, as_=admin)
    rows = history["participants"]["edges"][0]["node"]["consents"]
    assert [row["inForce"] for row in rows] == [False, True]
    actions = (await db.execute(sa.select(AuditEvent.action).order_by(AuditEvent.occurred_at))).scalars().all()
    assert actions.count("consent.recorded") == 2
    assert actions.count("consent.withdrawn") == 1


async def test_withdrawing_without_consent_is_a_user_error_and_writes_nothing(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    organisation = await make_organisation(db)
    participant = await make_participant(db, await make_region(db, organisation))
    data = await gql.data(WITHDRAW, {"p": to_global_id("Participant", participant.id)}, as_=principal_for(organisation))
    assert data["withdrawConsent"] == {"withdrawn": [], "userErrors": [{"field": "purpose", "code": "INVALID"}]}
    assert await consents(db) == []


async def test_denials_write_nothing(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    other = await make_organisation(db)
    participant = await make_participant(db, await make_region(db, organisation))
    pid = to_global_id("Participant", participant.id)

    no_scope = await gql.execute(RECORD, {"p": pid, "purpose": "EVALUATION"},
                                 as_=principal_for(organisation, scopes={"participants:read"}))  # fmt: skip
    assert no_scope["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    foreign = await gql.data(RECORD, {"p": pid, "purpose": "EVALUATION"}, as_=principal_for(other))
    assert foreign["recordConsent"]["userErrors"][0]["code"] == "NOT_FOUND"
    elsewhere = await make_region(db, organisation)
    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[elsewhere])
    out_of_region = await gql.data(RECORD, {"p": pid, "purpose": "EVALUATION"}, as_=coordinator)
    assert out_of_region["recordConsent"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert await consents(db) == []


async def test_history_needs_participants_read(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    await make_participant(db, await make_region(db, organisation))
    body = await gql.execute(HISTORY, as_=principal_for(organisation, scopes={"programme:read"}))
    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
