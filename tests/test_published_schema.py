"""schema.graphql is the published contract: the code's schema must match it exactly."""

from __future__ import annotations

from typer.testing import CliRunner

from programme_api.cli import app
from programme_api.schema import PUBLISHED_SCHEMA, print_schema_sdl


def test_code_schema_matches_the_committed_schema() -> None:
    assert PUBLISHED_SCHEMA.read_text() == print_schema_sdl(), (
        "the GraphQL schema changed: review the diff and run `programme-api schema print > schema.graphql`"
    )


def test_schema_print_prints_the_sdl() -> None:
    result = CliRunner().invoke(app, ["schema", "print"])
    assert result.exit_code == 0
    assert result.stdout == print_schema_sdl()
    assert "type Query" in result.stdout


def test_descriptions_name_the_scope_each_root_field_needs() -> None:
    from programme_api.schema import schema

    query_type = schema._schema.query_type
    assert query_type is not None
    unscoped = {"viewer", "node", "nodes"}
    for name, field in query_type.fields.items():
        if name not in unscoped:
            assert "Requires `" in (field.description or ""), name
