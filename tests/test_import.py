"""`programme-api import ORGANISATION FILE --kind KIND [--dry-run]` against a migrated SQLite file database.

Given the organisation "acme" (regions north and south), when a spreadsheet is imported, then every row is
checked before anything is written, each bad row is reported by line, column and reason, and a second import
of the same file changes nothing.
"""

# Fixtures are imported by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811
from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from openpyxl import Workbook

from programme_api.config import Settings
from programme_api.domain.models import AuditEvent, Enrolment, Facilitator, Group, Participant, Region

from .test_oauth_cli import cli_settings, invoke, query

GROUPS = """external_reference,region,name,topic,delivery_mode,venue,capacity
G-1,north,Tuesday walkers,loneliness,in_person,Library,2
G-2,south,Online circle,anxiety,online,,
"""
PARTICIPANTS = """reference,region,preferred_name,contact_email,contact_phone,group
P-001,north,Ann,ann@example.org,+44 7700 900001,G-1
P-002,north,Bo,,,G-1
P-003,north,Cy,,,G-1
P-004,south,,,,
"""


def run_import(tmp: Path, name: str, text: str, kind: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    code, out, err = invoke("import", "acme", str(path), "--kind", kind, "--json", *extra)
    return code, json.loads(out), err


def count(settings: Settings, model: Any) -> int:
    return int(query(settings, sa.select(sa.func.count()).select_from(model))[0][0])


def test_a_whole_organisation_imports_and_a_second_import_changes_nothing(cli_settings: Settings,
                                                                          tmp_path: Path) -> None:  # fmt: skip
    code, report, err = run_import(tmp_path, "regions.csv", "slug,name\nnorth,North\neast,East\n", "regions")
    assert code == 0, err
    assert (report["created"], report["updated"], report["unchanged"]) == (1, 1, 0)  # north renamed, east new
    assert run_import(tmp_path, "groups.csv", GROUPS, "groups")[1]["created"] == 2
    facilitators = ("external_reference,display_name,email,training_completed_on,background_check_expires_on\n"
                    "F-1,Fran,Fran@Example.org,2026-01-10,2027-06-30\n")  # fmt: skip
    assert run_import(tmp_path, "facilitators.csv", facilitators, "facilitators")[1]["created"] == 1
    code, report, err = run_import(tmp_path, "participants.csv", PARTICIPANTS, "participants")
    assert code == 0, err
    assert (report["created"], report["enrolled"], report["errors"]) == (4, 3, [])
    statuses = sorted(row.status.value for row in query(cli_settings, sa.select(Enrolment.status)))
    assert statuses == ["active", "active", "waitlisted"]  # capacity 2: the third waits
    (fran,) = query(cli_settings, sa.select(Facilitator))
    assert (fran.email, fran.background_check_expires_on) == ("fran@example.org", date(2027, 6, 30))
    events = count(cli_settings, AuditEvent)

    for name, text, kind in (("groups.csv", GROUPS, "groups"), ("participants.csv", PARTICIPANTS, "participants"),
                             ("facilitators.csv", facilitators, "facilitators")):  # fmt: skip
        code, again, err = run_import(tmp_path, name, text, kind)
        assert code == 0, err
        assert (again["created"], again["updated"], again["enrolled"]) == (0, 0, 0)
        assert again["unchanged"] == again["rows"]
    assert count(cli_settings, AuditEvent) == events  # nothing written, so nothing audited
    assert count(cli_settings, Participant) == 4
    assert count(cli_settings, Enrolment) == 3


def test_every_bad_row_is_reported_and_nothing_is_written(cli_settings: Settings, tmp_path: Path) -> None:
    run_import(tmp_path, "groups.csv", GROUPS, "groups")
    bad = """reference,region,preferred_name,contact_email,contact_phone,group
P-001,north,Ann,ann@example.org,,
P 002,north,Bo,,,
P-003,west,Cy,,,
P-004,north,Di,not-an-email,,
P-001,north,Ann again,,,
P-005,north,Ed,,,G-404
"""
    code, report, _err = run_import(tmp_path, "participants.csv", bad, "participants")
    assert code == 1
    found = [(error["line"], error["column"]) for error in report["errors"]]
    assert found == [(3, "reference"), (4, "region"), (5, "contact_email"), (6, "reference"), (7, "group")]
    reasons = {error["line"]: error["reason"] for error in report["errors"]}
    assert reasons[6] == "the same reference as line 2"
    assert reasons[4] == "no region 'west' (import regions first)"
    assert count(cli_settings, Participant) == 0
    assert not report["written"]


def test_an_unknown_or_missing_column_is_refused(cli_settings: Settings, tmp_path: Path) -> None:
    code, report, _err = run_import(tmp_path, "regions.csv", "slug,nmae\nnorth,North\n", "regions")
    assert code == 1
    assert report["errors"] == [
        {"line": 1, "column": "nmae", "reason": "unknown column"},
        {"line": 1, "column": "name", "reason": "required column missing"},
    ]


def test_a_dry_run_reports_and_writes_nothing(cli_settings: Settings, tmp_path: Path) -> None:
    code, report, err = run_import(tmp_path, "groups.csv", GROUPS, "groups", "--dry-run")
    assert code == 0, err
    assert (report["created"], report["dry_run"], report["written"]) == (2, True, False)
    assert count(cli_settings, Group) == 0


def test_a_changed_row_is_updated_and_its_version_bumped(cli_settings: Settings, tmp_path: Path) -> None:
    run_import(tmp_path, "groups.csv", GROUPS, "groups")
    changed = GROUPS.replace(
        "Tuesday walkers,loneliness,in_person,Library,2", "Wednesday walkers,loneliness,in_person,Library,8"
    )
    code, report, err = run_import(tmp_path, "groups.csv", changed, "groups")
    assert code == 0, err
    assert (report["updated"], report["unchanged"]) == (1, 1)
    (group,) = query(cli_settings, sa.select(Group).where(Group.external_reference == "G-1"))
    assert (group.name, group.capacity, group.version) == ("Wednesday walkers", 8, 2)
    (event,) = query(cli_settings, sa.select(AuditEvent).where(AuditEvent.action == "group.import_update"))
    assert event.details == {"changed": ["capacity", "name"], "source": "import"}


def test_an_xlsx_workbook_imports_like_a_csv(cli_settings: Settings, tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["External_Reference", "Display_Name", "Training_Completed_On", "Background_Check_Expires_On"])
    sheet.append(["F-9", "Gus", date(2026, 2, 1), date(2028, 2, 1)])
    sheet.append([None, None, None, None])
    sheet.append([101, "Hal", None, None])
    path = tmp_path / "facilitators.xlsx"
    workbook.save(path)
    code, out, err = invoke("import", "acme", str(path), "--kind", "facilitators", "--json")
    assert code == 0, err
    assert json.loads(out)["created"] == 2
    rows = {row.external_reference: row for row in query(cli_settings, sa.select(Facilitator))}
    assert rows["F-9"].training_completed_on == date(2026, 2, 1)
    assert rows["101"].display_name == "Hal"


def test_the_text_report_names_line_column_and_reason(cli_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "regions.csv"
    path.write_text("slug,name\nNorth Side,North\n")
    code, _out, err = invoke("import", "acme", str(path), "--kind", "regions")
    assert code == 1
    assert "line 2, column slug: String should match pattern" in err
    assert err.strip().endswith("error: 1 bad row(s); nothing was written")
    assert count(cli_settings, Region) == 2
