"""``programme-api clients …``, ``users …`` and ``keys rotate`` (contract section 5).

Changes to an existing client or person (``disable``, ``enable``, ``set-scopes``, ``set-regions``, ``set-role``,
``rotate-secret``, ``reset-password``) are announced to every running worker when they commit (``admin.py``, the
same implementation GraphQL's admin mutations use), so they apply to tokens already issued. They take no
``version``: the operator acts on the current row (an override), and the change still bumps the row's version,
so an admin holding an older copy is refused with ``CONFLICT`` afterwards.

The shared CLI helpers (``one_line_errors``, ``run_in_session``) live in ``programme_api.cli``, which imports
this module to register the sub-apps; they are therefore looked up when a command runs, not at import.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer

from ..domain.tenancy import KeyKind
from . import admin
from .clients import GRANT_CHOICES, create_client
from .keys import KeyFileError, rotate
from .users import create_user, normalise_email

T = TypeVar("T")

clients_app = typer.Typer(help="OAuth clients (partner apps, evaluators' scripts).", no_args_is_help=True)
users_app = typer.Typer(help="People who sign in (admins, coordinators, facilitators, evaluators).")
keys_app = typer.Typer(help="Token signing keys.", no_args_is_help=True)


def _one_line_errors(function: Callable[..., T]) -> Callable[..., T]:
    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        from .. import cli

        return cli.one_line_errors(function)(*args, **kwargs)

    return wrapper


@clients_app.command("create")
@_one_line_errors
def clients_create(
    organisation: str = typer.Option(..., "--organisation", help="Organisation slug the client belongs to."),
    name: str = typer.Option(..., "--name", help="Name shown on the consent page and in the audit log."),
    scope: str = typer.Option(..., "--scope", help='Allowed scopes, space-separated: "programme:read surveys:write".'),
    regions: list[str] = typer.Option([], "--region", help="Bind the client to this region (repeatable)."),
    grants: list[str] = typer.Option(
        [], "--grant", help=f"Grant type ({' or '.join(GRANT_CHOICES)}; repeatable). Default: client_credentials."
    ),
    redirect_uris: list[str] = typer.Option([], "--redirect-uri", help="Exact redirect URI (repeatable)."),
    evaluation_project: str | None = typer.Option(None, "--evaluation-project", help="Evaluation project slug."),
    public: bool = typer.Option(False, "--public", help="A browser app without a secret (authorization code + PKCE)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Register an OAuth client. The secret is printed once and stored only as a hash."""
    from .. import cli

    created = cli.run_for_organisation(
        organisation,
        lambda session: create_client(
            session,
            organisation_slug=organisation,
            name=name,
            scope=scope,
            region_slugs=regions,
            grants=grants,
            redirect_uris=redirect_uris,
            evaluation_project_slug=evaluation_project,
            public=public,
        ),
    )
    if as_json:
        cli.print_json({"client_id": created.client_id, "client_secret": created.client_secret})
        return
    typer.echo(f"client_id: {created.client_id}")
    if created.client_secret is not None:
        typer.echo(f"client_secret: {created.client_secret}")
        typer.echo("The secret is shown only now; store it in the app's secret store.", err=True)


