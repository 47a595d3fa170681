"""One command for the whole benchmark: ``python benchmarks/run.py --scale 1``.

It (1) generates and loads the data (``generate.py``), (2) starts the service (uvicorn, one worker, the
options ``programme-api serve`` uses), the floor (``floor.py``) and PostGraphile 4 (installed into
``benchmarks/peers/`` by npm on first run) on loopback ports, (3) checks all three answer, (4) runs each
read scenario in interleaved rounds - service, floor, peer, then rotated - so drift in the machine (turbo,
other tenants, autovacuum) hits every target alike, and (5) prints median throughput over rounds, p50/p99
latency over all requests, the ratios service/floor and service/peer, and SQL statements per request.
Then (6) the service-only scenarios - recording a 15-person register (``recordAttendance``), issuing a
client-credentials token (``POST /oauth/token``) and streaming the evaluator's survey CSV
(``/exports/surveys.csv``, rows/s and the server's peak RSS) - run in interleaved rounds of their own.

Every load loop is bounded twice, by a request count and by a wall-clock duration, and only ever talks to
127.0.0.1. A service-only scenario whose endpoint or client cannot be set up (an older checkout measured
with ``--source``) is skipped with a printed note, so the suite runs at every stage of the project.

``--profile`` adds a cProfile of the service's dashboard (in-process, same code path) with the top functions;
``--smoke`` uses tiny durations so CI can check that the whole thing still runs (targets are not enforced).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
SOURCE = Path(os.environ.get("BENCH_SOURCE", Path(__file__).resolve().parent.parent)).resolve()
"""The checkout of programme_api under test (default: this one). ``--source`` sets it, so a commit exported
with ``git archive`` can be measured beside the working tree (A/B) with the same benchmark code."""
if str(SOURCE) not in sys.path:
    sys.path.insert(0, str(SOURCE))

from benchmarks.generate import (  # noqa: E402
    ADMIN_DSN,
    DEFAULT_DATABASE,
    EVALUATION_PROJECT_SLUG,
    ORGANISATION_SLUG,
    generate,
    sqlalchemy_url,
    with_database,
)
from benchmarks.shared import (  # noqa: E402
    BENCH_TOKEN,
    DASHBOARD_QUERY,
    RECORD_ATTENDANCE,
    REGISTER_SIZE,
    SESSIONS_QUERY,
    BenchCaller,
    find_caller,
    global_id,
)

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / "peers"
HOST = "127.0.0.1"
SERVICE_PORT, FLOOR_PORT, PEER_PORT = 8711, 8712, 8713
ISSUER = f"http://{HOST}:{SERVICE_PORT}"
"""The served app's ``PROGRAMME_API_ISSUER``: the address the token endpoint is reached at (loopback http)."""
STATUSES = ("PRESENT", "PRESENT", "PRESENT", "EXCUSED", "PRESENT", "UNEXCUSED")

PEER_DASHBOARD = """query RegionDashboard($organisation: UUID!, $region: UUID!) {
  allRegions(first: 20, orderBy: [NAME_ASC, ID_ASC], condition: {organisationId: $organisation, id: $region}) {
    nodes { name groupsByRegionId(first: 50, orderBy: [NAME_ASC, ID_ASC], condition: {organisationId: $organisation}) {
      nodes { name
        facilitatorAssignmentsByGroupId(orderBy: [ROLE_DESC, CREATED_AT_ASC]) {
          nodes { role facilitatorByFacilitatorId { displayName } } }
        groupSessionsByGroupId(last: 20, orderBy: [STARTS_AT_ASC, ID_ASC]) { nodes { startsAt status dropinCount
          present: attendancesBySessionId(condition: {status: "present"}) { totalCount }
          excused: attendancesBySessionId(condition: {status: "excused"}) { totalCount }
          unexcused: attendancesBySessionId(condition: {status: "unexcused"}) { totalCount } } } } } } }
}"""
"""The dashboard in PostGraphile's generated schema, with the caller's organisation and region as conditions."""

