"""Administering people and OAuth clients: one implementation for an organisation's admin (GraphQL) and the
operator (CLI).

Every function takes the acting ``Principal``. GraphQL passes the signed-in admin; the CLI passes
``operator(organisation_id)``, a system principal holding every scope of that one organisation. Both find
their targets through the access module (the ``admin`` rules registered below), so a foreign client id or
email is NOT_FOUND alike, and both get the same rules:

* **No one grants more than they hold.** The scopes given to a client, and the scopes of the role given to
  a person, must be scopes the actor holds; regions given must be regions the actor reaches.
  ``evaluation:read`` is the one exception: no admin holds it (admins do not read pseudonymised data), so an
  admin may grant it only bound to an evaluation project their organisation takes part in, which is exactly
  what the evaluator then reads.
* **Changes apply to live tokens at once.** Each change is audited and announced (``invalidation.py``) in
  the same transaction, so every worker drops its cached view of the tokens concerned when it commits: a
  disabled client's or person's tokens stop working, narrowed scopes or regions apply to tokens already
  issued. A client's scopes only ever cut what its tokens carry (the token's own scopes are intersected with
  the client's at every request), so widening them later gives old tokens nothing new.
* **Versions guard updates.** Every change of a person or client bumps its ``version``; an admin sends the
  version they read and a stale one is refused with ``CONFLICT``, as for every other changeable row. The
  operator at the CLI passes none (``version=None``): its verbs act on the current row, the operator's
  override, and still bump the version so that an admin's stale copy is refused afterwards.
* **Secrets are shown once.** A new or rotated client secret and a reset password are returned to the caller
  of that one call and stored only hashed.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain import access
from ..domain.audit import bump_version
from ..domain.errors import DomainError, ErrorCode, NotFound
from ..domain.models import (
    ActorType,
    EvaluationProject,
    EvaluationProjectOrganisation,
    OAuthClient,
    OAuthClientRegion,
    Region,
    Role,
    User,
    UserRegion,
    utcnow,
)
from ..domain.passwords import hash_password, hash_secret, new_secret
from ..domain.principal import ALL_SCOPES, ROLE_SCOPES, Principal
from ..domain.tenancy import KeyKind, tenant_of
from ..request_context import current_request_id
from . import audit
from .clients import GRANT_CHOICES, format_scope, is_explorer_anchor, parse_scope
from .invalidation import announce_async, client_tag, user_tag
from .lookups import regions_by_slug
from .users import EMAIL, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, normalise_email

SCOPE = "admin"
CLIENT_CHANGED = "oauth.client_changed"
CLIENT_SECRET_ROTATED = "oauth.client_secret_rotated"  # noqa: S105 (an action name, not a secret)
USER_CHANGED = "auth.user_changed"
USER_PASSWORD_RESET = "auth.user_password_reset"  # noqa: S105
_EXPLORER_ANCHORS = "programme-explorer.%"
USER_ORDER = (User.email, User.id)
CLIENT_ORDER = (OAuthClient.name, OAuthClient.id)


def _whole_organisation(principal: Principal) -> sa.ColumnElement[bool]:
    """People and clients belong to the organisation, not to a region: only an unbound admin manages them."""
    return sa.true() if principal.region_ids is None else sa.false()


access.register_rule(User, SCOPE, lambda p: sa.and_(User.organisation_id == p.organisation_id, _whole_organisation(p)))
access.register_rule(
    OAuthClient,
    SCOPE,
    lambda p: sa.and_(
        OAuthClient.organisation_id == p.organisation_id,
        OAuthClient.client_id.not_like(_EXPLORER_ANCHORS),
        _whole_organisation(p),
    ),
)
access.register_rule(
    UserRegion, SCOPE, lambda p: sa.and_(UserRegion.organisation_id == p.organisation_id, _whole_organisation(p))
)
access.register_rule(
    OAuthClientRegion,
    SCOPE,
    lambda p: sa.and_(OAuthClientRegion.organisation_id == p.organisation_id, _whole_organisation(p)),
)


def operator(organisation_id: uuid.UUID) -> Principal:
    """The operator at the CLI, acting inside one organisation with every scope."""
    return Principal(subject="cli", actor_type=ActorType.SYSTEM, organisation_id=organisation_id, scopes=ALL_SCOPES)


async def operator_for(session: AsyncSession, kind: KeyKind, key: str, what: str, field: str) -> Principal:
    """The operator principal for the organisation a client id or email belongs to (NOT_FOUND for none)."""
    organisation_id = await tenant_of(session, kind, normalise_email(key) if kind == "email" else key)
    if organisation_id is None:
        raise NotFound(what, field)
    return operator(organisation_id)


# --- reading ------------------------------------------------------------------------------------------------


def users(principal: Principal, include_disabled: bool = True) -> sa.Select[User]:
    statement = access.readable(principal, User)
    return statement if include_disabled else statement.where(User.is_active.is_(True))


def clients(principal: Principal, include_disabled: bool = True) -> sa.Select[OAuthClient]:
    statement = access.readable(principal, OAuthClient)
    return statement if include_disabled else statement.where(OAuthClient.revoked_at.is_(None))


async def region_ids_of(
    session: AsyncSession, principal: Principal, model: type[UserRegion] | type[OAuthClientRegion], owners: list[Any]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The regions each person or client is bound to, for many at once."""
    column = UserRegion.user_id if model is UserRegion else OAuthClientRegion.client_pk
    grouped: dict[uuid.UUID, list[uuid.UUID]] = {owner: [] for owner in owners}
    statement = access.readable(principal, model).where(column.in_(owners))
    for row in (await session.execute(statement)).scalars():
        grouped[getattr(row, column.key)].append(row.region_id)
    return grouped


