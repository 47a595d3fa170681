"""Binding a unit of work to a tenant: the one place that feeds PostgreSQL's row-level security (migration 0006).

The access module filters every query by organisation and region; row-level security is the second line, for
the query that forgot. It **fails closed**: a transaction that bound nothing sees and writes no row of any
tenant table. Two settings are set for the current transaction only (``set_config(..., true)``, the function
form of ``SET LOCAL``), so they cannot leak into the next request that reuses the connection, behind PgBouncer
in transaction mode included:

- ``app.organisation_id``: the organisation (a comma list for an evaluator whose project spans several);
- ``app.region_ids``: ``*`` when the caller is not region-bound, else the comma list of its regions (empty:
  a coordinator without regions, who reaches no region's rows). "All regions" is only ever the explicit ``*``.

Ways in, and who uses them:

- ``bind_principal``: a request acting for a ``Principal`` (GraphQL, exports, the export CLI verb).
- ``bound_read``: a single statement sent without a transaction (the compiled JSON reads) binds itself.
- ``bind_tenant_of`` / ``bind_tenant_of_sync``: a request that starts from a key before it knows whose it is
  (a ``client_id`` at ``/oauth/token``, an email at ``/login``, an access token's ``jti``, a hashed refresh
  token or code, the signed-in person's id, an organisation slug at the CLI). The key is mapped to its
  organisation by the ``SECURITY DEFINER`` function ``programme_tenant_of`` (it returns that id and nothing
  else); the transaction is bound to it in the same statement, and everything after reads under the policies.
  An unknown key binds nothing, so what follows finds nothing, exactly like a wrong key. These bindings are
  organisation-wide (``*``): they serve the credential tables (clients, tokens, people), which have no region.

Cross-tenant system work (migrations, ``demo load``, ``organisations list``) is not bound: it runs as the
tables' owner (``PROGRAMME_API_OWNER_DATABASE_URL``), to which row-level security does not apply.

A commit ends the binding, so a request that commits and continues must bind again. On SQLite nothing is
bound (no row-level security) and ``tenant_of`` answers from the tables directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from .principal import Principal

SETTING = "app.organisation_id"
REGIONS_SETTING = "app.region_ids"
ALL_REGIONS = "*"

KeyKind = Literal[
    "organisation_slug", "organisation", "client", "user", "email", "access_token", "refresh_token", "code"
]
# What ``programme_tenant_of`` looks a key up in (migrations 0006, 0015 and 0018 hold the PostgreSQL copy): on
# SQLite. An email is looked up in ``user_emails``, the one table that knows it across organisations.
_KEY_COLUMNS: dict[str, tuple[str, str, str]] = {
    "organisation_slug": ("organisations", "slug", "id"),
    "organisation": ("organisations", "id", "id"),
    "client": ("oauth_clients", "client_id", "organisation_id"),
    "user": ("users", "id", "organisation_id"),
    "email": ("user_emails", "email", "organisation_id"),
    "access_token": ("oauth_tokens", "jti", "organisation_id"),
    "refresh_token": ("oauth_tokens", "refresh_token_hash", "organisation_id"),
    "code": ("oauth_authorization_codes", "code_hash", "organisation_id"),
}

# Built once: composing ``func.set_config`` anew costs more than the round trip it makes (measured ~0.3 ms).
_BIND = sa.text(
    f"SELECT set_config('{SETTING}', :organisations, true), set_config('{REGIONS_SETTING}', :regions, true)"
)
_BIND_WITH_TIMEOUT = sa.text(
    f"SELECT set_config('{SETTING}', :organisations, true), set_config('{REGIONS_SETTING}', :regions, true),"
    " set_config('statement_timeout', :timeout, true)"
)
_BIND_BY_KEY = sa.text(
    f"SELECT set_config('{SETTING}', coalesce(programme_tenant_of(:kind, :key)::text, ''), true),"
    f" set_config('{REGIONS_SETTING}', '{ALL_REGIONS}', true)"
)
_TENANT_OF = sa.text("SELECT programme_tenant_of(:kind, :key)")
_PROJECT_TENANTS = sa.text("SELECT programme_project_tenants(:project)")


def setting_value(organisation_id: uuid.UUID, also: Iterable[uuid.UUID] = ()) -> str:
    members = dict.fromkeys([organisation_id, *also])
    return ",".join(str(uuid.UUID(str(member))) for member in members)


def regions_value(region_ids: Collection[uuid.UUID] | None) -> str:
    """``*`` for "not region-bound" (``None``, as ``Principal.region_ids`` says it), else the list (maybe empty)."""
    if region_ids is None:
        return ALL_REGIONS
    return ",".join(sorted(str(region) for region in region_ids))


def _is_postgresql(session: AsyncSession | Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def bind_tenant(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    *,
    regions: Collection[uuid.UUID] | None,
    also: Iterable[uuid.UUID] = (),
    statement_timeout_ms: int | None = None,
) -> None:
    """Limit this transaction to ``organisation_id`` (plus ``also``: the other organisations of an evaluation
    project the caller may read across) and to ``regions`` (``None``: every region of those organisations),
    and, given ``statement_timeout_ms``, its statements' time, in the same round trip."""
    if not _is_postgresql(session):
        return
    values = {"organisations": setting_value(organisation_id, also), "regions": regions_value(regions)}
    if statement_timeout_ms is None:
        await session.execute(_BIND, values)
    else:
        await session.execute(_BIND_WITH_TIMEOUT, values | {"timeout": str(statement_timeout_ms)})


