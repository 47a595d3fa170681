"""Safeguarding alerts reach people by email: the group's coordinators and the organisation's safeguarding lead
when an alert is raised, and the lead again when it stays unacknowledged past
``safeguarding_escalate_minutes``.

An email names no participant and carries no answer, score or reason: only that an alert needs attention in
a group's organisation, and a link to the alert in the explorer, where reading it is access-checked and
audited. It is sent through ``PROGRAMME_API_SMTP_URL`` (``smtp://[user:password@]host[:port]``, ``?starttls``
to upgrade; ``smtps://`` for TLS from the start). Emails are claimed with a lease like webhook deliveries and
retried with backoff; until ``SMTP_URL`` is set they wait.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, quote, unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..config import Settings
from ..domain.models import (
    DeliveryStatus,
    EmailKind,
    Group,
    NotificationEmail,
    Organisation,
    Role,
    SafeguardingAlert,
    User,
    UserRegion,
    utcnow,
)
from ..schema.relay import to_global_id
from .delivery import backoff

BATCH = 20
MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class Letter:
    email_id: object
    attempts: int
    recipients: list[str]
    message: EmailMessage


def alert_link(settings: Settings, alert_id: object) -> str:
    global_id = to_global_id("SafeguardingAlert", alert_id)  # type: ignore[arg-type]
    query = f'{{ node(id: "{global_id}") {{ ... on SafeguardingAlert {{ id createdAt acknowledgedAt }} }} }}'
    return f"{settings.issuer}/graphql?query={quote(query)}"


def compose(settings: Settings, kind: EmailKind, organisation: Organisation, link: str, to: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(to)
    if kind is EmailKind.RAISED:
        message["Subject"] = f"Safeguarding alert raised ({organisation.name})"
        opening = "A survey answer has raised a safeguarding alert in a group you coordinate."
    else:
        minutes = int(settings.safeguarding_escalate_minutes)
        message["Subject"] = f"Safeguarding alert not acknowledged after {minutes} minutes ({organisation.name})"
        opening = f"A safeguarding alert has not been acknowledged within {minutes} minutes."
    message.set_content(
        f"{opening}\n\nOpen it in the explorer (sign in required):\n{link}\n\n"
        "This email deliberately contains no details about the person or their answers.\n"
    )
    return message


async def _recipients(session: AsyncSession, settings: Settings, kind: EmailKind, alert: SafeguardingAlert,
                      group: Group, organisation: Organisation) -> list[str]:  # fmt: skip
    lead = settings.safeguarding_leads.get(organisation.slug)
    people: list[str] = [lead] if lead else []
    if kind is EmailKind.RAISED or not people:
        coordinators = await session.scalars(
            sa.select(User.email)
            .join(UserRegion, UserRegion.user_id == User.id)
            .where(
                User.organisation_id == alert.organisation_id,
                User.role == Role.COORDINATOR,
                User.is_active.is_(True),
                UserRegion.region_id == group.region_id,
            )
            .order_by(User.email)
        )
        people += list(coordinators)
    return sorted(set(people))


async def claim(maker: async_sessionmaker[AsyncSession], settings: Settings) -> list[Letter]:
    now = utcnow()
    async with maker() as session:
        rows = (
            await session.execute(
                sa.select(NotificationEmail, SafeguardingAlert, Group, Organisation)
                .join(SafeguardingAlert, SafeguardingAlert.id == NotificationEmail.alert_id)
                .join(Group, Group.id == SafeguardingAlert.group_id)
                .join(Organisation, Organisation.id == NotificationEmail.organisation_id)
                .where(
                    NotificationEmail.status == DeliveryStatus.PENDING,
                    NotificationEmail.next_attempt_at <= now,
                    sa.or_(NotificationEmail.leased_until.is_(None), NotificationEmail.leased_until < now),
                )
                .order_by(NotificationEmail.next_attempt_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True, of=NotificationEmail)
            )
        ).all()
        letters = []
        for email, alert, group, organisation in rows:
            to = await _recipients(session, settings, email.kind, alert, group, organisation)
            email.leased_until = now + timedelta(seconds=settings.webhook_lease_seconds)
            email.recipients = len(to)
            message = compose(settings, email.kind, organisation, alert_link(settings, alert.id), to)
            letters.append(Letter(email.id, email.attempts, to, message))
        await session.commit()
    return letters


def _send(url: str, letter: Letter) -> None:
    parts = urlsplit(url)
    options = parse_qs(parts.query)
    host, port = parts.hostname or "localhost", parts.port
    if parts.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, port or 465, timeout=30, context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(host, port or 25, timeout=30)
    with client:
        if "starttls" in options:
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(letter.message, to_addrs=letter.recipients)


async def send_due(maker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Send the due emails (none until ``SMTP_URL`` is set); answers how many were attempted."""
    if settings.smtp_url is None:
        return 0
    letters = await claim(maker, settings)
    for letter in letters:
        error: str | None = None
        if letter.recipients:
            try:
                await asyncio.to_thread(_send, settings.smtp_url, letter)
            except (OSError, smtplib.SMTPException) as failure:
                error = f"{type(failure).__name__}: {failure}"[:300]
        else:
            error = "no recipient: no coordinator of the group's region and no safeguarding lead"
        attempts = letter.attempts + 1
        values: dict[str, object] = {"attempts": attempts, "leased_until": None, "last_error": error}
        if error is None:
            values |= {"status": DeliveryStatus.DELIVERED, "sent_at": utcnow()}
        elif attempts >= MAX_ATTEMPTS:
            values |= {"status": DeliveryStatus.FAILED}
        else:
            values |= {"next_attempt_at": utcnow() + timedelta(seconds=backoff(attempts, 30.0))}
        async with maker() as session:
            await session.execute(
                sa.update(NotificationEmail).where(NotificationEmail.id == letter.email_id).values(values)
            )
            await session.commit()
    return len(letters)


async def escalate_overdue(maker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Queue an escalation email for each alert unacknowledged past the set time (once per alert)."""
    now = utcnow()
    cutoff = now - timedelta(minutes=settings.safeguarding_escalate_minutes)
    async with maker() as session:
        escalated = sa.select(NotificationEmail.alert_id).where(NotificationEmail.kind == EmailKind.ESCALATED)
        overdue = (
            await session.execute(
                sa.select(SafeguardingAlert.id, SafeguardingAlert.organisation_id)
                .where(
                    SafeguardingAlert.acknowledged_at.is_(None),
                    SafeguardingAlert.created_at <= cutoff,
                    SafeguardingAlert.id.not_in(escalated),
                )
                .limit(BATCH)
            )
        ).all()
        for alert_id, organisation_id in overdue:
            session.add(
                NotificationEmail(
                    organisation_id=organisation_id,
                    alert_id=alert_id,
                    kind=EmailKind.ESCALATED,
                    status=DeliveryStatus.PENDING,
                    next_attempt_at=now,
                )
            )
        await session.commit()
    return len(overdue)
