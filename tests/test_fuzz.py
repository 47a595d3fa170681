"""Fuzzing the running service: schemathesis in GraphQL mode against ``programme-api serve`` on PostgreSQL.

Every root field of the published ``schema.graphql``, queries and mutations, gets generated documents (valid
selections, arguments of every shape the schema allows: huge integers, odd strings, random IDs, dates far
out) sent over HTTP to a real server holding the demo data, with the bearer token of a client that has every
scope (bound to the demo evaluation project, so ``evaluation`` answers too). The server runs as the non-owner
role, so row-level security applies. Whatever the input, the answer must be no 5xx, and no body may carry a
traceback or a Python exception's class name.

The budget is fixed (``EXAMPLES`` per field, derandomized: the same documents every run) so that the whole
module fits in CI in about two minutes; a failure prints the document that caused it.
"""

from __future__ import annotations

import builtins
import os
import re
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.config import Settings
from programme_api.db import create_engine
from programme_api.domain.demo import load_demo
from programme_api.domain.models import EvaluationProject, Organisation
from programme_api.domain.principal import ALL_SCOPES
from programme_api.oauth.clients import create_client
from programme_api.schema import schema as api_schema

from .api import free_port
from .conftest import app_role_url, create_postgres_database, drop_postgres_database, grant_app_role, migrate
from .test_oauth_workers import wait_until_ready

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("PROGRAMME_API_FUZZ_EXAMPLES", "20"))

# The JSON scalar (custom instrument definitions) has no built-in strategy: small literals of each kind.
schemathesis.graphql.scalar(
    "JSON",
    st.one_of(
        st.integers(min_value=-(2**31), max_value=2**31 - 1).map(nodes.Int),
        st.text(max_size=30).map(nodes.String),
        st.booleans().map(nodes.Boolean),
    ),
)
# The built-in scalars get the inputs that broke services like this one before, beside hypothesis's own.
NASTY_STRINGS = [
    "", " ", "\x00", "a\x00b", "x" * 20_000, "'; DROP TABLE groups; --", "%_\\", "\u202e\U0001f600", "null",
    "2026-01-01T00:00:00", "R3JvdXA6bm90LWEtdXVpZA", "R3JvdXBTZXNzaW9uOjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMA",
]  # fmt: skip
NASTY_DATETIMES = [
    "2026-01-01T00:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "1899-12-31T23:59:59Z",
    "2026-02-30T10:00:00Z", "2026-03-29T01:30:00+01:00", "yesterday", "",
]  # fmt: skip
schemathesis.graphql.scalar("String", st.one_of(st.text(max_size=40), st.sampled_from(NASTY_STRINGS)).map(nodes.String))
schemathesis.graphql.scalar("ID", st.one_of(st.text(max_size=40), st.sampled_from(NASTY_STRINGS)).map(nodes.String))
schemathesis.graphql.scalar(
    "DateTime",
    st.one_of(
        st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)).map(
            datetime.isoformat
        ),
        st.sampled_from(NASTY_DATETIMES),
    ).map(nodes.String),
)
schemathesis.graphql.scalar(
    "Int",
    st.one_of(
        st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, -1, 1, 100, 101, 366, 367, 2**31 - 1, -(2**31)])
    ).map(nodes.Int),
)
SCHEMA = schemathesis.graphql.from_path(ROOT / "schema.graphql")
#: Answers masked as "Unexpected error" (an exception the service did not expect, logged with its trace):
#: not a leak nor a 5xx, so not a failure of this test, but each is a defect, listed after the run.
MASKED: list[str] = []

#: Exception class names that must never reach a client: every built-in one, and the libraries' the service uses.
LIBRARY_EXCEPTIONS = [
    "IntegrityError",
    "DBAPIError",
    "ProgrammingError",
    "DataError",
    "InterfaceError",
    "StatementError",
    "UntranslatableCharacterError",
    "CharacterNotInRepertoireError",
    "InvalidTextRepresentationError",
    "NumericValueOutOfRangeError",
    "DatetimeFieldOverflowError",
    "InvalidDatetimeFormatError",
    "GraphQLError",
    "CancelledError",
    "AccessBypassError",
    "NotFound",
    "DomainError",
]
BUILTIN_EXCEPTIONS = [name for name in dir(builtins) if name.endswith(("Error", "Exception")) and name[0].isupper()]
EXCEPTION_NAMES = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+|\b(?:"
    + "|".join(sorted({*BUILTIN_EXCEPTIONS, *LIBRARY_EXCEPTIONS}))
    + r")\b"
)
#: Type names of the schema itself that end like exception names (``UserError``) are data, not leaks.
SCHEMA_TYPES = {name for name in api_schema._schema.type_map if name.endswith(("Error", "Exception"))}


