"""An organisation's admin managing people and OAuth clients (the same implementation as the CLI's verbs).

Secrets (a new client's secret, a rotated one, a generated password) are in the payload of the call that
made them and nowhere else: a replay of that call with its idempotency key answers with the object and a
null secret, because the secret is stored only hashed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain import models
from ...domain.principal import Principal
from ...oauth import admin
from ..context import Info
from ..relay import expect_global_id
from ..types.admin import OAuthClientAccount, UserAccount
from .common import MutationInput, MutationPayload, perform

SCOPE = admin.SCOPE
VERSION_HELP = (
    "The version you read; a stale one is refused with `CONFLICT`. Omitted: no check (the last write wins), "
    "for apps written before people and clients had versions."
)


def _region_ids(values: list[strawberry.ID]) -> list[uuid.UUID]:
    return [expect_global_id(value, "Region", f"input.regionIds.{index}") for index, value in enumerate(values)]


def _project_id(value: strawberry.ID | None) -> uuid.UUID | None:
    return None if value is None else expect_global_id(value, "EvaluationProject", "input.evaluationProjectId")


# --- people -------------------------------------------------------------------------------------------------


@strawberry.type(description="The person created or changed, or why not.")
class UserPayload(MutationPayload):
    user: UserAccount | None = None
    password: str | None = strawberry.field(
        default=None,
        description="A generated password, in this answer only (createUser, resetUserPassword): hand it over "
        "privately.",
    )


@strawberry.input(description="A new person of the caller's organisation.")
class CreateUserInput(MutationInput):
    email: str
    role: models.Role = strawberry.field(description="You cannot give a role holding scopes you do not hold.")
    display_name: str | None = None
    region_ids: list[strawberry.ID] = strawberry.field(default_factory=list, description="Coordinators' regions.")
    evaluation_project_id: strawberry.ID | None = strawberry.field(default=None, description="For evaluators.")


@strawberry.input(description="Which person.")
class UserInput(MutationInput):
    user_id: strawberry.ID
    version: int | None = strawberry.field(default=None, description=VERSION_HELP)


@strawberry.input(description="Assign a person to exactly these regions.")
class SetUserRegionsInput(MutationInput):
    user_id: strawberry.ID
    region_ids: list[strawberry.ID]
    version: int | None = strawberry.field(default=None, description=VERSION_HELP)


@strawberry.input(description="Change a person's role.")
class SetUserRoleInput(MutationInput):
    user_id: strawberry.ID
    role: models.Role
    version: int | None = strawberry.field(default=None, description=VERSION_HELP)


async def _user_write(
    info: Info,
    operation: str,
    input: MutationInput,
    change: Callable[[AsyncSession, Principal], Awaitable[models.User]],
    secret: dict[str, str] | None = None,
) -> UserPayload:
    def present(row: models.User) -> UserPayload:
        return UserPayload(user=UserAccount.from_model(row), password=(secret or {}).get("password"))

    return await perform(
        info, operation=operation, scope=SCOPE, input=input, result_type=models.User, work=change,
        payload=UserPayload, present=present,
    )  # fmt: skip


def _on_user(user_id: strawberry.ID, apply: Callable[[AsyncSession, Principal, models.User], Awaitable[Any]]) -> Any:
    async def work(session: AsyncSession, principal: Principal) -> models.User:
        row_id = expect_global_id(user_id, "User", "input.userId")
        row = await admin.find_user(session, principal, user_id=row_id, lock=True)
        await apply(session, principal, row)
        return row

    return work


async def create_user(info: Info, input: CreateUserInput) -> UserPayload:
    secret: dict[str, str] = {}

    async def work(session: AsyncSession, principal: Principal) -> models.User:
        # Generated, never sent in: an input's fingerprint is kept for idempotent replays, a password must not be.
        password = secret["password"] = admin.generated_password()
        data = admin.NewUser(
            email=input.email, role=input.role, password=password, region_ids=_region_ids(input.region_ids),
            display_name=input.display_name, evaluation_project_id=_project_id(input.evaluation_project_id),
        )  # fmt: skip
        return await admin.create_user(session, principal, data)

    return await _user_write(info, "createUser", input, work, secret)


async def disable_user(info: Info, input: UserInput) -> UserPayload:
    apply = _on_user(input.user_id, lambda s, p, row: admin.set_user_active(s, p, row, False, input.version))
    return await _user_write(info, "disableUser", input, apply)


async def enable_user(info: Info, input: UserInput) -> UserPayload:
    apply = _on_user(input.user_id, lambda s, p, row: admin.set_user_active(s, p, row, True, input.version))
    return await _user_write(info, "enableUser", input, apply)


async def set_user_regions(info: Info, input: SetUserRegionsInput) -> UserPayload:
    ids = _region_ids(input.region_ids)
    apply = _on_user(input.user_id, lambda s, p, row: admin.set_user_regions(s, p, row, ids, input.version))
    return await _user_write(info, "setUserRegions", input, apply)


async def set_user_role(info: Info, input: SetUserRoleInput) -> UserPayload:
    apply = _on_user(input.user_id, lambda s, p, row: admin.set_user_role(s, p, row, input.role, input.version))
    return await _user_write(info, "setUserRole", input, apply)


async def reset_user_password(info: Info, input: UserInput) -> UserPayload:
    secret: dict[str, str] = {}

    async def reset(session: AsyncSession, principal: Principal, row: models.User) -> None:
        secret["password"] = await admin.reset_password(session, principal, row, None, input.version)

    return await _user_write(info, "resetUserPassword", input, _on_user(input.user_id, reset), secret)


# --- clients ------------------------------------------------------------------------------------------------


@strawberry.type(description="The client created or changed, or why not.")
class OAuthClientPayload(MutationPayload):
    oauth_client: OAuthClientAccount | None = None
    client_secret: str | None = strawberry.field(
        default=None,
        description="The client's secret, in the answer of the call that made it only (createOAuthClient, "
        "rotateOAuthClientSecret); stored hashed, never shown again.",
    )


@strawberry.input(description="A new OAuth client of the caller's organisation.")
class CreateOAuthClientInput(MutationInput):
    name: str
    scopes: list[str] = strawberry.field(
        description="You cannot grant scopes you do not hold; `evaluation:read` only with `evaluationProjectId`."
    )
    region_ids: list[strawberry.ID] = strawberry.field(default_factory=list, description="None: whole organisation.")
    grant_types: list[str] = strawberry.field(
        default_factory=list, description="`client_credentials` (default) and/or `authorization_code`."
    )
    redirect_uris: list[str] = strawberry.field(default_factory=list)
    evaluation_project_id: strawberry.ID | None = strawberry.field(
        default=None, description="Binds the client to an evaluation project your organisation takes part in."
    )
    public: bool = strawberry.field(default=False, description="A browser app without a secret.")


@strawberry.input(description="Which client.")
class OAuthClientInput(MutationInput):
    oauth_client_id: strawberry.ID
    version: int | None = strawberry.field(default=None, description=VERSION_HELP)


@strawberry.input(description="Replace a client's allowed scopes; its live tokens lose the scopes left out.")
class SetOAuthClientScopesInput(MutationInput):
    oauth_client_id: strawberry.ID
    scopes: list[str]
    version: int | None = strawberry.field(default=None, description=VERSION_HELP)


@strawberry.input(description="Bind a client to exactly these regions (none: the whole organisation).")
class SetOAuthClientRegionsInput(MutationInput):
    oauth_client_id: strawberry.ID
    region_ids: list[strawberry.ID]
    version: int | None = strawberry.field(default=None, description=VERSION_HELP)


async def _client_write(
    info: Info,
    operation: str,
    input: MutationInput,
    change: Callable[[AsyncSession, Principal], Awaitable[models.OAuthClient]],
    secret: dict[str, str | None] | None = None,
) -> OAuthClientPayload:
    def present(row: models.OAuthClient) -> OAuthClientPayload:
        return OAuthClientPayload(
            oauth_client=OAuthClientAccount.from_model(row), client_secret=(secret or {}).get("secret")
        )

    return await perform(
        info, operation=operation, scope=SCOPE, input=input, result_type=models.OAuthClient, work=change,
        payload=OAuthClientPayload, present=present,
    )  # fmt: skip


def _on_client(
    client_id: strawberry.ID, apply: Callable[[AsyncSession, Principal, models.OAuthClient], Awaitable[Any]]
) -> Any:
    async def work(session: AsyncSession, principal: Principal) -> models.OAuthClient:
        row_id = expect_global_id(client_id, "OAuthClient", "input.oauthClientId")
        row = await admin.find_client(session, principal, pk=row_id, lock=True)
        await apply(session, principal, row)
        return row

    return work


async def create_oauth_client(info: Info, input: CreateOAuthClientInput) -> OAuthClientPayload:
    secret: dict[str, str | None] = {}

    async def work(session: AsyncSession, principal: Principal) -> models.OAuthClient:
        data = admin.NewClient(
            name=input.name, scope=" ".join(input.scopes), region_ids=_region_ids(input.region_ids),
            grants=input.grant_types, redirect_uris=input.redirect_uris,
            evaluation_project_id=_project_id(input.evaluation_project_id), public=input.public,
        )  # fmt: skip
        created = await admin.create_client(session, principal, data)
        secret["secret"] = created.client_secret
        return created.client

    return await _client_write(info, "createOAuthClient", input, work, secret)


async def disable_oauth_client(info: Info, input: OAuthClientInput) -> OAuthClientPayload:
    apply = _on_client(
        input.oauth_client_id, lambda s, p, row: admin.set_client_enabled(s, p, row, False, input.version)
    )
    return await _client_write(info, "disableOAuthClient", input, apply)


async def enable_oauth_client(info: Info, input: OAuthClientInput) -> OAuthClientPayload:
    apply = _on_client(
        input.oauth_client_id, lambda s, p, row: admin.set_client_enabled(s, p, row, True, input.version)
    )
    return await _client_write(info, "enableOAuthClient", input, apply)


async def set_oauth_client_scopes(info: Info, input: SetOAuthClientScopesInput) -> OAuthClientPayload:
    scope = " ".join(input.scopes)
    apply = _on_client(
        input.oauth_client_id, lambda s, p, row: admin.set_client_scopes(s, p, row, scope, input.version)
    )
    return await _client_write(info, "setOAuthClientScopes", input, apply)


async def set_oauth_client_regions(info: Info, input: SetOAuthClientRegionsInput) -> OAuthClientPayload:
    ids = _region_ids(input.region_ids)
    apply = _on_client(input.oauth_client_id, lambda s, p, row: admin.set_client_regions(s, p, row, ids, input.version))
    return await _client_write(info, "setOAuthClientRegions", input, apply)


async def rotate_oauth_client_secret(info: Info, input: OAuthClientInput) -> OAuthClientPayload:
    secret: dict[str, str | None] = {}

    async def rotate(session: AsyncSession, principal: Principal, row: models.OAuthClient) -> None:
        secret["secret"] = await admin.rotate_client_secret(session, principal, row, input.version)

    return await _client_write(
        info, "rotateOAuthClientSecret", input, _on_client(input.oauth_client_id, rotate), secret
    )
