"""Trusted documents: the operations a client registered ahead of time, and clients that may run only those.

A partner app's build knows every operation it will ever send. Registering them (``programme-api documents
register CLIENT FILE``) lets the app send a hash or an id instead of the text, and lets the operator mark the
client trusted-only (``documents trusted-only CLIENT``): then a stolen token of that client can run nothing
but the app's own operations. Registration accepts one ``.graphql`` file (the whole file is one document,
hashed byte for byte as the client must send it) or a manifest, the JSON object ``{id: text}`` that Relay's
compiler (``persisted-queries.json``) and GraphQL Codegen's client preset (``persisted-documents.json``)
write. An id that looks like a hash (MD5, SHA-1 or SHA-256 in hex, optionally ``sha256:``-prefixed) must be
that hash of its text, so a manifest that was edited by hand after the build is refused, not half-trusted.

Documents belong to the client's organisation (row-level security as on every tenant table) and are never
changed once registered: the same id with another text is refused, so a worker may remember what it found.
The trusted-only mark is set with the other client changes (``admin.set_client_trusted_documents_only``),
announced like them, so every worker's remembered token verdicts pick it up.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain import access
from ..domain.errors import DomainError, ErrorCode, NotFound
from ..domain.models import ActorType, OAuthClient, TrustedDocument
from ..domain.principal import Principal
from . import audit
from .clients import EXPLORER_CLIENT_ID, is_explorer_anchor

DOCUMENTS_REGISTERED = "oauth.documents_registered"
MAX_ID_LENGTH = 200
_HEX_DIGESTS = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX = re.compile(r"[0-9a-f]+")


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class DocumentEntry:
    """A document to register: the id the client sends, its text, and the text's SHA-256."""

    document_id: str
    text: str
    sha256: str


def entry_from_text(text: str) -> DocumentEntry:
    """A document given as text (a ``.graphql`` file): its id is its SHA-256."""
    digest = sha256_of(text)
    return DocumentEntry(document_id=digest, text=text, sha256=digest)


def entries_from_manifest(raw: bytes) -> list[DocumentEntry]:
    """The documents of a Relay or GraphQL Codegen manifest (``{id: text}``), each id checked against its text
    when it has the shape of a hash."""
    try:
        manifest: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DomainError(ErrorCode.INVALID, f"the manifest is not valid JSON: {exc.msg}", "file") from exc
    if not isinstance(manifest, dict) or not manifest:
        raise DomainError(ErrorCode.INVALID, "a manifest is a non-empty JSON object of {id: document text}", "file")
    entries = []
    for document_id, text in manifest.items():
        if not isinstance(text, str) or not text.strip():
            raise DomainError(ErrorCode.INVALID, f"the document of {document_id!r} is not a non-empty string", "file")
        entries.append(DocumentEntry(_checked_id(document_id, text), text, sha256_of(text)))
    return entries


def _checked_id(document_id: str, text: str) -> str:
    if not document_id or len(document_id) > MAX_ID_LENGTH or not document_id.isprintable():
        raise DomainError(ErrorCode.INVALID, f"document id {document_id[:40]!r} must be 1-{MAX_ID_LENGTH} "
                          "printable characters", "file")  # fmt: skip
    algorithm, _, digest = document_id.rpartition(":")
    if algorithm not in ("", "sha256") or not _HEX.fullmatch(digest) or len(digest) not in _HEX_DIGESTS:
        return document_id  # an id of the build's own making: nothing to check it against
    expected = hashlib.new(algorithm or _HEX_DIGESTS[len(digest)], text.encode()).hexdigest()
    if (algorithm == "sha256" and len(digest) != 64) or digest != expected:
        raise DomainError(ErrorCode.INVALID, f"document id {document_id!r} is not the hash of its text", "file")
    return document_id


async def _client(session: AsyncSession, client_id: str) -> OAuthClient:
    if client_id == EXPLORER_CLIENT_ID:
        raise DomainError(ErrorCode.INVALID, "the explorer's documents are its saved operations, shipped with the "
                          "service", "client_id")  # fmt: skip
    row = await session.scalar(sa.select(OAuthClient).where(OAuthClient.client_id == client_id))
    if row is None or is_explorer_anchor(row.client_id):
        raise NotFound(f"client {client_id!r}", "client_id")
    return row


