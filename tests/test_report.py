"""``/exports/report.html``: a self-contained summary, drawn from the suppressed tables, audited like exports."""

from __future__ import annotations

import dataclasses
import html
import re
import uuid
from html.parser import HTMLParser

from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.schema.relay import to_global_id

from .api import GraphQLClient
from .factories import audit_events, principal_for
from .test_analysis import WITHDRAW, dose_cohort
from .test_audit_reads import Api, FailingWriter, api  # noqa: F401  (the fixture)


async def get(gql: GraphQLClient, principal: object | None) -> tuple[int, str, dict[str, str]]:
    headers = {"Authorization": f"Bearer {gql.tokens.issue(principal)}"} if principal else {}  # type: ignore[arg-type]
    response = await gql.http.get("/exports/report.html", headers=headers)
    return response.status_code, response.text, dict(response.headers)


class Loads(HTMLParser):
    """Every element and every attribute that could make a browser fetch or run something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.fetching: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "data", "poster") or name.startswith("on"):
                self.fetching.append((tag, f"{name}={value}"))


def cells_of(body: str, table_class: str, section: str) -> list[list[str]]:
    """The text of each row of the first table of ``table_class`` in an instrument's section."""
    part = body.split(f'id="instrument-{section}"', 1)[1]
    table = part.split(f'class="{table_class}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
    cells = [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
             for row in rows]  # fmt: skip
    return [row for row in cells if row]  # the header row has no <td>


async def test_report_is_self_contained_with_counts_changes_and_dose_charts(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    c = await dose_cohort(db)
    status, body, headers = await get(gql, c["evaluator"])
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert headers["cache-control"] == "no-store"
    loads = Loads()
    loads.feed(body)
    assert loads.fetching == []
    assert "script" not in loads.tags
    assert "link" not in loads.tags
    assert loads.tags.count("svg") == 1  # one follow-up timepoint: one dose-response chart
    assert cells_of(body, "by-timepoint", "phq9") == [
        ["baseline", "7", "14.86", "0", "\u2013", "0", "0", "\u2013", "\u2013"],
        ["follow up 1", "7", "7.86", "7", "-7.00 [-11.95, -2.05]", "5 (71 %)", "0",
         "-1.31 [-2.32, -0.25]", "-1.83 [-3.24, -0.35]"],
        ["all timepoints", "14", "11.36", "7", "-7.00 [-11.95, -2.05]", "5 (71 %)", "0",
         "-1.31 [-2.32, -0.25]", "-1.83 [-3.24, -0.35]"],
    ]  # fmt: skip
    assert cells_of(body, "dose", "phq9") == [
        ["0-3", "2", "-1.00 [-26.41, 24.41]", "0 %"],
        ["4-7", "2", "-7.00 [-19.71, 5.71]", "100 %"],
        ["8+", "3", "-11.00 [-22.38, 0.38]", "100 %"],
    ]
    chart = body.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert chart.count("<circle") == 3
    assert "n=2" in chart
    assert "n=3" in chart
    assert "No instrument" not in body
    assert 'id="instrument-swemwbs"' not in body  # a project instrument nobody answered has no section
    assert (
        '<p class="note unanswered">No responses yet: Short Warwick-Edinburgh Mental Wellbeing Scale (SWEMWBS).' in body
    )


async def test_report_is_suppressed_as_the_aggregates_are(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await dose_cohort(db, threshold=3)
    status, body, _ = await get(gql, c["evaluator"])
    assert status == 200
    assert cells_of(body, "dose", "phq9") == [
        ["0-3", "suppressed"],
        ["4-7", "suppressed"],
        ["8+", "3", "-11.00 [-22.38, 0.38]", "100 %"],
    ]
    for hidden in ("-26.41", "-19.71", "-1.00", "-7.00 [-19"):
        assert hidden not in body
    chart = body.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert chart.count("<circle") == 1
    assert chart.count(">suppressed<") == 2


async def test_a_withdrawal_leaves_the_report_at_once(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await dose_cohort(db)
    await gql.data(
        WITHDRAW, {"p": to_global_id("Participant", c["people"]["E"].id)}, as_=principal_for(c["organisation"])
    )
    _, body, _ = await get(gql, c["evaluator"])
    assert cells_of(body, "dose", "phq9")[2] == ["8+", "2", "-9.00 [-47.12, 29.12]", "100 %"]
    assert cells_of(body, "by-timepoint", "phq9")[0][:2] == ["baseline", "6"]


async def test_report_is_audited_and_refused_like_the_exports(db: AsyncSession, gql: GraphQLClient) -> None:
    c = await dose_cohort(db)
    assert (await get(gql, None))[0] == 401
    status, body, _ = await get(gql, principal_for(c["organisation"]))  # an admin without evaluation:read
    assert status == 403
    assert "instrument-" not in body
    assert (await get(gql, dataclasses.replace(c["evaluator"], evaluation_project_id=None)))[0] == 403
    assert (await get(gql, dataclasses.replace(c["evaluator"], evaluation_project_id=uuid.uuid4())))[0] == 403
    assert await audit_events(db, "evaluation.exported") == []
    assert (await get(gql, c["evaluator"]))[0] == 200
    [event] = await audit_events(db, "evaluation.exported")
    assert (event.target_id, event.details["format"]) == (str(c["project"].id), "html")


async def test_no_report_when_its_audit_cannot_be_written(db: AsyncSession, api: Api) -> None:  # noqa: F811
    c = await dose_cohort(db)
    api.use_writer(FailingWriter())
    token = api.gql.tokens.issue(c["evaluator"])
    response = await api.gql.http.get("/exports/report.html", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert "instrument-" not in response.text
    assert await audit_events(db, "evaluation.exported") == []
