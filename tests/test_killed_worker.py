"""Concurrent writers while a worker is killed: ``programme-api serve --workers 2`` on PostgreSQL, real processes.

32 clients, each with its own connection and token, record whole registers (``recordAttendance``), enrol a
participant into one small group (capacity 5: the rest go on its waitlist) and submit a survey response,
sending idempotency keys where the mutation takes one and retrying on connection errors and 5xx. Once a
quarter of the writes are acknowledged, one of the two worker processes is SIGKILLed (in flight requests
die with it, their transactions with their connections); uvicorn's supervisor starts a new one. Afterwards,
read straight from the database as the owner:

- every acknowledged write is present exactly once (a register's rows, the enrolment, the response);
- no register is partial: a session's rows are all of its register or none, and a held session has them all;
- the small group never holds more active places than its capacity, the active places went to the earliest
  requests, and waitlist positions (request time, then id) are unique;
- no write is present twice (one enrolment per participant, one response per participant and timepoint).

The figures are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from programme_api.config import Settings
from programme_api.db import create_engine
from programme_api.domain.models import (
    Attendance,
    Enrolment,
    EnrolmentStatus,
    GroupSession,
    SessionStatus,
    SurveyResponse,
)
from programme_api.oauth.clients import create_client
from programme_api.schema import schema
from programme_api.schema.relay import from_global_id, to_global_id

from .api import free_port
from .conftest import app_role_url, create_postgres_database, drop_postgres_database, grant_app_role, migrate
from .factories import (
    enrol,
    gid,
    make_group,
    make_organisation,
    make_participant,
    make_region,
    make_session,
    shipped_instrument_ids,
)
from .test_oauth_workers import wait_until_ready

CLIENTS = 32
REGISTERS_PER_CLIENT = 2
REGISTER_SIZE = 4  # the participants of one register group
CAPACITY = 5
KILL_AFTER = float(os.environ.get("KILL_AFTER", "0.25"))  # of all writes acknowledged
DEADLINE_SECONDS = 80

RECORD = """mutation Record($input: RecordAttendanceInput!) { recordAttendance(input: $input) {
  session { id } attendance { id } userErrors { code message } } }"""
ENROL = """mutation Enrol($input: EnrolParticipantInput!) { enrolParticipant(input: $input) {
  enrolment { id status } userErrors { code message } } }"""
SUBMIT = """mutation Submit($input: SubmitSurveyResponseInput!) { submitSurveyResponse(input: $input) {
  response { id } userErrors { code message } } }"""
SURVEY_TAKES_A_KEY = "idempotencyKey" in schema._schema.type_map["SubmitSurveyResponseInput"].fields  # type: ignore[union-attr]


@dataclass
class World:
    token_client: tuple[str, str]
    small_group: str
    register_groups: list[str]
    participants: list[str]  # participant k belongs to client k, in register group k // REGISTER_SIZE
    sessions: list[list[str]]  # per register group
    phq9: str


@dataclass
class Figures:
    attempted: int = 0
    acknowledged: int = 0
    requests: int = 0
    retries: int = 0
    connection_errors: int = 0
    server_errors: list[str] = field(default_factory=list)
    throttled: int = 0
    confirmed_by_refusal: int = 0  # a retry refused as DUPLICATE: the first attempt had committed
    refused: list[str] = field(default_factory=list)
    registers: dict[str, set[str]] = field(
        default_factory=dict, repr=False
    )  # session id -> attendance ids acknowledged
    enrolments: dict[str, str] = field(default_factory=dict, repr=False)  # participant -> enrolment id acknowledged
    responses: dict[str, str] = field(default_factory=dict, repr=False)  # participant -> response id acknowledged


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def workers(self) -> list[int]:
        """The supervisor's worker processes (multiprocessing children started with ``spawn_main``)."""
        found = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                try:
                    command = Path(f"/proc/{child}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"spawn_main" in command:
                    found.append(int(child))
        return sorted(found)


async def build_world(engine: AsyncEngine) -> World:
    async with AsyncSession(engine, expire_on_commit=False) as db:
        organisation = await make_organisation(db)
        region = await make_region(db, organisation)
        small = await make_group(db, region, name="Small group", capacity=CAPACITY)
        starts = datetime.now(UTC) - timedelta(days=30)
        register_groups, participants, sessions = [], [], []
        for index in range(CLIENTS // REGISTER_SIZE):
            group = await make_group(db, region, name=f"Register group {index}", capacity=10)
            register_groups.append(group)
            for _ in range(REGISTER_SIZE):
                participant = await make_participant(db, region)
                await enrol(db, participant, group)
                participants.append(participant)
            meetings = [
                await make_session(db, group, starts_at=starts + timedelta(days=day), status=SessionStatus.SCHEDULED)
                for day in range(REGISTER_SIZE * REGISTERS_PER_CLIENT)
            ]
            sessions.append([gid(meeting) for meeting in meetings])
        instruments = await shipped_instrument_ids(db)
        created = await create_client(
            db, organisation_slug=organisation.slug, name="Register app",
            scope="programme:read attendance:write participants:read participants:write surveys:write",
            region_slugs=[], grants=[], redirect_uris=[], evaluation_project_slug=None, public=False,
        )  # fmt: skip
        await db.commit()
    assert created.client_secret is not None
    return World(
        token_client=(created.client_id, created.client_secret),
        small_group=gid(small),
        register_groups=[gid(group) for group in register_groups],
        participants=[gid(participant) for participant in participants],
        sessions=sessions,
        phq9=to_global_id("SurveyInstrument", instruments["phq9"]),
    )


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Server, AsyncEngine, World]]:
    name = f"programme_api_killed_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = await create_postgres_database(name)
    engine = create_engine(Settings(database_url=url))
    await migrate(engine)
    await grant_app_role(engine)
    world = await build_world(engine)
    port = free_port()
    env = {
        **os.environ,
        "PROGRAMME_API_DATABASE_URL": app_role_url(url),  # a non-owner role: row-level security applies
        "PROGRAMME_API_SECRET_KEY_FILE": str(tmp_path / "keys.json"),
        "PROGRAMME_API_ISSUER": f"http://127.0.0.1:{port}",
        "PROGRAMME_API_LOG_FORMAT": "console",
    }
    env.pop("PROGRAMME_API_REDIS_URL", None)
    log = tmp_path / "serve.log"
    command = [sys.executable, "-c", "from programme_api.cli import main; main()", "serve", "--port", str(port),
               "--workers", "2"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)  # noqa: ASYNC220
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        await wait_until_ready(server.base_url, process, log)
        await until(lambda: len(server.workers()) == 2, "two workers")
        yield server, engine, world
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        await engine.dispose()
        await drop_postgres_database(make_url(url).database or "")


