"""The scenarios only the service has: a 15-person register write (``recordAttendance``), client-credentials
token issuance (``POST /oauth/token``) and streaming the evaluator's survey CSV (``/exports/surveys.csv``, rows/s
and the server's peak RSS), in interleaved rounds of their own. Every request carries a real access token."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from . import generate
from .measure import Processes, Result, Sample, load_with
from .shared import RECORD_ATTENDANCE, REGISTER_SIZE, BenchCaller, global_id

STATUSES = ("PRESENT", "PRESENT", "PRESENT", "EXCUSED", "PRESENT", "UNEXCUSED")


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

    registers: deque[Register] = field(default_factory=deque)
    writer: tuple[str, str] | None = None
    token_client: tuple[str, str] | None = None
    evaluator: tuple[str, str] | None = None
    notes: list[str] = field(default_factory=list)


def create_client(env: dict[str, str], cwd: Path, name: str, *options: str) -> tuple[str, str] | str:
    """``programme-api clients create ... --json`` against the bench database: (id, secret), or why not."""
    command = [sys.executable, "-c", "from programme_api.cli import main; main()", "clients", "create",
               "--organisation", generate.ORGANISATION_SLUG, "--name", name, "--json", *options]  # fmt: skip
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["no output"])[-1]
    created = json.loads(done.stdout[done.stdout.index("{") :])
    return created["client_id"], created["client_secret"]


async def load_registers(database: str, caller: BenchCaller, count: int) -> deque[Register]:
    """The bench region's oldest sessions that are not cancelled (so not the dashboard's last 20), each with a
    register of ``REGISTER_SIZE`` of its group's active members and the session's current version."""
    connection = await asyncpg.connect(generate.with_database(generate.ADMIN_DSN, database))
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


async def prepare_service_only(
    args: argparse.Namespace, env: dict[str, str], cwd: Path, caller: BenchCaller
) -> ServiceOnly:
    prepared = ServiceOnly()
    prepared.registers = await load_registers(args.database, caller, max(64, args.concurrency * 8))
    if not prepared.registers:
        prepared.notes.append(f"attendance register: skipped - no session with {REGISTER_SIZE} active enrolments")
    clients = {
        "writer": ("bench attendance app", "--scope", "programme:read attendance:write",
                   "--region", generate.DASHBOARD_REGION_SLUG),
        "token_client": ("bench", "--scope", "programme:read"),
        "evaluator": ("bench exporter", "--scope", "evaluation:read",
                      "--evaluation-project", generate.EVALUATION_PROJECT_SLUG),
    }  # fmt: skip
    for attribute, (name, *options) in clients.items():
        created = await asyncio.to_thread(create_client, env, cwd, name, *options)
        if isinstance(created, str):
            raise SystemExit(f"`clients create` for {name!r} failed: {created}")
        setattr(prepared, attribute, created)
    return prepared


async def issue(client: httpx.AsyncClient, issuer: str, credentials: tuple[str, str]) -> httpx.Response:
    return await client.post(f"{issuer}/oauth/token", data={"grant_type": "client_credentials"}, auth=credentials)


def attendance_sender(
    client: httpx.AsyncClient, issuer: str, pool: deque[Register], headers: dict[str, str]
) -> Callable[[int], Awaitable[bool]]:
    """Each request takes a session nobody else is writing, sends its register at the version last seen, and
    puts it back one version on; a refused write (e.g. a conflict) takes the session out of the pool."""

    async def send(_number: int) -> bool:
        if not pool:
            await asyncio.sleep(0.05)
            return False
        register = pool.popleft()
        response = await client.post(f"{issuer}/graphql", json=register.body(), headers=headers)
        ok = False
        with contextlib.suppress(ValueError, KeyError, TypeError):
            payload = response.json()["data"]["recordAttendance"]
            ok = not payload["userErrors"] and payload["session"]["version"] == register.version + 1
        if ok:
            register.version += 1
            pool.append(register)
        return ok

    return send


def token_sender(
    client: httpx.AsyncClient, issuer: str, credentials: tuple[str, str]
) -> Callable[[int], Awaitable[bool]]:
    async def send(_number: int) -> bool:
        response = await issue(client, issuer, credentials)
        return response.status_code == 200 and b'"access_token"' in response.content

    return send


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


async def export_once(client: httpx.AsyncClient, issuer: str, token: str, pid: int, max_seconds: float) -> ExportRun:
    """Stream the whole CSV once (bounded by ``max_seconds``), counting lines; the server's memory around it."""
    rss_before, peak_reset = memory_kb(pid, "VmRSS"), reset_peak(pid)
    lines, complete = 0, False
    loop = asyncio.get_running_loop()
    started = loop.time()
    headers = {"Authorization": f"Bearer {token}"}
    async with client.stream("GET", f"{issuer}/exports/surveys.csv", headers=headers) as response:
        if response.status_code == 200:
            complete = True
            async for chunk in response.aiter_raw():
                lines += chunk.count(b"\n")
                if loop.time() - started > max_seconds:
                    complete = False
                    break
    elapsed = loop.time() - started
    rows = max(0, lines - 1)  # the header line
    sample = Sample(done=rows, failed=0 if complete else 1, elapsed=elapsed, latencies=[elapsed] if complete else [])
    return ExportRun(sample, rss_before, memory_kb(pid, "VmHWM"), peak_reset, complete)


