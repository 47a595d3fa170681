"""Bulk onboarding from spreadsheets: regions, groups, facilitators and participants from CSV or XLSX.

All or nothing, in two passes. First every row is validated (its own columns, with pydantic, then its
references: a region slug, a group code) and every bad row is reported with its line, column and reason;
if any row is bad, or on a dry run, nothing is written. Then each row is matched on its natural key (a
region's slug, a group's or facilitator's external reference, a participant's reference): a new key is
created, a known key whose values differ is updated (its version bumped), and a known key with the same
values is left alone, so importing the same file twice changes nothing. Every created or updated row is
audited like a write through the API (details name fields, never personal data).

The columns of each kind are ``COLUMNS`` (README: "Bulk import"); headers are matched case-insensitively,
blank cells count as not given, and a column that is not documented is refused rather than ignored, so a
misspelt header cannot silently drop data.
"""

from __future__ import annotations

import csv
import enum
import io
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit, enrolments
from .access import require_scope
from .errors import DomainError, ErrorCode
from .models import (
    DeliveryMode,
    Enrolment,
    EnrolmentStatus,
    Facilitator,
    Group,
    GroupStatus,
    Participant,
    Region,
    Topic,
)
from .participants import EMAIL, PHONE, REFERENCE
from .principal import Principal
from .regions import SLUG

MAX_ROWS = 50_000


class Kind(enum.StrEnum):
    REGIONS = "regions"
    GROUPS = "groups"
    FACILITATORS = "facilitators"
    PARTICIPANTS = "participants"


