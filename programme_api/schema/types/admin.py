"""People and OAuth clients as an organisation's admin sees them (never a password or a secret).

Requires `admin`, and a caller who reaches the whole organisation.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import strawberry

from ...domain import models
from ...domain.access import readable
from ...oauth import admin
from ...oauth.clients import parse_scope
from ..context import Info
from ..lists import load_children, load_node
from ..relay import Node, to_global_id
from .programme import Region

SCOPE_NOTE = "Requires `admin`."


@strawberry.type(name="User", description=f"A person who signs in. {SCOPE_NOTE}")
class UserAccount(Node):
    model: strawberry.Private[models.User]
    email: str
    display_name: str
    role: models.Role
    active: bool = strawberry.field(description="False once disabled: no sign-in, and their tokens stop working.")
    created_at: datetime
    version: int = strawberry.field(description="Send it back with a change; every change raises it.")

    @classmethod
    def from_model(cls, row: models.User) -> UserAccount:
        return cls(
            model=row,
            id=to_global_id("User", row.id),
            email=row.email,
            display_name=row.display_name,
            role=row.role,
            active=row.is_active,
            created_at=row.created_at,
            version=row.version,
        )

    @strawberry.field(description="The regions the person is assigned to (none: the whole organisation for an "
                      "admin, nothing for a coordinator).")  # fmt: skip
    async def regions(self, info: Info) -> list[Region]:
        links = await load_children(
            info, "user.regions", lambda p: readable(p, models.UserRegion), models.UserRegion.user_id, self.model.id
        )
        return await _regions(info, [link.region_id for link in links])


@strawberry.type(name="OAuthClient", description=f"A partner app or evaluator's client. {SCOPE_NOTE}")
class OAuthClientAccount(Node):
    model: strawberry.Private[models.OAuthClient]
    client_id: str = strawberry.field(description="What the app sends as `client_id`.")
    name: str
    scopes: list[str] = strawberry.field(description="The most its tokens may carry.")
    grant_types: list[str]
    redirect_uris: list[str]
    enabled: bool = strawberry.field(description="False once disabled: its tokens stop working.")
    public: bool = strawberry.field(description="A browser app without a secret (PKCE).")
    evaluation_project_id: strawberry.ID | None
    created_at: datetime
    version: int = strawberry.field(description="Send it back with a change; every change raises it.")

    @classmethod
    def from_model(cls, row: models.OAuthClient) -> OAuthClientAccount:
        project = row.evaluation_project_id
        return cls(
            model=row,
            id=to_global_id("OAuthClient", row.id),
            client_id=row.client_id,
            name=row.name,
            scopes=sorted(parse_scope(row.scope)),
            grant_types=[str(grant) for grant in row.grant_types],
            redirect_uris=[str(uri) for uri in row.redirect_uris],
            enabled=row.revoked_at is None,
            public=row.client_secret_hash is None,
            evaluation_project_id=None if project is None else to_global_id("EvaluationProject", project),
            created_at=row.created_at,
            version=row.version,
        )

    @strawberry.field(description="The regions the client is bound to (none: the whole organisation).")
    async def regions(self, info: Info) -> list[Region]:
        links = await load_children(
            info, "client.regions", lambda p: readable(p, models.OAuthClientRegion),
            models.OAuthClientRegion.client_pk, self.model.id,
        )  # fmt: skip
        return await _regions(info, [link.region_id for link in links])


async def _regions(info: Info, region_ids: list[uuid.UUID]) -> list[Region]:
    found = await asyncio.gather(*(load_node(info, models.Region, region_id, Region.from_model)
                                   for region_id in region_ids))  # fmt: skip
    return sorted((region for region in found if region is not None), key=lambda region: region.slug)


USER_ORDER = admin.USER_ORDER
CLIENT_ORDER = admin.CLIENT_ORDER