PEER_SESSIONS = """query SessionPage($organisation: UUID!, $region: UUID!) {
  allGroupSessions(first: 100, orderBy: [STARTS_AT_ASC, ID_ASC], condition: {organisationId: $organisation},
                   filter: {groupByGroupId: {regionId: {equalTo: $region}}}) {
    nodes { id startsAt endsAt status dropinCount cancellationReason } }
}"""
"""The session page in PostGraphile: the caller's region through the session's group, as the service and the
floor filter it (a relation filter of postgraphile-plugin-connection-filter; core PostGraphile 4 has none)."""
PEER_PACKAGES = ("postgraphile@4", "postgraphile-plugin-connection-filter@2")
PEER_SETTINGS = """module.exports = {
  options: {
    appendPlugins: ["postgraphile-plugin-connection-filter"],
    graphileBuildOptions: { connectionFilterRelations: true },
  },
};
"""


@dataclass
class Target:
    """One server under test and how to ask it each scenario (path, JSON body, headers)."""

    name: str
    url: str
    bodies: dict[str, dict[str, Any]]
    headers: dict[str, str] = field(default_factory=dict)
    pid: int | None = None


@dataclass
class Sample:
    """One bounded load run: requests completed, failures, wall time and per-request latencies (seconds)."""

    done: int
    failed: int
    elapsed: float
    latencies: list[float]

    @property
    def throughput(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0


@dataclass
class Result:
    scenario: str
    target: str
    samples: list[Sample] = field(default_factory=list)
    statements: str = "-"

    @property
    def throughput(self) -> float:
        return statistics.median(sample.throughput for sample in self.samples)

    def percentile(self, fraction: float) -> float:
        latencies = sorted(latency for sample in self.samples for latency in sample.latencies)
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] * 1000

    @property
    def failed(self) -> int:
        return sum(sample.failed for sample in self.samples)


async def load(
    client: httpx.AsyncClient, target: Target, scenario: str, *, concurrency: int, duration: float, max_requests: int
) -> Sample:
    """Closed-loop load of one read scenario against one target (see ``load_with``)."""
    body = target.bodies[scenario]

    async def send() -> bool:
        response = await client.post(target.url, json=body, headers=target.headers)
        return response.status_code == 200 and b'"errors"' not in response.content

    return await load_with(send, concurrency=concurrency, duration=duration, max_requests=max_requests)


async def load_with(
    send: Callable[[], Awaitable[bool]], *, concurrency: int, duration: float, max_requests: int
) -> Sample:
    """Closed-loop load: ``concurrency`` workers call ``send`` back to back until either bound is reached;
    ``send`` makes one request and says whether it succeeded."""
    latencies: list[float] = []
    failed = 0
    issued = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal failed, issued
        while issued < max_requests and time.perf_counter() < deadline:
            issued += 1
            started = time.perf_counter()
            ok = await send()
            elapsed = time.perf_counter() - started
            if ok:
                latencies.append(elapsed)
            else:
                failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Sample(done=len(latencies), failed=failed, elapsed=time.perf_counter() - started, latencies=latencies)


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


