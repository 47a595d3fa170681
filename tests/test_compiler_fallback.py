"""A field the declared policy does not know is the executor's: the whole operation falls back, with the
executor's answer, whoever asks (fields added to a type later, evaluator reads, derived outcome fields)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.schema.compiler import policy, route

from .api import TokenBook
from .factories import evaluator_for, make_project, principal_for
from .test_compiled_reads import seed
from .test_compiler import _reads_by_path, post

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


async def reads(client: httpx.AsyncClient) -> dict[str, float]:
    return _reads_by_path((await client.get("/metrics")).text)


@pytest.mark.parametrize(
    ("type_name", "field_name", "query"),
    [
        ("Group", "topic", "{ groups(first: 3) { nodes { name topic } } }"),
        ("RegionTotals", "sessionsHeld", "{ regions { nodes { totals { activeGroups sessionsHeld } } } }"),
        ("Enrolment", "attendance", "{ participants(first: 2) { nodes { enrolments { attendance { status } } } } }"),
    ],
)
async def test_a_field_missing_from_the_policy_is_answered_by_the_executor(
    db: AsyncSession,
    two_clients: tuple[TokenBook, httpx.AsyncClient, httpx.AsyncClient],
    monkeypatch: pytest.MonkeyPatch,
    type_name: str,
    field_name: str,
    query: str,
) -> None:
    """As a field added to the schema and not (yet) declared: the compiler refuses the operation and
    remembers it; the executor answers exactly as it does without compiled reads."""
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    principal = principal_for(organisation)
    monkeypatch.delitem(policy.FIELDS, (type_name, field_name))
    monkeypatch.setattr(route, "_cache", type(route._cache)())
    before = await reads(compiled)
    answer = await post(compiled, tokens, principal, query)
    after = await reads(compiled)
    assert after.get("executor", 0) - before.get("executor", 0) == 1
    assert after.get("compiled", 0) == before.get("compiled", 0)
    assert answer == await post(full, tokens, principal, query)
    assert "errors" not in answer
    assert list(route._cache.values()) == [None]


async def test_evaluation_reads_are_answered_by_the_executor(
    db: AsyncSession, two_clients: tuple[TokenBook, httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    """``evaluation { responses aggregates }`` (suppressed outcome tables, their derived fields, whatever
    fields they grow) are read by their resolvers, which record the audited read; the compiler never
    compiles them, for an evaluator or anyone else."""
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    project = await make_project(db, organisation)
    query = "{ evaluation { slug name suppressionThreshold } }"
    for principal in (principal_for(organisation), evaluator_for(organisation, project)):
        before = await reads(compiled)
        answer = await post(compiled, tokens, principal, query)
        after = await reads(compiled)
        assert after.get("executor", 0) - before.get("executor", 0) == 1
        assert after.get("compiled", 0) == before.get("compiled", 0)
        assert answer == await post(full, tokens, principal, query)
    assert answer["data"]["evaluation"]["slug"] == project.slug
    assert policy.policy_of("Query", "evaluation") is not None
    assert policy.policy_of("Query", "evaluation").read is policy.Read.RESOLVER  # type: ignore[union-attr]
    assert not any(type_name.startswith("Evaluation") for type_name, _field in policy.FIELDS)