async def bearer(client: httpx.AsyncClient, issuer: str, credentials: tuple[str, str] | None) -> dict[str, str]:
    assert credentials is not None
    response = await issue(client, issuer, credentials)
    if response.status_code != 200:
        raise SystemExit(f"/oauth/token answered {response.status_code}: {response.text[:300]}")
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def run_service_only(
    args: argparse.Namespace,
    client: httpx.AsyncClient,
    issuer: str,
    service_pid: int | None,
    prepared: ServiceOnly,
    database_pid: int | None,
) -> tuple[list[Result], list[str]]:
    """Register writes, token issuance and the CSV export, in interleaved rounds (order rotated per round)."""
    notes = list(prepared.notes)
    processes = Processes(target=service_pid, database=database_pid)
    bounds = {"concurrency": args.concurrency, "duration": args.duration, "max_requests": args.max_requests,
              "processes": processes}  # fmt: skip
    writes = await bearer(client, issuer, prepared.writer)
    runs: dict[str, Callable[[], Awaitable[Sample]]] = {}
    if prepared.registers:
        send = attendance_sender(client, issuer, prepared.registers, writes)
        runs["attendance"] = lambda: load_with(send, **bounds)
    if prepared.token_client is not None:
        issue_one = token_sender(client, issuer, prepared.token_client)
        runs["token"] = lambda: load_with(issue_one, **bounds)
    exports: list[ExportRun] = []
    if prepared.evaluator is not None and service_pid is not None:
        token = (await bearer(client, issuer, prepared.evaluator))["Authorization"].removeprefix("Bearer ")

        async def export() -> Sample:
            exports.append(await export_once(client, issuer, token, service_pid or 0, args.export_duration))
            return exports[-1].sample

        runs["export"] = export
    warm = {"concurrency": args.concurrency, "duration": args.warmup, "max_requests": args.max_requests}
    if "attendance" in runs:
        await load_with(attendance_sender(client, issuer, prepared.registers, writes), **warm)
    if prepared.token_client is not None:
        await load_with(token_sender(client, issuer, prepared.token_client), **warm)
    names = {"attendance": "attendance", "token": "token", "export": "survey CSV (rows/s)"}
    results = {scenario: Result(names[scenario], "service") for scenario in runs}
    order = list(runs)
    for round_number in range(args.rounds):
        shift = round_number % max(1, len(order))
        for scenario in order[shift:] + order[:shift]:
            sample = await runs[scenario]()
            results[scenario].samples.append(sample)
            unit = "rows/s" if scenario == "export" else "req/s"
            print(f"  {scenario:<28} round {round_number + 1} service {sample.throughput:8.1f} {unit}"
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
