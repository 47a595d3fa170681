"""Pseudonyms, coarsened dates and opaque cursors for evaluators: nothing that links back to a person.

A pseudonym is HMAC-SHA256 of the participant's id under the evaluation project's own key: stable within the
project (the same person is the same pseudonym at every timepoint and in every export) and unlinkable across
projects, because another project's key gives an unrelated value. Page cursors would otherwise carry internal
row ids, so they are sealed (AES-GCM) under a key derived from the same project key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DomainError, ErrorCode

PSEUDONYM_BYTES = 10
"""80 bits: collisions are negligible at programme sizes, and the value stays short enough to read."""


def pseudonym(key: bytes, participant_id: uuid.UUID) -> str:
    """``P-`` and the first 80 bits of HMAC-SHA256(project key, participant id) in lower-case base32."""
    digest = hmac.new(key, participant_id.bytes, hashlib.sha256).digest()[:PSEUDONYM_BYTES]
    return "P-" + base64.b32encode(digest).decode().rstrip("=").lower()


def week_start(moment: datetime) -> date:
    """The Monday (ISO week start) of the UTC date: exact days would help re-identify people."""
    day = moment.date()
    return day - timedelta(days=day.weekday())


def _cursor_key(key: bytes) -> bytes:
    return hmac.new(key, b"evaluation-cursor", hashlib.sha256).digest()


def seal_cursor(key: bytes, values: tuple[Any, ...]) -> str:
    """An opaque cursor: the sort key encrypted and authenticated under the project's cursor key."""
    nonce = os.urandom(12)
    payload = orjson.dumps([v.isoformat() if isinstance(v, datetime) else str(v) for v in values])
    sealed = AESGCM(_cursor_key(key)).encrypt(nonce, payload, None)
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def open_cursor(key: bytes, cursor: str, argument: str) -> tuple[datetime, uuid.UUID]:
    """The (completed at, row id) sort key back out of a cursor; anything tampered with is refused."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = AESGCM(_cursor_key(key)).decrypt(raw[:12], raw[12:], None)
        completed, row_id = orjson.loads(payload)
        return datetime.fromisoformat(completed), uuid.UUID(row_id)
    except (ValueError, InvalidTag, TypeError) as exc:
        raise DomainError(ErrorCode.INVALID, f"'{argument}' is not a valid cursor", argument) from exc