def cpu_ticks(pid: int) -> int:
    """User and system CPU time a process has used so far, in clock ticks (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


async def until(condition: Any, what: str, within: float = 20) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            pytest.fail(f"no {what} after {within} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


class Writer:
    """One client: its own connection pool and token; sends a write until it is answered, resending on
    connection errors and 5xx with the same idempotency key."""

    def __init__(self, base_url: str, token: str, figures: Figures, deadline: float) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"})
        self.figures = figures
        self.deadline = deadline
        self.last = ""

    async def send(self, query: str, variables: dict[str, Any], field_name: str) -> dict[str, Any] | None:
        self.figures.attempted += 1
        attempt = 0
        while time.monotonic() < self.deadline:
            attempt += 1
            self.figures.requests += 1
            if attempt > 1:
                self.figures.retries += 1
            try:
                response = await self.http.post("/graphql", json={"query": query, "variables": variables})
            except httpx.TransportError as error:
                self.last = repr(error)
                self.figures.connection_errors += 1
                await asyncio.sleep(min(0.05 * attempt, 0.5))
                continue
            if response.status_code == 429:  # throttled: wait as told, then resend
                self.figures.throttled += 1
                await asyncio.sleep(min(float(response.headers.get("retry-after", "1") or 1), 2.0))
                continue
            if response.status_code >= 500:
                self.figures.server_errors.append(f"{response.status_code} {response.text[:200]}")
                await asyncio.sleep(min(0.05 * attempt, 0.5))
                continue
            assert response.status_code == 200, response.text
            body = response.json()
            assert "errors" not in body, body
            payload: dict[str, Any] = body["data"][field_name]
            errors = payload["userErrors"]
            if not errors:
                self.figures.acknowledged += 1
                return payload
            if attempt > 1 and [error["code"] for error in errors] == ["DUPLICATE"]:
                self.figures.confirmed_by_refusal += 1  # the lost first answer had committed
                return None
            self.figures.refused.append(f"{field_name}: {errors}")
            return None
        pytest.fail(f"{field_name} not answered before the deadline: {self.figures}, last error: {self.last}")

    async def close(self) -> None:
        await self.http.aclose()


async def client_work(index: int, writer: Writer, world: World, figures: Figures) -> None:
    participant = world.participants[index]
    group_index = index // REGISTER_SIZE
    members = world.participants[group_index * REGISTER_SIZE : (group_index + 1) * REGISTER_SIZE]
    statuses = ["PRESENT", "EXCUSED", "UNEXCUSED", "PRESENT"]
    for round_ in range(REGISTERS_PER_CLIENT):
        session_id = world.sessions[group_index][round_ * REGISTER_SIZE + index % REGISTER_SIZE]
        entries = [{"participantId": member, "status": statuses[(i + round_) % 4]} for i, member in enumerate(members)]
        payload = await writer.send(RECORD, {"input": {
            "idempotencyKey": f"register-{index}-{round_}", "sessionId": session_id, "version": 1,
            "entries": entries, "dropinCount": index % 3,
        }}, "recordAttendance")  # fmt: skip
        if payload is not None:
            figures.registers[session_id] = {row["id"] for row in payload["attendance"]}
    enrolled = await writer.send(ENROL, {"input": {
        "idempotencyKey": f"enrol-{index}", "participantId": participant, "groupId": world.small_group,
    }}, "enrolParticipant")  # fmt: skip
    if enrolled is not None:
        figures.enrolments[participant] = enrolled["enrolment"]["id"]
    survey: dict[str, Any] = {
        "participantId": participant, "groupId": world.register_groups[group_index], "instrumentId": world.phq9,
        "timepoint": "BASELINE", "answers": [{"item": f"item{i}", "value": 1 if i < 9 else 0} for i in range(1, 10)],
    }  # fmt: skip
    if SURVEY_TAKES_A_KEY:
        survey["idempotencyKey"] = f"survey-{index}"
    submitted = await writer.send(SUBMIT, {"input": survey}, "submitSurveyResponse")
    if submitted is not None:
        figures.responses[participant] = submitted["response"]["id"]


async def test_acknowledged_writes_survive_a_killed_worker_exactly_once(
    served: tuple[Server, AsyncEngine, World],
) -> None:
    server, engine, world = served
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        issued = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=world.token_client)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]

    figures = Figures()
    total = CLIENTS * (REGISTERS_PER_CLIENT + 2)
    writers = [Writer(server.base_url, token, figures, started + DEADLINE_SECONDS) for _ in range(CLIENTS)]
    victims = server.workers()
    assert len(victims) == 2

    async def kill_one() -> tuple[int, float]:
        await until(lambda: figures.acknowledged >= total * KILL_AFTER, "progress", within=DEADLINE_SECONDS)
        # The busier worker: the kernel may have handed (nearly) every kept-alive connection to one of the two,
        # and killing an idle one would interrupt nothing.
        victim = max(victims, key=cpu_ticks)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        await until(lambda: len(set(server.workers()) - set(victims)) == 1 and len(server.workers()) == 2,
                    "replacement worker")  # fmt: skip
        return victim, time.monotonic() - killed_at

    killer = asyncio.create_task(kill_one())
    try:
        await asyncio.gather(*(client_work(k, writer, world, figures) for k, writer in enumerate(writers)))
    finally:
        for writer in writers:
            await writer.close()
    killed, restart_seconds = await killer
    acknowledged_before_end = figures.acknowledged

    present, duplicates, lost, partial = await audit(engine, world, figures)
    elapsed = time.monotonic() - started
    print(
        f"\nkilled worker {killed} (replaced in {restart_seconds:.1f} s); {elapsed:.1f} s in all\n"
        f"writes attempted {figures.attempted}, acknowledged {acknowledged_before_end}, "
        f"confirmed by a DUPLICATE refusal on retry {figures.confirmed_by_refusal}, present {present}, "
        f"duplicates {duplicates}, lost {lost}, partial registers {partial}\n"
        f"requests {figures.requests}, retries {figures.retries}, connection errors {figures.connection_errors}, "
        f"5xx {len(figures.server_errors)}"
    )
    assert figures.connection_errors > 0, "the kill interrupted no request: the run proved nothing about it"
    assert figures.refused == []
    assert figures.server_errors == []
    assert (duplicates, lost, partial) == (0, 0, 0)
    assert figures.acknowledged + figures.confirmed_by_refusal == figures.attempted == total


async def audit(engine: AsyncEngine, world: World, figures: Figures) -> tuple[int, int, int, int]:
    """(present, duplicates, lost, partial registers) of what the clients were told, from the database."""

    def row_id(global_id: str) -> uuid.UUID:
        return from_global_id(global_id)[1]

    present = duplicates = lost = partial = 0
    async with AsyncSession(engine) as db:
        marks = Counter(
            (row.session_id, row.participant_id)
            for row in await db.execute(sa.select(Attendance.session_id, Attendance.participant_id))
        )
        duplicates += sum(count - 1 for count in marks.values() if count > 1)
        per_session = Counter(session_id for session_id, _participant in marks)
        attendance_ids = set(await db.scalars(sa.select(Attendance.id)))
        held = set(await db.scalars(sa.select(GroupSession.id).where(GroupSession.status == SessionStatus.HELD)))
        for session_ids in world.sessions:
            for session_id in map(row_id, session_ids):
                rows = per_session.get(session_id, 0)
                if rows not in (0, REGISTER_SIZE) or (session_id in held) != (rows == REGISTER_SIZE):
                    partial += 1
        for session_gid, acknowledged in figures.registers.items():
            ids = {row_id(value) for value in acknowledged}
            found = len(ids & attendance_ids)
            present += found == REGISTER_SIZE
            lost += found != REGISTER_SIZE or per_session.get(row_id(session_gid), 0) != REGISTER_SIZE

        small = row_id(world.small_group)
        enrolments = (await db.execute(sa.select(Enrolment).where(Enrolment.group_id == small))).scalars().all()
        per_participant = Counter(enrolment.participant_id for enrolment in enrolments)
        duplicates += sum(count - 1 for count in per_participant.values() if count > 1)
        by_id = {enrolment.id for enrolment in enrolments}
        for enrolment_gid in figures.enrolments.values():
            found_enrolment = row_id(enrolment_gid) in by_id
            present += found_enrolment
            lost += not found_enrolment
        active = sorted((e for e in enrolments if e.status is EnrolmentStatus.ACTIVE), key=lambda e: e.requested_at)
        waiting = sorted((e for e in enrolments if e.status is EnrolmentStatus.WAITLISTED),
                         key=lambda e: (e.requested_at, e.id))  # fmt: skip
        assert len(active) == min(CAPACITY, len(enrolments)), "capacity exceeded or places left empty"
        assert len(active) + len(waiting) == len(enrolments) == CLIENTS
        assert max(e.requested_at for e in active) < min(e.requested_at for e in waiting), "not first come first"
        assert len({e.requested_at for e in waiting}) == len(waiting), "two waitlist places share a position"

        responses = (await db.execute(sa.select(SurveyResponse.id, SurveyResponse.participant_id))).all()
        per_respondent = Counter(row.participant_id for row in responses)
        duplicates += sum(count - 1 for count in per_respondent.values() if count > 1)
        response_ids = {row.id for row in responses}
        for response_gid in figures.responses.values():
            found_response = row_id(response_gid) in response_ids
            present += found_response
            lost += not found_response
        assert len(responses) == CLIENTS
    return present, duplicates, lost, partial
