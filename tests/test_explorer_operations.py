"""The explorer's saved operations: every one valid against the published schema, and each role has its own.

The operations are data (``explorer/static/saved-operations.json``) that explorer.js loads; a renamed field or
argument in the schema must fail here, not in a coordinator's browser.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse, validate

from programme_api.domain.models import Role
from programme_api.explorer.page import SAVED_OPERATIONS, STATIC_DIR
from programme_api.schema import schema

OPERATIONS: list[dict[str, Any]] = json.loads((STATIC_DIR / SAVED_OPERATIONS).read_text())
# The variables each builder in explorer.js makes (``VARIABLES`` there).
BUILDERS = {"thisWeek": {"startsFrom", "startsBefore"}, "thisMonth": {"from", "to"}, "instrument": {"instrumentCode"}}


def ids(operation: dict[str, Any]) -> str:
    return str(operation["id"])


@pytest.mark.parametrize("operation", OPERATIONS, ids=ids)
def test_every_saved_operation_is_valid_against_the_schema(operation: dict[str, Any]) -> None:
    document = parse(operation["query"])
    errors = validate(schema._schema, document)
    assert errors == [], f"{operation['title']}: {[error.message for error in errors]}"
    (definition,) = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert definition.operation.value == "query"
    declared = {variable.variable.name.value for variable in definition.variable_definitions or ()}
    assert declared == BUILDERS.get(operation["variables"], set())


def test_the_validation_catches_an_argument_that_does_not_exist() -> None:
    """What the "Open safeguarding alerts" operation once did: an argument the field does not have."""
    errors = validate(schema._schema, parse("{ safeguardingAlerts(acknowledged: false, first: 50) { totalCount } }"))
    assert [error.message for error in errors] == [
        "Unknown argument 'acknowledged' on field 'Query.safeguardingAlerts'."
    ]


def test_operations_are_well_formed_and_unique() -> None:
    roles = {role.value for role in Role}
    assert len({operation["id"] for operation in OPERATIONS}) == len(OPERATIONS)
    for operation in OPERATIONS:
        assert set(operation) == {"id", "title", "description", "roles", "variables", "query"}
        assert operation["roles"]
        assert set(operation["roles"]) <= roles
        assert operation["variables"] is None or operation["variables"] in BUILDERS


def test_explorer_js_defines_every_variable_builder() -> None:
    script = (STATIC_DIR / "explorer.js").read_text()
    block = script[script.index("var VARIABLES = {") :]
    defined = set(re.findall(r"^    (\w+): function", block, re.M))
    assert set(BUILDERS) <= defined


@pytest.mark.parametrize(
    ("role", "fields"),
    [
        ("org_admin", {"users", "oauthClients", "auditEvents"}),
        ("evaluator", {"evaluation.responses", "evaluation.aggregates"}),
        ("coordinator", {"groups.roster", "safeguardingAlerts"}),
    ],
)
def test_each_role_has_its_operations(role: str, fields: set[str]) -> None:
    mine = " ".join(operation["query"] for operation in OPERATIONS if role in operation["roles"])
    for path in fields:
        assert all(re.search(rf"\b{part}\b", mine) for part in path.split(".")), path


def test_the_file_is_served_beside_the_other_assets() -> None:
    assert Path(STATIC_DIR / SAVED_OPERATIONS).is_file()
