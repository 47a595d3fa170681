"""The graphql-http conformance audit (npm ``graphql-http``) against the running service, with a token from
the client credentials grant: no MUST and no SHOULD audit may fail.

The service runs as ``uvicorn`` in a process of its own on a free port, over a migrated SQLite file. The
audit's packages are installed from npm into ``tests/peers/`` (ignored by git) when missing. Without node
the test is skipped on a laptop and fails in CI.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from programme_api.config import Settings
from programme_api.db import create_engine, session_factory
from programme_api.oauth.clients import create_client

from .api import free_port
from .conftest import IN_CI, migrate
from .factories import make_organisation

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
SCRIPT = HERE / "audit" / "graphql_http_audit.mjs"
PACKAGES = ("graphql-http@1.23.1", "graphql@16.15.0")


def node_or_skip() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if IN_CI:
            pytest.fail("node and npm are needed for the graphql-http audit (CI=true: it may not be skipped)")
        pytest.skip("node is not installed")
    if not (PEERS / "node_modules" / "graphql-http").is_dir():
        PEERS.mkdir(exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(PEERS), *PACKAGES],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    shutil.copy(SCRIPT, PEERS / SCRIPT.name)  # node resolves the packages next to the script
    return node


async def prepare(url: str) -> tuple[str, str]:
    """Migrate the database and register a client-credentials client; its id and secret."""
    engine = create_engine(Settings(database_url=url))
    try:
        await migrate(engine)
        async with session_factory(engine)() as session:
            organisation = await make_organisation(session)
            created = await create_client(
                session, organisation_slug=organisation.slug, name="Audit", scope="programme:read",
                region_slugs=[], grants=[], redirect_uris=[], evaluation_project_slug=None, public=False,
            )  # fmt: skip
            await session.commit()
    finally:
        await engine.dispose()
    assert created.client_secret is not None
    return created.client_id, created.client_secret


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A running service: its base URL and a client's id and secret."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    client_id, secret = asyncio.run(prepare(url))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "PROGRAMME_API_DATABASE_URL": url,
        "PROGRAMME_API_ISSUER": base,
        "PROGRAMME_API_SECRET_KEY_FILE": str(tmp_path / "keys.json"),
        "PROGRAMME_API_REDIS_URL": "",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "programme_api.app:create_default_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"the service did not start: {output}")
            time.sleep(0.2)
        yield base, client_id, secret
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_graphql_http_audit_passes_with_a_client_credentials_token(service: tuple[str, str, str]) -> None:
    node = node_or_skip()
    base, client_id, secret = service
    issued = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    finished = subprocess.run(
        [node, str(PEERS / SCRIPT.name), f"{base}/graphql", token],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    results = [json.loads(line) for line in finished.stdout.splitlines() if line.strip()]
    assert len(results) > 30  # the audit ran in full
    failures = [r for r in results if r["status"] != "ok" and r["name"].startswith(("MUST", "SHOULD"))]
    assert failures == [], json.dumps(failures, indent=1)
    assert any(r["name"].startswith("MUST") for r in results)
