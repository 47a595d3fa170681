"""One command for the whole benchmark: ``python benchmarks/run.py --scale 1``.

It (1) starts a private PostgreSQL cluster with ``pg_stat_statements`` (``cluster.py``; ``--admin-dsn`` uses an
existing server instead), generates and loads the data (``generate.py``), (2) creates OAuth clients with the
project's own CLI and starts the service exactly as ``programme-api serve`` does (uvicorn, one worker,
``programme_api.app:create_default_app``), the floor (``floor.py``) and PostGraphile 4 (installed into
``benchmarks/peers/`` by npm on first run) on loopback ports, (3) gets real access tokens from the service's
``/oauth/token`` (validated by the service on every request, as in production), (4) checks that every target
gives the same answer for each read shape (``scenarios.py``), (5) counts SQL statements per request in
PostgreSQL (``pg_stat_statements``), (6) runs each shape in interleaved rounds - service, floor, peer, then
rotated - with variables that change on every request, and (7) prints median throughput, p50/p99 latency,
CPU milliseconds per request of the server and of PostgreSQL, and the ratios service/floor and service/peer.
Then the service-only scenarios (a 15-person register write, token issuance, the survey CSV export) run in
interleaved rounds of their own (``service_only.py``).

``--smoke`` uses tiny durations so CI can check that the whole thing still runs (targets are not enforced).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import generate
from benchmarks.cluster import private_cluster
from benchmarks.measure import Processes, Result, Sample, load_with, table
from benchmarks.scenarios import (
    EVALUATION,
    PARTICIPANTS,
    PEER_PARTICIPANTS,
    PEER_SESSIONS,
    SESSIONS_AFTER,
    Caller,
    Scenario,
    build,
    without_cursors,
)
from benchmarks.service_only import ServiceOnly, create_client, prepare_service_only, run_service_only
from benchmarks.shared import find_caller
from benchmarks.sqlite_copy import copy_to_sqlite, sqlite_url

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / "peers"
HOST = "127.0.0.1"
SERVICE_PORT, FLOOR_PORT, PEER_PORT, SQLITE_PORT = 8711, 8712, 8713, 8714
ISSUER = f"http://{HOST}:{SERVICE_PORT}"
"""The served app's ``PROGRAMME_API_ISSUER``: the address the token endpoint is reached at (loopback http)."""
SQLITE_ISSUER = f"http://{HOST}:{SQLITE_PORT}"
PEER_PACKAGES = ("postgraphile@4", "postgraphile-plugin-connection-filter@2")
PEER_SETTINGS = """module.exports = {
  options: {
    appendPlugins: ["postgraphile-plugin-connection-filter"],
    graphileBuildOptions: { connectionFilterRelations: true },
  },
};
"""
READERS = {
    "region": ("bench region reader", "programme:read participants:read", ("--region", generate.DASHBOARD_REGION_SLUG)),
    "organisation": ("bench organisation reader", "programme:read", ()),
    "evaluator": ("bench evaluator", "evaluation:read", ("--evaluation-project", generate.EVALUATION_PROJECT_SLUG)),
}
"""The OAuth clients the read scenarios' tokens come from: which caller each scenario reads as."""
PAGES = 8
"""Later pages each cursor scenario cycles through (cursors collected by walking the list once)."""


@dataclass
class Target:
    """One server under test: where it listens, its process, and the headers its requests carry."""

    name: str
    url: str
    pid: int | None = None

    @property
    def issuer(self) -> str:
        return self.url.removesuffix("/graphql")


@dataclass
class Tokens:
    """Real access tokens from each service's own ``/oauth/token`` (PostgreSQL and SQLite), one per reader
    client, issued afresh before each scenario so a long run never outlives them."""

    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)
    issuers: list[str] = field(default_factory=list)
    issued: dict[tuple[str, str], str] = field(default_factory=dict)

    async def refresh(self, client: httpx.AsyncClient) -> None:
        for issuer in self.issuers:
            for kind, credentials in self.credentials.items():
                self.issued[(issuer, kind)] = await issue_token(client, issuer, credentials)

    def headers(self, kind: str, issuer: str = ISSUER) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issued[(issuer, kind)]}"}


