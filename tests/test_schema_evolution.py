"""Schema evolution: the code's schema may not break the published one, except by removing what was
deprecated; the SDL is served at /schema.graphql; uses of deprecated members are counted per client."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest
from graphql import build_schema, parse
from prometheus_client import generate_latest

from programme_api.schema import PUBLISHED_SCHEMA, evolution, print_schema_sdl, schema
from programme_api.web import graphql as graphql_endpoint
from programme_api.web.metrics import REGISTRY

from .api import TokenBook
from .factories import make_organisation, principal_for
from .test_cli import invoke

PUBLISHED = """
enum Status { OPEN CLOSED ARCHIVED @deprecated(reason: "use CLOSED") }
type Query {
  groups(status: Status): [Group!]!
  legacyGroups: [Group!]! @deprecated(reason: "use groups")
}
type Group { name: String! venue: String }
"""


def changes_to(current_sdl: str) -> list[evolution.Change]:
    return evolution.compare(PUBLISHED, build_schema(current_sdl))


def test_the_code_breaks_nothing_that_was_published() -> None:
    changes = evolution.compare(PUBLISHED_SCHEMA.read_text(), schema._schema)
    assert evolution.breaking(changes) == []


def test_removing_a_field_nobody_was_warned_about_is_breaking() -> None:
    changes = changes_to("""enum Status { OPEN CLOSED ARCHIVED }
        type Query { groups(status: Status): [Group!]! legacyGroups: [Group!]! } type Group { name: String! }""")
    assert [str(change) for change in evolution.breaking(changes)] == ["BREAKING: Field Group.venue was removed."]


def test_removing_what_was_deprecated_is_allowed() -> None:
    changes = changes_to("""enum Status { OPEN CLOSED }
        type Query { groups(status: Status): [Group!]! } type Group { name: String! venue: String }""")
    assert len(changes) == 2
    assert all(change.allowed for change in changes)
    assert evolution.breaking(changes) == []


def test_narrowing_a_type_is_breaking_even_for_a_deprecated_field() -> None:
    changes = changes_to("""enum Status { OPEN CLOSED ARCHIVED @deprecated(reason: "use CLOSED") }
        type Query { groups(status: Status): [Group!]! legacyGroups: Int @deprecated(reason: "use groups") }
        type Group { name: String! venue: String }""")
    assert [change.allowed for change in changes] == [False]


def test_schema_check_command_exits_1_on_a_breaking_change(tmp_path: Path) -> None:
    published = tmp_path / "published.graphql"
    published.write_text(print_schema_sdl().replace("type Query {", "type Query {\n  retiredField: Int\n", 1))
    code, out, err = invoke("schema", "check", str(published))
    assert code == 1
    assert "BREAKING: Field Query.retiredField was removed." in out
    assert err.strip() == "error: 1 breaking change(s) to the published schema; deprecate first"

    published.write_text(
        print_schema_sdl().replace("type Query {", 'type Query {\n  retiredField: Int @deprecated(reason: "x")\n', 1)
    )
    code, out, err = invoke("schema", "check", str(published))
    assert code == 0, err
    assert "allowed: it was deprecated: Field Query.retiredField was removed." in out


def test_schema_check_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    code, _, err = invoke("schema", "check", str(tmp_path / "nothing.graphql"))
    assert code == 1
    assert err.startswith("error: cannot read ")
    assert len(err.splitlines()) == 1


def test_deprecated_uses_names_fields_and_enum_values_once() -> None:
    published = build_schema(PUBLISHED)
    document = parse("{ groups(status: ARCHIVED) { name } legacyGroups { name } again: legacyGroups { venue } }")
    assert evolution.deprecated_uses(published, document) == ("Status.ARCHIVED", "Query.legacyGroups")
    assert evolution.deprecated_uses(published, parse("{ groups(status: OPEN) { name } }")) == ()


async def test_sdl_is_served_without_a_token(http: tuple[httpx.AsyncClient, TokenBook]) -> None:
    client, _ = http
    response = await client.get("/schema.graphql")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/graphql")
    assert response.text == PUBLISHED_SCHEMA.read_text()


async def test_uses_of_deprecated_members_are_counted_per_client(
    http: tuple[httpx.AsyncClient, TokenBook],
    db,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    client, tokens = http
    organisation = await make_organisation(db)
    principal = dataclasses.replace(principal_for(organisation), client_id="partner-app-7")
    published = build_schema('type Query { organisation: Organisation @deprecated(reason: "x") } '
                             "type Organisation { name: String }")  # fmt: skip
    monkeypatch.setattr(graphql_endpoint, "deprecated_members",
                        lambda query: evolution.deprecated_uses(published, parse(query)))  # fmt: skip
    before = _count("partner-app-7", "Query.organisation")
    response = await client.post("/graphql", json={"query": "{ organisation { name } }"},
                                 headers={"Authorization": f"Bearer {tokens.issue(principal)}"})  # fmt: skip
    assert response.status_code == 200, response.text
    assert _count("partner-app-7", "Query.organisation") == before + 1


def _count(client: str, member: str) -> float:
    label = f'programme_api_deprecated_field_uses_total{{client="{client}",member="{member}"}}'
    for line in generate_latest(REGISTRY).decode().splitlines():
        if line.startswith(label):
            return float(line.split()[-1])
    return 0.0