async def wait_ready(client: httpx.AsyncClient, target: Target, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll the target with its dashboard request for up to 60 s; a crash or an error answer stops the run."""
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{target.name} exited at start; see {log}")
        with contextlib.suppress(httpx.TransportError):
            response = await client.post(target.url, json=target.bodies["dashboard"], headers=target.headers)
            if response.status_code == 200 and b'"errors"' not in response.content:
                return
            raise SystemExit(f"{target.name} answered {response.status_code}: {response.text[:500]}")
        await asyncio.sleep(0.25)
    raise SystemExit(f"{target.name} did not start within 60 s; see {log}")


def ensure_peer() -> Path:
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
    return binary


def peer_command(database: str) -> list[str]:
    dsn = with_database(ADMIN_DSN, database)
    return ["npx", "--no-install", "postgraphile", "-c", dsn, "--schema", "public", "--host", HOST,
            "--port", str(PEER_PORT), "--disable-query-log"]  # fmt: skip


def normalise_peer(data: dict[str, Any]) -> dict[str, Any]:
    """PostGraphile's dashboard in the service's shape, to check that all three return the same data."""
    regions = []
    for region in data["allRegions"]["nodes"]:
        groups = []
        for group in region["groupsByRegionId"]["nodes"]:
            facilitators = [{"role": item["role"].upper(), "facilitator": item["facilitatorByFacilitatorId"]}
                            for item in group["facilitatorAssignmentsByGroupId"]["nodes"]]  # fmt: skip
            sessions = [{"node": {"startsAt": s["startsAt"], "status": s["status"].upper(), "attendanceCounts": {
                "present": s["present"]["totalCount"], "excused": s["excused"]["totalCount"],
                "unexcused": s["unexcused"]["totalCount"], "dropins": s["dropinCount"]}}}
                for s in group["groupSessionsByGroupId"]["nodes"]]  # fmt: skip
            groups.append({"node": {"name": group["name"], "facilitators": facilitators,
                                    "sessions": {"edges": sessions}}})  # fmt: skip
        regions.append({"node": {"name": region["name"], "groups": {"edges": groups}}})
    return {"regions": {"edges": regions}}


async def count_service_statements(database: str, caller: BenchCaller) -> dict[str, str]:
    """SQL statements per request, counted in-process on the same code path with asyncpg's query logger on
    every pooled connection, as the floor's are (transaction control excluded for both). Counting at the
    driver sees the reads the service sends past SQLAlchemy's execution layer too."""
    import sqlalchemy as sa

    from benchmarks.serve_app import bench_principal, fixed_authenticator
    from programme_api.app import create_app
    from programme_api.config import Settings
    from programme_api.db import create_engine

    settings = Settings(database_url=sqlalchemy_url(database))
    engine = create_engine(settings)
    seen: list[str] = []

    def log_queries(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(lambda record: seen.append(record.query))

    sa.event.listen(engine.sync_engine, "connect", log_queries)
    app = create_app(settings, engine=engine, authenticate=fixed_authenticator(bench_principal(caller)))
    counts: dict[str, str] = {}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
            for scenario, query in (("dashboard", DASHBOARD_QUERY), ("sessions", SESSIONS_QUERY)):
                await client.post("/graphql", json={"query": query}, headers=auth())
                seen.clear()
                await client.post("/graphql", json={"query": query}, headers=auth())
                counts[scenario] = str(sum(not is_transaction_control(statement) for statement in seen))
    finally:
        await engine.dispose()
    return counts


def is_transaction_control(statement: str) -> bool:
    return statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SELECT 1"))


async def count_floor_statements(database: str, caller: BenchCaller) -> dict[str, str]:
    """The floor's statements per request, counted with asyncpg's query logger around one request each."""
    from benchmarks.floor import dashboard, session_page

    connection = await asyncpg.connect(with_database(ADMIN_DSN, database))
    seen: list[str] = []
    # Transaction control is left out, as the SQLAlchemy count of the service leaves it out.
    connection.add_query_logger(lambda record: seen.append(record.query))
    counts = {}
    try:
        for scenario, handler in (("dashboard", dashboard), ("sessions", session_page)):
            for _ in range(2):  # the first run on a new connection adds asyncpg's one-off type introspection
                seen.clear()
                async with connection.transaction(readonly=True):
                    await handler(connection, caller)
            counts[scenario] = str(sum(not is_transaction_control(statement) for statement in seen))
    finally:
        await connection.close()
    return counts


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {BENCH_TOKEN}"}


async def profile_dashboard(database: str, caller: BenchCaller, requests: int) -> str:
    """cProfile of the service answering the dashboard in-process: where one request's CPU time goes."""
    from benchmarks.serve_app import bench_principal, fixed_authenticator
    from programme_api.app import create_app
    from programme_api.config import Settings

    app = create_app(Settings(database_url=sqlalchemy_url(database)),
                     authenticate=fixed_authenticator(bench_principal(caller)))  # fmt: skip
    body = {"query": DASHBOARD_QUERY}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        for _ in range(5):
            await client.post("/graphql", json=body, headers=auth())
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for _ in range(requests):
            await client.post("/graphql", json=body, headers=auth())
        profiler.disable()
        per_request = (time.perf_counter() - started) / requests * 1000
    out = io.StringIO()
    out.write(f"cProfile, {requests} dashboard requests in-process, {per_request:.1f} ms each (profiled)\n")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)
    return out.getvalue()


@dataclass
class Register:
    """One session's register as the load client sends it; ``version`` follows each successful write."""

    session_id: uuid.UUID
    version: int
    entries: list[dict[str, str]]

    def body(self) -> dict[str, Any]:
        variables = {"input": {"sessionId": global_id("GroupSession", self.session_id), "version": self.version,
                               "entries": self.entries, "dropinCount": self.version % 3,
                               "idempotencyKey": uuid.uuid4().hex}}  # fmt: skip
        return {"query": RECORD_ATTENDANCE, "operationName": "RecordRegister", "variables": variables}


@dataclass
class ServiceOnly:
    """What the write, token and export scenarios need, set up before the service starts."""

    keys: Path
    registers: deque[Register] = field(default_factory=deque)
    token_client: tuple[str, str] | None = None
    evaluator: tuple[str, str] | None = None
    notes: list[str] = field(default_factory=list)


async def load_registers(database: str, caller: BenchCaller, count: int) -> deque[Register]:
    """The bench region's oldest sessions that are not cancelled (so not the dashboard's last 20), each with a
    register of ``REGISTER_SIZE`` of its group's active members and the session's current version."""
    connection = await asyncpg.connect(with_database(ADMIN_DSN, database))
    try:
        sessions = await connection.fetch(
            "SELECT s.id, s.version, s.group_id FROM group_sessions s JOIN groups g ON g.id = s.group_id"
            " WHERE g.region_id = $1 AND s.status <> 'cancelled' ORDER BY s.starts_at, s.id LIMIT $2",
            caller.region_id, count)  # fmt: skip
        members = await connection.fetch(
            "SELECT e.group_id, e.participant_id FROM enrolments e JOIN groups g ON g.id = e.group_id"
            " WHERE g.region_id = $1 AND e.status = 'active' ORDER BY e.group_id, e.participant_id",
            caller.region_id)  # fmt: skip
    finally:
        await connection.close()
    by_group: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in members:
        by_group.setdefault(row["group_id"], []).append(row["participant_id"])
    registers: deque[Register] = deque()
    for number, row in enumerate(sessions):
        people = by_group.get(row["group_id"], [])[:REGISTER_SIZE]
        if len(people) == REGISTER_SIZE:
            entries = [{"participantId": global_id("Participant", person), "status": STATUSES[(number + i) % 6]}
                       for i, person in enumerate(people)]  # fmt: skip
            registers.append(Register(row["id"], row["version"], entries))
    return registers


def service_env(database: str, keys: Path) -> dict[str, str]:
    return {**os.environ, "PROGRAMME_API_DATABASE_URL": sqlalchemy_url(database), "PROGRAMME_API_ISSUER": ISSUER,
            "PROGRAMME_API_SECRET_KEY_FILE": str(keys), "PROGRAMME_API_LOG_FORMAT": "console",
            "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(SOURCE), str(ROOT)]))}  # fmt: skip


def create_client(database: str, keys: Path, name: str, *options: str) -> tuple[str, str] | str:
    """``programme-api clients create ... --json`` against the bench database: (id, secret), or why not."""
    command = [sys.executable, "-c", "from programme_api.cli import main; main()", "clients", "create",
               "--organisation", ORGANISATION_SLUG, "--name", name, "--json", *options]  # fmt: skip
    done = subprocess.run(command, env=service_env(database, keys), cwd=SOURCE, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["no output"])[-1]
    created = json.loads(done.stdout[done.stdout.index("{") :])
    return created["client_id"], created["client_secret"]


async def prepare_service_only(args: argparse.Namespace, caller: BenchCaller, keys: Path) -> ServiceOnly:
    prepared = ServiceOnly(keys=keys)
    prepared.registers = await load_registers(args.database, caller, max(64, args.concurrency * 8))
    if not prepared.registers:
        prepared.notes.append(f"attendance register: skipped - no session with {REGISTER_SIZE} active enrolments")
    evaluator = ("--scope", "evaluation:read", "--evaluation-project", EVALUATION_PROJECT_SLUG)
    for kind, name, options in (("token", "bench", ("--scope", "programme:read")),
                                ("export", "bench evaluator", evaluator)):  # fmt: skip
        created = await asyncio.to_thread(create_client, args.database, keys, name, *options)
        if isinstance(created, str):
            prepared.notes.append(f"{kind}: skipped - `clients create` failed: {created}")
        elif kind == "token":
            prepared.token_client = created
        else:
            prepared.evaluator = created
    return prepared


async def count_write_statements(database: str, caller: BenchCaller, prepared: ServiceOnly) -> dict[str, str]:
    """SQL statements of one register write and one token issuance, counted in-process like the reads."""
    import sqlalchemy as sa

    from benchmarks.serve_app import bench_principal, fixed_authenticator
    from programme_api.app import create_app
    from programme_api.config import Settings
    from programme_api.db import create_engine

    settings = Settings(database_url=sqlalchemy_url(database), issuer=ISSUER, secret_key_file=prepared.keys)
    engine = create_engine(settings)
    seen: list[str] = []
    sa.event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    app = create_app(settings, engine=engine, authenticate=fixed_authenticator(bench_principal(caller)))
    counts: dict[str, str] = {}

    def counted() -> str:
        return str(sum(not s.lstrip().upper().startswith("SELECT 1") for s in seen))

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as client:
            if len(prepared.registers) > 1:
                register = prepared.registers.pop()  # kept out of the load: its version is used up here
                for _ in range(2):
                    seen.clear()
                    response = await client.post("/graphql", json=register.body(), headers=auth())
                    ok = not (response.json().get("data") or {}).get("recordAttendance", {}).get("userErrors", [1])
                    register.version += 1
                counts["attendance"] = counted() if ok else "?"
            if prepared.token_client is not None:
                for _ in range(2):
                    seen.clear()
                    response = await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                                  auth=prepared.token_client)  # fmt: skip
                counts["token"] = counted() if response.status_code == 200 else "?"
    finally:
        await engine.dispose()
    return counts


async def has_record_attendance(client: httpx.AsyncClient) -> bool:
    """Whether the measured service has the mutation, without introspection (machine clients may not
    introspect) and without writing: an incomplete call fails validation either way, but differently."""
    body = {"query": "mutation Probe { recordAttendance { __typename } }"}
    response = await client.post(f"{ISSUER}/graphql", json=body, headers=auth())
    messages = " ".join(error.get("message", "") for error in response.json().get("errors", []))
    return "Cannot query field" not in messages


def attendance_sender(client: httpx.AsyncClient, pool: deque[Register]) -> Callable[[], Awaitable[bool]]:
    """Each request takes a session nobody else is writing, sends its register at the version last seen, and
    puts it back one version on; a refused write (e.g. a conflict) takes the session out of the pool."""

    async def send() -> bool:
        if not pool:
            await asyncio.sleep(0.05)
            return False
        register = pool.popleft()
        response = await client.post(f"{ISSUER}/graphql", json=register.body(), headers=auth())
        ok = False
        with contextlib.suppress(ValueError, KeyError, TypeError):
            payload = response.json()["data"]["recordAttendance"]
            ok = not payload["userErrors"] and payload["session"]["version"] == register.version + 1
        if ok:
            register.version += 1
            pool.append(register)
        return ok

    return send


def token_sender(client: httpx.AsyncClient, credentials: tuple[str, str]) -> Callable[[], Awaitable[bool]]:
    async def send() -> bool:
        response = await client.post(f"{ISSUER}/oauth/token", data={"grant_type": "client_credentials"},
                                     auth=credentials)  # fmt: skip
        return response.status_code == 200 and b'"access_token"' in response.content

    return send


async def issue_token(client: httpx.AsyncClient, credentials: tuple[str, str]) -> str:
    response = await client.post(f"{ISSUER}/oauth/token", data={"grant_type": "client_credentials"},
                                 auth=credentials)  # fmt: skip
    if response.status_code != 200:
        raise SystemExit(f"/oauth/token answered {response.status_code}: {response.text[:300]}")
    token: str = response.json()["access_token"]
    return token


def memory_kb(pid: int, field_name: str) -> int:
    """``VmHWM`` (peak resident set) or ``VmRSS`` of a process, in kB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux: "5" to clear_refs), so the peak is the export's."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class ExportRun:
    sample: Sample
    rss_before_kb: int
    peak_kb: int
    peak_reset: bool
    complete: bool


async def export_once(client: httpx.AsyncClient, token: str, pid: int, max_seconds: float) -> ExportRun:
    """Stream the whole CSV once (bounded by ``max_seconds``), counting lines; the server's memory around it."""
    rss_before, peak_reset = memory_kb(pid, "VmRSS"), reset_peak(pid)
    lines, complete = 0, False
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"}
    async with client.stream("GET", f"{ISSUER}/exports/surveys.csv", headers=headers) as response:
        if response.status_code == 200:
            complete = True
            async for chunk in response.aiter_raw():
                lines += chunk.count(b"\n")
                if time.perf_counter() - started > max_seconds:
                    complete = False
                    break
    elapsed = time.perf_counter() - started
    rows = max(0, lines - 1)  # the header line
    sample = Sample(done=rows, failed=0 if complete else 1, elapsed=elapsed, latencies=[elapsed] if complete else [])
    return ExportRun(sample, rss_before, memory_kb(pid, "VmHWM"), peak_reset, complete)


async def run_service_only(
    args: argparse.Namespace,
    client: httpx.AsyncClient,
    service: Target,
    prepared: ServiceOnly,
    statements: dict[str, str],
) -> tuple[list[Result], list[str]]:
    """Register writes, token issuance and the CSV export, in interleaved rounds (order rotated per round)."""
    notes = list(prepared.notes)
    runs: dict[str, Callable[[], Awaitable[Sample]]] = {}
    bounds = {"concurrency": args.concurrency, "duration": args.duration, "max_requests": args.max_requests}
    if prepared.registers and await has_record_attendance(client):
        send = attendance_sender(client, prepared.registers)
        runs["attendance"] = lambda: load_with(send, **bounds)
    elif prepared.registers:
        notes.append("attendance register: skipped - the recordAttendance mutation does not exist")
    if prepared.token_client is not None:
        issue = token_sender(client, prepared.token_client)
        runs["token"] = lambda: load_with(issue, **bounds)
    exports: list[ExportRun] = []
    if prepared.evaluator is not None and service.pid is not None:
        token = await issue_token(client, prepared.evaluator)

        async def export() -> Sample:
            exports.append(await export_once(client, token, service.pid or 0, args.export_duration))
            return exports[-1].sample

        runs["export"] = export
    warm = {"concurrency": args.concurrency, "duration": args.warmup, "max_requests": args.max_requests}
    if "attendance" in runs:
        await load_with(attendance_sender(client, prepared.registers), **warm)
    if "token" in runs:
        await load_with(token_sender(client, prepared.token_client or ("", "")), **warm)
    names = {"attendance": "attendance", "token": "token", "export": "survey CSV (rows/s)"}
    results = {scenario: Result(names[scenario], "service", statements=statements.get(scenario, "-"))
               for scenario in runs}  # fmt: skip
    order = list(runs)
    for round_number in range(args.rounds):
        shift = round_number % max(1, len(order))
        for scenario in order[shift:] + order[:shift]:
            sample = await runs[scenario]()
            results[scenario].samples.append(sample)
            unit = "rows/s" if scenario == "export" else "req/s"
            print(f"  {scenario:<10} round {round_number + 1} service {sample.throughput:8.1f} {unit}"
                  f"{f' ({sample.failed} failed)' if sample.failed else ''}", flush=True)  # fmt: skip
    if exports:
        rows = exports[-1].sample.done
        peak = max(run.peak_kb for run in exports) / 1024
        before = statistics.median(run.rss_before_kb for run in exports) / 1024
        since = "each export" if all(run.peak_reset for run in exports) else "the service started (reset refused)"
        cut = "" if all(run.complete for run in exports) else f"; cut short at {args.export_duration:g}s"
        notes.append(f"survey CSV: {rows:,} rows per export; service peak RSS {peak:.0f} MB (VmHWM since "
                     f"{since}), {before:.0f} MB resident before{cut}; p50/p99 are whole exports")  # fmt: skip
    if "attendance" in runs:
        notes.append(f"attendance: registers of {REGISTER_SIZE} (each with an idempotency key), one session per "
                     "writer at a time, the version tracked client-side")  # fmt: skip
    return [r for r in results.values() if r.samples], notes


def table(results: list[Result]) -> str:
    """A Markdown table: one row per scenario and target, ratios on the service's rows."""
    by_key = {(r.scenario, r.target): r for r in results}
    lines = ["| scenario | target | req/s (median) | p50 ms | p99 ms | SQL/request | service ÷ target |",
             "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for result in results:
        service = by_key.get((result.scenario, "service"))
        ratio = ""
        if service is not None and result.target != "service":
            ratio = f"{service.throughput / result.throughput:.2f}x"
        failed = f" ({result.failed} failed)" if result.failed else ""
        latency = f"{result.percentile(0.5):.1f} | {result.percentile(0.99):.1f}"
        lines.append(f"| {result.scenario} | {result.target} | {result.throughput:,.1f}{failed} | {latency} | "
                     f"{result.statements} | {ratio} |")  # fmt: skip
    return "\n".join(lines)


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


@contextlib.asynccontextmanager
async def started_servers(
    args: argparse.Namespace, caller: BenchCaller, logs: Path, keys: Path
) -> AsyncIterator[list[Target]]:
    """The three servers, each with its own way to ask the two read scenarios; stopped when the block ends.
    The service gets the issuer it is reached at and the signing-key file ``clients create`` used."""
    for port in (SERVICE_PORT, FLOOR_PORT, PEER_PORT):
        free_port(port)
    env = {**service_env(args.database, keys), "BENCH_DSN": with_database(ADMIN_DSN, args.database),
           "BENCH_ORGANISATION_ID": str(caller.organisation_id), "BENCH_REGION_ID": str(caller.region_id)}  # fmt: skip
    uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "--host", HOST, "--workers", "1", "--no-access-log",
               "--log-level", "warning"]  # fmt: skip
    variables = {"organisation": str(caller.organisation_id), "region": str(caller.region_id)}
    targets = [
        Target("service", f"http://{HOST}:{SERVICE_PORT}/graphql",
               {"dashboard": {"query": DASHBOARD_QUERY}, "sessions": {"query": SESSIONS_QUERY}}, auth()),
        Target("floor", f"http://{HOST}:{FLOOR_PORT}/graphql",
               {"dashboard": {"query": DASHBOARD_QUERY, "operationName": "RegionDashboard"},
                "sessions": {"query": SESSIONS_QUERY, "operationName": "SessionPage"}}, auth()),
    ]  # fmt: skip
    commands = [
        ([*uvicorn, "--port", str(SERVICE_PORT), "benchmarks.serve_app:create"], SOURCE),
        ([*uvicorn, "--port", str(FLOOR_PORT), "benchmarks.floor:create"], SOURCE),
    ]
    if not args.no_peer:
        ensure_peer()
        targets.append(Target("peer", f"http://{HOST}:{PEER_PORT}/graphql", {
            "dashboard": {"query": PEER_DASHBOARD, "variables": variables},
            "sessions": {"query": PEER_SESSIONS, "variables": variables}}))  # fmt: skip
        commands.append((peer_command(args.database), PEERS))
    with contextlib.ExitStack() as stack:
        processes = []
        for target, (command, cwd) in zip(targets, commands, strict=True):
            log = logs / f"{target.name}.log"
            processes.append((stack.enter_context(server(command, env, cwd, log)), log))
        async with httpx.AsyncClient(timeout=30) as client:
            for target, (process, log) in zip(targets, processes, strict=True):
                await wait_ready(client, target, process, log)
                target.pid = process.pid  # uvicorn with one worker serves in this very process
        yield targets


async def check_same_data(client: httpx.AsyncClient, targets: list[Target]) -> None:
    """Refuse to measure targets that disagree: equal throughput on different answers would mean nothing."""
    for scenario, normalise in (("dashboard", normalise_peer), ("sessions", normalise_peer_sessions)):
        answers = {}
        for target in targets:
            response = await client.post(target.url, json=target.bodies[scenario], headers=target.headers)
            data = response.json()["data"]
            answers[target.name] = normalise(data) if target.name == "peer" else data
        for name, data in answers.items():
            if data != answers["service"]:
                raise SystemExit(f"{name} returns a different {scenario} from the service; fix before measuring")


def normalise_peer_sessions(data: dict[str, Any]) -> dict[str, Any]:
    """PostGraphile's session page in the service's shape (Relay IDs, enum names)."""
    edges = [{"node": node | {"id": global_id("GroupSession", uuid.UUID(node["id"])), "status": node["status"].upper()}}
             for node in data["allGroupSessions"]["nodes"]]  # fmt: skip
    return {"sessions": {"edges": edges}}


async def main_async(args: argparse.Namespace) -> None:
    logs = ROOT / "artifacts" / "benchmarks"
    logs.mkdir(parents=True, exist_ok=True)
    if not args.skip_generate:
        started = time.perf_counter()
        counts = await generate(args.scale, args.seed, args.database, SOURCE, export_rows=args.export_rows)
        print(f"generated scale {args.scale} in {time.perf_counter() - started:.1f}s: "
              + ", ".join(f"{n:,} {t}" for t, n in counts.items()), flush=True)  # fmt: skip
    connection = await asyncpg.connect(with_database(ADMIN_DSN, args.database))
    try:
        caller = await find_caller(connection)
    finally:
        await connection.close()
    keys_dir = tempfile.TemporaryDirectory(prefix="programme-bench-keys-")
    keys = Path(keys_dir.name) / "keys.json"
    prepared = await prepare_service_only(args, caller, keys)
    statements = {"service": await count_service_statements(args.database, caller),
                  "floor": await count_floor_statements(args.database, caller),
                  "peer": {"dashboard": "1", "sessions": "1"}}  # fmt: skip
    statements["service"].update(await count_write_statements(args.database, caller, prepared))
    results = {(s, t): Result(s, t) for s in ("dashboard", "sessions") for t in ("service", "floor", "peer")}
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with (
        started_servers(args, caller, logs, keys) as targets,
        httpx.AsyncClient(limits=limits, timeout=60) as client,
    ):
        await check_same_data(client, targets)
        for scenario in ("dashboard", "sessions"):
            for target in targets:  # warm-up: caches, prepared statements, JIT of the peer
                await load(client, target, scenario, concurrency=args.concurrency, duration=args.warmup,
                           max_requests=args.max_requests)  # fmt: skip
            for round_number in range(args.rounds):
                shift = round_number % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    sample = await load(client, target, scenario, concurrency=args.concurrency,
                                        duration=args.duration, max_requests=args.max_requests)  # fmt: skip
                    results[(scenario, target.name)].samples.append(sample)
                    print(f"  {scenario:<9} round {round_number + 1} {target.name:<7} "
                          f"{sample.throughput:8.1f} req/s", flush=True)  # fmt: skip
        # After the reads: the register writes change the data the reads were checked against.
        service_only, notes = await run_service_only(args, client, targets[0], prepared, statements["service"])
    keys_dir.cleanup()
    measured = [r for r in results.values() if r.samples]
    for result in measured:
        result.statements = statements[result.target][result.scenario]
    measured += service_only
    report = [f"scale {args.scale}, {args.rounds} interleaved rounds x {args.duration:g}s per target, "
              f"concurrency {args.concurrency}, one worker each; {machine()}", "", table(measured), ""]  # fmt: skip
    report += [f"- {note}" for note in notes]
    if not args.no_peer:
        report.append("- peer SQL/request: PostGraphile 4 compiles each query into one statement")
    text = "\n".join(report)
    print("\n" + text)
    (logs / "latest.md").write_text(text + "\n")
    if args.profile:
        profile = await profile_dashboard(args.database, caller, args.profile)
        (logs / "profile-dashboard.txt").write_text(profile)
        print("\n" + "\n".join(profile.splitlines()[:60]))
        print(f"(full profile in {logs / 'profile-dashboard.txt'})")


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the service against the floor and PostGraphile.")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per target per round (upper bound)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="requests per target per round (bound)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target and scenario")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-generate", action="store_true", help="reuse the loaded database")
    parser.add_argument("--no-peer", action="store_true", help="leave PostGraphile out (no Node available)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile N dashboard requests")
    parser.add_argument("--source", type=Path, default=SOURCE, help="checkout of programme_api to measure")
    parser.add_argument(
        "--export-rows",
        type=int,
        default=None,
        metavar="N",
        help="survey responses to generate and export (default: the scale's; target: 1,000,000)",
    )
    parser.add_argument(
        "--export-duration",
        type=float,
        default=300.0,
        help="seconds one CSV export may stream before it is cut short (bound)",
    )
    parser.add_argument("--smoke", action="store_true", help="CI: 1 round of 1 s, to show the suite still runs")
    args = parser.parse_args()
    if args.source.resolve() != SOURCE:
        # Re-run with the other checkout first on sys.path, before anything imported programme_api.
        os.execve(  # noqa: S606 - re-executes this same script
            sys.executable, [sys.executable, *sys.argv], {**os.environ, "BENCH_SOURCE": str(args.source.resolve())}
        )
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.max_requests = 1, 1.0, 0.5, 200
        args.export_duration = min(args.export_duration, 30.0)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