async def find_user(session: AsyncSession, principal: Principal, *, user_id: uuid.UUID | None = None,
                    email: str | None = None, lock: bool = False) -> User:  # fmt: skip
    statement = access.readable(principal, User)
    if user_id is not None:
        statement = statement.where(User.id == user_id)
    else:
        statement = statement.where(User.email == normalise_email(email or ""))
    if lock:
        statement = statement.with_for_update()
    row = (await session.execute(statement)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"user {email!r}" if email else "user", "email" if email else "user_id")
    return row


async def find_client(session: AsyncSession, principal: Principal, *, pk: uuid.UUID | None = None,
                      client_id: str | None = None, lock: bool = False) -> OAuthClient:  # fmt: skip
    statement = access.readable(principal, OAuthClient)
    if pk is not None:
        statement = statement.where(OAuthClient.id == pk)
    else:
        statement = statement.where(OAuthClient.client_id == (client_id or ""))
    if lock:
        statement = statement.with_for_update()
    row = (await session.execute(statement)).scalar_one_or_none()
    if row is None or is_explorer_anchor(row.client_id):
        raise NotFound(f"client {client_id!r}" if client_id else "client", "client_id")
    return row


# --- what an actor may hand out -----------------------------------------------------------------------------


def _check_scopes(principal: Principal, scopes: frozenset[str], evaluation_project_id: uuid.UUID | None) -> None:
    unknown = scopes - ALL_SCOPES
    if not scopes or unknown:
        raise DomainError(ErrorCode.INVALID, f"unknown or missing scopes: {format_scope(unknown) or '(none)'}", "scope")
    beyond = scopes - principal.scopes
    if evaluation_project_id is not None:
        beyond -= {"evaluation:read"}
    if beyond:
        raise DomainError(ErrorCode.FORBIDDEN, f"you cannot grant scopes you do not hold: {format_scope(beyond)}",
                          "scope")  # fmt: skip
    if "evaluation:read" in scopes and evaluation_project_id is None:
        raise DomainError(ErrorCode.INVALID, "evaluation:read needs an evaluation project", "evaluation_project")


def _check_role(principal: Principal, role: Role) -> None:
    beyond = ROLE_SCOPES[role] - principal.scopes
    if role is Role.EVALUATOR:
        beyond -= {"evaluation:read"}
    if beyond:
        raise DomainError(
            ErrorCode.FORBIDDEN,
            f"the role {role.value} holds scopes you do not hold: {format_scope(beyond)}",
            "role",
        )


