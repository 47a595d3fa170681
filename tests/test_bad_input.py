"""Bad scalar input through HTTP: every refusal is ``INVALID`` naming the argument, never a 5xx.

Queries answer a top-level error with ``extensions.code: INVALID``, the field's ``path`` and the argument in
``extensions.field``; mutations answer a ``userErrors`` entry (``field: input.x``) and write nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.pagination import encode_cursor
from programme_api.domain.principal import Principal

from .api import GraphQLClient
from .factories import (
    gid,
    make_facilitator,
    make_group,
    make_organisation,
    make_region,
    make_session,
    principal_for,
    row_counts,
)

NUL = "a\x00b"


async def refused(gql: GraphQLClient, query: str, variables: dict[str, Any], as_: Principal) -> dict[str, Any]:
    """The one error of a refused query: INVALID, with a path, within a JSON (never 5xx) answer."""
    body = await gql.execute(query, variables, as_=as_)
    errors = body.get("errors")
    assert errors, body
    assert len(errors) == 1, errors
    error: dict[str, Any] = errors[0]
    assert error["extensions"]["code"] == "INVALID", error
    assert error.get("path"), error
    assert "Unexpected" not in error["message"]
    return error


@pytest.fixture
async def world(db: AsyncSession) -> dict[str, Any]:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    session = await make_session(db, group)
    await make_facilitator(db, organisation)
    return {"organisation": organisation, "region": region, "group": group, "session": session,
            "as": principal_for(organisation)}  # fmt: skip


@pytest.mark.parametrize("days", [2147483647, -1, -2147483648, 367])
async def test_facilitators_within_days_out_of_bounds(gql: GraphQLClient, world: dict[str, Any], days: int) -> None:
    query = "query($d: Int!) { facilitators(withinDays: $d) { totalCount nodes { displayName } } }"
    error = await refused(gql, query, {"d": days}, world["as"])
    assert error["path"] == ["facilitators"]
    assert error["extensions"]["field"] == "withinDays"
    assert "withinDays" in error["message"]


@pytest.mark.parametrize("days", [2147483647, -5])
async def test_compliance_state_within_days_out_of_bounds(gql: GraphQLClient, world: dict[str, Any], days: int) -> None:
    query = "query($d: Int!) { facilitators { nodes { complianceState(withinDays: $d) } } }"
    error = await refused(gql, query, {"d": days}, world["as"])
    assert error["path"] == ["facilitators", "nodes", 0, "complianceState"]
    assert error["extensions"]["field"] == "withinDays"


async def test_within_days_literal_out_of_bounds(gql: GraphQLClient, world: dict[str, Any]) -> None:
    error = await refused(gql, "{ facilitators(withinDays: 2147483647) { totalCount } }", {}, world["as"])
    assert error["extensions"]["field"] == "withinDays"


async def test_attendance_rate_from_without_offset(gql: GraphQLClient, world: dict[str, Any]) -> None:
    query = '{ groups { nodes { attendanceRate(from: "2026-01-01T00:00:00") } } }'
    error = await refused(gql, query, {}, world["as"])
    assert error["path"][-1] == "attendanceRate"
    assert error["extensions"]["field"] == "from"
    assert "offset" in error["message"]


async def test_totals_from_year_one(gql: GraphQLClient, world: dict[str, Any]) -> None:
    query = '{ regions { nodes { totals(from: "0001-01-01T00:00:00+14:00") { activeGroups } } } }'
    error = await refused(gql, query, {}, world["as"])
    assert error["path"][-1] == "totals"
    assert error["extensions"]["field"] == "from"


@pytest.mark.parametrize(
    "value", ["2026-01-01T00:00:00", "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00", "1899-12-31T23:00:00Z"]
)
async def test_sessions_filter_datetime_refused(gql: GraphQLClient, world: dict[str, Any], value: str) -> None:
    query = "query($f: SessionFilter) { sessions(filter: $f) { totalCount nodes { startsAt } } }"
    for name in ("startsFrom", "startsBefore"):
        error = await refused(gql, query, {"f": {name: value}}, world["as"])
        assert error["path"] == ["sessions"]
        assert error["extensions"]["field"] == f"filter.{name}"


async def test_sessions_filter_datetime_at_the_bounds_accepted(gql: GraphQLClient, world: dict[str, Any]) -> None:
    query = "query($f: SessionFilter) { sessions(filter: $f) { totalCount } }"
    filter_ = {"startsFrom": "1900-01-01T00:00:00+00:00", "startsBefore": "2200-12-31T23:59:59+00:00"}
    data = await gql.data(query, {"f": filter_}, as_=world["as"])
    assert data["sessions"]["totalCount"] == 1


async def test_sessions_cursor_on_groups(gql: GraphQLClient, world: dict[str, Any]) -> None:
    sessions = await gql.data("{ sessions { pageInfo { endCursor } } }", as_=world["as"])
    cursor = sessions["sessions"]["pageInfo"]["endCursor"]
    assert cursor
    for argument in ("after", "before"):
        error = await refused(gql, f"query($c: String) {{ groups({argument}: $c) {{ totalCount }} }}", {"c": cursor},
                              world["as"])  # fmt: skip
        assert error["extensions"]["field"] == argument


async def test_cursor_holding_nul_or_far_dates(gql: GraphQLClient, world: dict[str, Any]) -> None:
    """A hand-made cursor of the right shape but with values no list holds is refused like any bad cursor."""
    import uuid
    from datetime import UTC, datetime

    for cursor in (
        encode_cursor((NUL, uuid.uuid4())),
        encode_cursor((datetime(1, 1, 1, tzinfo=UTC), uuid.uuid4())),
    ):
        for list_ in ("groups", "sessions"):
            error = await refused(gql, f"query($c: String) {{ {list_}(after: $c) {{ totalCount }} }}", {"c": cursor},
                                  world["as"])  # fmt: skip
            assert error["extensions"]["field"] == "after"


@pytest.mark.parametrize("search", [NUL, "x" * 1_000_000])
async def test_group_search_refused(gql: GraphQLClient, world: dict[str, Any], search: str) -> None:
    query = "query($s: String) { groups(filter: {search: $s}) { totalCount nodes { name } } }"
    error = await refused(gql, query, {"s": search}, world["as"])
    assert error["path"] == ["groups"]
    assert error["extensions"]["field"] == "filter.search"
    assert "search" in error["message"]


async def test_audit_filter_strings_refused(gql: GraphQLClient, world: dict[str, Any]) -> None:
    query = "query($f: AuditEventFilter) { auditEvents(filter: $f) { totalCount } }"
    for name in ("actorId", "action", "targetType", "targetId"):
        error = await refused(gql, query, {"f": {name: NUL}}, world["as"])
        assert error["extensions"]["field"] == f"filter.{name}"


CREATE_REGION = (
    "mutation($i: CreateRegionInput!) { createRegion(input: $i) { region { id } userErrors { field code message } } }"
)
CREATE_GROUP = (
    "mutation($i: CreateGroupInput!) { createGroup(input: $i) { group { id } userErrors { field code message } } }"
)
CANCEL = "mutation($i: CancelSessionInput!) { cancelSession(input: $i) { session { id } userErrors { field code message } } }"
REGISTER = (
    "mutation($i: RegisterParticipantInput!) "
    "{ registerParticipant(input: $i) { participant { id } userErrors { field code message } } }"
)


async def user_error(
    gql: GraphQLClient, query: str, name: str, input: dict[str, Any], as_: Principal
) -> dict[str, Any]:
    body = await gql.execute(query, {"i": input}, as_=as_)
    assert "errors" not in body, body
    payload = body["data"][name]
    assert len(payload["userErrors"]) == 1, payload
    error: dict[str, Any] = payload["userErrors"][0]
    assert error["code"] == "INVALID", error
    return error


async def test_nul_in_mutation_strings(db: AsyncSession, gql: GraphQLClient, world: dict[str, Any]) -> None:
    as_ = world["as"]
    region, session = world["region"], world["session"]
    before = await row_counts(db)
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        (CREATE_REGION, "createRegion", {"slug": "north", "name": NUL}, "input.name"),
        (CREATE_REGION, "createRegion", {"slug": NUL, "name": "North"}, "input.slug"),
        (CREATE_REGION, "createRegion", {"slug": "north", "name": "North", "idempotencyKey": NUL},
         "input.idempotencyKey"),
        (CREATE_GROUP, "createGroup", {"regionId": gid(region), "name": NUL, "topic": "ANXIETY",
                                        "deliveryMode": "IN_PERSON"}, "input.name"),
        (CREATE_GROUP, "createGroup", {"regionId": gid(region), "name": "Tuesdays", "topic": "ANXIETY",
                                        "deliveryMode": "IN_PERSON", "venue": NUL}, "input.venue"),
        (CANCEL, "cancelSession", {"sessionId": gid(session), "version": session.version, "reason": NUL},
         "input.reason"),
        (REGISTER, "registerParticipant", {"reference": "p-1", "regionId": gid(region), "preferredName": NUL},
         "input.preferredName"),
    ]  # fmt: skip
    for query, name, input, field in cases:
        error = await user_error(gql, query, name, input, as_)
        assert error["field"] == field, (name, error)
    assert await row_counts(db) == before


async def test_overlong_mutation_string(gql: GraphQLClient, world: dict[str, Any]) -> None:
    error = await user_error(gql, CREATE_REGION, "createRegion", {"slug": "north", "name": "x" * 1_000_000},
                             world["as"])  # fmt: skip
    assert error["field"] == "input.name"


def _offsets() -> st.SearchStrategy[timezone]:
    return st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda minutes: timezone(timedelta(minutes=minutes)))


BAD_DAYS = st.integers(-(2**31), -1) | st.integers(367, 2**31 - 1)
BAD_DATETIMES = (
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(datetime.isoformat)
    | st.builds(lambda d, z: d.replace(tzinfo=z).isoformat(),
                st.datetimes(max_value=datetime(1899, 12, 31, 23, 59)) | st.datetimes(min_value=datetime(2201, 1, 1)),
                _offsets())
)  # fmt: skip
BAD_TEXT = st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=10), st.text(max_size=10)) | st.integers(
    201, 20_000
).map(lambda n: "é" * n)
# (query, variable strategy, expected path, expected extensions.field)
CASES = {
    "facilitators.withinDays": ("query($v: Int!) { facilitators(withinDays: $v) { nodes { displayName } } }",
                                BAD_DAYS, ["facilitators"], "withinDays"),
    "complianceState.withinDays": ("query($v: Int!) { facilitators { nodes { complianceState(withinDays: $v) } } }",
                                   BAD_DAYS, ["facilitators", "nodes", 0, "complianceState"], "withinDays"),
    "sessions.filter.startsFrom": ("query($v: DateTime) { sessions(filter: {startsFrom: $v}) { nodes { startsAt } } }",
                                   BAD_DATETIMES, ["sessions"], "filter.startsFrom"),
    "totals.to": ("query($v: DateTime) { regions { nodes { totals(to: $v) { sessionsHeld } } } }",
                  BAD_DATETIMES, ["regions", "nodes", 0, "totals"], "to"),
    "groups.filter.search": ("query($v: String) { groups(filter: {search: $v}) { nodes { name } } }",
                             BAD_TEXT, ["groups"], "filter.search"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data())
async def test_bad_scalar_values_are_invalid_with_their_path(
    gql: GraphQLClient, world: dict[str, Any], case: str, data: st.DataObject
) -> None:
    """Whatever out-of-bounds value a caller sends for these arguments: INVALID, the path, never a 5xx (the
    data is only read, so the examples share the test's rows)."""
    query, values, path, field = CASES[case]
    error = await refused(gql, query, {"v": data.draw(values)}, world["as"])
    assert error["path"] == path
    assert error["extensions"]["field"] == field


async def test_nul_in_outcome_mutation_arguments(db: AsyncSession, gql: GraphQLClient, world: dict[str, Any]) -> None:
    """Mutations with their own payloads (consent, safeguarding, instruments) refuse alike, naming the argument."""
    before = await row_counts(db)
    consent = """mutation($v: String!) { recordConsent(participantId: "UGFydGljaXBhbnQ6MDA", purpose: EVALUATION,
        formVersion: $v) { consent { id } userErrors { field code message } } }"""
    body = await gql.execute(consent, {"v": NUL}, as_=world["as"])
    assert "errors" not in body, body
    assert body["data"]["recordConsent"] == {
        "consent": None,
        "userErrors": [{"field": "formVersion", "code": "INVALID",
                        "message": "'formVersion' must not contain NUL characters"}],
    }  # fmt: skip
    define = """mutation($n: String!) { defineCustomInstrument(code: "x-1", name: $n, definition: {items: ["a\\u0000"]})
        { instrument { id } userErrors { field code } } }"""
    body = await gql.execute(define, {"n": "Name"}, as_=world["as"])
    assert body["data"]["defineCustomInstrument"]["userErrors"] == [{"field": "definition", "code": "INVALID"}]
    assert await row_counts(db) == before


async def test_a_refused_outcome_mutation_input_is_a_typed_user_error(db: AsyncSession, gql: GraphQLClient) -> None:
    """The outcomes payloads (with a non-null result and the deprecated string-coded ``userErrors``) answer a
    refused value like every payload: found by the fuzzer as "Unexpected error" on ``eraseParticipant``."""
    organisation = await make_organisation(db)
    query = """mutation { eraseParticipant(input: { participantId: "a\\u0000b", version: 0 })
        { erased errors { field code } userErrors { field code } } }"""
    payload = (await gql.data(query, as_=principal_for(organisation)))["eraseParticipant"]
    assert payload == {
        "erased": False,
        "errors": [{"field": "input.participantId", "code": "INVALID"}],
        "userErrors": [{"field": "input.participantId", "code": "INVALID"}],
    }


def coercion_refusal(body: dict[str, Any]) -> dict[str, Any]:
    """The one error of a value GraphQL itself refused before anything ran: INVALID, no data."""
    assert "data" not in body or body["data"] is None, body
    errors = body["errors"]
    assert len(errors) == 1, errors
    error: dict[str, Any] = errors[0]
    assert error["extensions"]["code"] == "INVALID", error
    assert "Unexpected" not in error["message"]
    return error


@pytest.mark.parametrize(
    ("query", "field", "path"),
    [
        ("{ facilitators(withinDays: 99999999999) { totalCount } }", "withinDays", ["facilitators"]),
        ('{ facilitators(withinDays: "7") { totalCount } }', "withinDays", ["facilitators"]),
        ("{ g: groups(first: 1.5) { totalCount } }", "first", ["g"]),
        ('{ sessions(filter: {startsFrom: 7}) { totalCount } }', "filter.startsFrom", ["sessions"]),
        ("{ sessions(filter: {bogus: 1}) { totalCount } }", "filter", ["sessions"]),
        ('{ facilitators { nodes { complianceState(withinDays: "x") } } }', "withinDays",
         ["facilitators", "nodes", "complianceState"]),
        ("query($d: Int = 99999999999) { facilitators(withinDays: $d) { totalCount } }", "$d", None),
        ("{ ...F } fragment F on Query { facilitators(withinDays: -99999999999) { totalCount } }", "withinDays", None),
    ],
)  # fmt: skip
async def test_literals_graphql_cannot_coerce_are_invalid_naming_the_argument(
    gql: GraphQLClient, world: dict[str, Any], query: str, field: str, path: list[str] | None
) -> None:
    """A literal GraphQL's own types refuse (past 32 bits, a string for an Int) is refused like the values the
    scalar checks refuse: INVALID, the argument in ``extensions.field``, and the field's path where the
    document alone fixes it (not inside a fragment, whose place depends on where it is spread)."""
    error = coercion_refusal(await gql.execute(query, {}, as_=world["as"], status=400))
    assert error["extensions"]["field"] == field
    assert error.get("path") == path
    assert field in error["message"]
    assert error["locations"]


@pytest.mark.parametrize(
    ("variables", "field", "words"),
    [
        ({"d": "abc"}, "$d", "non-integer"),
        ({"d": 99999999999}, "$d", "32-bit"),
        ({"d": 2**70}, "$d", "32-bit"),
        ({}, "$d", "to be provided"),
        ({"d": None}, "$d", "null"),
    ],
)
async def test_variables_graphql_cannot_coerce_are_invalid_naming_the_variable(
    gql: GraphQLClient, world: dict[str, Any], variables: dict[str, Any], field: str, words: str
) -> None:
    query = "query($d: Int!) { facilitators(withinDays: $d) { totalCount } }"
    error = coercion_refusal(await gql.execute(query, variables, as_=world["as"], status=400))
    assert error["extensions"]["field"] == field
    assert error["message"].startswith("Variable '$d'"), error
    assert words in error["message"]
    assert error["locations"] == [{"line": 1, "column": 7}]


async def test_an_input_object_variable_graphql_cannot_coerce_is_invalid(
    gql: GraphQLClient, world: dict[str, Any]
) -> None:
    query = "query($f: SessionFilter) { sessions(filter: $f) { totalCount } }"
    error = coercion_refusal(await gql.execute(query, {"f": {"startsFrom": 7}}, as_=world["as"], status=400))
    assert error["extensions"]["field"] == "$f"
    assert "startsFrom" in error["message"]


async def test_other_validation_refusals_keep_their_code(gql: GraphQLClient, world: dict[str, Any]) -> None:
    """Only refused values are INVALID: an unused variable or an unknown field stays a validation failure."""
    for query in ("query($d: Int) { facilitators { totalCount } }", "{ facilitators { nonsense } }"):
        body = await gql.execute(query, {}, as_=world["as"], status=400)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["GRAPHQL_VALIDATION_FAILED"], body
