"""The explorer's saved operations: the documents registered for the built-in ``programme-explorer`` client.

Each entry of ``static/saved-operations.json`` (title, roles, variables, text) is one saved operation. The
explorer client is defined in code rather
than as a row of one organisation (``oauth/clients.py``), so its documents are too: they ship with the
service, and ``/graphql`` finds them by SHA-256 beside the documents registered in the database for other
clients. The page hands the texts and hashes to ``explorer.js``, which sends an unchanged saved operation by
its hash alone; a test checks that every one of them passes the endpoint's validation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

OPERATIONS_FILE: Final = Path(__file__).parent / "static" / "saved-operations.json"


@dataclass(frozen=True)
class SavedOperation:
    id: str
    query: str
    sha256: str


def _load() -> tuple[SavedOperation, ...]:
    entries = orjson.loads(OPERATIONS_FILE.read_bytes())
    return tuple(
        SavedOperation(entry["id"], entry["query"], hashlib.sha256(entry["query"].encode()).hexdigest())
        for entry in entries
    )


SAVED_OPERATIONS: Final = _load()
BY_SHA256: Final = {operation.sha256: operation.query for operation in SAVED_OPERATIONS}
#: What the page puts in ``data-saved-operations`` for ``explorer.js``.
PAGE_DATA: Final = orjson.dumps([{"id": o.id, "query": o.query, "sha256": o.sha256} for o in SAVED_OPERATIONS]).decode()
