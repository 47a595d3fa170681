"""Compiled reads answer exactly what the resolvers answer: a generated differential test.

The same app is built twice over one data set (``read_equivalence_data``): compiled reads on, and off (the
strawberry resolvers, the reference). Hypothesis draws valid queries from the schema (``querygen``) for four
kinds of caller, asks both apps, and requires the same status and the same body: ``data`` in the same key
order, and errors with the same message, path and ``extensions.code`` (request ids differ by nature). Each
example is a short session of one to three queries, each later one able to carry cursors and IDs from the
answers before it, so paging from a real cursor and ``node(id:)`` of a row just listed are exercised.

The data set is built once per backend and module, inside a transaction rolled back at the end, so the
examples share it (reads only; audited reads add audit rows no query here can see). To reproduce a
failure: hypothesis prints the falsifying queries and a ``@reproduce_failure`` blob, and keeps the example
in its local database so the next run tries it first; ``PROGRAMME_API_READ_EQUIVALENCE_EXAMPLES`` raises
the example budget for a deeper local run.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from programme_api.app import create_app
from programme_api.db import session_factory
from programme_api.domain.errors import DomainError
from programme_api.domain.pseudonyms import open_cursor
from programme_api.schema import schema
from programme_api.schema.relay import to_global_id

from .api import TokenBook, without_throttle_status
from .conftest import UNLIMITED, MigratedDatabase
from .querygen import GeneratedQuery, Pool, harvest, map_cursors, queries
from .read_equivalence_data import PRINCIPALS, build

EXAMPLES = int(os.environ.get("PROGRAMME_API_READ_EQUIVALENCE_EXAMPLES", "40"))
# Shrinking a failure asks both apps hundreds of times (minutes per failing test): opt in when debugging.
SHRINK = os.environ.get("PROGRAMME_API_READ_EQUIVALENCE_SHRINK", "") == "1"
# A survey: every difference is appended to this file (JSON lines) instead of failing the first example.
SURVEY_LOG = os.environ.get("PROGRAMME_API_READ_EQUIVALENCE_LOG")
READ_EQUIVALENCE = settings(
    max_examples=EXAMPLES,
    deadline=None,  # requests on a loaded machine vary; the budget is the example count
    print_blob=True,
    derandomize=False,
    phases=tuple(Phase) if SHRINK else (Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
)
# How often each root field is asked for, by caller (default 1); evaluators mostly ask for their project.
PROGRAMME_WEIGHTS = {"groups": 5, "regions": 4, "sessions": 4, "participants": 3, "facilitators": 3, "node": 2,
                     "nodes": 2}  # fmt: skip
WEIGHTS: dict[str, dict[str, int]] = {
    "org_admin": PROGRAMME_WEIGHTS,
    "region_client": PROGRAMME_WEIGHTS,
    "facilitator": PROGRAMME_WEIGHTS,
    "evaluator": {"evaluation": 12, "viewer": 2, "node": 2, "nodes": 2},
}
# Connections whose cursors are sealed anew on every answer (compared by what they hold).
SEALED_CURSORS = {"EvaluationResponseConnection"}
REGRESSIONS = {
    "nested_list_under_shared_parent": """{ groups(first: 3) { pageInfo { hasNextPage } nodes { name region {
        slug groups(first: 2) { totalCount nodes { name } } } } } }""",
    "sessions_group_sessions": """{ sessions(first: 6) { nodes { startsAt group { name sessions(first: 2) {
        totalCount pageInfo { hasNextPage endCursor } nodes { startsAt status } } } } } }""",
    "groups_facilitators_group_sessions": """{ groups(first: 4) { nodes { name facilitators { role
        facilitator { displayName } group { name sessions(last: 2) { totalCount nodes { startsAt } } } } } } }""",
    "refused_within_days": "{ facilitators(withinDays: 367) { totalCount nodes { displayName } } }",
    "groups_facilitators_group_sessions_paged": """{ groups(first: 4) { nodes { name facilitators { role
        group { name sessions(last: 2) { pageInfo { hasPreviousPage startCursor } nodes { startsAt } } } } } } }""",
    "participants_enrolments_attendance": """{ participants(first: 50) { nodes { reference consents { purpose
        givenAt withdrawnAt inForce } enrolments { status group { name } attendance { status session { startsAt }
        } } } } }""",
    "rollups_over_periods": """{ regions { nodes { totals { activeGroups sessionsHeld uniqueAttendees }
        early: totals(from: "2026-01-01T00:00:00+00:00", to: "2026-02-01T00:00:00Z") { sessionsHeld uniqueAttendees }
        groups { nodes { attendanceRate rate: attendanceRate(from: "2026-01-20T00:00:00+00:00") } } } } }""",
    "survey_instruments_paged": """{ surveyInstruments(first: 2) { totalCount pageInfo { hasNextPage hasPreviousPage
        startCursor endCursor } edges { cursor node { __typename id code version name shipped wordingLicensed } } } }""",
}


@dataclass
class Apps:
    """The two apps over one data set, a token per kind of caller, and the IDs and words to ask with."""

    backend: str
    compiled: httpx.AsyncClient
    full: httpx.AsyncClient
    tokens: dict[str, str]
    pool: Pool
    sealed_cursor_key: bytes

    def open_sealed(self, cursor: str) -> str:
        """What a sealed cursor holds (its bytes differ on every answer), or the cursor when it does not open."""
        try:
            return f"sealed {open_cursor(self.sealed_cursor_key, cursor, 'after')}"
        except DomainError:
            return cursor


@pytest.fixture(scope="module")
async def apps(migrated_database: MigratedDatabase) -> AsyncIterator[Apps]:
    """Both apps on one connection whose transaction holds the data set and is rolled back at the end."""
    async with migrated_database.engine.connect() as connection:
        transaction = await connection.begin()
        session_maker = session_factory(connection, join_transaction_mode="create_savepoint")
        async with session_maker() as db:
            dataset = await build(db)
            await db.commit()
        book = TokenBook()
        clients = []
        for compiled in (True, False):
            # Many examples with the same tokens, some of heavy shapes: no answer may depend on a limit.
            update = {"compiled_reads": compiled, **UNLIMITED}
            settings_ = migrated_database.settings.model_copy(update=update)
            app = create_app(settings_, engine=migrated_database.engine, session_maker=session_maker,
                             authenticate=book.authenticate)  # fmt: skip
            clients.append(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
                )
            )
        pool = Pool(words=dataset.words)
        for value in dataset.ids:
            pool.add_id(value)
        tokens = {who: book.issue(principal) for who, principal in dataset.principals.items()}
        yield Apps(migrated_database.backend, clients[0], clients[1], tokens, pool, dataset.sealed_cursor_key)
        for client in clients:
            await client.aclose()
        await transaction.rollback()


async def ask(client: httpx.AsyncClient, token: str, query: GeneratedQuery) -> tuple[int, Any]:
    response = await client.post(
        "/graphql",
        json={"query": query.text, "variables": query.variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        return response.status_code, response.json()
    except ValueError:  # an app that failed outright answers with a plain-text 500
        return response.status_code, {"text": response.text}


def comparable(status: int, body: Any) -> Any:
    """What must be equal: status, ``data`` with its key order, and errors by message, path and code."""
    errors = sorted(
        (repr(error.get("path")), error.get("message"), (error.get("extensions") or {}).get("code"))
        for error in body.get("errors", [])
    )
    others = {key: value for key, value in body.items() if key not in ("data", "errors")}
    others = without_throttle_status(others)  # both paths must report the same costs, from buckets of their own
    return {"status": status, "data": ordered(body.get("data", "<absent>")), "errors": errors, "others": others}


def ordered(value: Any) -> Any:
    """Dicts as lists of pairs, so that a different key order is a difference too."""
    if isinstance(value, dict):
        return [[key, ordered(item)] for key, item in value.items()]
    if isinstance(value, list):
        return [ordered(item) for item in value]
    return value


def first_difference(compiled: Any, full: Any, path: str = "") -> str:
    """Where two answers first part, for the failure message."""
    if isinstance(compiled, dict) and isinstance(full, dict):
        if list(compiled) != list(full):
            return f"{path or '/'}: keys {list(compiled)} (compiled) vs {list(full)} (resolvers)"
        for key in full:
            if compiled[key] != full[key]:
                return first_difference(compiled[key], full[key], f"{path}/{key}")
    if isinstance(compiled, list) and isinstance(full, list):
        if len(compiled) != len(full):
            return f"{path}: {len(compiled)} items (compiled) vs {len(full)} (resolvers)"
        for index, (left, right) in enumerate(zip(compiled, full, strict=True)):
            if left != right:
                return first_difference(left, right, f"{path}/{index}")
    return f"{path or '/'}: {compiled!r:.300} (compiled) vs {full!r:.300} (resolvers)"


def append_to_survey(record: dict[str, Any]) -> None:
    assert SURVEY_LOG is not None
    with open(SURVEY_LOG, "a") as log:
        log.write(json.dumps(record) + "\n")


class CompilerFailures(logging.Handler):
    """Errors the compiler logged: a statement it built that the database refused is a compiler bug even
    though the executor then answers correctly, so the comparison alone would not show it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        cause = record.exc_info[1] if record.exc_info else None
        self.messages.append(f"{record.getMessage()}: {cause!r:.500}")