async def issue_token(client: httpx.AsyncClient, issuer: str, credentials: tuple[str, str]) -> str:
    response = await client.post(f"{issuer}/oauth/token", data={"grant_type": "client_credentials"},
                                 auth=credentials)  # fmt: skip
    if response.status_code != 200:
        raise SystemExit(f"/oauth/token answered {response.status_code}: {response.text[:300]}")
    token: str = response.json()["access_token"]
    return token


def free_port(port: int) -> None:
    with socket.socket() as probe:
        if probe.connect_ex((HOST, port)) == 0:
            raise SystemExit(f"port {HOST}:{port} is busy; stop whatever listens there and run again")


@contextlib.contextmanager
def server(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process (own process group) and always stop it, by its pid, when the block ends."""
    handle = log.open("wb")
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    try:
        yield process
    finally:
        # The server's own process group (npx starts node as a child): stop the group this call created.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        handle.close()


async def wait_listening(target: Target, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait up to 60 s for the target's port to accept connections; a crash stops the run."""
    port = int(target.url.split(":")[2].split("/")[0])
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{target.name} exited at start; see {log}")
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                return
        await asyncio.sleep(0.25)
    raise SystemExit(f"{target.name} did not start within 60 s; see {log}")


def ensure_peer() -> None:
    """Install PostGraphile 4 (its CLI runs on Node 20; v5 needs Node 22) and its connection-filter plugin into
    benchmarks/peers/ once; ``.postgraphilerc.js`` there turns the plugin's relation filters on."""
    binary = PEERS / "node_modules" / ".bin" / "postgraphile"
    plugin = PEERS / "node_modules" / "postgraphile-plugin-connection-filter"
    if not (binary.exists() and plugin.exists()):
        if shutil.which("npm") is None:
            raise SystemExit("npm is needed for the PostGraphile peer")
        PEERS.mkdir(parents=True, exist_ok=True)
        print(f"installing {' '.join(PEER_PACKAGES)} into benchmarks/peers/ ...", flush=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", *PEER_PACKAGES],
                       cwd=PEERS, check=True, timeout=600)  # fmt: skip
    (PEERS / ".postgraphilerc.js").write_text(PEER_SETTINGS)


APP_ROLE = "programme_app"
"""The service's PostgreSQL role: not the tables' owner, so row-level security applies as in production."""


def service_env(database_url: str, keys: Path, issuer: str = ISSUER, owner_url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PROGRAMME_API_DATABASE_URL": database_url, "PROGRAMME_API_ISSUER": issuer,
           "PROGRAMME_API_SECRET_KEY_FILE": str(keys), "PROGRAMME_API_LOG_FORMAT": "console",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    # Throughput of the heavy read shapes is measured from one client: the cost and rate limits would refuse it.
    env.update({"PROGRAMME_API_MAX_QUERY_COST": "1000000000", "PROGRAMME_API_MAX_QUERY_NODES": "1000000000",
                "PROGRAMME_API_RATE_LIMIT_POINTS": "1000000000", "PROGRAMME_API_AUTH_RATE_LIMIT_REQUESTS": "1000000000",
                "PROGRAMME_API_AUTH_RATE_LIMIT_ADDRESS_REQUESTS": "1000000000"})  # fmt: skip
    if owner_url is not None:
        env["PROGRAMME_API_OWNER_DATABASE_URL"] = owner_url
    return env


def postgres_service_env(database: str, keys: Path) -> dict[str, str]:
    """The service on PostgreSQL as production runs it: the non-owner role, the owner only for system work."""
    owner = generate.sqlalchemy_url(database)
    return service_env(owner.replace("://postgres@", f"://{APP_ROLE}@", 1), keys, owner_url=owner)


async def create_app_role(database: str) -> None:
    """The service's role with the grants the README gives operators (run as the owner, after migrating)."""
    connection = await asyncpg.connect(generate.with_database(generate.ADMIN_DSN, database))
    try:
        await connection.execute(f"DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN; "
                                 "EXCEPTION WHEN duplicate_object THEN NULL; END $$")  # fmt: skip
        await connection.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
        await connection.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
        await connection.execute(f"REVOKE UPDATE, DELETE ON audit_events FROM {APP_ROLE}")
        await connection.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {APP_ROLE}")
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def started_servers(args: argparse.Namespace, logs: Path, keys: Path) -> AsyncIterator[list[Target]]:
    """The service, the floor, (unless ``--no-peer``) PostGraphile and (unless ``--no-sqlite``) the service on
    the SQLite copy; stopped when the block ends."""
    for port in (SERVICE_PORT, FLOOR_PORT, PEER_PORT, SQLITE_PORT):
        free_port(port)
    env = {**postgres_service_env(args.database, keys),
           "BENCH_DSN": generate.with_database(generate.ADMIN_DSN, args.database)}  # fmt: skip
    uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "--host", HOST, "--workers", "1", "--no-access-log",
               "--log-level", "warning", "--proxy-headers"]  # fmt: skip
    planned = [
        (Target("service", f"http://{HOST}:{SERVICE_PORT}/graphql"),
         [*uvicorn, "--port", str(SERVICE_PORT), "programme_api.app:create_default_app"], ROOT, env),
        (Target("floor", f"http://{HOST}:{FLOOR_PORT}/graphql"),
         [*uvicorn, "--port", str(FLOOR_PORT), "benchmarks.floor:create"], ROOT, env),
    ]  # fmt: skip
    if not args.no_sqlite:
        planned.append((Target("sqlite", f"{SQLITE_ISSUER}/graphql"),
                        [*uvicorn, "--port", str(SQLITE_PORT), "programme_api.app:create_default_app"], ROOT,
                        service_env(sqlite_url(logs / "bench.db"), keys, SQLITE_ISSUER)))  # fmt: skip
    if not args.no_peer:
        ensure_peer()
        dsn = generate.with_database(generate.ADMIN_DSN, args.database)
        peer = ["npx", "--no-install", "postgraphile", "-c", dsn, "--schema", "public", "--host", HOST,
                "--port", str(PEER_PORT), "--disable-query-log"]  # fmt: skip
        planned.append((Target("peer", f"http://{HOST}:{PEER_PORT}/graphql"), peer, PEERS, env))
    with contextlib.ExitStack() as stack:
        for target, command, cwd, target_env in planned:
            log = logs / f"{target.name}.log"
            process = stack.enter_context(server(command, target_env, cwd, log))
            await wait_listening(target, process, log)
            target.pid = process.pid
        yield [target for target, *_rest in planned]


async def ask(client: httpx.AsyncClient, target: Target, body: dict[str, Any], headers: dict[str, str]) -> Any:
    response = await client.post(target.url, json=body, headers=headers)
    payload = response.json()
    if response.status_code != 200 or "errors" in payload:
        raise SystemExit(f"{target.name} answered {response.status_code}: {response.text[:600]}")
    return payload["data"]


def target_headers(target: Target, scenario: Scenario, tokens: Tokens) -> dict[str, str]:
    if target.name == "peer":
        return {}
    if target.name == "sqlite":
        return tokens.headers(scenario.caller, target.issuer)
    return tokens.headers(scenario.caller)  # the floor takes any bearer; the service checks it


async def walk_cursors(
    client: httpx.AsyncClient, target: Target, body: dict[str, Any], headers: dict[str, str], path: list[str]
) -> list[str]:
    """The ``endCursor`` of the first ``PAGES`` pages of a list, by following ``after`` from page one."""
    cursors: list[str] = []
    variables = dict(body.get("variables") or {})
    while len(cursors) < PAGES:
        page = await ask(client, target, {**body, "variables": variables}, headers)
        for key in path:
            page = page[key]
        if not page["pageInfo"]["hasNextPage"]:
            break
        cursors.append(page["pageInfo"]["endCursor"])
        variables["after"] = cursors[-1]
    return cursors


EARLIEST = "2000-01-01T00:00:00+00:00"


async def fill_cursors(client: httpx.AsyncClient, targets: list[Target], scenarios: list[Scenario],
                       tokens: Tokens, caller: Caller) -> None:  # fmt: skip
    """Give each cursor scenario the cursors of later pages, as each target encodes them."""
    by_name = {target.name: target for target in targets}
    peer_base = {"organisation": str(caller.organisation_id), "region": str(caller.region_id)}
    for scenario in scenarios:
        service, headers = by_name["service"], tokens.headers(scenario.caller)
        if scenario.name == "sessions by cursor":
            cursors = await walk_cursors(client, service, {"query": SESSIONS_AFTER}, headers, ["sessions"])
            scenario.variables["service"] = scenario.variables["floor"] = [{"after": c} for c in cursors]
            if "peer" in by_name:
                body = {"query": PEER_SESSIONS, "variables": peer_base | {"from": EARLIEST}}
                peer = await walk_cursors(client, by_name["peer"], body, {}, ["allGroupSessions"])
                scenario.variables["peer"] = [peer_base | {"from": EARLIEST, "after": c} for c in peer]
        elif scenario.name == "participants -> attendance":
            cursors = await walk_cursors(client, service, {"query": PARTICIPANTS}, headers, ["participants"])
            scenario.variables["service"] = [{"after": None}] + [{"after": c} for c in cursors]
            if "peer" in by_name:
                body = {"query": PEER_PARTICIPANTS, "variables": peer_base}
                peer = await walk_cursors(client, by_name["peer"], body, {}, ["allParticipants"])
                scenario.variables["peer"] = [peer_base | {"after": None}] + [peer_base | {"after": c} for c in peer]
        elif scenario.name == "evaluator responses":
            body = {"query": EVALUATION}
            cursors = await walk_cursors(client, service, body, headers, ["evaluation", "responses"])
            scenario.variables["service"] = [{"after": None}] + [{"after": c} for c in cursors]


async def check_same_data(client: httpx.AsyncClient, targets: list[Target], scenarios: list[Scenario],
                          tokens: Tokens) -> None:  # fmt: skip
    """Refuse to measure targets that disagree: equal throughput on different answers would mean nothing.
    Every variable set a scenario cycles through is compared (cursor strings aside)."""
    for scenario in scenarios:
        service = next(target for target in targets if target.name == "service")
        for number in range(len(scenario.variables.get("service") or [{}])):
            expected = without_cursors(await ask(client, service, scenario.body("service", number),
                                                 tokens.headers(scenario.caller)))  # fmt: skip
            for target in targets:
                if target.name == "service" or target.name not in scenario.targets():
                    continue
                data = await ask(client, target, scenario.body(target.name, number),
                                 target_headers(target, scenario, tokens))  # fmt: skip
                if target.name == "peer" and scenario.normalise_peer is not None:
                    data = scenario.normalise_peer(data)
                if without_cursors(data) != expected:
                    dump = ROOT / "artifacts" / "benchmarks" / "mismatch.json"
                    dump.write_text(json.dumps({"service": expected, target.name: without_cursors(data)}, indent=1))
                    raise SystemExit(f"{target.name} answers {scenario.name} (variables #{number}) differently "
                                     f"from the service (both in {dump}); fix before measuring")  # fmt: skip


async def count_statements(client: httpx.AsyncClient, targets: list[Target], scenarios: list[Scenario],
                           tokens: Tokens, database: str, requests: int) -> dict[tuple[str, str], str]:  # fmt: skip
    """SQL statements per request, counted by PostgreSQL: reset ``pg_stat_statements``, send ``requests``
    requests one after another (nothing else runs), read the calls made in the bench database."""
    connection = await asyncpg.connect(generate.with_database(generate.ADMIN_DSN, database))
    counts: dict[tuple[str, str], str] = {}
    try:
        try:
            await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await connection.fetchval("SELECT count(*) FROM pg_stat_statements")
        except asyncpg.PostgresError as exc:
            print(f"statements per request not counted: {exc}", flush=True)
            return counts
        oid = await connection.fetchval("SELECT oid FROM pg_database WHERE datname = current_database()")
        for scenario in scenarios:
            for target in targets:
                if target.name not in scenario.targets() or target.name == "sqlite":
                    continue
                headers = target_headers(target, scenario, tokens)
                await connection.fetchval("SELECT pg_stat_statements_reset()")
                for number in range(requests):
                    await ask(client, target, scenario.body(target.name, number), headers)
                calls = await connection.fetchval(
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = $1"
                    " AND query NOT ILIKE '%pg_stat_statements%'", oid)  # fmt: skip
                counts[(scenario.name, target.name)] = f"{calls / requests:.1f}"
    finally:
        await connection.close()
    return counts


async def compiled_reads(client: httpx.AsyncClient) -> dict[str, float]:
    """The service's own tally of reads answered by the compiler vs the resolvers (``/metrics``), if it has one."""
    response = await client.get(f"{ISSUER}/metrics")
    tally: dict[str, float] = {}
    if response.status_code != 200:
        return tally
    for line in response.text.splitlines():
        if line.startswith("programme_api_graphql_reads_total{"):
            labels, _, value = line.rpartition(" ")
            path = labels.split('path="', 1)[1].split('"', 1)[0] if 'path="' in labels else "?"
            tally[path] = tally.get(path, 0.0) + float(value)
    return tally


async def measure_reads(
    args: argparse.Namespace,
    client: httpx.AsyncClient,
    targets: list[Target],
    scenarios: list[Scenario],
    tokens: Tokens,
    database_pid: int | None,
) -> list[Result]:
    results: list[Result] = []
    bounds = {"concurrency": args.concurrency, "max_requests": args.max_requests}
    for scenario in scenarios:
        await tokens.refresh(client)
        chosen = [target for target in targets if target.name in scenario.targets()]
        by_target = {target.name: Result(scenario.name, target.name) for target in chosen}

        def sender(target: Target, scenario: Scenario = scenario) -> Any:
            headers = target_headers(target, scenario, tokens)

            async def send(number: int) -> bool:
                response = await client.post(target.url, json=scenario.body(target.name, number), headers=headers)
                return response.status_code == 200 and b'"errors"' not in response.content

            return send

        for target in chosen:  # warm-up: caches, prepared statements, JIT of the peer
            await load_with(sender(target), duration=args.warmup, **bounds)
        for round_number in range(args.rounds):
            shift = round_number % len(chosen)
            for target in chosen[shift:] + chosen[:shift]:
                processes = Processes(target=target.pid, database=database_pid)
                sample: Sample = await load_with(sender(target), duration=args.duration, processes=processes, **bounds)
                by_target[target.name].samples.append(sample)
                print(f"  {scenario.name:<28} round {round_number + 1} {target.name:<7} "
                      f"{sample.throughput:8.1f} req/s{f' ({sample.failed} failed)' if sample.failed else ''}",
                      flush=True)  # fmt: skip
        results += by_target.values()
    return results


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout.splitlines()
    total = memory[1].split()[1] if len(memory) > 1 else "?"
    return f"{os.cpu_count()} CPUs (nproc), {total} RAM (free -h), {cpu}, Python {sys.version.split()[0]}"


async def run(args: argparse.Namespace, logs: Path, database_pid: int | None) -> str:
    started = time.perf_counter()
    counts = await generate.generate(args.scale, args.seed, args.database, ROOT, export_rows=args.export_rows)
    print(f"generated scale {args.scale} in {time.perf_counter() - started:.1f}s: "
          + ", ".join(f"{n:,} {t}" for t, n in counts.items()), flush=True)  # fmt: skip
    connection = await asyncpg.connect(generate.with_database(generate.ADMIN_DSN, args.database))
    try:
        bench = await find_caller(connection)
    finally:
        await connection.close()
    caller = Caller(bench.organisation_id, bench.region_id)
    keys = logs / "keys.json"
    keys.unlink(missing_ok=True)
    await create_app_role(args.database)
    env = postgres_service_env(args.database, keys)
    tokens = Tokens(issuers=[ISSUER] if args.no_sqlite else [ISSUER, SQLITE_ISSUER])
    for kind, (name, scope, options) in READERS.items():
        created = await asyncio.to_thread(create_client, env, ROOT, name, "--scope", scope, *options)
        if isinstance(created, str):
            raise SystemExit(f"`clients create` for the {kind} reader failed: {created}")
        tokens.credentials[kind] = created
    prepared: ServiceOnly = await prepare_service_only(args, env, ROOT, bench)
    if not args.no_sqlite:  # after the clients exist, so the same credentials work on both
        copied = await copy_to_sqlite(generate.sqlalchemy_url(args.database), logs / "bench.db", ROOT)
        print(f"copied {copied:,} rows into SQLite ({logs / 'bench.db'})", flush=True)
    scenarios = build(caller)
    if args.only:
        scenarios = [scenario for scenario in scenarios if any(word in scenario.name for word in args.only)]
    limits = httpx.Limits(max_connections=args.concurrency + 2, max_keepalive_connections=args.concurrency + 2)
    async with (
        started_servers(args, logs, keys) as targets,
        httpx.AsyncClient(limits=limits, timeout=60) as client,
    ):
        await tokens.refresh(client)
        await fill_cursors(client, targets, scenarios, tokens, caller)
        await check_same_data(client, targets, scenarios, tokens)
        statements = await count_statements(client, targets, scenarios, tokens, args.database, args.count_requests)
        compiled_before = await compiled_reads(client)
        results = await measure_reads(args, client, targets, scenarios, tokens, database_pid)
        compiled_after = await compiled_reads(client)
        # After the reads: the register writes change the data the reads were checked against.
        service = targets[0]
        service_only, notes = await run_service_only(args, client, ISSUER, service.pid, prepared, database_pid)
    for result in results:
        result.statements = statements.get((result.scenario, result.target), "-")
    report = [f"scale {args.scale}, {args.rounds} interleaved rounds x {args.duration:g}s per target, "
              f"concurrency {args.concurrency}, one worker each; {machine()}", "",
              table(results + service_only), ""]  # fmt: skip
    report += [f"- {scenario.service_only_note}" for scenario in scenarios if scenario.service_only_note]
    report += [f"- {note}" for note in notes]
    report.append("- every service request carries a real access token from /oauth/token, checked by the service; "
                  "variables change on every request (dates, page lengths, cursors of 8 later pages)")  # fmt: skip
    report.append("- SQL/request: calls in pg_stat_statements (utility statements such as BEGIN not tracked) over "
                  f"{args.count_requests} sequential requests; CPU ms/request: user+system time of the target's "
                  "process tree and of all PostgreSQL processes during the timed rounds")  # fmt: skip
    tally = {path: compiled_after.get(path, 0.0) - compiled_before.get(path, 0.0) for path in compiled_after}
    if sum(tally.values()):
        share = tally.get("compiled", 0.0) / sum(tally.values())
        report.append(f"- reads answered by the compiler: {share:.1%} of {sum(tally.values()):,.0f} "
                      f"({', '.join(f'{path} {count:,.0f}' for path, count in sorted(tally.items()))})")  # fmt: skip
    else:
        report.append("- compiled vs resolver share: the service exposes no per-path read counter")
    return "\n".join(report)


async def main_async(args: argparse.Namespace) -> None:
    logs = ROOT / "artifacts" / "benchmarks"
    logs.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        database_pid = None
        if args.admin_dsn:
            generate.ADMIN_DSN = args.admin_dsn
        else:
            cluster = stack.enter_context(private_cluster(logs / "postgres.log"))
            generate.ADMIN_DSN, database_pid = cluster.admin_dsn, cluster.postmaster_pid
        text = await run(args, logs, database_pid)
    print("\n" + text)
    (logs / "latest.md").write_text(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the service against the floor and PostGraphile.")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default=generate.DEFAULT_DATABASE)
    parser.add_argument("--admin-dsn", default=os.environ.get("BENCH_ADMIN_DSN"),
                        help="use this PostgreSQL server (asyncpg DSN of a superuser) instead of a private cluster; "
                        "statements per request are then counted only if it preloads pg_stat_statements")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per target per round (upper bound)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="requests per target per round (bound)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target and scenario")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--count-requests", type=int, default=10, help="requests per statement count")
    parser.add_argument("--only", nargs="*", help="measure only scenarios whose name contains one of these words")
    parser.add_argument("--no-peer", action="store_true", help="leave PostGraphile out (no Node available)")
    parser.add_argument("--no-sqlite", action="store_true", help="leave out the service on a SQLite copy")
    parser.add_argument("--export-rows", type=int, default=None, metavar="N",
                        help="survey responses to generate and export (default: the scale's)")  # fmt: skip
    parser.add_argument("--export-duration", type=float, default=300.0,
                        help="seconds one CSV export may stream before it is cut short (bound)")  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="CI: 1 round of 1 s, to show the suite still runs")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.max_requests, args.count_requests = 1, 1.0, 0.3, 200, 2
        args.export_duration = min(args.export_duration, 30.0)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
