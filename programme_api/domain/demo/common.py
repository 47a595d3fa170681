"""Shared plumbing for the demo data: seeded randomness, stable IDs, the calendar anchor and row collection.

Everything the demo writes is computed in memory first and inserted in bulk afterwards, so generation stays
pure (and testable) and the database sees a few large ``INSERT`` statements instead of thousands of small ones.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from ..models import Base
from ..recurrence import to_utc

SEED: Final = "programme-api-demo-v1"
"""Changing the seed changes every name, reference and answer; bump the suffix only on purpose."""

DEMO_TIMEZONE: Final = "Europe/London"
WEEKS_BEFORE_THIS_WEEK: Final = 10
WEEKS_IN_PERIOD: Final = 12

Row = dict[str, Any]


def rng_for(*labels: object) -> random.Random:
    """An independent, seeded stream per concern, so one group gaining a session never reshuffles another's.

    String seeds are hashed with SHA-512 by ``random``, so they are stable across processes and versions.
    """
    return random.Random(":".join([SEED, *map(str, labels)]))  # noqa: S311 - demo data, not secrets


class IdSource:
    """Deterministic version-4 UUIDs: reloading the demo into a fresh database gives every row the same ID,
    so example queries and bug reports against the demo can quote IDs."""

    def __init__(self, label: str) -> None:
        self._rng = rng_for("ids", label)

    def __call__(self) -> uuid.UUID:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)


@dataclass(frozen=True)
class Period:
    """The demo's calendar, anchored on a given local day.

    Sessions cover 12 whole weeks (Monday to Sunday): the 10 weeks before the current week, the current week
    and the next one. Meetings on days before ``today`` are in the past (held or cancelled), the rest are
    still scheduled. The same day always yields the same data; another day shifts the dates, not the people.
    """

    today: date
    zone: ZoneInfo

    @property
    def start(self) -> date:
        monday = self.today - timedelta(days=self.today.weekday())
        return monday - timedelta(weeks=WEEKS_BEFORE_THIS_WEEK)

    @property
    def end(self) -> date:
        return self.start + timedelta(weeks=WEEKS_IN_PERIOD, days=-1)

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        """The UTC instant of a local wall-clock time on ``day``."""
        return to_utc(day, time(hour, minute), self.zone)

    def is_past(self, instant: datetime) -> bool:
        """Whether a meeting at ``instant`` happened before the anchor day (and so has a register)."""
        return instant.astimezone(self.zone).date() < self.today


def local_today(timezone: str = DEMO_TIMEZONE) -> date:
    """Today's date where the demo organisations are (their registers are kept in local time)."""
    return datetime.now(UTC).astimezone(ZoneInfo(timezone)).date()


@dataclass
class Rows:
    """Rows to insert, per table, in the order they were generated."""

    by_model: dict[type[Base], list[Row]] = field(default_factory=dict)

    def add(self, model: type[Base], row: Row) -> Row:
        self.by_model.setdefault(model, []).append(row)
        return row

    def of(self, model: type[Base]) -> list[Row]:
        return self.by_model.get(model, [])

    def count(self, model: type[Base]) -> int:
        return len(self.of(model))