@dataclass(frozen=True)
class Registered:
    added: list[DocumentEntry]
    already: list[DocumentEntry]


async def register_documents(
    session: AsyncSession, client_id: str, entries: Iterable[DocumentEntry], check: Callable[[str], list[str]]
) -> Registered:
    """Register the documents for the client (those already there are left as they are); ``check`` returns
    what is wrong with a text against the schema and its limits, and any finding refuses the whole file."""
    client = await _client(session, client_id)
    wanted = list({entry.document_id: entry for entry in entries}.values())
    for entry in wanted:
        problems = check(entry.text)
        if problems:
            raise DomainError(ErrorCode.INVALID, f"document {entry.document_id!r}: {'; '.join(problems)}", "file")
    existing = {
        row.document_id: row
        for row in await session.scalars(sa.select(TrustedDocument).where(TrustedDocument.client_pk == client.id))
    }
    by_hash = {row.sha256: row for row in existing.values()}
    added, already = [], []
    for entry in wanted:
        found = existing.get(entry.document_id) or by_hash.get(entry.sha256)
        if found is not None and (found.sha256 != entry.sha256 or found.document_id != entry.document_id):
            raise DomainError(ErrorCode.CONFLICT, f"document {entry.document_id!r} is registered already under "
                              f"another {'text' if found.document_id == entry.document_id else 'id'}; documents "
                              "never change: give the new one a new id", "file")  # fmt: skip
        if found is not None:
            already.append(entry)
            continue
        row = TrustedDocument(organisation_id=client.organisation_id, client_pk=client.id,
                              document_id=entry.document_id, sha256=entry.sha256, document=entry.text)  # fmt: skip
        session.add(row)
        added.append(entry)
    session.add(
        audit.audit_event(
            DOCUMENTS_REGISTERED,
            organisation_id=client.organisation_id,
            actor_type=ActorType.SYSTEM,
            actor_id="cli",
            target_type="oauth_client",
            target_id=client.client_id,
            details={"added": [entry.document_id for entry in added], "already": len(already)},
        )
    )
    await session.flush()
    return Registered(added, already)


async def list_documents(session: AsyncSession, client_id: str) -> list[dict[str, Any]]:
    """The client's documents, oldest first: id, SHA-256, operation names (read from the text), when."""
    client = await _client(session, client_id)
    rows = await session.scalars(
        sa.select(TrustedDocument)
        .where(TrustedDocument.client_pk == client.id)
        .order_by(TrustedDocument.created_at, TrustedDocument.document_id)
    )
    return [
        {
            "document_id": row.document_id,
            "sha256": row.sha256,
            "operations": operation_names(row.document),
            "registered_at": row.created_at.isoformat(),
        }
        for row in rows
    ]


_OPERATION = re.compile(r"\b(query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)")


def operation_names(text: str) -> list[str]:
    """The named operations a document defines, for listings (a rough scan: listings need no parser)."""
    return [name for _kind, name in _OPERATION.findall(text)]


async def registered_text(
    session: AsyncSession, principal: Principal, *, sha256: str | None = None, document_id: str | None = None
) -> str | None:
    """The text of a document registered for the caller's own client, by SHA-256 or by id (None: not one).

    Trusted filter: the caller's organisation and its own client id, taken from the verified token,
    the same rule by which the caller's token found its client; no other client's or tenant's row can match.
    """
    if principal.client_id is None or (sha256 is None and document_id is None):
        return None
    client_pk = sa.select(OAuthClient.id).where(
        OAuthClient.organisation_id == principal.organisation_id, OAuthClient.client_id == principal.client_id
    )
    key = TrustedDocument.sha256 == sha256 if sha256 is not None else TrustedDocument.document_id == document_id
    statement = sa.select(TrustedDocument.document).where(
        TrustedDocument.organisation_id == principal.organisation_id,
        TrustedDocument.client_pk.in_(client_pk.scalar_subquery()),
        key,
    )
    text: str | None = await session.scalar(
        access.trusted(statement, "the caller's own client's documents, in its organisation")
    )
    return text