Slug = Annotated[str, StringConstraints(pattern=SLUG.pattern)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")]


class _Row(BaseModel):
    """Common to every kind: surrounding spaces trimmed, blank cells not given, unknown columns refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_missing(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        return {name: value for name, value in values.items() if not (isinstance(value, str) and not value.strip())}


class RegionRow(_Row):
    slug: Slug
    name: Name


class GroupRow(_Row):
    external_reference: Code
    region: Slug
    name: Name
    topic: Topic
    delivery_mode: DeliveryMode
    venue: Annotated[str, StringConstraints(max_length=300)] | None = None
    capacity: Annotated[int, Field(ge=1, le=500)] = 12
    status: GroupStatus = GroupStatus.ACTIVE


class FacilitatorRow(_Row):
    external_reference: Code
    display_name: Name
    email: Annotated[str, StringConstraints(max_length=320, pattern=EMAIL.pattern)] | None = None
    training_completed_on: date | None = None
    background_check_expires_on: date | None = None


class ParticipantRow(_Row):
    reference: Annotated[str, StringConstraints(pattern=REFERENCE.pattern)]
    region: Slug
    preferred_name: Name | None = None
    contact_email: Annotated[str, StringConstraints(max_length=320, pattern=EMAIL.pattern)] | None = None
    contact_phone: Annotated[str, StringConstraints(max_length=40, pattern=PHONE.pattern)] | None = None
    group: Code | None = Field(default=None, description="A group's external reference: enrol there.")


ROW_MODELS: dict[Kind, type[_Row]] = {
    Kind.REGIONS: RegionRow,
    Kind.GROUPS: GroupRow,
    Kind.FACILITATORS: FacilitatorRow,
    Kind.PARTICIPANTS: ParticipantRow,
}
#: Each kind's columns, required ones first (the natural key is the first column).
COLUMNS: dict[Kind, tuple[str, ...]] = {kind: tuple(model.model_fields) for kind, model in ROW_MODELS.items()}
REQUIRED: dict[Kind, frozenset[str]] = {
    kind: frozenset(name for name, info in model.model_fields.items() if info.is_required())
    for kind, model in ROW_MODELS.items()
}
SCOPES: dict[Kind, str] = {
    Kind.REGIONS: "programme:write",
    Kind.GROUPS: "programme:write",
    Kind.FACILITATORS: "programme:write",
    Kind.PARTICIPANTS: "participants:write",
}


@dataclass(frozen=True)
class RowError:
    line: int
    column: str | None
    reason: str


@dataclass
class ImportReport:
    kind: Kind
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    enrolled: int = 0
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False

    @property
    def written(self) -> bool:
        return not self.errors and not self.dry_run and (self.created + self.updated + self.enrolled) > 0


@dataclass(frozen=True)
class Table:
    """A spreadsheet's header and rows, each row with the line it came from (the header is line 1)."""

    header: list[str]
    rows: list[tuple[int, dict[str, Any]]]


# --- reading files ------------------------------------------------------------------------------------------


def read_table(path: Path) -> Table:
    """The first sheet of an ``.xlsx`` or a UTF-8 ``.csv`` (a byte-order mark is allowed)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path.read_bytes().decode("utf-8-sig"))
    if suffix == ".xlsx":
        return read_xlsx(path)
    raise DomainError(ErrorCode.INVALID, "the file must be .csv or .xlsx", "file")


def read_csv(text: str) -> Table:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [cell.strip().lower() for cell in next(reader, [])]
    rows: list[tuple[int, dict[str, Any]]] = []
    line = reader.line_num
    for cells in reader:
        if any(cell.strip() for cell in cells):
            rows.append((line + 1, _named(header, cells)))
        line = reader.line_num
    return Table(header, rows)


def read_xlsx(path: Path) -> Table:
    from openpyxl import load_workbook  # type: ignore[import-untyped]

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises several unrelated types for a file that is not a workbook
        raise DomainError(ErrorCode.INVALID, f"not a readable .xlsx workbook: {error}", "file") from None
    try:
        sheet = workbook.worksheets[0]
        values = sheet.iter_rows(values_only=True)
        header = [str(cell).strip().lower() if cell is not None else "" for cell in next(values, ())]
        rows = [
            (number, _named(header, [_cell(cell) for cell in cells]))
            for number, cells in enumerate(values, start=2)
            if any(cell is not None and str(cell).strip() for cell in cells)
        ]
    finally:
        workbook.close()
    return Table(header, rows)


def _cell(value: Any) -> Any:
    """Spreadsheet cells as the text a CSV would hold: dates as ISO dates, whole numbers without ``.0``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _named(header: Sequence[str], cells: Sequence[Any]) -> dict[str, Any]:
    named = {name: cells[index] if index < len(cells) else "" for index, name in enumerate(header) if name}
    for index in range(len(header), len(cells)):
        if str(cells[index]).strip():
            named[f"column {index + 1}"] = cells[index]
    return named


# --- pass one: every row checked --------------------------------------------------------------------------


def check_header(kind: Kind, header: Sequence[str]) -> list[RowError]:
    errors = [RowError(1, name, "unknown column") for name in header if name and name not in COLUMNS[kind]]
    errors += [RowError(1, name, "required column missing") for name in COLUMNS[kind]
               if name in REQUIRED[kind] and name not in header]  # fmt: skip
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            errors.append(RowError(1, name, "column appears twice"))
        seen.add(name)
    return errors


def validate(kind: Kind, table: Table) -> tuple[list[tuple[int, _Row]], list[RowError]]:
    """Each row parsed by its kind's model; a natural key given twice in the file is an error too."""
    errors = check_header(kind, table.header)
    if errors:
        return [], errors
    if len(table.rows) > MAX_ROWS:
        return [], [RowError(1, None, f"at most {MAX_ROWS} rows per file")]
    model, key = ROW_MODELS[kind], COLUMNS[kind][0]
    good: list[tuple[int, _Row]] = []
    first_line: dict[str, int] = {}
    for line, values in table.rows:
        try:
            row = model.model_validate(values)
        except ValidationError as error:
            for problem in error.errors(include_url=False, include_input=False):
                column = str(problem["loc"][0]) if problem["loc"] else None
                errors.append(RowError(line, column, problem["msg"]))
            continue
        natural = str(getattr(row, key)).lower()
        if natural in first_line:
            errors.append(RowError(line, key, f"the same {key} as line {first_line[natural]}"))
            continue
        first_line[natural] = line
        good.append((line, row))
    return good, errors


# --- pass two: references, then writes ----------------------------------------------------------------------


async def import_table(
    session: AsyncSession, principal: Principal, kind: Kind, table: Table, *, dry_run: bool = False
) -> ImportReport:
    """Check every row, then (unless a row is bad or this is a dry run) create or update them all."""
    require_scope(principal, SCOPES[kind])
    if kind is Kind.REGIONS and principal.region_ids is not None:
        raise DomainError(ErrorCode.FORBIDDEN, "only callers who reach the whole organisation may create regions")
    report = ImportReport(kind=kind, rows=len(table.rows), dry_run=dry_run)
    rows, report.errors = validate(kind, table)
    if any(error.line == 1 for error in report.errors):
        return report  # the header is wrong: the rows cannot be read as this kind
    importer = _IMPORTERS[kind](session, principal, report)
    await importer.resolve([row for _line, row in rows], [line for line, _row in rows])
    report.errors.sort(key=lambda error: error.line)
    if report.errors or dry_run:
        return report
    await importer.write()
    return report


class _Importer:
    """One kind's matching and writing; ``plan`` holds (row, existing row or None) after ``resolve``."""

    what = ""

    def __init__(self, session: AsyncSession, principal: Principal, report: ImportReport) -> None:
        self.session, self.principal, self.report = session, principal, report
        self.plan: list[tuple[Any, Any, dict[str, Any]]] = []  # (row, existing, values to store)
        self.known: dict[str, Any] = {}

    async def resolve(self, rows: list[Any], lines: list[int]) -> None:
        self.known = existing = await self.existing([self.key(row) for row in rows])
        for row, line in zip(rows, lines, strict=True):
            try:
                values = await self.values(row)
            except DomainError as error:
                self.report.errors.append(RowError(line, error.field, error.message))
                continue
            found = existing.get(self.key(row))
            if found is None:
                self.report.created += 1
            elif any(getattr(found, name) != value for name, value in values.items()):
                self.report.updated += 1
            else:
                self.report.unchanged += 1
            self.plan.append((row, found, values))

    def key(self, row: Any) -> str:
        raise NotImplementedError

    async def existing(self, keys: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    async def values(self, row: Any) -> dict[str, Any]:
        raise NotImplementedError

    def new(self, values: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def write(self) -> list[tuple[Any, Any]]:
        """Create the new rows in one batch, update the changed ones; every write audited."""
        created: list[Any] = []
        done: list[tuple[Any, Any]] = []
        changed_events: list[tuple[Any, dict[str, Any]]] = []
        for row, found, values in self.plan:
            if found is None:
                target = self.new(values)
                created.append(target)
            else:
                target = found
                changed = sorted(name for name, value in values.items() if getattr(found, name) != value)
                if changed:
                    await audit.bump_version(self.session, found, found.version, self.what)
                    for name in changed:
                        setattr(found, name, values[name])
                    changed_events.append((found, {"changed": changed, "source": "import"}))
            done.append((row, target))
        self.session.add_all(created)
        await self.session.flush()
        await audit.record_many(self.session, self.principal, f"{self.what}.import_create",
                                [(target, self.created_details(target)) for target in created])  # fmt: skip
        await audit.record_many(self.session, self.principal, f"{self.what}.import_update", changed_events)
        return done

    def created_details(self, target: Any) -> dict[str, Any]:
        return {"source": "import"}


class _Regions(_Importer):
    what = "region"

    def key(self, row: Any) -> str:
        return str(row.slug)

    async def existing(self, keys: list[str]) -> dict[str, Any]:
        rows = await self.session.execute(access.in_reach(self.principal, Region))
        return {region.slug: region for region in rows.scalars()}

    async def values(self, row: Any) -> dict[str, Any]:
        return {"slug": row.slug, "name": row.name}

    def new(self, values: dict[str, Any]) -> Any:
        return Region(id=uuid.uuid4(), organisation_id=self.principal.organisation_id, **values)


class _WithRegion(_Importer):
    """Kinds whose rows name a region by slug (resolved once for the whole file)."""

    regions: dict[str, Region] | None = None

    async def region(self, slug: str) -> Region:
        if self.regions is None:
            rows = await self.session.execute(access.in_reach(self.principal, Region))
            self.regions = {region.slug: region for region in rows.scalars()}
        found = self.regions.get(slug)
        if found is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no region {slug!r} (import regions first)", "region")
        return found


class _Groups(_WithRegion):
    what = "group"

    def key(self, row: Any) -> str:
        return str(row.external_reference)

    async def existing(self, keys: list[str]) -> dict[str, Any]:
        statement = access.in_reach(self.principal, Group).where(Group.external_reference.is_not(None))
        return {group.external_reference or "": group for group in (await self.session.execute(statement)).scalars()}

    async def values(self, row: Any) -> dict[str, Any]:
        region = await self.region(row.region)
        return {
            "external_reference": row.external_reference, "region_id": region.id, "name": row.name,
            "topic": row.topic, "delivery_mode": row.delivery_mode, "venue": row.venue,
            "capacity": row.capacity, "status": row.status,
        }  # fmt: skip

    def new(self, values: dict[str, Any]) -> Any:
        return Group(id=uuid.uuid4(), organisation_id=self.principal.organisation_id, **values)

    def created_details(self, target: Any) -> dict[str, Any]:
        return {"source": "import", "region_id": str(target.region_id)}


class _Facilitators(_Importer):
    what = "facilitator"

    def key(self, row: Any) -> str:
        return str(row.external_reference)

    async def existing(self, keys: list[str]) -> dict[str, Any]:
        statement = access.in_reach(self.principal, Facilitator).where(Facilitator.external_reference.is_not(None))
        return {person.external_reference or "": person for person in (await self.session.execute(statement)).scalars()}

    async def values(self, row: Any) -> dict[str, Any]:
        return {
            "external_reference": row.external_reference, "display_name": row.display_name,
            "email": None if row.email is None else row.email.lower(),
            "training_completed_on": row.training_completed_on,
            "background_check_expires_on": row.background_check_expires_on,
        }  # fmt: skip

    def new(self, values: dict[str, Any]) -> Any:
        return Facilitator(id=uuid.uuid4(), organisation_id=self.principal.organisation_id, **values)


class _Participants(_WithRegion):
    what = "participant"
    groups: dict[str, Group] | None = None
    taken: set[str] = set()

    def key(self, row: Any) -> str:
        return str(row.reference)

    async def existing(self, keys: list[str]) -> dict[str, Any]:
        rows = await self.session.execute(access.in_reach(self.principal, Participant))
        found = {person.reference: person for person in rows.scalars()}
        self.taken = await _taken_references(self.session, self.principal)
        return found

    async def values(self, row: Any) -> dict[str, Any]:
        if row.reference not in self.known and row.reference in self.taken:
            raise DomainError(ErrorCode.DUPLICATE, "the reference is already registered", "reference")
        region = await self.region(row.region)
        if row.group is not None:
            await self.group(row.group)
        return {
            "reference": row.reference, "region_id": region.id, "preferred_name": row.preferred_name,
            "contact_email": row.contact_email, "contact_phone": row.contact_phone,
        }  # fmt: skip

    async def group(self, code: str) -> Group:
        if self.groups is None:
            statement = access.in_reach(self.principal, Group).where(Group.external_reference.is_not(None))
            self.groups = {g.external_reference or "": g for g in (await self.session.execute(statement)).scalars()}
        found = self.groups.get(code)
        if found is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no group with external reference {code!r}", "group")
        return found

    def new(self, values: dict[str, Any]) -> Any:
        return Participant(id=uuid.uuid4(), organisation_id=self.principal.organisation_id, **values)

    def created_details(self, target: Any) -> dict[str, Any]:
        return {"source": "import", "region_id": str(target.region_id), "has_email": target.contact_email is not None,
                "has_phone": target.contact_phone is not None}  # fmt: skip

    async def write(self) -> list[tuple[Any, Any]]:
        done = await super().write()
        wanted = [(person, await self.group(row.group)) for row, person in done if row.group is not None]
        if not wanted:
            return done
        statement = access.in_reach(self.principal, Enrolment).where(
            Enrolment.participant_id.in_([person.id for person, _group in wanted]),
            Enrolment.status != EnrolmentStatus.LEFT,
        )
        enrolled = {(e.participant_id, e.group_id) for e in (await self.session.execute(statement)).scalars()}
        for person, group in wanted:
            if (person.id, group.id) not in enrolled:
                await enrolments.enrol_in(self.session, self.principal, person, group)
                self.report.enrolled += 1
        return done


async def _taken_references(session: AsyncSession, principal: Principal) -> set[str]:
    """Every participant reference of the organisation, erased ones included.

    Trusted filter: references are unique across the organisation (a unique constraint), so a new one must
    be checked against all of them, beyond the importer's reach; only the references leave this function.
    """
    statement = sa.select(Participant.reference).where(Participant.organisation_id == principal.organisation_id)
    trusted = access.trusted(statement, reason="organisation-wide reference uniqueness")
    return set((await session.execute(trusted)).scalars())


_IMPORTERS: dict[Kind, type[_Importer]] = {
    Kind.REGIONS: _Regions,
    Kind.GROUPS: _Groups,
    Kind.FACILITATORS: _Facilitators,
    Kind.PARTICIPANTS: _Participants,
}


def describe(kind: Kind) -> str:
    """One line per column, for ``--help`` and the README."""
    model = ROW_MODELS[kind]
    return ", ".join(f"{name}{'' if info.is_required() else '?'}" for name, info in model.model_fields.items())


def iter_errors(report: ImportReport) -> Iterator[str]:
    for error in sorted(report.errors, key=lambda e: (e.line, e.column or "")):
        yield f"line {error.line}, column {error.column or '-'}: {error.reason}"


__all__ = ["COLUMNS", "ImportReport", "Kind", "RowError", "Table", "import_table", "read_table"]
