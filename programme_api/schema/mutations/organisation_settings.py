"""updateOrganisationSettings: an admin changes their own organisation's settings."""

from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain import models, organisation_settings
from ...domain.principal import Principal
from ..context import Info
from ..types.programme import Organisation
from .common import MutationInput, MutationPayload, perform


@strawberry.input(description="Settings of your organisation to change; fields left out stay as they are.")
class UpdateOrganisationSettingsInput(MutationInput):
    version: int = strawberry.field(description="The organisation's version you read; a stale one is a `CONFLICT`.")
    name: str | None = None
    timezone: str | None = strawberry.field(
        default=None,
        description="IANA timezone (e.g. `Europe/London`). Schedules keep their local times: sessions generated "
        "afterwards follow the new zone; sessions already generated keep theirs.",
    )
    suppression_threshold: int | None = strawberry.field(
        default=None,
        description=f"Smallest count evaluators may see, at least {organisation_settings.MIN_SUPPRESSION_THRESHOLD}.",
    )
    default_consent_form_version: str | None = strawberry.field(
        default=None, description="Recorded when a consent names no form version; an empty string removes it."
    )


@strawberry.type(description="The organisation with its settings as they now are, or why not.")
class UpdateOrganisationSettingsPayload(MutationPayload):
    organisation: Organisation | None = None


async def update_organisation_settings(
    info: Info, input: UpdateOrganisationSettingsInput
) -> UpdateOrganisationSettingsPayload:
    change = organisation_settings.SettingsChange(
        name=input.name,
        timezone=input.timezone,
        suppression_threshold=input.suppression_threshold,
        default_consent_form_version=input.default_consent_form_version,
    )

    async def work(session: AsyncSession, principal: Principal) -> models.Organisation:
        return await organisation_settings.update_settings(session, principal, input.version, change)

    return await perform(
        info,
        operation="updateOrganisationSettings",
        scope=organisation_settings.SCOPE,
        input=input,
        result_type=models.Organisation,
        work=work,
        payload=UpdateOrganisationSettingsPayload,
        present=lambda row: UpdateOrganisationSettingsPayload(organisation=Organisation.from_model(row)),
    )
