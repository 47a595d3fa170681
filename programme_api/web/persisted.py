"""Persisted documents at ``/graphql``: Apollo's automatic persisted queries (APQ) and trusted documents.

What a request may name instead of sending its text, and how the text is found:

- ``extensions.persistedQuery = {"version": 1, "sha256Hash": H}`` without ``query``: the document whose
  SHA-256 is ``H``. Looked up among the documents registered for the caller's client (the database, see
  ``oauth/documents.py``; for the explorer, its saved operations), then among the texts this worker has
  been sent with their hash (APQ). Not found: ``PersistedQueryNotFound`` with ``extensions.code``
  ``PERSISTED_QUERY_NOT_FOUND``, status 200 whatever the media type (Apollo Client turns persisted queries
  off for good on a 400 and only resends the text on this answer), never cached.
- The same extension *with* ``query``: the text's SHA-256 must be ``H``; once the document has passed
  validation this worker remembers it, so the client's next request may send the hash alone (and over GET,
  which a CDN or browser cache can key on). The APQ memory is per worker, bounded (least recently used
  texts go first): a client that meets another worker gets ``PersistedQueryNotFound`` once and resends
  the text, as the protocol intends. It is shared by every caller: a hash names a text, not data, and a
  caller that can compute a hash already has the text.
- ``documentId`` (GraphQL over HTTP's persisted documents): a registered document by the id the client's
  build gave it (Relay's or Codegen's manifest key), or ``sha256:H``.

A client marked trusted-only runs nothing but its registered documents: a text that is not one of them, sent
with or without a hash, is refused with ``PERSISTED_QUERY_NOT_IN_LIST`` before it is parsed; the APQ memory is
never consulted for it and never learns from it.

A worker remembers the registered documents it has found (they never change once registered), so a hash
costs one database read per worker and document.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final

from ..db import read_only_session
from ..domain.principal import Principal
from ..domain.tenancy import bind_principal
from ..explorer.operations import BY_SHA256 as EXPLORER_DOCUMENTS
from ..oauth.clients import EXPLORER_CLIENT_ID
from ..oauth.documents import MAX_ID_LENGTH, registered_text, sha256_of
from ..runtime import Runtime

NOT_FOUND: Final = "PERSISTED_QUERY_NOT_FOUND"
NOT_FOUND_MESSAGE: Final = "PersistedQueryNotFound"  # Apollo Client matches the message, not only the code
NOT_IN_LIST: Final = "PERSISTED_QUERY_NOT_IN_LIST"
NOT_FOUND_CACHING: Final = "private, no-cache, must-revalidate"  # a CDN must not keep the miss
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DocumentRefused(Exception):
    """The request names no document it may run; ``status`` None means the endpoint's request-error status."""

    def __init__(self, message: str, code: str, status: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.headers = headers or {}


class TextCache:
    """A bounded least-recently-used map to document texts, by entries and by total characters."""

    def __init__(self, max_entries: int, max_chars: int) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._texts: OrderedDict[Hashable, str] = OrderedDict()
        self._chars = 0

    def get(self, key: Hashable) -> str | None:
        text = self._texts.get(key)
        if text is not None:
            self._texts.move_to_end(key)
        return text

    def put(self, key: Hashable, text: str) -> None:
        if len(text) > self.max_chars:
            return
        previous = self._texts.pop(key, None)
        self._chars += len(text) - (len(previous) if previous is not None else 0)
        self._texts[key] = text
        while len(self._texts) > self.max_entries or self._chars > self.max_chars:
            _key, dropped = self._texts.popitem(last=False)
            self._chars -= len(dropped)

    def clear(self) -> None:
        self._texts.clear()
        self._chars = 0


automatic = TextCache(max_entries=2_000, max_chars=16_000_000)
registered = TextCache(max_entries=10_000, max_chars=32_000_000)


@dataclass(frozen=True)
class Named:
    """What the request names: a SHA-256 (persisted query or ``documentId: sha256:…``) or a build's id."""

    sha256: str | None = None
    document_id: str | None = None


def named(extensions: dict[str, Any] | None, document_id: Any, query: str) -> Named | None:
    """The persisted document the request names, if any (raises for a malformed name)."""
    extension = (extensions or {}).get("persistedQuery")
    if extension is not None:
        if not isinstance(extension, dict) or extension.get("version") != 1:
            raise DocumentRefused("persistedQuery: only version 1 is supported", "INVALID")
        digest = extension.get("sha256Hash")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower()):
            raise DocumentRefused("persistedQuery.sha256Hash must be a SHA-256 in hexadecimal", "INVALID")
        return Named(sha256=digest.lower())
    if document_id is None:
        return None
    if query:
        raise DocumentRefused("send either 'query' or 'documentId', not both", "INVALID")
    if not isinstance(document_id, str) or not 0 < len(document_id) <= MAX_ID_LENGTH:
        raise DocumentRefused(f"'documentId' must be a string of 1-{MAX_ID_LENGTH} characters", "INVALID")
    prefix, _, digest = document_id.partition(":")
    if prefix == "sha256" and _SHA256.fullmatch(digest.lower()):
        return Named(sha256=digest.lower())
    return Named(document_id=document_id)


async def _registered(runtime: Runtime, principal: Principal, name: Named) -> str | None:
    if principal.client_id == EXPLORER_CLIENT_ID:
        return EXPLORER_DOCUMENTS.get(name.sha256 or "")
    if principal.client_id is None:
        return None
    key = (principal.organisation_id, principal.client_id, name.sha256, name.document_id)
    text = registered.get(key)
    if text is None:
        async with read_only_session(runtime.session_maker) as session:
            await bind_principal(session, principal)
            text = await registered_text(session, principal, sha256=name.sha256, document_id=name.document_id)
        if text is not None:
            registered.put(key, text)
    return text


async def resolve(
    runtime: Runtime, principal: Principal, query: str, extensions: dict[str, Any] | None, document_id: Any
) -> tuple[str, Callable[[], None] | None]:
    """The text to run, and what to do once it has passed validation (remember it for APQ), or refuse."""
    name = named(extensions, document_id, query)
    if query:
        if name is None and not principal.trusted_documents_only:
            return query, None  # the common case: a text, nothing persisted
        digest = sha256_of(query)
        if name is not None and name.sha256 is not None and name.sha256 != digest:
            raise DocumentRefused("provided sha does not match query", "INVALID")
        if principal.trusted_documents_only:
            if await _registered(runtime, principal, Named(sha256=digest)) is None:
                raise DocumentRefused(
                    "this client may run only its registered documents; this one is not among them", NOT_IN_LIST
                )
            return query, None
        return query, lambda: automatic.put(digest, query)
    assert name is not None  # read_params lets a request without text through only when it names a document
    text = await _registered(runtime, principal, name)
    if text is None and name.sha256 is not None and not principal.trusted_documents_only:
        text = automatic.get(name.sha256)
    if text is None:
        raise DocumentRefused(NOT_FOUND_MESSAGE, NOT_FOUND, 200, {"Cache-Control": NOT_FOUND_CACHING})
    return text, None


def names_a_document(raw: dict[str, Any]) -> bool:
    """Whether a request without ``query`` may still be answered: it names a persisted document."""
    extensions = raw.get("extensions")
    return (isinstance(extensions, dict) and "persistedQuery" in extensions) or raw.get("documentId") is not None
