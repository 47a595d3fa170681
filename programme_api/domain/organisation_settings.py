"""An organisation's settings, changed by its admins: name, timezone, suppression threshold, consent form.

Schedules keep local wall-clock times and sessions are generated from them in the organisation's timezone
at the time of generating, so after a change of timezone a 19:00 group still meets at 19:00, now in the new
zone; sessions already generated keep the instants they were given. Each changed setting is its own audit
event (old and new value), so the log says exactly what changed and when.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit
from .access import require_scope
from .errors import DomainError, ErrorCode
from .models import Organisation
from .principal import Principal
from .recurrence import ScheduleError, load_timezone

SCOPE = "admin"
MIN_SUPPRESSION_THRESHOLD = 5
MAX_SUPPRESSION_THRESHOLD = 1000
MAX_NAME = 200
MAX_FORM_VERSION = 100


@dataclass(frozen=True)
class SettingsChange:
    """The settings to change; ``None`` leaves one as it is."""

    name: str | None = None
    timezone: str | None = None
    suppression_threshold: int | None = None
    default_consent_form_version: str | None = None


def _validated(change: SettingsChange) -> dict[str, Any]:
    wanted: dict[str, Any] = {}
    if change.name is not None:
        name = change.name.strip()
        if not name or len(name) > MAX_NAME:
            raise DomainError(ErrorCode.INVALID, f"must be 1-{MAX_NAME} characters", "name")
        wanted["name"] = name
    if change.timezone is not None:
        try:
            load_timezone(change.timezone.strip())
        except ScheduleError:
            raise DomainError(ErrorCode.INVALID, "must be an IANA timezone such as Europe/London", "timezone") from None
        wanted["timezone"] = change.timezone.strip()
    if change.suppression_threshold is not None:
        if not MIN_SUPPRESSION_THRESHOLD <= change.suppression_threshold <= MAX_SUPPRESSION_THRESHOLD:
            raise DomainError(
                ErrorCode.INVALID,
                f"must be between {MIN_SUPPRESSION_THRESHOLD} and {MAX_SUPPRESSION_THRESHOLD}",
                "suppression_threshold",
            )
        wanted["suppression_threshold"] = change.suppression_threshold
    if change.default_consent_form_version is not None:
        form = change.default_consent_form_version.strip()
        if len(form) > MAX_FORM_VERSION:
            raise DomainError(
                ErrorCode.INVALID, f"must be at most {MAX_FORM_VERSION} characters", "default_consent_form_version"
            )
        wanted["default_consent_form_version"] = form or None
    if not wanted:
        raise DomainError(ErrorCode.INVALID, "name at least one setting to change", None)
    return wanted


async def update_settings(
    session: AsyncSession, principal: Principal, version: int, change: SettingsChange
) -> Organisation:
    """Change the caller's own organisation's settings (``admin``), one audit event per setting changed."""
    require_scope(principal, SCOPE)
    wanted = _validated(change)
    organisation = await access.get_in_reach(
        session, principal, Organisation, principal.organisation_id, "organisation", lock=True
    )
    await audit.bump_version(session, organisation, version, "organisation")
    for setting, value in wanted.items():
        before = getattr(organisation, setting)
        if before == value:
            continue
        setattr(organisation, setting, value)
        await audit.record(
            session,
            principal,
            "organisation.setting_changed",
            organisation,
            {"setting": setting, "from": before, "to": value},
        )
    await session.flush()
    return organisation