@dataclass(frozen=True)
class Target:
    base_url: str
    token: str


@pytest.fixture(scope="module")
async def target(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    """A migrated PostgreSQL database with the demo data, served by ``programme-api serve`` as the app role."""
    directory = tmp_path_factory.mktemp("fuzz")
    url = await create_postgres_database(f"programme_api_fuzz_{os.getpid()}")
    engine = create_engine(Settings(database_url=url))
    process: subprocess.Popen[bytes] | None = None
    try:
        await migrate(engine)
        await grant_app_role(engine)
        async with AsyncSession(engine, expire_on_commit=False) as db:
            await load_demo(db)
            project = await db.scalar(sa.select(EvaluationProject).where(EvaluationProject.slug == "demo-evaluation"))
            assert project is not None
            organisation = await db.get_one(Organisation, project.organisation_id)
            created = await create_client(
                db, organisation_slug=organisation.slug, name="Fuzzer", scope=" ".join(sorted(ALL_SCOPES)),
                region_slugs=[], grants=[], redirect_uris=[], evaluation_project_slug="demo-evaluation", public=False,
            )  # fmt: skip
            await db.commit()
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "PROGRAMME_API_DATABASE_URL": app_role_url(url),
            "PROGRAMME_API_SECRET_KEY_FILE": str(directory / "keys.json"),
            "PROGRAMME_API_ISSUER": base_url,
            "PROGRAMME_API_LOG_FORMAT": "console",
        }
        env.pop("PROGRAMME_API_REDIS_URL", None)
        log = directory / "serve.log"
        command = [sys.executable, "-c", "from programme_api.cli import main; main()", "serve", "--port", str(port)]
        process = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)  # noqa: ASYNC220
        await wait_until_ready(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            issued = await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(created.client_id, created.client_secret or ""),
            )
        assert issued.status_code == 200, issued.text
        yield Target(base_url, issued.json()["access_token"])
        if MASKED:
            warnings.warn(
                f"{len(MASKED)} fuzz cases were answered 'Unexpected error' (see serve.log for the traces):\n"
                + "\n---\n".join(case[:600] for case in MASKED[:20]),
                stacklevel=1,
            )
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        await engine.dispose()
        await drop_postgres_database(make_url(url).database or "")


def leaks(body: str) -> list[str]:
    """Traceback lines and exception class names in a response body (the schema's own type names excepted)."""
    return sorted({match.group(0) for match in EXCEPTION_NAMES.finditer(body)} - SCHEMA_TYPES)


def test_the_leak_check_finds_what_it_must_and_nothing_else() -> None:
    assert leaks('{"errors":[{"message":"UntranslatableCharacterError: invalid byte"}]}') == [
        "UntranslatableCharacterError"
    ]
    assert leaks('Traceback (most recent call last):\n  File "/x/y.py", line 3, in f') == [
        'File "/x/y.py", line 3',
        "Traceback (most recent call last)",
    ]
    assert leaks('{"errors":[{"message":"KeyError"}]}') == ["KeyError"]
    assert leaks('{"data":{"x":{"__typename":"UserError","code":"INVALID"}}}') == []
    assert leaks('{"errors":[{"message":"Unexpected error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}') == []


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_input_breaks_the_service(case: Any, target: Target) -> None:
    response = case.call(
        base_url=f"{target.base_url}/graphql",
        headers={"Authorization": f"Bearer {target.token}", "Accept": "application/graphql-response+json"},
        timeout=30,
    )
    body = response.text
    assert response.status_code < 500, f"{response.status_code} for\n{case.body}\n{body[:1000]}"
    assert leaks(body) == [], f"exception details in the answer to\n{case.body}\n{body[:1000]}"
    # 429: a rate limit, where one is configured, may throttle the fuzzer; that is an answer, not a failure.
    assert response.status_code in (200, 400, 429), f"{response.status_code} for\n{case.body}\n{body[:1000]}"
    if response.status_code != 429:
        answer = response.json()
        assert "data" in answer or "errors" in answer, body[:1000]
    if "Unexpected error" in body:
        MASKED.append(f"{case.operation.label}: {case.body}")
