"""The ``programme-api`` command (contract section 5). Errors print one line and exit non-zero."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from alembic.util.exc import CommandError as AlembicCommandError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from . import migrations
from .config import Settings, SettingsError, get_settings
from .db import create_engine, is_sqlite, row_security_applies, session_factory
from .domain import directory
from .domain.errors import DomainError
from .domain.models import ActorType
from .domain.tenancy import KeyKind, bind_tenant_of
from .metrics import MULTIPROCESS_DIRECTORY
from .notifications.cli import webhooks_app
from .notifications.cli import worker as notifications_worker
from .oauth.cli import clients_app, keys_app, users_app
from .oauth.invalidation import publish_committed
from .planner_statistics import analyze_session

T = TypeVar("T")

app = typer.Typer(
    help="programme-api: the peer-support programme data service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
demo_app = typer.Typer(help="Demonstration data.", no_args_is_help=True)
organisations_app = typer.Typer(help="Organisations (tenants).", no_args_is_help=True)
regions_app = typer.Typer(help="Regions of an organisation.", no_args_is_help=True)
schema_app = typer.Typer(help="The published GraphQL schema.", no_args_is_help=True)
export_app = typer.Typer(help="Evaluator bulk exports.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
projects_app = typer.Typer(help="Evaluation projects shared by several organisations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(organisations_app, name="organisations")
app.add_typer(regions_app, name="regions")
app.add_typer(schema_app, name="schema")
app.add_typer(export_app, name="export")
app.add_typer(audit_app, name="audit")
app.add_typer(clients_app, name="clients")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(webhooks_app, name="webhooks")
app.command("worker")(notifications_worker)
app.add_typer(projects_app, name="evaluation-projects")


class CommandError(Exception):
    """A failure to report as one line on stderr."""


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def one_line_errors(function: Callable[..., T]) -> Callable[..., T]:
    """Turn expected failures (bad settings, unreachable database, domain refusals) into one line."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        except (SettingsError, CommandError, DomainError, AlembicCommandError) as exc:
            fail(str(exc))
        except SQLAlchemyError as exc:
            fail(f"database error: {str(getattr(exc, 'orig', None) or exc).splitlines()[0]}")
        except OSError as exc:
            fail(f"cannot reach the database: {exc.strerror or exc}")

    return wrapper


def settings() -> Settings:
    return get_settings()


def run_in_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run system work (cross-tenant by nature: demo load, organisation listings) in one transaction as the
    tables' owner (``OWNER_DATABASE_URL``, else ``DATABASE_URL``), committing if it returns."""
    return asyncio.run(_in_session(settings().as_owner(), work))