def bound_read(statement: sa.Select[Any], principal: Principal) -> sa.Select[Any]:
    """``statement`` binding its own transaction to ``principal``'s organisation and regions before it reads.

    For a read sent as one statement in autocommit (``access.fetch_compiled``), where there is no
    transaction to bind beforehand. The binding is a materialised CTE the statement selects from:
    PostgreSQL produces the CTE's row (running ``set_config``) before it works out the select list, whose
    subqueries read the tables, so the policies see the binding. PostgreSQL only. (It binds no other
    organisations of an evaluation project: evaluation reads take the session path.)
    """
    binding = (
        sa.select(
            sa.func.set_config(SETTING, setting_value(principal.organisation_id), True).label("bound"),
            sa.func.set_config(REGIONS_SETTING, regions_value(principal.region_ids), True).label("regions"),
        )
        .cte("tenant_binding")
        .prefix_with("MATERIALIZED")
    )
    return statement.select_from(binding)


async def bind_principal(session: AsyncSession, principal: Principal, statement_timeout_ms: int | None = None) -> None:
    """Bind the transaction to the caller: its organisation and regions and, for an evaluator, the other
    organisations its project covers (listed by ``programme_project_tenants``, as nothing is visible yet);
    with ``statement_timeout_ms``, also bound its statements' time (PostgreSQL's ``statement_timeout``)."""
    if not _is_postgresql(session):
        return
    also: list[uuid.UUID] = []
    if principal.evaluation_project_id is not None:
        members = await session.scalar(_PROJECT_TENANTS, {"project": principal.evaluation_project_id})
        also = list(members or [])
    await bind_tenant(
        session, principal.organisation_id, regions=principal.region_ids, also=also,
        statement_timeout_ms=statement_timeout_ms,
    )  # fmt: skip


def _sqlite_lookup(kind: KeyKind, key: str) -> sa.TextClause:
    table, column, organisation = _KEY_COLUMNS[kind]
    return sa.text(f"SELECT {organisation} FROM {table} WHERE {column} = :key")


def _as_uuid(value: Any) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


async def tenant_of(session: AsyncSession, kind: KeyKind, key: str) -> uuid.UUID | None:
    """The organisation a key belongs to, without binding (e.g. "is this email taken in any organisation")."""
    if _is_postgresql(session):
        return _as_uuid(await session.scalar(_TENANT_OF, {"kind": kind, "key": key}))
    return _as_uuid(await session.scalar(_sqlite_lookup(kind, key), {"key": _sqlite_key(kind, key)}))


def _sqlite_key(kind: KeyKind, key: str) -> str:
    """SQLite stores UUIDs as 32 hex digits without dashes."""
    if kind in ("user", "organisation"):
        try:
            return uuid.UUID(key).hex
        except ValueError:
            return key
    return key


async def bind_tenant_of(session: AsyncSession, kind: KeyKind, key: str) -> None:
    """Bind this transaction to the organisation ``key`` belongs to (nothing, if it belongs to none)."""
    if _is_postgresql(session) and "\x00" not in key:  # a key with NUL belongs to no one (and cannot be sent)
        await session.execute(_BIND_BY_KEY, {"kind": kind, "key": key})


async def bind_organisation_of(session: AsyncSession, kind: KeyKind, key: str) -> uuid.UUID | None:
    """``bind_tenant_of`` that also returns the organisation it bound (``None``: none), on SQLite too, for a
    caller that then names the organisation in its own query, as a database sharded by it needs."""
    if not _is_postgresql(session):
        return await tenant_of(session, kind, key)
    if "\x00" in key:
        return None
    bound = await session.scalar(_BIND_BY_KEY, {"kind": kind, "key": key})
    return uuid.UUID(bound) if bound else None


def bind_tenant_of_sync(session: Session, kind: KeyKind, key: str) -> None:
    """``bind_tenant_of`` for synchronous callers (the authorization server's callbacks, run in ``run_sync``)."""
    if _is_postgresql(session) and "\x00" not in key:
        session.execute(_BIND_BY_KEY, {"kind": kind, "key": key})