def parse_role(value: str | Role) -> Role:
    try:
        return Role(value)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise DomainError(ErrorCode.INVALID, f"role must be one of {choices}", "role") from None


async def set_client_rate_limit(session: AsyncSession, client_id: str, points: int | None) -> None:
    """Give the client a bucket of its own size (cost points; None: back to the operator's default)."""
    if points is not None and points < 1:
        raise DomainError(ErrorCode.INVALID, "the rate limit must be at least 1 point", "points")
    principal, row = await operator_client(session, client_id)
    await _bump(session, row, None)
    row.rate_limit_points = points
    await _changed(session, principal, row, {"rate_limit_points": points})


async def client_rate_limit(session: AsyncSession, client_id: str) -> int | None:
    """The client's own bucket size, or None for the default (also for an unknown client)."""
    statement = sa.select(OAuthClient.rate_limit_points).where(OAuthClient.client_id == client_id)
    points: int | None = await session.scalar(statement)
    return points


async def set_client_trusted_documents_only(session: AsyncSession, client_id: str, trusted_only: bool) -> None:
    """Let the client run only the documents registered for it (``documents.py``), or any document again."""
    principal, row = await operator_client(session, client_id)
    await _bump(session, row, None)
    row.trusted_documents_only = trusted_only
    await _changed(session, principal, row, {"trusted_documents_only": trusted_only})


async def _regions(session: AsyncSession, principal: Principal, region_ids: Sequence[uuid.UUID]) -> list[Region]:
    """The regions named, each within the actor's reach (NOT_FOUND otherwise), in the order given."""
    wanted = list(dict.fromkeys(region_ids))
    if not wanted:
        return []
    found = {row.id: row for row in (await session.execute(access.in_reach(principal, Region)
                                                           .where(Region.id.in_(wanted)))).scalars()}  # fmt: skip
    for index, region_id in enumerate(wanted):
        if region_id not in found:
            raise NotFound("region", f"region_ids.{index}")
    return [found[region_id] for region_id in wanted]


async def _evaluation_project(session: AsyncSession, principal: Principal, project_id: uuid.UUID) -> uuid.UUID:
    """A project the actor's organisation owns or takes part in (NOT_FOUND otherwise, whoever owns it).

    Trusted filter: the caller's own organisation as owner or participant, the same condition the
    evaluator's project rule applies; only the project's id leaves this function.
    """
    participates = sa.exists().where(
        EvaluationProjectOrganisation.evaluation_project_id == EvaluationProject.id,
        EvaluationProjectOrganisation.organisation_id == principal.organisation_id,
    )
    statement = sa.select(EvaluationProject.id).where(
        EvaluationProject.id == project_id,
        sa.or_(EvaluationProject.organisation_id == principal.organisation_id, participates),
    )
    found = await session.execute(access.trusted(statement, reason="projects the caller's organisation is in"))
    if found.first() is None:
        raise NotFound("evaluation project", "evaluation_project_id")
    return project_id


# --- audit and announcement, once for both kinds of target --------------------------------------------------


async def _changed(
    session: AsyncSession,
    principal: Principal,
    row: User | OAuthClient,
    details: dict[str, Any],
    action: str | None = None,
) -> None:
    """Audit a change of a person or client and announce it to every worker, in the change's transaction."""
    is_user = isinstance(row, User)
    session.add(
        audit.audit_event(
            action or (USER_CHANGED if is_user else CLIENT_CHANGED),
            organisation_id=row.organisation_id,
            actor_type=principal.actor_type,
            actor_id=principal.actor_id,
            target_type="user" if is_user else "oauth_client",
            target_id=str(row.id) if isinstance(row, User) else row.client_id,
            request_id=current_request_id(),
            details=details,
        )
    )
    await session.flush()
    await announce_async(session, user_tag(row.id) if is_user else client_tag(row.id))


