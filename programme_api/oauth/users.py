"""People who sign in: registration from the CLI and password checks for ``/login``.

Passwords are argon2id hashes (``domain/passwords.py``). Verifying one takes tens of milliseconds of CPU by
design, so it runs in a worker thread and never stalls the event loop that serves other requests.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.directory import organisation_by_slug
from ..domain.models import Role, User
from ..domain.passwords import verify_password
from ..domain.tenancy import bind_organisation_of
from ..domain.values import text_problem
from .lookups import evaluation_project_id, regions_by_slug

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(email: str) -> str:
    """Emails are compared case-insensitively: stored and looked up in lower case."""
    return email.strip().lower()


@dataclass(frozen=True)
class UserRecord:
    """A person as the authorization server sees them (authlib calls ``get_user_id``)."""

    id: uuid.UUID
    organisation_id: uuid.UUID
    role: Role
    email: str
    evaluation_project_id: uuid.UUID | None = None

    def get_user_id(self) -> str:
        return str(self.id)


def user_record(row: User) -> UserRecord:
    return UserRecord(
        id=row.id,
        organisation_id=row.organisation_id,
        role=row.role,
        email=row.email,
        evaluation_project_id=row.evaluation_project_id,
    )


async def check_password(email: str, password: str, session: AsyncSession) -> User | None:
    """The active user with this email and password, else ``None`` (same cost whether or not the email exists).

    Learns the email's organisation from the lookup table of emails and binds the session to it (nothing, for
    an unknown email) before reading the person, by email within that organisation.
    """
    found = await _person(session, email, User)
    user: User | None = None if found is None else found[0]
    stored_hash = user.password_hash if user is not None and user.is_active else None
    matches = await anyio.to_thread.run_sync(verify_password, stored_hash, password[:MAX_PASSWORD_LENGTH])
    return user if matches else None


async def find_user_id_by_email(session: AsyncSession, email: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """``(user id, organisation id)`` for an email, used to attribute failed sign-ins (binds as above)."""
    row = await _person(session, email, User.id, User.organisation_id)
    return None if row is None else (row[0], row[1])


async def _person(session: AsyncSession, email: str, *columns: Any) -> Any:
    """The first row of ``columns`` for the person with ``email``, read under their organisation's binding."""
    address = _searchable(email)
    if address is None:
        return None
    organisation_id = await bind_organisation_of(session, "email", address)
    if organisation_id is None:
        return None
    statement = sa.select(*columns).where(User.email == address, User.organisation_id == organisation_id)
    return (await session.execute(statement)).first()


def _searchable(email: str) -> str | None:
    """The email as stored, or None when no stored email can match it (a NUL, which the database also
    cannot compare, or more than an address's 320 characters): such a sign-in simply fails."""
    address = normalise_email(email)
    return None if text_problem(address, 320) is not None else address


async def create_user(
    session: AsyncSession,
    *,
    organisation_slug: str,
    email: str,
    role: str,
    region_slugs: list[str],
    password: str,
    display_name: str | None = None,
    evaluation_project_slug: str | None = None,
) -> User:
    """Register a person for the operator (slugs instead of ids); the rules are ``admin.create_user``'s."""
    from . import admin

    organisation = await organisation_by_slug(session, organisation_slug)
    project_id: uuid.UUID | None = None
    if evaluation_project_slug is not None:
        project_id = await evaluation_project_id(session, evaluation_project_slug, organisation.id)
    regions = await regions_by_slug(session, organisation.id, region_slugs)
    return await admin.create_user(
        session,
        admin.operator(organisation.id),
        admin.NewUser(
            email=email,
            role=role,
            password=password,
            region_ids=[region.id for region in regions],
            display_name=display_name,
            evaluation_project_id=project_id,
        ),
    )
