"""The operator's CLI for a new organisation and its people and clients: `organisations create`, `clients list`,
`clients rotate-secret`, `users list`, `users reset-password` (the same implementation as GraphQL's admin)."""

# Fixtures are imported by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811
from __future__ import annotations

import asyncio
import json
import os
from datetime import date

import sqlalchemy as sa

from programme_api.config import Settings
from programme_api.db import create_engine
from programme_api.domain.models import (
    AuditEvent,
    ConsentPurpose,
    EvaluationProject,
    EvaluationProjectInvitation,
    EvaluationProjectOrganisation,
    InvitationStatus,
    OAuthClient,
    Organisation,
    Role,
    User,
)
from programme_api.domain.passwords import hash_secret, verify_password
from programme_api.domain.principal import ROLE_SCOPES

from .test_oauth_cli import PASSWORD, cli_settings, invoke, query


def test_organisations_create_with_its_first_admin_and_client(cli_settings: Settings) -> None:
    code, out, err = invoke(
        "organisations", "create", "--slug", "riverside", "--name", "Riverside Peer Support",
        "--timezone", "Europe/Dublin", "--suppression-threshold", "8",
        "--admin-email", "Admin@Riverside.example", "--password-stdin", "--admin-client", "Setup script", "--json",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert code == 0, err
    created = json.loads(out)
    assert created["slug"] == "riverside"
    assert created["admin_user"]["email"] == "admin@riverside.example"
    (organisation,) = query(cli_settings, sa.select(Organisation).where(Organisation.slug == "riverside"))
    assert (organisation.timezone, organisation.suppression_threshold) == ("Europe/Dublin", 8)
    (admin,) = query(cli_settings, sa.select(User).where(User.organisation_id == organisation.id))
    assert admin.role is Role.ORG_ADMIN
    assert verify_password(admin.password_hash, PASSWORD)
    (client,) = query(cli_settings, sa.select(OAuthClient).where(OAuthClient.organisation_id == organisation.id))
    assert client.client_id == created["admin_client"]["client_id"]
    assert client.client_secret_hash == hash_secret(created["admin_client"]["client_secret"])
    assert set(client.scope.split()) == ROLE_SCOPES[Role.ORG_ADMIN]
    actions = {row.action for row in query(cli_settings, sa.select(AuditEvent.action).where(
        AuditEvent.organisation_id == organisation.id))}  # fmt: skip
    assert actions == {"organisation.create", "auth.user_created", "oauth.client_created"}


def test_organisations_create_refusals_write_nothing(cli_settings: Settings) -> None:
    for arguments, message in (
        (["--slug", "acme", "--name", "Again"], "error: an organisation 'acme' already exists"),
        (["--slug", "new", "--name", "New", "--timezone", "Mars/Olympus"], "error: unknown time zone 'Mars/Olympus'"),
        (["--slug", "new", "--name", "New", "--suppression-threshold", "3"], "error: must be at least 5"),
        (["--slug", "New Org", "--name", "New"], "error: must be 1 to 63 lower-case letters"),
    ):
        code, _out, err = invoke("organisations", "create", *arguments)
        assert code == 1
        assert err.startswith(message), err
    assert len(query(cli_settings, sa.select(Organisation.id))) == 1


def test_clients_list_and_rotate_secret(cli_settings: Settings) -> None:
    code, out, err = invoke("clients", "create", "--organisation", "acme", "--name", "App", "--scope",
                            "programme:read", "--region", "north", "--json")  # fmt: skip
    assert code == 0, err
    first = json.loads(out)
    code, out, err = invoke("clients", "list", "--organisation", "acme", "--json")
    assert code == 0, err
    (listed,) = json.loads(out)
    assert listed == {
        "client_id": first["client_id"],
        "name": "App",
        "scope": "programme:read",
        "grant_types": ["client_credentials"],
        "enabled": True,
        "public": False,
        "regions": ["north"],
        "version": 1,
    }
    assert first["client_secret"] not in out

    code, out, err = invoke("clients", "rotate-secret", first["client_id"], "--json")
    assert code == 0, err
    rotated = json.loads(out)["client_secret"]
    assert rotated != first["client_secret"]
    (row,) = query(cli_settings, sa.select(OAuthClient.client_secret_hash, OAuthClient.version))
    assert row.client_secret_hash == hash_secret(rotated)
    assert row.version == 2  # the operator sends no version, but an admin's stale copy is refused afterwards
    assert query(cli_settings, sa.select(AuditEvent.action).where(AuditEvent.action == "oauth.client_secret_rotated"))


def test_users_list_and_reset_password(cli_settings: Settings) -> None:
    email = "coordinator@acme.example"
    assert invoke("users", "create", "--organisation", "acme", "--email", email, "--role", "coordinator",
                  "--region", "north", "--password-stdin", stdin=PASSWORD + "\n")[0] == 0  # fmt: skip
    code, out, err = invoke("users", "list", "--organisation", "acme", "--json")
    assert code == 0, err
    (listed,) = json.loads(out)
    assert (listed["email"], listed["role"], listed["active"], listed["regions"]) == (email, "coordinator", True,
                                                                                        ["north"])  # fmt: skip
    code, out, err = invoke("users", "reset-password", email)
    assert code == 0, err
    generated = out.strip().removeprefix("password: ")
    (user,) = query(cli_settings, sa.select(User.password_hash))
    assert verify_password(user.password_hash, generated)
    assert not verify_password(user.password_hash, PASSWORD)
    code, out, err = invoke("users", "reset-password", email, "--password-stdin", stdin="chosen password 123\n")
    assert code == 0, err
    (user,) = query(cli_settings, sa.select(User.password_hash))
    assert verify_password(user.password_hash, "chosen password 123")
    code, _out, err = invoke("users", "reset-password", "nobody@acme.example")
    assert (code, err.strip()) == (1, "error: user 'nobody@acme.example' not found")


def test_evaluation_projects_share_adds_an_organisation_and_audits_it_in_both(cli_settings: Settings) -> None:
    assert invoke("organisations", "create", "--slug", "partner", "--name", "Partner")[0] == 0
    (acme,) = query(cli_settings, sa.select(Organisation.id).where(Organisation.slug == "acme"))

    async def seed() -> None:
        engine = create_engine(cli_settings)
        async with engine.begin() as connection:
            await connection.execute(sa.insert(EvaluationProject).values(
                organisation_id=acme.id, slug="joint", name="Joint", instrument_codes=["phq9"],
                starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31), consent_purpose=ConsentPurpose.EVALUATION,
                suppression_threshold=10, pseudonym_key=os.urandom(32),
            ))  # fmt: skip
        await engine.dispose()

    asyncio.run(seed())
    code, out, err = invoke("evaluation-projects", "share", "joint", "--organisation", "partner")
    assert code == 0, err
    assert out.strip() == "partner now takes part in evaluation project joint"
    members = query(cli_settings, sa.select(Organisation.slug).join(
        EvaluationProjectOrganisation, EvaluationProjectOrganisation.organisation_id == Organisation.id))  # fmt: skip
    assert [row.slug for row in members] == ["partner"]
    # The operator's override records the partner's agreement, so the owner sees it and the partner can leave.
    (invitation,) = query(cli_settings, sa.select(EvaluationProjectInvitation))
    assert (invitation.status, invitation.owner_organisation_id) == (InvitationStatus.ACCEPTED, acme.id)
    assert invitation.responded_at is not None
    events = query(cli_settings, sa.select(AuditEvent.organisation_id).where(
        AuditEvent.action == "evaluation_project.share"))  # fmt: skip
    assert len(events) == 2
    code, _out, err = invoke("evaluation-projects", "share", "joint", "--organisation", "partner")
    assert (code, err.strip()) == (1, "error: 'partner' already takes part in the project")