COMPILER_FAILURES = CompilerFailures()
logging.getLogger("programme_api.schema.compiler.route").addHandler(COMPILER_FAILURES)


async def assert_same_answer(apps: Apps, who: str, query: GeneratedQuery) -> Any:
    """Asks both apps; returns the resolvers' body after requiring the compiled one to be the same (and the
    compiler not to have failed on the way)."""
    token = apps.tokens[who]
    COMPILER_FAILURES.messages.clear()
    compiled_status, compiled = await ask(apps.compiled, token, query)
    failures = list(COMPILER_FAILURES.messages)
    if failures and not SURVEY_LOG:
        pytest.fail(f"the compiler failed on {apps.backend} as {who}: {failures[0]}\nquery: {query.text}\n"
                    f"variables: {query.variables}", pytrace=False)  # fmt: skip
    full_status, answer = await ask(apps.full, token, query)
    assert full_status == 200, f"the reference refused a generated query ({full_status}): {answer}\n{query.text}"
    full = copy.deepcopy(answer)
    for body in (compiled, full):
        map_cursors(query.selections, body.get("data"), SEALED_CURSORS, apps.open_sealed)
    if comparable(compiled_status, compiled) != comparable(full_status, full):
        where = first_difference(
            {"status": compiled_status, **{k: v for k, v in compiled.items() if k != "errors"}},
            {"status": full_status, **{k: v for k, v in full.items() if k != "errors"}},
        )
        errors = f"errors: {compiled.get('errors')} (compiled) vs {full.get('errors')} (resolvers)"
        if SURVEY_LOG:
            record = {"backend": apps.backend, "who": who, "where": where, "errors": errors,
                      "query": query.text, "variables": query.variables}  # fmt: skip
            append_to_survey(record)
            return answer
        pytest.fail(
            f"compiled reads differ from the resolvers on {apps.backend} as {who}\n{where}\n{errors}\n"
            f"query: {query.text}\nvariables: {query.variables}",
            pytrace=False,
        )
    return answer


