"""The lookup table of sign-in emails (``user_emails``) moves with ``users`` in the same transaction.

``users.email`` is unique per organisation only; the lookup table holds each email once across the service and
tells sign-in whose person it is. Whatever writes a person through the ORM (the admin API, the CLI, the test
factories) writes its lookup row in the same flush: these tests change people through the service's functions
or directly and read back what sign-in reads (``tenant_of`` on the email, ``check_password``).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.errors import DomainError
from programme_api.domain.models import Role, User, UserEmail
from programme_api.domain.tenancy import tenant_of
from programme_api.oauth import admin
from programme_api.oauth.users import check_password

from .factories import make_organisation, unique
from .oauth_support import PASSWORD, make_person


async def lookup_rows(db: AsyncSession, *emails: str) -> set[tuple[str, object, object]]:
    statement = sa.select(UserEmail.email, UserEmail.user_id, UserEmail.organisation_id)
    return {tuple(row) for row in await db.execute(statement.where(UserEmail.email.in_(emails)))}  # type: ignore[misc]


async def test_a_new_persons_email_is_taken_in_every_organisation(db: AsyncSession) -> None:
    """The database refuses a second person with the email in another organisation (where ``users`` alone
    would now accept it), so concurrent registrations cannot both pass the service's own check."""
    ours, theirs = await make_organisation(db), await make_organisation(db)
    person = await make_person(db, ours, Role.COORDINATOR)
    assert await lookup_rows(db, person.email) == {(person.email, person.id, ours.id)}
    assert await tenant_of(db, "email", person.email) == ours.id
    with pytest.raises(IntegrityError, match=r"pk_user_emails|UNIQUE constraint failed: user_emails\.email"):
        async with db.begin_nested():
            await make_person(db, theirs, Role.COORDINATOR, email=person.email)
    assert await db.scalar(sa.select(sa.func.count()).where(User.email == person.email)) == 1


async def test_changing_an_email_moves_the_lookup_row(db: AsyncSession) -> None:
    ours, theirs = await make_organisation(db), await make_organisation(db)
    person = await make_person(db, ours, Role.ORG_ADMIN)
    user = await db.get(User, person.id)
    assert user is not None
    moved, taken = f"{unique('moved')}@example.org", (await make_person(db, theirs, Role.ORG_ADMIN)).email
    with pytest.raises(DomainError, match="already exists"):
        await admin.set_user_email(db, admin.operator(ours.id), user, taken)
    await admin.set_user_email(db, admin.operator(ours.id), user, moved.upper())

    assert await lookup_rows(db, person.email, moved) == {(moved, person.id, ours.id)}
    assert await check_password(moved, PASSWORD, db) is user
    assert await check_password(person.email, PASSWORD, db) is None
    # The old email is free again, for a person of any organisation.
    successor = await make_person(db, theirs, Role.ORG_ADMIN, email=person.email)
    assert await tenant_of(db, "email", person.email) == theirs.id
    assert await lookup_rows(db, person.email) == {(person.email, successor.id, theirs.id)}


async def test_an_unchanged_email_keeps_its_row_and_a_deleted_person_frees_it(db: AsyncSession) -> None:
    ours = await make_organisation(db)
    person = await make_person(db, ours, Role.FACILITATOR)
    user = await db.get(User, person.id)
    assert user is not None
    user.display_name = "Renamed"
    await db.flush()
    assert await lookup_rows(db, person.email) == {(person.email, person.id, ours.id)}

    await db.delete(user)
    await db.flush()
    assert await lookup_rows(db, person.email) == set()
    assert await tenant_of(db, "email", person.email) is None