@users_app.command("create")
@_one_line_errors
def users_create(
    organisation: str = typer.Option(..., "--organisation", help="Organisation slug."),
    email: str = typer.Option(..., "--email", help="Sign-in email (unique)."),
    role: str = typer.Option(..., "--role", help="org_admin, coordinator, facilitator or evaluator."),
    regions: list[str] = typer.Option([], "--region", help="Assign a region (repeatable; coordinators need one)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
    name: str | None = typer.Option(None, "--name", help="Display name (default: the email's local part)."),
    evaluation_project: str | None = typer.Option(None, "--evaluation-project", help="For evaluators: project slug."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Register a person. The password never appears in arguments, only on standard input."""
    from .. import cli

    if not password_stdin:
        raise cli.CommandError("give the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    user = cli.run_for_organisation(
        organisation,
        lambda session: create_user(
            session,
            organisation_slug=organisation,
            email=email,
            role=role,
            region_slugs=regions,
            password=password,
            display_name=name,
            evaluation_project_slug=evaluation_project,
        ),
    )
    if as_json:
        cli.print_json({"id": str(user.id), "email": user.email, "role": user.role.value})
    else:
        typer.echo(f"created {user.role.value} {user.email} ({user.id})")


@clients_app.command("disable")
@_one_line_errors
def clients_disable(client_id: str = typer.Argument(..., help="The client's id.")) -> None:
    """Disable a client: it gets no new tokens and the tokens it holds stop working."""
    _change(
        "client",
        client_id,
        lambda session: admin.operator_set_client_enabled(session, client_id, False),
        f"disabled client {client_id}",
    )


@clients_app.command("enable")
@_one_line_errors
def clients_enable(client_id: str = typer.Argument(..., help="The client's id.")) -> None:
    """Enable a disabled client again."""
    _change(
        "client",
        client_id,
        lambda session: admin.operator_set_client_enabled(session, client_id, True),
        f"enabled client {client_id}",
    )


@clients_app.command("set-scopes")
@_one_line_errors
def clients_set_scopes(
    client_id: str = typer.Argument(..., help="The client's id."),
    scope: str = typer.Option(..., "--scope", help='Allowed scopes, space-separated: "programme:read".'),
) -> None:
    """Replace a client's allowed scopes (its tokens keep only scopes still allowed)."""
    _change(
        "client",
        client_id,
        lambda session: admin.operator_set_client_scopes(session, client_id, scope),
        f"client {client_id}: scopes set",
    )


@clients_app.command("set-regions")
@_one_line_errors
def clients_set_regions(
    client_id: str = typer.Argument(..., help="The client's id."),
    regions: list[str] = typer.Option([], "--region", help="Region slug (repeatable; none: the whole organisation)."),
) -> None:
    """Bind a client to exactly these regions."""
    _change(
        "client",
        client_id,
        lambda session: admin.operator_set_client_regions(session, client_id, regions),
        f"client {client_id}: regions set",
    )


@clients_app.command("set-rate-limit")
@_one_line_errors
def clients_set_rate_limit(
    client_id: str = typer.Argument(..., help="The client's id."),
    points: str = typer.Argument(..., help="Cost points its bucket holds, or 'default' for the operator's default."),
) -> None:
    """Set the size of a client's rate-limit bucket (it refills in RATE_LIMIT_REFILL_SECONDS)."""
    from .. import cli

    if points == "default":
        value = None
    elif points.isdigit() and int(points) >= 1:
        value = int(points)
    else:
        raise cli.CommandError("POINTS must be a whole number of at least 1, or 'default'")
    _change(
        "client",
        client_id,
        lambda session: admin.set_client_rate_limit(session, client_id, value),
        f"client {client_id}: rate limit {points if value is None else f'{value} points'}",
    )


@users_app.command("disable")
@_one_line_errors
def users_disable(email: str = typer.Argument(..., help="Sign-in email.")) -> None:
    """Disable a person: no sign-in, no refresh, and their tokens stop working."""
    _change("email", email, lambda session: admin.operator_set_user_active(session, email, False), f"disabled {email}")


@users_app.command("enable")
@_one_line_errors
def users_enable(email: str = typer.Argument(..., help="Sign-in email.")) -> None:
    """Enable a disabled person again."""
    _change("email", email, lambda session: admin.operator_set_user_active(session, email, True), f"enabled {email}")


@users_app.command("set-regions")
@_one_line_errors
def users_set_regions(
    email: str = typer.Argument(..., help="Sign-in email."),
    regions: list[str] = typer.Option([], "--region", help="Region slug (repeatable)."),
) -> None:
    """Assign a person to exactly these regions."""
    _change(
        "email",
        email,
        lambda session: admin.operator_set_user_regions(session, email, regions),
        f"{email}: regions set",
    )


@users_app.command("set-role")
@_one_line_errors
def users_set_role(
    email: str = typer.Argument(..., help="Sign-in email."),
    role: str = typer.Option(..., "--role", help="org_admin, coordinator, facilitator or evaluator."),
) -> None:
    """Change a person's role."""
    _change(
        "email",
        email,
        lambda session: admin.operator_set_user_role(session, email, role),
        f"{email}: role set to {role}",
    )


@users_app.command("set-email")
@_one_line_errors
def users_set_email(
    email: str = typer.Argument(..., help="Sign-in email."),
    new_email: str = typer.Option(..., "--to", help="The new sign-in email (free in every organisation)."),
) -> None:
    """Change the email a person signs in with."""
    _change(
        "email",
        email,
        lambda session: admin.operator_set_user_email(session, email, new_email),
        f"{email}: email set to {normalise_email(new_email)}",
    )


@clients_app.command("list")
@_one_line_errors
def clients_list(
    organisation: str = typer.Option(..., "--organisation", help="Organisation slug."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List an organisation's clients (never their secrets)."""
    rows = _listing(organisation, "clients")
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        state = "enabled" if row["enabled"] else "disabled"
        typer.echo(f"{row['client_id']}\t{row['name']}\t{state}\t{row['scope']}")


@clients_app.command("rotate-secret")
@_one_line_errors
def clients_rotate_secret(
    client_id: str = typer.Argument(..., help="The client's id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Give a client a new secret, printed once; the old secret and the tokens issued under it stop working."""
    from .. import cli

    secret = cli.run_for_key(
        "client", client_id, lambda session: admin.operator_rotate_client_secret(session, client_id)
    )
    if as_json:
        cli.print_json({"client_id": client_id, "client_secret": secret})
        return
    typer.echo(f"client_secret: {secret}")
    typer.echo("The secret is shown only now; store it in the app's secret store.", err=True)


@users_app.command("list")
@_one_line_errors
def users_list(
    organisation: str = typer.Option(..., "--organisation", help="Organisation slug."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List an organisation's people (never their passwords)."""
    rows = _listing(organisation, "users")
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        state = "active" if row["active"] else "disabled"
        typer.echo(f"{row['email']}\t{row['role']}\t{state}\t{','.join(row['regions'])}")


@users_app.command("reset-password")
@_one_line_errors
def users_reset_password(
    email: str = typer.Argument(..., help="Sign-in email."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the new password from standard input (default: generate one)."
    ),
) -> None:
    """Set a new password (read from standard input, or generated and printed once); the person's tokens stop
    working."""
    from .. import cli

    chosen = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    password = cli.run_for_key("email", email, lambda session: admin.operator_reset_password(session, email, chosen))
    if chosen is None:
        typer.echo(f"password: {password}")
        typer.echo("The password is shown only now; hand it over privately and ask them to change it.", err=True)
    else:
        typer.echo(f"{email}: password reset")


def _listing(organisation: str, kind: str) -> list[dict[str, Any]]:
    from .. import cli
    from ..domain.directory import organisation_by_slug

    async def work(session: Any) -> list[dict[str, Any]]:
        found = await organisation_by_slug(session, organisation)
        return await admin.listing(session, admin.operator(found.id), kind)

    return cli.run_for_organisation(organisation, work)


def _print_json(value: Any) -> None:
    from .. import cli

    cli.print_json(value)


def _change(kind: KeyKind, key: str, work: Callable[[Any], Any], done: str) -> None:
    """One change for the organisation the client or person belongs to, as the service's role."""
    from .. import cli

    cli.run_for_key(kind, key, work)
    typer.echo(done)


@keys_app.command("rotate")
@_one_line_errors
def keys_rotate(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Add a new signing key. Retired keys stay published until every token they signed has expired."""
    from .. import cli

    path = cli.settings().secret_key_file
    try:
        added, key_file = rotate(path)
    except KeyFileError as exc:
        raise cli.CommandError(str(exc)) from exc
    published = [key.kid for key in key_file.keys]
    if as_json:
        cli.print_json({"kid": added.kid, "published": published})
    else:
        typer.echo(f"new signing key {added.kid}; {len(published)} key(s) published in the JWKS")