# The reference executor sometimes leaves resolver coroutines un-awaited after an error nulls their parent
# (graphql-core drops them); the warning that raises at garbage collection is not a difference between the
# two read paths, so it does not fail this test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("who", PRINCIPALS)
@READ_EQUIVALENCE
@given(data=st.data())
async def test_generated_queries_get_the_resolvers_answer(apps: Apps, who: str, data: st.DataObject) -> None:
    pool = apps.pool.copy()
    for step in range(data.draw(st.sampled_from([2, 1]), label="queries in this session")):
        query = data.draw(queries(schema._schema, pool, WEIGHTS[who]), label=f"query {step + 1}")
        note(f"{apps.backend}, {who}, query {step + 1}:\n{query.text}\nvariables: {query.variables}")
        full = await assert_same_answer(apps, who, query)
        harvest(pool, query.selections, full.get("data"))


@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("name", sorted(REGRESSIONS))
async def test_known_shapes_get_the_resolvers_answer(apps: Apps, who: str, name: str) -> None:
    """Shapes that once differed: a nested list under parents that share a child, and round trips back up."""
    query = GeneratedQuery(REGRESSIONS[name], {}, [])
    full = await assert_same_answer(apps, who, query)
    if name.startswith("refused_"):
        assert full["errors"][0]["extensions"]["code"] in ("INVALID", "INSUFFICIENT_SCOPE"), full
    elif who != "evaluator":  # the evaluator has no programme:read: both paths refuse alike
        assert "errors" not in full, full
        assert full["data"]


@pytest.mark.parametrize("who", ["org_admin", "region_client"])
async def test_a_cursor_of_another_list_gets_the_resolvers_answer(apps: Apps, who: str) -> None:
    """A session cursor (a timestamp key) sent to the regions list (a name key): the same answer, whatever
    each database makes of it (SQLite compares the mismatched values, PostgreSQL refuses the statement)."""
    first = await assert_same_answer(apps, who, GeneratedQuery("{ sessions(first: 1) { edges { cursor } } }", {}, []))
    cursor = first["data"]["sessions"]["edges"][0]["cursor"]
    query = GeneratedQuery("query($c: String) { regions(before: $c) { totalCount nodes { name } } }", {"c": cursor}, [])
    await assert_same_answer(apps, who, query)


@settings(max_examples=150, deadline=None, database=None)
@given(data=st.data())
def test_the_generator_makes_only_valid_queries(data: st.DataObject) -> None:
    """Without a database: whatever the pool holds, every drawn document passes the endpoint's validation
    (``queries`` asserts it) and reads back its own IDs and cursors."""
    pool = Pool(words=["Tuesday"])
    pool.add_id(gid_of("Group", "0b5d3a4e-0000-4000-8000-000000000001"))
    pool.add_cursor("GroupConnection", "WyJCIix7InUiOiIwIn1d")
    who = data.draw(st.sampled_from(PRINCIPALS))
    query = data.draw(queries(schema._schema, pool, WEIGHTS[who]))
    assert query.text.lstrip().startswith(("{", "query"))
    harvest(pool, query.selections, {})


def gid_of(type_name: str, row_id: str) -> str:
    return str(to_global_id(type_name, uuid.UUID(row_id)))