def _require_whole_organisation(principal: Principal) -> None:
    access.require_scope(principal, SCOPE)
    if principal.region_ids is not None:
        raise DomainError(
            ErrorCode.FORBIDDEN, "only callers who reach the whole organisation manage people and clients"
        )


async def _bump(session: AsyncSession, row: User | OAuthClient, version: int | None) -> None:
    """Compare-and-set the row's version (``None``: the operator, who acts on the current row)."""
    what = "user" if isinstance(row, User) else "client"
    await bump_version(session, row, row.version if version is None else version, what)


async def _bind_regions(
    session: AsyncSession, principal: Principal, row: User | OAuthClient, region_ids: Sequence[uuid.UUID]
) -> list[Region]:
    regions = await _regions(session, principal, region_ids)
    if isinstance(row, User):
        await session.execute(sa.delete(UserRegion).where(UserRegion.user_id == row.id))
        session.add_all(
            UserRegion(organisation_id=row.organisation_id, user_id=row.id, region_id=r.id) for r in regions
        )
    else:
        await session.execute(sa.delete(OAuthClientRegion).where(OAuthClientRegion.client_pk == row.id))
        session.add_all(
            OAuthClientRegion(organisation_id=row.organisation_id, client_pk=row.id, region_id=r.id) for r in regions
        )
    await session.flush()
    return regions


# --- people -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewUser:
    email: str
    role: Role | str
    password: str
    region_ids: Sequence[uuid.UUID] = ()
    display_name: str | None = None
    evaluation_project_id: uuid.UUID | None = None


