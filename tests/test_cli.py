"""The `programme-api` command: db verbs, listings, and one-line errors (never a traceback)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from programme_api.cli import app
from programme_api.config import Settings, get_settings
from programme_api.db import create_engine, session_factory
from programme_api.domain.models import DeliveryMode, Group, Organisation, Topic

from .conftest import BACKENDS, drop_postgres_database, empty_database_url
from .factories import make_region

runner = CliRunner()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty database of each backend, named by PROGRAMME_API_DATABASE_URL for the command."""
    url = asyncio.run(empty_database_url(request.param, tmp_path, "cli"))
    monkeypatch.setenv("PROGRAMME_API_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()
    if request.param == "postgresql":
        asyncio.run(drop_postgres_database(make_url(url).database or ""))


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run ``programme-api ARGS`` in the process (``stdin`` fed to it): exit code, stdout and stderr."""
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_upgrade_then_list_and_downgrade(database_url: str) -> None:
    code, out, _ = invoke("db", "upgrade")
    assert code == 0, out
    code, out, _ = invoke("organisations", "list", "--json")
    assert code == 0
    assert json.loads(out) == []
    code, _, err = invoke("regions", "list", "--organisation", "nowhere", "--json")
    assert code == 1
    assert err.strip() == "error: organisation 'nowhere' not found"
    code, out, _ = invoke("db", "downgrade", "base")
    assert code == 0


def test_demo_load_is_idempotent_through_the_cli(database_url: str) -> None:
    assert invoke("db", "upgrade")[0] == 0
    code, first, err = invoke("demo", "load")
    assert code == 0, err
    organisations = json.loads(invoke("organisations", "list", "--json")[1])
    assert len(organisations) >= 2
    regions = json.loads(invoke("regions", "list", "--organisation", organisations[0]["slug"], "--json")[1])
    assert len(regions) == 3
    code, second, _ = invoke("demo", "load")
    assert code == 0
    assert json.loads(invoke("organisations", "list", "--json")[1]) == organisations
    assert second != first


def planner_statistics(url: str) -> dict[str, float]:
    """Tables the planner has statistics for, with their row estimate (SQLite: sqlite_stat1's first number;
    PostgreSQL: pg_class.reltuples, which ANALYZE sets and which is -1 until statistics are first taken)."""

    async def read() -> dict[str, float]:
        engine = create_engine(Settings(database_url=url))
        try:
            async with engine.connect() as connection:
                if engine.dialect.name == "sqlite":
                    exists = "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'"
                    if not (await connection.exec_driver_sql(exists)).scalar_one():
                        return {}
                    rows = await connection.exec_driver_sql(
                        "SELECT tbl, max(CAST(stat AS INTEGER)) FROM sqlite_stat1 GROUP BY tbl"
                    )
                else:
                    rows = await connection.exec_driver_sql(
                        "SELECT relname, reltuples FROM pg_class JOIN pg_namespace n ON n.oid = relnamespace "
                        "WHERE nspname = 'public' AND relkind = 'r' AND reltuples >= 0"
                    )
                return {name: float(number) for name, number in rows}
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_upgrade_takes_planner_statistics_of_the_data_already_there(database_url: str) -> None:
    assert invoke("db", "upgrade", "0002")[0] == 0

    async def add_rows() -> None:
        engine = create_engine(Settings(database_url=database_url))
        async with session_factory(engine)() as db:
            # The organisation through Core with the columns revision 0002 has: the model has grown since.
            organisation = SimpleNamespace(id=uuid.uuid4())
            await db.execute(
                sa.insert(Organisation.__table__).values(  # type: ignore[arg-type]
                    id=organisation.id, slug=f"stats-{organisation.id.hex[:8]}", name="Statistics", version=1
                )
            )
            region = await make_region(db, organisation)  # type: ignore[arg-type]
            for number in range(3):  # through Core too, with the columns the groups table had then
                await db.execute(sa.insert(Group.__table__).values(  # type: ignore[arg-type]
                    id=uuid.uuid4(), organisation_id=organisation.id, region_id=region.id, name=f"Group {number}",
                    topic=Topic.DEPRESSION, delivery_mode=DeliveryMode.IN_PERSON, capacity=12,
                ))  # fmt: skip
            await db.commit()
        await engine.dispose()

    asyncio.run(add_rows())
    assert planner_statistics(database_url).get("groups", 0) == 0

    code, _, err = invoke("db", "upgrade")
    assert code == 0, err

    assert planner_statistics(database_url)["groups"] == 3


def test_demo_load_leaves_planner_statistics_of_the_big_tables(database_url: str) -> None:
    assert invoke("db", "upgrade")[0] == 0
    assert (
        "group_sessions" not in planner_statistics(database_url)
        or not planner_statistics(database_url)["group_sessions"]
    )

    code, _, err = invoke("demo", "load")
    assert code == 0, err

    statistics = planner_statistics(database_url)
    for table in ("group_sessions", "attendance", "groups", "participants", "enrolments"):
        assert statistics.get(table, 0) > 0, f"no planner statistics for {table}: {statistics}"


def test_commands_before_migration_fail_in_one_line(database_url: str) -> None:
    code, _, err = invoke("organisations", "list", "--json")
    assert code == 1
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("verb", ["downgrade", "upgrade"])
def test_unknown_revision_is_one_line(database_url: str, verb: str) -> None:
    assert invoke("db", "upgrade")[0] == 0
    code, _, err = invoke("db", verb, "nonsense")
    assert code == 1
    assert err == "error: Can't locate revision identified by 'nonsense'\n"


def test_an_unforeseen_failure_is_one_line_from_the_console_script(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from programme_api import cli

    def broken(revision: str = "head") -> None:
        raise RuntimeError("disk on fire\nsecond line of detail")

    monkeypatch.setattr(cli.migrations, "upgrade", broken)
    monkeypatch.setattr("sys.argv", ["programme-api", "db", "upgrade"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    assert capsys.readouterr().err == "error: RuntimeError: disk on fire\n"


def test_bad_setting_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROGRAMME_API_DATABASE_URL", "not a url")
    get_settings.cache_clear()
    try:
        code, _, err = invoke("organisations", "list")
    finally:
        get_settings.cache_clear()
    assert code == 1
    assert err.strip().splitlines() == [err.strip()]
    assert "PROGRAMME_API_DATABASE_URL" in err


def test_unreachable_database_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROGRAMME_API_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    try:
        code, _, err = invoke("organisations", "list")
    finally:
        get_settings.cache_clear()
    assert code == 1
    assert err.startswith("error: ")
    assert "Traceback" not in err


def test_evaluation_project_verbs_are_one_group() -> None:
    """Every operator verb on an evaluation project is under ``evaluation-projects``; there is no second group."""
    code, out, _ = invoke("evaluation-projects", "--help")
    assert code == 0
    assert "share" in out
    assert "set-dose-bands" in out
    code, _, _ = invoke("evaluation", "set-dose-bands", "demo-evaluation", "--organisation", "x", "--default")
    assert code == 2


def test_export_surveys_writes_the_evaluator_files(database_url: str, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    assert invoke("db", "upgrade")[0] == 0
    assert invoke("demo", "load")[0] == 0
    code, out, err = invoke(
        "clients", "create", "--organisation", "northern-peer-support", "--name", "University evaluation",
        "--scope", "evaluation:read", "--evaluation-project", "demo-evaluation", "--json",
    )  # fmt: skip
    assert code == 0, err
    client_id = json.loads(out)["client_id"]
    csv_file, parquet_file = tmp_path / "surveys.csv", tmp_path / "surveys.parquet"
    assert invoke("export", "surveys", "--client-id", client_id, "--output", str(csv_file))[0] == 0
    code, _, err = invoke(
        "export", "surveys", "--client-id", client_id, "--format", "parquet", "--output", str(parquet_file)
    )
    assert code == 0, err
    lines = csv_file.read_text().splitlines()
    assert lines[0].startswith("pseudonym,region,group_topic,timepoint")
    assert len(lines) > 100
    assert pq.read_table(parquet_file).num_rows == len(lines) - 1
    assert "@" not in csv_file.read_text()  # no contact details reach an evaluator
    code, out, _ = invoke("audit", "list", "--organisation", "northern-peer-support", "--json",
                          "--action", "evaluation.exported", "--actor", f"client:{client_id}")  # fmt: skip
    assert sorted(json.loads(line)["details"]["format"] for line in out.splitlines()) == ["csv", "parquet"]

    code, _, err = invoke("export", "surveys", "--client-id", "no-such-client")
    assert code == 1
    assert err.strip() == "error: client 'no-such-client' not found"


def test_audit_list_prints_json_lines_newest_first_with_filters(database_url: str) -> None:
    import uuid
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from programme_api.config import Settings
    from programme_api.db import create_engine
    from programme_api.domain.models import ActorType, AuditEvent, Organisation

    assert invoke("db", "upgrade")[0] == 0
    start = datetime(2026, 11, 1, 9, tzinfo=UTC)
    listed = str(uuid.uuid4())

    async def seed() -> None:
        engine = create_engine(Settings(database_url=database_url))
        async with engine.begin() as connection:
            for slug in ("audited", "elsewhere"):
                organisation = uuid.uuid4()
                await connection.execute(
                    sa.insert(Organisation).values(
                        id=organisation, slug=slug, name=slug, timezone="UTC", suppression_threshold=5, version=1
                    )
                )
                await connection.execute(sa.insert(AuditEvent), [
                    {"id": uuid.uuid4(), "organisation_id": organisation, "occurred_at": start + timedelta(hours=n),
                     "actor_type": ActorType.USER, "actor_id": f"user-{n % 2}", "action": f"thing.{n}",
                     "target_type": "Participant", "target_id": None, "request_id": None,
                     "details": {"ids": [listed] if n == 1 else [], "count": 1}} for n in range(3)])  # fmt: skip
        await engine.dispose()

    asyncio.run(seed())
    code, out, err = invoke("audit", "list", "--organisation", "audited", "--json")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [event["action"] for event in events] == ["thing.2", "thing.1", "thing.0"]
    assert events[0]["occurred_at"] == "2026-11-01T11:00:00+00:00"
    code, out, _ = invoke("audit", "list", "--organisation", "audited", "--json", "--actor", "user-0",
                          "--since", "2026-11-01T10:00:00")  # fmt: skip
    assert [json.loads(line)["action"] for line in out.splitlines()] == ["thing.2"]
    code, out, _ = invoke("audit", "list", "--organisation", "audited", "--json", "--target-id", listed)
    assert [json.loads(line)["action"] for line in out.splitlines()] == ["thing.1"]
    code, out, _ = invoke("audit", "list", "--organisation", "audited", "--json", "--limit", "1")
    assert len(out.splitlines()) == 1
    code, _, err = invoke("audit", "list", "--organisation", "nowhere", "--json")
    assert code == 1
    assert err.strip() == "error: organisation 'nowhere' not found"
