"""What an operator sees: the access log, /metrics (guarded, summed over workers), and a graceful stop.

The worker tests start real ``programme-api serve`` processes on a SQLite file: what is shared between
workers (the metrics directory) and what a signal does are properties of processes, not of the ASGI app.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.logging import JsonFormatter

from .api import TokenBook, free_port
from .conftest import MigratedDatabase
from .factories import make_organisation, principal_for
from .test_oauth_workers import wait_until_ready


def metric(body: str, name: str, **labels: str) -> float:
    """The value of one sample on a metrics page (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}(\{{(?P<labels>[^}}]*)\}})? (?P<value>\S+)$")
    for line in body.splitlines():
        match = pattern.match(line)
        if match and ",".join(sorted((match["labels"] or "").split(","))).strip(",") == wanted:
            return float(match["value"])
    return 0.0


async def get(app, path: str, client: tuple[str, int] = ("127.0.0.1", 5000), **headers: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return await http.get(path, headers=headers)


async def test_metrics_answer_loopback_allowed_networks_and_the_token_only(migrated_database: MigratedDatabase) -> None:
    settings = migrated_database.settings.model_copy(
        update={"metrics_token": "scrape-secret", "metrics_allow_ips": ["10.1.0.0/16"]}
    )
    app = create_app(settings, engine=migrated_database.engine)
    assert (await get(app, "/metrics")).status_code == 200
    assert (await get(app, "/metrics", client=("10.1.2.3", 5000))).status_code == 200
    outsider = await get(app, "/metrics", client=("203.0.113.9", 5000))
    assert outsider.status_code == 403
    assert "programme_api" not in outsider.text
    assert (await get(app, "/metrics", ("203.0.113.9", 5000), authorization="Bearer wrong")).status_code == 403
    with_token = await get(app, "/metrics", ("203.0.113.9", 5000), authorization="Bearer scrape-secret")
    assert with_token.status_code == 200
    assert "programme_api_requests_total" in with_token.text


def test_metrics_networks_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="not an address or network"):
        Settings(metrics_allow_ips="10.0.0.0/8, nonsense")


async def test_each_request_logs_one_access_line_without_secrets(
    http: tuple[httpx.AsyncClient, TokenBook],
    db,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    client, tokens = http
    organisation = await make_organisation(db)
    token = tokens.issue(principal_for(organisation))
    caplog.set_level(logging.INFO, logger="programme_api.access")
    response = await client.post(
        "/graphql?secret=in-the-query-string",
        json={
            "query": "query GroupSearch($s: String) { groups(filter: {search: $s}) { totalCount } }",
            "variables": {"s": "private-search-words"},
        },
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-access-log-1"},
    )
    assert response.status_code == 200, response.text
    records = [record for record in caplog.records if record.name == "programme_api.access"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["method"] == "POST"
    assert line["path"] == "/graphql"
    assert line["status"] == 200
    assert line["request_id"] == "req-access-log-1"
    assert line["operation"] == "GroupSearch"
    assert line["duration_ms"] >= 0
    assert line["message"].startswith("POST /graphql 200 ")
    text = json.dumps(line)
    for secret in (token, "in-the-query-string", "private-search-words"):
        assert secret not in text


async def test_statements_per_request_are_observed(migrated_database: MigratedDatabase) -> None:
    app = create_app(migrated_database.settings, engine=migrated_database.engine)
    before = metric((await get(app, "/metrics")).text, "programme_api_sql_statements_per_request_count")
    await get(app, "/readyz")  # reads the database
    after_page = (await get(app, "/metrics")).text
    assert metric(after_page, "programme_api_sql_statements_per_request_count") >= before + 2
    assert metric(after_page, "programme_api_sql_statements_per_request_sum") > 0


@pytest.fixture
def sqlite_service_env(tmp_path: Path) -> dict[str, str]:
    database = tmp_path / "service.db"
    env = {
        **os.environ,
        "PROGRAMME_API_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "PROGRAMME_API_SECRET_KEY_FILE": str(tmp_path / "keys.json"),
        "PROGRAMME_API_LOG_FORMAT": "json",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("PROGRAMME_API_REDIS_URL", None)
    command = [sys.executable, "-c", "from programme_api.cli import main; main()", "db", "upgrade"]
    subprocess.run(command, env=env, check=True, capture_output=True)
    return env


def serve(env: dict[str, str], port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from programme_api.cli import main; main()", "serve", "--port", str(port), *extra]
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()


async def test_metrics_of_two_workers_are_one_page(sqlite_service_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    server = serve(sqlite_service_env, port, log, "--workers", "2")
    try:
        await wait_until_ready(f"http://127.0.0.1:{port}", server, log)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            # New connections each time, so both workers answer some of them.
            for _ in range(30):
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as fresh:
                    assert (await fresh.get("/healthz")).status_code == 200
            seen = set()
            for _ in range(6):
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as fresh:
                    page = (await fresh.get("/metrics")).text
                seen.add(metric(page, "programme_api_requests_total", method="GET", route="/healthz", status="200"))
            # wait_until_ready's probes count too: at least the 30 here, the same total whichever worker answered.
            assert len(seen) == 1, seen
            assert seen.pop() >= 30
            assert (await client.get("/healthz")).status_code == 200
    finally:
        stop(server)


async def test_sigterm_lets_a_request_in_flight_finish(sqlite_service_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    server = serve(sqlite_service_env, port, log)
    try:
        await wait_until_ready(f"http://127.0.0.1:{port}", server, log)

        async def slow_body() -> AsyncIterator[bytes]:
            body = json.dumps({"query": "{ __typename }"}).encode()
            yield body[:5]
            server.send_signal(signal.SIGTERM)  # the request is in flight: headers sent, body not yet
            await asyncio.sleep(1.5)
            yield body[5:]

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            response = await client.post(
                "/graphql", content=slow_body(),
                headers={"Content-Type": "application/json", "Content-Length": str(len(json.dumps({"query": "{ __typename }"})))},
            )  # fmt: skip
        # Answered (401: no token) rather than cut off: the request ran to its end after the signal.
        assert response.status_code == 401
        started = time.monotonic()
        # uvicorn re-raises the signal once it has drained, so the process ends as terminated by SIGTERM.
        assert server.wait(timeout=15) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 15
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("/healthz")
    finally:
        if server.poll() is None:
            stop(server)
