"""Server-side records of people's browser sessions (``sign_in_sessions``).

The session cookie is signed, but a signature alone cannot be taken back: a copy of the cookie would stay
valid until it expired, whatever the person did. So the cookie also carries a random token, and the session
is live only while a row holds the token's hash; signing out deletes the row. Only the hash is stored, so the
table cannot be turned back into cookies.

Each row belongs to the person's organisation, under the same row-level security as every tenant table: the
cookie names the person, so a transaction binds the person's organisation before it reads or ends a session.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.models import SignInSessionRecord, utcnow
from ..domain.tenancy import bind_tenant_of
from .lifetimes import SIGN_IN_SESSION_LIFETIME


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start(session: AsyncSession, user_id: uuid.UUID, organisation_id: uuid.UUID) -> str:
    """A new session for the person of that organisation (the caller commits); their expired ones are cleared
    on the way."""
    now = utcnow()
    await session.execute(
        sa.delete(SignInSessionRecord).where(
            SignInSessionRecord.user_id == user_id, SignInSessionRecord.expires_at <= now
        )
    )
    token = secrets.token_urlsafe(32)
    session.add(
        SignInSessionRecord(
            token_hash=_hash(token),
            organisation_id=organisation_id,
            user_id=user_id,
            expires_at=now + SIGN_IN_SESSION_LIFETIME,
        )
    )
    await session.flush()
    return token


async def is_live(session: AsyncSession, token: str, user_id: uuid.UUID) -> bool:
    """Whether the token names a session of this person that was not ended and has not expired."""
    await bind_tenant_of(session, "user", str(user_id))
    found = await session.scalar(
        sa.select(SignInSessionRecord.token_hash).where(
            SignInSessionRecord.token_hash == _hash(token),
            SignInSessionRecord.user_id == user_id,
            SignInSessionRecord.expires_at > utcnow(),
        )
    )
    return found is not None


async def end(session: AsyncSession, token: str, user_id: uuid.UUID) -> None:
    """Sign-out: the person's session's row goes (the caller commits); every copy of its cookie is then refused."""
    await bind_tenant_of(session, "user", str(user_id))
    await session.execute(
        sa.delete(SignInSessionRecord).where(
            SignInSessionRecord.token_hash == _hash(token), SignInSessionRecord.user_id == user_id
        )
    )
