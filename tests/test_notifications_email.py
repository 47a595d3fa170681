"""Safeguarding alerts reach people by email through a real SMTP server (aiosmtpd, in-process): the group's
coordinators and the organisation's safeguarding lead, with no health data, and escalation to the lead."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.config import Settings
from programme_api.domain.models import DeliveryStatus, EmailKind, NotificationEmail, Role, User, UserRegion
from programme_api.notifications import dispatch
from programme_api.notifications import email as notification_email

from .api import GraphQLClient
from .conftest import MigratedDatabase
from .factories import (
    add,
    enrol,
    make_group,
    make_organisation,
    make_participant,
    make_region,
    principal_for,
    shipped_instrument_ids,
    unique,
)
from .notification_support import outbox_events
from .test_surveys import SUBMIT, phq9, submission


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(
            (list(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=email.policy.default))
        )
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, str]]:
    inbox = Inbox()
    with socket.socket() as probe:  # a free port (aiosmtpd's controller checks the port it was given)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


async def scene(db: AsyncSession) -> dict[str, Any]:
    organisation = await make_organisation(db, name="Hope Together")
    region, elsewhere = await make_region(db, organisation), await make_region(db, organisation)
    group = await make_group(db, region)
    participant = await make_participant(db, region, preferred_name="Robin Example", reference="REF-ROBIN-1")
    await enrol(db, participant, group)
    people = {}
    for name, where in (("coordinator", region), ("other", elsewhere)):
        user = await add(db, User(organisation_id=organisation.id, email=f"{unique(name)}@example.org",
                                  display_name=name, password_hash="-", role=Role.COORDINATOR))  # fmt: skip
        await add(db, UserRegion(organisation_id=organisation.id, user_id=user.id, region_id=where.id))
        people[name] = user.email
    return {"organisation": organisation, "region": region, "group": group, "participant": participant,
            "instruments": await shipped_instrument_ids(db), **people}  # fmt: skip


def email_settings(migrated_database: MigratedDatabase, url: str, s: dict[str, Any], **overrides: Any) -> Settings:
    values = {"smtp_url": url, "safeguarding_leads": {s["organisation"].slug: "lead@example.org"}}
    return migrated_database.settings.model_copy(update=values | overrides)


async def emails(db: AsyncSession) -> list[NotificationEmail]:
    statement = sa.select(NotificationEmail).order_by(NotificationEmail.created_at)
    return list((await db.scalars(statement.execution_options(populate_existing=True))).all())


async def test_a_raised_alert_emails_the_coordinators_and_the_lead_without_health_data(
    gql: GraphQLClient, db: AsyncSession, session_maker: Any, migrated_database: MigratedDatabase,
    smtp: tuple[Inbox, str],
) -> None:  # fmt: skip
    inbox, url = smtp
    s = await scene(db)
    data = await gql.data(SUBMIT, submission(s, "phq9", phq9(2, item9=2)), as_=principal_for(s["organisation"]))
    alert_id = data["submitSurveyResponse"]["safeguardingAlert"]["id"]
    assert [e.event_type for e in await outbox_events(db)] == ["safeguarding_alert.raised"]
    settings = email_settings(migrated_database, url, s)
    await dispatch.dispatch_batch(session_maker, settings)
    assert await notification_email.send_due(session_maker, settings) == 1
    [(recipients, message)] = inbox.messages
    assert sorted(recipients) == sorted([s["coordinator"], "lead@example.org"])  # not the other region's
    text = message.get_content()  # type: ignore[attr-defined]
    assert alert_id in text  # the link names the alert by its global ID
    for secret in ("Robin", "REF-ROBIN-1", "item9", "PHQ", "phq9", "risk"):
        assert secret not in text
        assert secret not in str(message["Subject"])
    [row] = await emails(db)
    assert (row.kind, row.status, row.recipients) == (EmailKind.RAISED, DeliveryStatus.DELIVERED, 2)


async def test_an_alert_left_unacknowledged_is_escalated_to_the_lead_once(
    gql: GraphQLClient, db: AsyncSession, session_maker: Any, migrated_database: MigratedDatabase,
    smtp: tuple[Inbox, str],
) -> None:  # fmt: skip
    inbox, url = smtp
    s = await scene(db)
    await gql.data(SUBMIT, submission(s, "phq9", phq9(1, item9=1)), as_=principal_for(s["organisation"]))
    patient = email_settings(migrated_database, url, s)
    await dispatch.dispatch_batch(session_maker, patient)
    assert await notification_email.escalate_overdue(session_maker, patient) == 0  # not overdue yet
    overdue = email_settings(migrated_database, url, s, safeguarding_escalate_minutes=1e-6)
    assert await notification_email.escalate_overdue(session_maker, overdue) == 1
    assert await notification_email.escalate_overdue(session_maker, overdue) == 0  # once per alert
    await notification_email.send_due(session_maker, overdue)
    kinds = {row.kind: row for row in await emails(db)}
    assert kinds[EmailKind.ESCALATED].status is DeliveryStatus.DELIVERED
    escalations = [(to, m) for to, m in inbox.messages if "not acknowledged" in str(m["Subject"])]
    assert [to for to, _m in escalations] == [["lead@example.org"]]


async def test_an_acknowledged_alert_is_not_escalated(
    gql: GraphQLClient, db: AsyncSession, session_maker: Any, migrated_database: MigratedDatabase,
    smtp: tuple[Inbox, str],
) -> None:  # fmt: skip
    from .test_surveys import ACK

    _inbox, url = smtp
    s = await scene(db)
    admin = principal_for(s["organisation"])
    data = await gql.data(SUBMIT, submission(s, "phq9", phq9(1, item9=1)), as_=admin)
    await gql.data(ACK, {"id": data["submitSurveyResponse"]["safeguardingAlert"]["id"]}, as_=admin)
    assert [e.event_type for e in await outbox_events(db)] == [
        "safeguarding_alert.raised",
        "safeguarding_alert.acknowledged",
    ]
    overdue = email_settings(migrated_database, url, s, safeguarding_escalate_minutes=1e-6)
    assert await notification_email.escalate_overdue(session_maker, overdue) == 0
