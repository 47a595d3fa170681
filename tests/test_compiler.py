"""The read compiler (``schema/compiler/``): one statement builds the ``data`` JSON, on SQLite and PostgreSQL.

Each shape it knows must give exactly the executor's answer from one statement within the caller's reach;
values are bind parameters (one statement text per document and access shape); anything it does not know,
and every error case, is answered by the executor.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import Role
from programme_api.domain.principal import Principal

from .api import TokenBook
from .factories import (
    principal_for,
)
from .test_compiled_reads import seed

ONE_STATEMENT = {
    "benchmark_dashboard": """query RegionDashboard { regions { edges { node { name groups(first: 50) { edges {
        node { name facilitators { role facilitator { displayName } }
        sessions(last: 20) { edges { node { startsAt status attendanceCounts { present excused unexcused dropins }
        } } } } } } } } } }""",
    "session_page": """{ sessions(first: 100) { edges { cursor node { id startsAt endsAt status dropinCount
        cancellationReason } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }""",
    "references_and_children": """{ groups(last: 4) { totalCount __typename nodes { id name topic deliveryMode
        venue capacity status version region { id slug name } facilitators { __typename role
        facilitator { id displayName trainingCompletedOn backgroundCheckExpiresOn assignments { role group { name } } }
        } sessions(first: 2) { totalCount pageInfo { hasNextPage endCursor } nodes { group { name }
        attendance { status recordedAt participant { reference } session { id } } } } } } }""",
    "aliases_fragments_directives": """query($skip: Boolean!, $n: Int) {
        a: groups(first: $n) { ...G } b: groups(first: 0) { nodes { name } pageInfo { hasNextPage startCursor } }
        participants(first: 3) { edges { __typename cursor node { ... on Participant { id reference version
          enrolments { status requestedAt group { name } participant { reference } } } } } }
        __typename }
        fragment G on GroupConnection { totalCount nodes { name region @skip(if: $skip) { name } } }""",
    "empty_lists": "{ facilitators(first: 2) { nodes { displayName assignments { role } } } }",
    "dated_filter": """{ compliant: facilitators(compliance: COMPLIANT, withinDays: 60) { totalCount nodes { displayName } }
        expiring: facilitators(compliance: CHECK_EXPIRING) { totalCount } }""",
    "filters": """query($f: GroupFilter, $s: SessionFilter) { groups(filter: $f) { totalCount nodes { name } }
        sessions(filter: $s, last: 3) { nodes { startsAt status } } }""",
    "duplicate_parents": """{ groups(first: 3) { pageInfo { hasNextPage } nodes { name region { slug
        groups(first: 2) { totalCount nodes { name } } } } } }""",
}
# Nested deeper than the fixed parser stack of SQLite before 3.46 allows: answered by the executor there.
TOO_DEEP_FOR_OLD_SQLITE = {"benchmark_dashboard"}
VARIABLES: dict[str, dict[str, Any]] = {
    "aliases_fragments_directives": {"skip": False, "n": 2},
    "filters": {"f": {"search": "0-", "statuses": ["ACTIVE"]}, "s": {"statuses": ["HELD", "CANCELLED"]}},
}


async def post(client: httpx.AsyncClient, tokens: TokenBook, principal: Principal, query: str, **variables: Any) -> Any:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {tokens.issue(principal)}"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


@pytest.mark.parametrize("name", sorted(ONE_STATEMENT))
async def test_one_statement_gives_the_executors_answer(
    db: AsyncSession, two_clients, statement_counter, name: str, backend: str
) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    deep = backend == "sqlite" and name in TOO_DEEP_FOR_OLD_SQLITE and sqlite3.sqlite_version_info < (3, 46)
    organisation = await seed(db)
    query, variables = ONE_STATEMENT[name], VARIABLES.get(name, {})
    for principal in (principal_for(organisation), principal_for(organisation, role=Role.COORDINATOR)):
        statement_counter.reset()
        fast = await post(compiled, tokens, principal, query, **variables)
        assert deep or statement_counter.count == 1, f"{name} was not answered by one statement"
        slow = await post(full, tokens, principal, query, **variables)
        assert "errors" not in slow, slow
        assert fast == slow
