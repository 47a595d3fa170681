"""`programme-api clients create`, `users create` and `keys rotate` against a migrated SQLite file database."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from programme_api.app import create_app
from programme_api.config import Settings, get_settings
from programme_api.db import create_engine
from programme_api.domain.models import (
    AuditEvent,
    OAuthClient,
    OAuthClientRegion,
    Organisation,
    Region,
    User,
    UserRegion,
)
from programme_api.domain.passwords import hash_secret, verify_password

from .oauth_support import ISSUER
from .test_cli import invoke

PASSWORD = "a long enough password"


@pytest.fixture
def cli_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A migrated SQLite file with one organisation ("acme", regions north and south), named in the environment."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PROGRAMME_API_DATABASE_URL", url)
    monkeypatch.setenv("PROGRAMME_API_ISSUER", ISSUER)
    monkeypatch.setenv("PROGRAMME_API_SECRET_KEY_FILE", str(tmp_path / "keys.json"))
    get_settings.cache_clear()
    assert invoke("db", "upgrade")[0] == 0
    settings = get_settings()

    async def seed() -> None:
        engine = create_engine(settings)
        async with engine.begin() as connection:
            organisation_id = (
                await connection.execute(
                    sa.insert(Organisation).values(slug="acme", name="Acme").returning(Organisation.id)
                )
            ).scalar_one()
            await connection.execute(
                sa.insert(Region),
                [{"organisation_id": organisation_id, "slug": slug, "name": slug} for slug in ("north", "south")],
            )
        await engine.dispose()

    asyncio.run(seed())
    yield settings
    get_settings.cache_clear()


def query(settings: Settings, statement: Any) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_engine(settings)
        async with engine.connect() as connection:
            rows = list((await connection.execute(statement)).all())
        await engine.dispose()
        return rows

    return asyncio.run(run())


def test_clients_create_prints_the_secret_once_and_stores_its_hash(cli_settings: Settings) -> None:
    code, out, err = invoke(
        "clients", "create", "--organisation", "acme", "--name", "Attendance app",
        "--scope", "programme:read attendance:write", "--region", "north", "--json",
    )  # fmt: skip
    assert code == 0, err
    created = json.loads(out)
    assert set(created) == {"client_id", "client_secret"}
    assert len(created["client_secret"]) >= 43

    (row,) = query(cli_settings, sa.select(OAuthClient))
    assert row.client_secret_hash == hash_secret(created["client_secret"])
    assert created["client_secret"] not in json.dumps([str(value) for value in row])
    assert row.scope == "attendance:write programme:read"
    assert len(query(cli_settings, sa.select(OAuthClientRegion))) == 1
    (event,) = query(cli_settings, sa.select(AuditEvent).where(AuditEvent.action == "oauth.client_created"))
    assert event.target_id == created["client_id"]

    async def token() -> httpx.Response:
        app = create_app(cli_settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as client:
            return await client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(created["client_id"], created["client_secret"]),
            )

    response = asyncio.run(token())
    assert response.status_code == 200, response.text


def test_clients_create_for_a_browser_app_has_no_secret(cli_settings: Settings) -> None:
    code, out, err = invoke(
        "clients", "create", "--organisation", "acme", "--name", "Browser app", "--scope", "programme:read",
        "--grant", "authorization_code", "--redirect-uri", "https://app.example/cb", "--public", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["client_secret"] is None
    (row,) = query(cli_settings, sa.select(OAuthClient))
    assert row.client_secret_hash is None
    assert sorted(row.grant_types) == ["authorization_code", "refresh_token"]
    assert row.redirect_uris == ["https://app.example/cb"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--organisation", "nowhere", "--scope", "programme:read"], "organisation 'nowhere' not found"),
        (["--organisation", "acme", "--scope", "programme:read root"], "unknown or missing scopes: root"),
        (["--organisation", "acme", "--scope", "programme:read", "--region", "east"], "region 'east' not found"),
        (["--organisation", "acme", "--scope", "programme:read", "--grant", "implicit"], "grants must be among"),
        (["--organisation", "acme", "--scope", "programme:read", "--grant", "authorization_code"], "redirect URI"),
        (
            ["--organisation", "acme", "--scope", "programme:read", "--grant", "authorization_code",
             "--redirect-uri", "http://app.example/cb"],
            "must be an absolute https URL",
        ),
        (["--organisation", "acme", "--scope", "evaluation:read"], "needs an evaluation project"),
    ],
)  # fmt: skip
def test_clients_create_refusals_are_one_line_and_write_nothing(
    cli_settings: Settings, arguments: list[str], message: str
) -> None:
    code, _, err = invoke("clients", "create", "--name", "x", *arguments)
    assert code == 1
    assert err.startswith("error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert query(cli_settings, sa.select(OAuthClient)) == []


def test_users_create_reads_the_password_from_stdin_and_hashes_it(cli_settings: Settings) -> None:
    code, out, err = invoke(
        "users", "create", "--organisation", "acme", "--email", "Coord@Example.org", "--role", "coordinator",
        "--region", "north", "--password-stdin", "--json", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert code == 0, err
    created = json.loads(out)
    assert created["email"] == "coord@example.org"
    assert created["role"] == "coordinator"
    (user,) = query(cli_settings, sa.select(User))
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert verify_password(user.password_hash, PASSWORD)
    assert PASSWORD not in out + err


def test_a_created_person_can_sign_in(cli_settings: Settings) -> None:
    assert invoke(
        "users", "create", "--organisation", "acme", "--email", "admin@example.org", "--role", "org_admin",
        "--password-stdin", stdin=PASSWORD + "\n",
    )[0] == 0  # fmt: skip

    async def sign_in() -> httpx.Response:
        app = create_app(cli_settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as client:
            page = await client.get("/login")
            csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
            return await client.post("/login", data={"email": "admin@example.org", "password": PASSWORD, "csrf": csrf})

    assert asyncio.run(sign_in()).status_code == 303


@pytest.mark.parametrize(
    ("arguments", "stdin", "message"),
    [
        (["--role", "coordinator"], None, "--password-stdin"),
        (["--role", "coordinator", "--password-stdin"], "short\n", "at least 12 characters"),
        (["--role", "superuser", "--password-stdin"], PASSWORD + "\n", "role must be one of"),
        (["--role", "evaluator", "--password-stdin"], PASSWORD + "\n", "needs an evaluation project"),
        (["--role", "coordinator", "--region", "east", "--password-stdin"], PASSWORD + "\n", "region 'east'"),
    ],
)
def test_users_create_refusals_are_one_line_and_write_nothing(
    cli_settings: Settings, arguments: list[str], stdin: str | None, message: str
) -> None:
    code, _, err = invoke(
        "users", "create", "--organisation", "acme", "--email", "x@example.org", *arguments, stdin=stdin
    )
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert query(cli_settings, sa.select(User)) == []


def test_users_create_refuses_a_duplicate_email(cli_settings: Settings) -> None:
    arguments = ["users", "create", "--organisation", "acme", "--email", "dup@example.org", "--role", "org_admin"]
    assert invoke(*arguments, "--password-stdin", stdin=PASSWORD + "\n")[0] == 0
    code, _, err = invoke(*arguments, "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 1
    assert "already exists" in err
    assert len(query(cli_settings, sa.select(User))) == 1


def test_keys_rotate_adds_a_key_and_keeps_the_file_private(cli_settings: Settings) -> None:
    code, out, err = invoke("keys", "rotate", "--json")
    assert code == 0, err
    first = json.loads(out)
    code, out, _ = invoke("keys", "rotate", "--json")
    second = json.loads(out)
    assert second["kid"] != first["kid"]
    assert second["published"][-1] == second["kid"]
    assert first["kid"] in second["published"]
    path = cli_settings.secret_key_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [key["kid"] for key in json.loads(path.read_text())["keys"]] == second["published"]


def test_keys_rotate_with_a_broken_file_fails_in_one_line(cli_settings: Settings) -> None:
    cli_settings.secret_key_file.write_text("broken")
    code, _, err = invoke("keys", "rotate")
    assert code == 1
    assert err.startswith("error: ")
    assert "not a valid key file" in err


def test_clients_disable_enable_and_set_regions_change_the_client_and_are_audited(cli_settings: Settings) -> None:
    code, out, err = invoke(
        "clients", "create", "--organisation", "acme", "--name", "App", "--scope", "programme:read", "--json"
    )
    assert code == 0, err
    client_id = json.loads(out)["client_id"]

    assert invoke("clients", "set-regions", client_id, "--region", "south")[0] == 0
    (binding,) = query(cli_settings, sa.select(Region.slug).join(OAuthClientRegion))
    assert binding.slug == "south"
    assert invoke("clients", "set-scopes", client_id, "--scope", "programme:read attendance:write")[0] == 0
    assert invoke("clients", "disable", client_id)[0] == 0
    (row,) = query(cli_settings, sa.select(OAuthClient.revoked_at, OAuthClient.scope))
    assert row.revoked_at is not None
    assert row.scope == "attendance:write programme:read"
    assert invoke("clients", "enable", client_id)[0] == 0
    assert query(cli_settings, sa.select(OAuthClient.revoked_at))[0].revoked_at is None
    changed = sa.select(AuditEvent.details).where(AuditEvent.action == "oauth.client_changed")
    events = query(cli_settings, changed.order_by(AuditEvent.occurred_at))
    assert [event.details for event in events] == [
        {"regions": ["south"]},
        {"scope": "attendance:write programme:read"},
        {"enabled": False},
        {"enabled": True},
    ]
    code, _out, err = invoke("clients", "disable", "no-such-client")
    assert code == 1
    assert err.strip() == "error: client 'no-such-client' not found"


def test_users_disable_set_regions_and_set_role(cli_settings: Settings) -> None:
    email = "coordinator@acme.example"
    created = invoke(
        "users", "create", "--organisation", "acme", "--email", email, "--role", "coordinator",
        "--region", "north", "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert created[0] == 0, created[2]
    assert invoke("users", "set-regions", email, "--region", "south")[0] == 0
    assert invoke("users", "set-role", email, "--role", "facilitator")[0] == 0
    assert invoke("users", "disable", email)[0] == 0
    (user,) = query(cli_settings, sa.select(User.is_active, User.role))
    assert (user.is_active, user.role.value) == (False, "facilitator")
    (region,) = query(cli_settings, sa.select(Region.slug).join(UserRegion, UserRegion.region_id == Region.id))
    assert region.slug == "south"
    assert invoke("users", "set-role", email, "--role", "root")[0] == 1


def test_users_set_email_moves_the_sign_in_email_and_refuses_one_taken_elsewhere(cli_settings: Settings) -> None:
    """A person of another organisation ("beta") holds an email no one else may take; a changed email is
    found by the next verb, and the old one is free again, for the other organisation too."""
    assert invoke("organisations", "create", "--slug", "beta", "--name", "Beta")[0] == 0
    for organisation, email in (("acme", "ann@acme.example"), ("beta", "bob@beta.example")):
        arguments = ["users", "create", "--organisation", organisation, "--email", email, "--role", "org_admin"]
        assert invoke(*arguments, "--password-stdin", stdin=PASSWORD + "\n")[0] == 0

    code, _out, err = invoke("users", "set-email", "ann@acme.example", "--to", "Bob@Beta.example")
    assert (code, err.strip()) == (1, "error: a user with email 'bob@beta.example' already exists")
    code, out, err = invoke("users", "set-email", "ann@acme.example", "--to", "Ann.Moved@Acme.example")
    assert code == 0, err
    assert out.strip() == "ann@acme.example: email set to ann.moved@acme.example"
    assert invoke("users", "disable", "ann.moved@acme.example")[0] == 0
    assert invoke("users", "disable", "ann@acme.example")[0] == 1
    arguments = ["users", "create", "--organisation", "beta", "--email", "ann@acme.example", "--role", "coordinator"]
    assert invoke(*arguments, "--password-stdin", stdin=PASSWORD + "\n")[0] == 0
    rows = query(cli_settings, sa.select(User.email, User.is_active).order_by(User.email))
    assert [tuple(row) for row in rows] == [
        ("ann.moved@acme.example", False), ("ann@acme.example", True), ("bob@beta.example", True)
    ]  # fmt: skip