def run_for_organisation(organisation_slug: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run work for one organisation as the service's role (``DATABASE_URL``), the transaction bound to that
    organisation (every region) before ``work`` reads anything: row-level security applies as for requests."""
    return run_for_key("organisation_slug", organisation_slug, work)


def run_for_key(kind: KeyKind, key: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run work as the service's role, bound to the organisation ``key`` (a client id, an email, ...) belongs
    to: a key of no organisation binds nothing, so ``work`` then finds nothing."""

    async def bound(session: AsyncSession) -> T:
        await bind_tenant_of(session, kind, key)
        return await work(session)

    return asyncio.run(_in_session(settings(), bound))


async def _in_session(configured: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = create_engine(configured)
    try:
        async with session_factory(engine)() as session:
            result = await work(session)
            await session.commit()
            await publish_committed(session, configured.redis_url)
            return result
    finally:
        await engine.dispose()


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def print_listing(rows: list[dict[str, Any]], as_json: bool) -> None:
    """Every ``list`` command prints the same way: JSON, or one ``slug<TAB>name`` line a row."""
    if as_json:
        print_json(rows)
    else:
        for row in rows:
            typer.echo(f"{row['slug']}\t{row['name']}")


@app.command()
@one_line_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Worker processes (stateless; share state through the database)."),
    graceful_timeout: int = typer.Option(
        30, min=1, help="On SIGTERM, seconds to let requests in flight finish before closing their connections."
    ),
) -> None:
    """Serve the API (GraphQL at /graphql) with uvicorn."""
    import uvicorn

    configured = settings()
    _warn_without_row_security(configured)
    if configured.worker_in_serve is None:  # one process: it runs the outbox worker too
        os.environ["PROGRAMME_API_WORKER_IN_SERVE"] = "true" if workers == 1 else "false"
        get_settings.cache_clear()
    if workers > 1:
        _share_metrics_between_workers()
    uvicorn.run(
        "programme_api.app:create_default_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_graceful_shutdown=graceful_timeout,
        log_level="info",
        access_log=False,
        proxy_headers=False,  # the app believes forwarded headers only from FORWARDED_ALLOW_IPS
        env_file=None,
        log_config=None if configured.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )


def _share_metrics_between_workers() -> None:
    """Workers write their metrics to files in one directory that /metrics sums (prometheus_client's
    multiprocess mode); a fresh directory per start, unless the operator named one."""
    if not os.environ.get(MULTIPROCESS_DIRECTORY):
        directory = tempfile.mkdtemp(prefix="programme-api-metrics-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ[MULTIPROCESS_DIRECTORY] = directory


def _warn_without_row_security(configured: Settings) -> None:
    """On PostgreSQL, say so when the service's role is the tables' owner or a superuser: row-level security
    (the backstop behind the access module) would not apply to it."""
    if is_sqlite(configured.database_url):
        return

    async def check() -> bool:
        engine = create_engine(configured)
        try:
            return await row_security_applies(engine)
        finally:
            await engine.dispose()

    if not asyncio.run(check()):
        typer.echo(
            "warning: PROGRAMME_API_DATABASE_URL names a superuser or the tables' owner, so row-level security "
            "does not apply to the service; run it as a role that does not own the tables (see README)",
            err=True,
        )


@db_app.command("upgrade")
@one_line_errors
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the database to REVISION (default: the latest)."""
    settings()
    migrations.upgrade(revision=revision)
    typer.echo(f"database upgraded to {revision}")


@db_app.command("downgrade")
@one_line_errors
def db_downgrade(
    revision: str = typer.Argument(..., help="Revision to go back to ('base' removes everything)."),
) -> None:
    """Migrate the database back to REVISION."""
    settings()
    migrations.downgrade(revision)
    typer.echo(f"database downgraded to {revision}")


@demo_app.command("load")
@one_line_errors
def demo_load() -> None:
    """Load the demonstration data set (idempotent: a second run changes nothing)."""
    from .domain import demo

    summary = run_in_session(demo.load_demo)
    run_in_session(analyze_session)  # statistics for the planner, now that the tables hold the data
    typer.echo(summary)


@organisations_app.command("list")
@one_line_errors
def organisations_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List organisations."""
    print_listing(run_in_session(directory.list_organisations), as_json)


@organisations_app.command("create")
@one_line_errors
def organisations_create(
    slug: str = typer.Option(..., "--slug", help="Unique slug: lower-case letters, digits, inner hyphens."),
    name: str = typer.Option(..., "--name", help="The organisation's name."),
    timezone: str = typer.Option("Europe/London", "--timezone", help="IANA time zone of its schedules."),
    suppression_threshold: int = typer.Option(10, "--suppression-threshold", help="Smallest count shown (>= 5)."),
    admin_email: str | None = typer.Option(None, "--admin-email", help="Create its first admin with this email."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the admin's password from stdin."),
    admin_client: str | None = typer.Option(
        None, "--admin-client", help="Create an admin client (client credentials) with this name; secret shown once."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create an organisation, optionally with its first admin person and admin client, in one transaction."""
    from .domain import organisations
    from .domain.models import Role
    from .domain.principal import ROLE_SCOPES
    from .oauth import admin

    if admin_email is not None and not password_stdin:
        raise CommandError("give the admin's password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n") if admin_email is not None else ""

    async def work(session: AsyncSession) -> dict[str, Any]:
        found = await organisations.create_organisation(
            session, organisations.NewOrganisation(slug, name, timezone, suppression_threshold)
        )
        operator = admin.operator(found.id)
        created: dict[str, Any] = {"id": str(found.id), "slug": found.slug, "name": found.name}
        if admin_email is not None:
            user = await admin.create_user(
                session, operator, admin.NewUser(email=admin_email, role=Role.ORG_ADMIN, password=password)
            )
            created["admin_user"] = {"id": str(user.id), "email": user.email}
        if admin_client is not None:
            scope = " ".join(sorted(ROLE_SCOPES[Role.ORG_ADMIN]))
            client = await admin.create_client(session, operator, admin.NewClient(name=admin_client, scope=scope))
            created["admin_client"] = {"client_id": client.client_id, "client_secret": client.client_secret}
        return created

    created = run_in_session(work)
    if as_json:
        print_json(created)
        return
    typer.echo(f"created organisation {created['slug']} ({created['id']})")
    if "admin_user" in created:
        typer.echo(f"admin: {created['admin_user']['email']}")
    if "admin_client" in created:
        typer.echo(f"client_id: {created['admin_client']['client_id']}")
        typer.echo(f"client_secret: {created['admin_client']['client_secret']}")
        typer.echo("The secret is shown only now; store it in the app's secret store.", err=True)


@regions_app.command("list")
@one_line_errors
def regions_list(
    organisation: str = typer.Option(..., "--organisation", help="Organisation slug."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the regions of an organisation."""
    print_listing(run_for_organisation(organisation, lambda session: directory.list_regions(session, organisation)),
                  as_json)  # fmt: skip


@app.command("import")
@one_line_errors
def import_file(
    organisation: str = typer.Argument(..., help="Organisation slug."),
    file: Path = typer.Argument(..., help="A .csv (UTF-8) or .xlsx file; the first row names the columns."),
    kind: str = typer.Option(..., "--kind", help="regions, groups, facilitators or participants."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check every row and report; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Import a spreadsheet: every row is checked first, and nothing is written unless every row is good.

    Rows are matched on their natural key (region slug, group or facilitator external_reference, participant
    reference), so importing the same file twice changes nothing. Columns per kind: see the README.
    """
    from .domain import imports
    from .oauth.admin import operator

    try:
        chosen = imports.Kind(kind)
    except ValueError:
        raise CommandError(f"--kind must be one of {', '.join(k.value for k in imports.Kind)}") from None
    if not file.is_file():
        raise CommandError(f"no such file: {file}")
    table = imports.read_table(file)

    async def work(session: AsyncSession) -> imports.ImportReport:
        found = await directory.organisation_by_slug(session, organisation)
        report = await imports.import_table(session, operator(found.id), chosen, table, dry_run=dry_run)
        if report.errors or dry_run:
            await session.rollback()
        return report

    report = run_for_organisation(organisation, work)
    summary = {
        "kind": report.kind.value, "rows": report.rows, "created": report.created, "updated": report.updated,
        "unchanged": report.unchanged, "enrolled": report.enrolled, "dry_run": report.dry_run,
        "written": report.written,
        "errors": [{"line": e.line, "column": e.column, "reason": e.reason} for e in report.errors],
    }  # fmt: skip
    if as_json:
        print_json(summary)
    else:
        for line in imports.iter_errors(report):
            typer.echo(line, err=True)
        verb = "would import" if dry_run else "imported"
        typer.echo(f"{verb} {report.rows} {report.kind.value} rows: {report.created} created, {report.updated} "
                   f"updated, {report.unchanged} unchanged, {report.enrolled} enrolled")  # fmt: skip
    if report.errors:
        typer.echo(f"error: {len(report.errors)} bad row(s); nothing was written", err=True)
        raise typer.Exit(code=1)


@projects_app.command("share")
@one_line_errors
def evaluation_projects_share(
    project: str = typer.Argument(..., help="The evaluation project's slug."),
    organisation: str = typer.Option(..., "--organisation", help="Slug of the organisation that joins it."),
) -> None:
    """Add an organisation to an evaluation project at once (both organisations having agreed): its consented data
    joins the project's pseudonymised view, and its clients may be bound to the project. The operator's override
    of the invitation the owner's admin sends and the organisation's admin accepts through the API; recorded as
    an accepted invitation, so the organisation's admin can leave."""
    from .domain.evaluation_projects import share_project

    run_in_session(lambda session: share_project(session, project, organisation))
    typer.echo(f"{organisation} now takes part in evaluation project {project}")


@schema_app.command("print")
@one_line_errors
def schema_print() -> None:
    """Print the GraphQL schema (SDL)."""
    from .schema import print_schema_sdl

    sys.stdout.write(print_schema_sdl())


@schema_app.command("check")
@one_line_errors
def schema_check(
    published: Path = typer.Argument(..., help="The SDL partners were given (e.g. the last release's schema.graphql)."),
) -> None:
    """Fail when the code's schema breaks PUBLISHED: removals and narrowings, except of what was deprecated."""
    from .schema import evolution, schema

    try:
        published_sdl = published.read_text()
    except OSError as exc:
        raise CommandError(f"cannot read {published}: {exc.strerror or exc}") from exc
    changes = evolution.compare(published_sdl, schema._schema)
    for change in changes:
        typer.echo(str(change))
    refused = evolution.breaking(changes)
    if refused:
        raise CommandError(f"{len(refused)} breaking change(s) to the published schema; deprecate first")
    typer.echo(f"no breaking change to {published}")


class ExportFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


@export_app.command("surveys")
@one_line_errors
def export_surveys(
    client_id: str = typer.Option(..., "--client-id", help="The evaluator client whose project and rights apply."),
    export_format: ExportFormat = typer.Option(ExportFormat.CSV, "--format", help="csv or parquet."),
    output: Path | None = typer.Option(None, "--output", help="File to write (default: standard output)."),
) -> None:
    """Write the evaluator export the client may see (the same rows, rules and audit as /exports/surveys.*)."""
    from .domain.audit import SessionAuditWriter
    from .domain.exports import audit_export, export_body, prepare_export
    from .oauth.clients import client_principal

    async def main() -> int:
        engine = create_engine(settings())
        maker = session_factory(engine)
        try:
            async with maker() as session:
                await bind_tenant_of(session, "client", client_id)
                principal = await client_principal(session, client_id)
            prepared = await prepare_export(maker, principal)
            await audit_export(SessionAuditWriter(maker), principal, prepared, export_format.value)
            written = 0
            # A one-shot command: nothing else runs on this loop, so plain file writes block no one.
            with open(output, "wb") if output else contextlib.nullcontext(sys.stdout.buffer) as sink:  # noqa: ASYNC230
                async for chunk in export_body(maker, principal, prepared, export_format.value):
                    sink.write(chunk)
                    written += len(chunk)
            return written
        finally:
            await engine.dispose()

    written = asyncio.run(main())
    if output:
        typer.echo(f"wrote {written} bytes to {output}", err=True)


@projects_app.command("set-dose-bands")
@one_line_errors
def evaluation_projects_set_dose_bands(
    project: str = typer.Argument(..., help="Evaluation project slug."),
    organisation: str = typer.Option(..., "--organisation", help="Slug of the organisation that owns the project."),
    band: list[int] = typer.Option([], "--band", help="Lower bound of a band of sessions attended; repeat."),
    default: bool = typer.Option(False, "--default", help="Go back to the default bands 0-3, 4-7, 8+."),
) -> None:
    """Set the bands of sessions attended that the project's dose-response tables use, e.g. --band 0 --band 4
    --band 8 (0-3, 4-7, 8+); prints the band labels now in force."""
    from .domain.evaluation import set_dose_bands

    if default == bool(band):
        raise CommandError("give either --band (one or more) or --default")
    bounds = None if default else list(band)
    labels = run_for_organisation(organisation, lambda session: set_dose_bands(session, organisation, project, bounds))
    print_json(labels)


TIMES = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"]


@audit_app.command("list")
@one_line_errors
def audit_list(
    organisation: str = typer.Option(..., "--organisation", help="Organisation slug."),
    actor: str | None = typer.Option(None, "--actor", help="The actor's subject, exactly."),
    actor_type: ActorType | None = typer.Option(None, "--actor-type", help="user, client or system."),
    action: str | None = typer.Option(None, "--action", help="The action name, exactly."),
    target_type: str | None = typer.Option(None, "--target-type", help="The target type, e.g. Participant."),
    target_id: str | None = typer.Option(None, "--target-id", help="A row id; reads that listed it match too."),
    since: datetime | None = typer.Option(None, "--since", formats=TIMES, help="Events at or after (UTC if no zone)."),
    until: datetime | None = typer.Option(None, "--until", formats=TIMES, help="Events before (UTC if no zone)."),
    limit: int = typer.Option(100, "--limit", min=0, help="At most this many events (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines: one event object per line."),
) -> None:
    """List an organisation's audit events, newest first (the same filters as GraphQL `auditEvents`)."""
    from .domain import audit_log

    where = audit_log.AuditFilter(
        actor_id=actor, actor_type=actor_type, action=action, target_type=target_type, target_id=target_id,
        occurred_from=_utc(since), occurred_before=_utc(until),
    )  # fmt: skip

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        found = await directory.organisation_by_slug(session, organisation)
        return await audit_log.list_for_operator(session, found.id, where, limit or None)

    for event in run_in_session(work):
        if as_json:
            typer.echo(json.dumps(event, separators=(",", ":")))
        else:
            typer.echo("\t".join(str(event[key] or "") for key in ("occurred_at", "actor_id", "action", "target_type",
                                                                     "target_id")))  # fmt: skip


def _utc(moment: datetime | None) -> datetime | None:
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


documents_app = typer.Typer(help="Trusted documents: the operations a client registered.", no_args_is_help=True)
app.add_typer(documents_app, name="documents")


def _document_problems(text: str) -> list[str]:
    """What the endpoint would say of ``text`` before running it: syntax, schema validation, limits."""
    from graphql import GraphQLError

    from .web.graphql import parse_document, validation_errors

    document = parse_document(text)
    if isinstance(document, GraphQLError):
        return [document.message]
    return [error.message for error in validation_errors(text)]


@documents_app.command("register")
@one_line_errors
def documents_register(
    client_id: str = typer.Argument(..., help="The client the documents belong to."),
    file: Path = typer.Argument(..., help="A .graphql file (one document) or a Relay/Codegen manifest (.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Register documents for a client (those already registered stay as they are); prints their ids."""
    from .oauth import documents

    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror or exc}") from exc
    if file.suffix.lower() == ".json":
        entries = documents.entries_from_manifest(raw)
    else:
        try:
            entries = [documents.entry_from_text(raw.decode("utf-8"))]
        except UnicodeDecodeError as exc:
            raise CommandError(f"{file} is not UTF-8 text") from exc

    async def work(session: AsyncSession) -> documents.Registered:
        return await documents.register_documents(session, client_id, entries, _document_problems)

    registered = run_for_key("client", client_id, work)
    rows = [{"document_id": e.document_id, "sha256": e.sha256, "added": e in registered.added} for e in entries]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['document_id']}\t{'registered' if row['added'] else 'already registered'}")


@documents_app.command("list")
@one_line_errors
def documents_list(
    client_id: str = typer.Argument(..., help="The client whose documents to list."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List a client's registered documents, oldest first."""
    from .oauth import documents

    rows = run_for_key("client", client_id, lambda session: documents.list_documents(session, client_id))
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['document_id']}\t{row['sha256']}\t{','.join(row['operations'])}\t{row['registered_at']}")


@documents_app.command("trusted-only")
@one_line_errors
def documents_trusted_only(
    client_id: str = typer.Argument(..., help="The client to mark."),
    off: bool = typer.Option(False, "--off", help="Let the client send any document again."),
) -> None:
    """Let the client run only its registered documents (or, with --off, any document again)."""
    from .oauth.admin import set_client_trusted_documents_only

    run_for_key("client", client_id, lambda session: set_client_trusted_documents_only(session, client_id, not off))
    typer.echo(f"client {client_id} {'may send any document' if off else 'may run only its registered documents'}")


def main() -> None:
    """The console entry point: whatever a command did not foresee is still one line (the trace goes to the
    log at debug level), so scripts and operators never have to read a traceback."""
    try:
        app()
    except Exception as exc:
        logging.getLogger(__name__).debug("command failed", exc_info=True)
        typer.echo(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unexpected'}", err=True)
        raise SystemExit(1) from None