def check_password_length(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise DomainError(ErrorCode.INVALID, f"password must be at least {MIN_PASSWORD_LENGTH} characters", "password")


async def create_user(session: AsyncSession, principal: Principal, data: NewUser) -> User:
    """Register a person. Coordinators reach only the regions given here; admins reach the whole organisation."""
    _require_whole_organisation(principal)
    address = _email_address(data.email)
    role = parse_role(data.role)
    _check_role(principal, role)
    check_password_length(data.password)
    await _require_free_email(session, address)
    project_id = None
    if data.evaluation_project_id is not None:
        project_id = await _evaluation_project(session, principal, data.evaluation_project_id)
    elif role is Role.EVALUATOR:
        raise DomainError(ErrorCode.INVALID, "an evaluator needs an evaluation project", "evaluation_project")
    password_hash = await anyio.to_thread.run_sync(hash_password, data.password)
    user = User(
        id=uuid.uuid4(),
        organisation_id=principal.organisation_id,
        email=address,
        display_name=(data.display_name or "").strip() or address.split("@", 1)[0],
        password_hash=password_hash,
        role=role,
        evaluation_project_id=project_id,
        is_active=True,
    )
    session.add(user)
    await session.flush()
    regions = await _bind_regions(session, principal, user, data.region_ids)
    await _changed(session, principal, user, {"role": role.value, "regions": [r.slug for r in regions]},
                   audit.USER_CREATED)  # fmt: skip
    return user


def _email_address(email: str) -> str:
    address = normalise_email(email)
    if not EMAIL.match(address) or len(address) > 320:
        raise DomainError(ErrorCode.INVALID, f"not an email address: {email!r}", "email")
    return address


async def _require_free_email(session: AsyncSession, address: str) -> None:
    """DUPLICATE when a person of any organisation, not only this one, signs in with ``address``: the lookup
    table of emails answers for all of them."""
    if await tenant_of(session, "email", address) is not None:
        raise DomainError(ErrorCode.DUPLICATE, f"a user with email {address!r} already exists", "email")


async def set_user_email(
    session: AsyncSession, principal: Principal, user: User, email: str, version: int | None = None
) -> User:
    """Change the email a person signs in with, under the rules of a new person's; their lookup row moves with
    it in this transaction (``UserEmail``) and the old email is free for anyone."""
    access.require_scope(principal, SCOPE)
    address = _email_address(email)
    if address != user.email:
        await _require_free_email(session, address)
    await _bump(session, user, version)
    user.email = address
    await _changed(session, principal, user, {"email_changed": True})
    return user


async def set_user_active(
    session: AsyncSession, principal: Principal, user: User, active: bool, version: int | None = None
) -> User:
    """Disable (no sign-in, tokens stop working, no refresh) or enable a person again."""
    access.require_scope(principal, SCOPE)
    if not active and principal.user_id == user.id:
        raise DomainError(ErrorCode.FORBIDDEN, "you cannot disable yourself", "user_id")
    await _bump(session, user, version)
    user.is_active = active
    await _changed(session, principal, user, {"active": active})
    return user


async def set_user_regions(
    session: AsyncSession,
    principal: Principal,
    user: User,
    region_ids: Sequence[uuid.UUID],
    version: int | None = None,
) -> User:
    """Assign the person to exactly these regions (a coordinator with none reaches none)."""
    access.require_scope(principal, SCOPE)
    regions = await _bind_regions(session, principal, user, region_ids)
    await _bump(session, user, version)
    await _changed(session, principal, user, {"regions": [r.slug for r in regions]})
    return user


async def set_user_role(
    session: AsyncSession, principal: Principal, user: User, role: Role | str, version: int | None = None
) -> User:
    """Change the person's role; their tokens keep only the scopes the new role allows."""
    access.require_scope(principal, SCOPE)
    new_role = parse_role(role)
    _check_role(principal, new_role)
    await _bump(session, user, version)
    user.role = new_role
    await _changed(session, principal, user, {"role": new_role.value})
    return user


def generated_password() -> str:
    """A random password for a person to change after first sign-in (about 144 bits)."""
    return secrets.token_urlsafe(18)


async def reset_password(
    session: AsyncSession, principal: Principal, user: User, password: str | None, version: int | None = None
) -> str:
    """Give the person a new password (generated when none is given, returned once); their tokens stop working
    so that whoever held the old password keeps nothing it obtained."""
    access.require_scope(principal, SCOPE)
    chosen = password if password is not None else generated_password()
    check_password_length(chosen)
    await _bump(session, user, version)
    user.password_hash = await anyio.to_thread.run_sync(hash_password, chosen)
    await _revoke_tokens(session, user_id=user.id)
    await _changed(session, principal, user, {"generated": password is None}, USER_PASSWORD_RESET)
    return chosen


# --- clients ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewClient:
    name: str
    scope: str
    region_ids: Sequence[uuid.UUID] = ()
    grants: Sequence[str] = ()
    redirect_uris: Sequence[str] = ()
    evaluation_project_id: uuid.UUID | None = None
    public: bool = False


@dataclass(frozen=True)
class CreatedClient:
    """A registered client and its secret, which exists in clear only here (``None`` for a public client)."""

    client: OAuthClient
    client_secret: str | None

    @property
    def client_id(self) -> str:
        return self.client.client_id


async def create_client(session: AsyncSession, principal: Principal, data: NewClient) -> CreatedClient:
    """Register a client; the secret is returned here once and only its hash is kept."""
    from .clients import check_redirect_uri

    _require_whole_organisation(principal)
    name = data.name.strip()
    if not name or len(name) > 200:
        raise DomainError(ErrorCode.INVALID, "must be 1 to 200 characters", "name")
    scopes = parse_scope(data.scope)
    project_id = None
    if data.evaluation_project_id is not None:
        project_id = await _evaluation_project(session, principal, data.evaluation_project_id)
    _check_scopes(principal, scopes, project_id)
    grant_set = set(data.grants or (["authorization_code"] if data.public else ["client_credentials"]))
    if not grant_set <= set(GRANT_CHOICES):
        raise DomainError(ErrorCode.INVALID, f"grants must be among {', '.join(GRANT_CHOICES)}", "grant")
    if data.public and "client_credentials" in grant_set:
        raise DomainError(ErrorCode.INVALID, "a public client cannot use client_credentials", "grant")
    if "authorization_code" in grant_set:
        if not data.redirect_uris:
            raise DomainError(ErrorCode.INVALID, "authorization_code needs at least one redirect URI", "redirect_uri")
        grant_set.add("refresh_token")
    elif data.redirect_uris:
        raise DomainError(ErrorCode.INVALID, "redirect URIs are only for authorization_code clients", "redirect_uri")
    uris = [check_redirect_uri(uri) for uri in data.redirect_uris]
    secret = None if data.public else new_secret()
    row = OAuthClient(
        id=uuid.uuid4(),
        organisation_id=principal.organisation_id,
        client_id=secrets.token_hex(16),
        client_secret_hash=None if secret is None else hash_secret(secret),
        name=name,
        scope=format_scope(scopes),
        grant_types=sorted(grant_set),
        redirect_uris=uris,
        evaluation_project_id=project_id,
    )
    session.add(row)
    await session.flush()
    regions = await _bind_regions(session, principal, row, data.region_ids)
    details = {"name": name, "scope": row.scope, "grant_types": row.grant_types,
               "regions": [r.slug for r in regions], "public": data.public}  # fmt: skip
    await _changed(session, principal, row, details, audit.CLIENT_CREATED)
    return CreatedClient(client=row, client_secret=secret)


async def set_client_enabled(
    session: AsyncSession, principal: Principal, row: OAuthClient, enabled: bool, version: int | None = None
) -> OAuthClient:
    """Disable (its tokens stop working, it gets no new ones) or enable a client again."""
    access.require_scope(principal, SCOPE)
    if not enabled and principal.client_id == row.client_id:
        raise DomainError(ErrorCode.FORBIDDEN, "a client cannot disable itself", "client_id")
    await _bump(session, row, version)
    row.revoked_at = None if enabled else (row.revoked_at or utcnow())
    await _changed(session, principal, row, {"enabled": enabled})
    return row


async def set_client_scopes(
    session: AsyncSession, principal: Principal, row: OAuthClient, scope: str, version: int | None = None
) -> OAuthClient:
    """Replace the client's allowed scopes; its existing tokens keep only the scopes still allowed."""
    access.require_scope(principal, SCOPE)
    scopes = parse_scope(scope)
    _check_scopes(principal, scopes, row.evaluation_project_id)
    await _bump(session, row, version)
    row.scope = format_scope(scopes)
    await _changed(session, principal, row, {"scope": row.scope})
    return row


async def set_client_regions(
    session: AsyncSession,
    principal: Principal,
    row: OAuthClient,
    region_ids: Sequence[uuid.UUID],
    version: int | None = None,
) -> OAuthClient:
    """Bind the client to exactly these regions (none: the whole organisation)."""
    access.require_scope(principal, SCOPE)
    regions = await _bind_regions(session, principal, row, region_ids)
    await _bump(session, row, version)
    await _changed(session, principal, row, {"regions": [r.slug for r in regions]})
    return row


async def rotate_client_secret(
    session: AsyncSession, principal: Principal, row: OAuthClient, version: int | None = None
) -> str:
    """A new secret for a confidential client (returned once); the old one stops working at once, and so do
    the tokens issued under it."""
    access.require_scope(principal, SCOPE)
    if row.client_secret_hash is None:
        raise DomainError(ErrorCode.INVALID, "a public client has no secret to rotate", "client_id")
    await _bump(session, row, version)
    secret = new_secret()
    row.client_secret_hash = hash_secret(secret)
    await _revoke_tokens(session, client_pk=row.id)
    await _changed(session, principal, row, {}, CLIENT_SECRET_ROTATED)
    return secret


async def _revoke_tokens(session: AsyncSession, *, user_id: uuid.UUID | None = None,
                         client_pk: uuid.UUID | None = None) -> None:  # fmt: skip
    from ..domain.models import OAuthToken

    condition = OAuthToken.user_id == user_id if user_id is not None else OAuthToken.client_pk == client_pk
    await session.execute(
        sa.update(OAuthToken).where(condition, OAuthToken.revoked_at.is_(None)).values(revoked_at=utcnow())
    )


# --- the operator's verbs (CLI): a key instead of a row, the organisation found from the key ----------------


async def operator_client(session: AsyncSession, client_id: str) -> tuple[Principal, OAuthClient]:
    principal = await operator_for(session, "client", client_id, f"client {client_id!r}", "client_id")
    return principal, await find_client(session, principal, client_id=client_id, lock=True)


async def operator_user(session: AsyncSession, email: str) -> tuple[Principal, User]:
    principal = await operator_for(session, "email", email, f"user {email!r}", "email")
    return principal, await find_user(session, principal, email=email, lock=True)


async def region_ids_by_slug(
    session: AsyncSession, organisation_id: uuid.UUID, slugs: Iterable[str]
) -> list[uuid.UUID]:
    return [region.id for region in await regions_by_slug(session, organisation_id, list(slugs))]


async def operator_set_client_enabled(session: AsyncSession, client_id: str, enabled: bool) -> None:
    principal, row = await operator_client(session, client_id)
    await set_client_enabled(session, principal, row, enabled)


async def operator_set_client_scopes(session: AsyncSession, client_id: str, scope: str) -> None:
    principal, row = await operator_client(session, client_id)
    await set_client_scopes(session, principal, row, scope)


async def operator_set_client_regions(session: AsyncSession, client_id: str, region_slugs: list[str]) -> None:
    principal, row = await operator_client(session, client_id)
    ids = await region_ids_by_slug(session, principal.organisation_id, region_slugs)
    await set_client_regions(session, principal, row, ids)


async def operator_rotate_client_secret(session: AsyncSession, client_id: str) -> str:
    principal, row = await operator_client(session, client_id)
    return await rotate_client_secret(session, principal, row)


async def operator_set_user_active(session: AsyncSession, email: str, active: bool) -> None:
    principal, row = await operator_user(session, email)
    await set_user_active(session, principal, row, active)


async def operator_set_user_regions(session: AsyncSession, email: str, region_slugs: list[str]) -> None:
    principal, row = await operator_user(session, email)
    ids = await region_ids_by_slug(session, principal.organisation_id, region_slugs)
    await set_user_regions(session, principal, row, ids)


async def operator_set_user_role(session: AsyncSession, email: str, role: str) -> None:
    principal, row = await operator_user(session, email)
    await set_user_role(session, principal, row, role)


async def operator_set_user_email(session: AsyncSession, email: str, new_email: str) -> None:
    principal, row = await operator_user(session, email)
    await set_user_email(session, principal, row, new_email)


async def operator_reset_password(session: AsyncSession, email: str, password: str | None) -> str:
    principal, row = await operator_user(session, email)
    return await reset_password(session, principal, row, password)


async def listing(session: AsyncSession, principal: Principal, kind: str) -> list[dict[str, Any]]:
    """Every person or client of the organisation as plain data, for the CLI's ``list`` verbs."""
    if kind == "users":
        people = list((await session.execute(users(principal).order_by(*USER_ORDER))).scalars())
        regions = await region_ids_of(session, principal, UserRegion, [row.id for row in people])
        slugs = await _slugs(session, principal)
        return [
            {"id": str(row.id), "email": row.email, "name": row.display_name, "role": row.role.value,
             "active": row.is_active, "regions": sorted(slugs[r] for r in regions[row.id]), "version": row.version}
            for row in people
        ]  # fmt: skip
    found = list((await session.execute(clients(principal).order_by(*CLIENT_ORDER))).scalars())
    regions = await region_ids_of(session, principal, OAuthClientRegion, [row.id for row in found])
    slugs = await _slugs(session, principal)
    return [
        {"client_id": row.client_id, "name": row.name, "scope": row.scope, "grant_types": list(row.grant_types),
         "enabled": row.revoked_at is None, "public": row.client_secret_hash is None,
         "regions": sorted(slugs[r] for r in regions[row.id]), "version": row.version}
        for row in found
    ]  # fmt: skip


async def _slugs(session: AsyncSession, principal: Principal) -> dict[uuid.UUID, str]:
    rows = await session.execute(access.in_reach(principal, Region))
    return {region.id: region.slug for region in rows.scalars()}
