"""Idempotent writes: a resend with the same key and input returns the first result without writing again.

Phones resend when a reply is lost, so a mutation may carry an idempotency key. The first call stores, under
(organisation, actor, operation, key), a hash of its input and the IDs of the objects it answered with. A
later call with that key and the same input re-loads those objects within the caller's reach (current state,
not a snapshot) and writes nothing; the same key with a different input is refused, because answering it
with the first result would silently drop the second request.

The record is inserted before the work, inside a savepoint: the unique constraint then serialises two
concurrent calls with one key (the second waits for the first to commit and replays it) instead of letting
both write.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, TypeVar, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from . import access
from .access import in_reach
from .errors import DomainError, ErrorCode, NotFound
from .models import IdempotencyRecord
from .principal import Principal

R = TypeVar("R")
MAX_KEY_LENGTH = 200


def _models() -> dict[str, type[Any]]:
    """Models an answer may name, by class name: the ones with access rules, so replays are filtered like reads.

    Read when needed, not at import: modules register rules for their own tables when they are imported.
    """
    return {model.__name__: model for model in access.RULES}


@dataclass(frozen=True)
class Once:
    """One mutation call's idempotency: its operation name, the caller's key (if any) and its input's hash."""

    operation: str
    key: str | None
    request_hash: str


def fingerprint(canonical_input: Any) -> str:
    """SHA-256 of the input as sorted-key JSON: equal inputs hash alike whatever order fields were sent in."""
    return hashlib.sha256(orjson.dumps(canonical_input, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def run_once(
    session: AsyncSession,
    principal: Principal,
    once: Once,
    result_type: type[R],
    work: Callable[[AsyncSession, Principal], Awaitable[R]],
) -> R:
    """Do ``work`` once per key: the first time for real, afterwards by replaying its stored answer.

    ``result_type`` is the model or dataclass ``work`` returns; a replay rebuilds one of those.
    """
    if once.key is None:
        return await work(session, principal)
    if not once.key.strip() or len(once.key) > MAX_KEY_LENGTH:
        raise DomainError(ErrorCode.INVALID, f"must be 1 to {MAX_KEY_LENGTH} characters, not blank", "idempotency_key")
    existing = await _find(session, principal, once)
    if existing is None:
        record = IdempotencyRecord(
            organisation_id=principal.organisation_id,
            actor_id=principal.actor_id,
            operation=once.operation,
            key=once.key,
            request_hash=once.request_hash,
            response={},
        )
        try:
            async with session.begin_nested():
                session.add(record)
                await session.flush()
        except IntegrityError:
            existing = await _find(session, principal, once)  # a concurrent call with this key committed first
            if existing is None:
                raise
        else:
            result = await work(session, principal)
            record.response = snapshot(result)
            await session.flush()
            return result
    if existing.request_hash != once.request_hash:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "this idempotency key was already used with a different input; use a new key for a new request",
            "idempotency_key",
        )
    return await restore(session, principal, existing.response, result_type)


async def _find(session: AsyncSession, principal: Principal, once: Once) -> IdempotencyRecord | None:
    """The caller's own record for this key: keys are scoped to one actor, so actors cannot collide.

    Trusted filter: idempotency records have no access rule of their own; a caller reads only the records
    it wrote itself (its organisation and actor id), which is narrower than any rule would be.
    """
    statement = sa.select(IdempotencyRecord).where(
        IdempotencyRecord.organisation_id == principal.organisation_id,
        IdempotencyRecord.actor_id == principal.actor_id,
        IdempotencyRecord.operation == once.operation,
        IdempotencyRecord.key == once.key,
    )
    trusted = access.trusted(statement, reason="the caller's own idempotency record")
    found: IdempotencyRecord | None = await session.scalar(trusted.execution_options(populate_existing=True))
    return found


def snapshot(result: Any) -> dict[str, Any]:
    """What to store of an answer: references to its objects, and plain values as they are."""
    if is_dataclass(result) and not isinstance(result, type):
        return {"fields": {f.name: _stored(getattr(result, f.name)) for f in fields(result)}}
    return _stored(result)  # type: ignore[no-any-return]


def _stored(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_stored(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if type(value).__name__ in _models():
        return {"ref": [type(value).__name__, str(value.id)]}
    raise TypeError(f"cannot store {type(value).__name__} in an idempotency record")


async def restore(session: AsyncSession, principal: Principal, stored: dict[str, Any], result_type: type[R]) -> R:
    """Rebuild an answer, re-loading its objects within the caller's reach (one statement per model)."""
    wanted: dict[str, set[uuid.UUID]] = {}
    _collect_refs(stored, wanted)
    loaded: dict[tuple[str, uuid.UUID], Any] = {}
    models = _models()
    for name, ids in wanted.items():
        model = models[name]
        rows = await session.scalars(in_reach(principal, model).where(model.id.in_(ids)))
        loaded.update({(name, row.id): row for row in rows})

    def rebuilt(value: Any) -> Any:
        if isinstance(value, list):
            return [row for row in (rebuilt(item) for item in value) if row is not None]
        if isinstance(value, dict) and "ref" in value:
            name, raw_id = value["ref"]
            return loaded.get((name, uuid.UUID(raw_id)))
        return value

    if "fields" in stored:
        return result_type(**{name: _required(rebuilt(value), value) for name, value in stored["fields"].items()})
    return cast(R, _required(rebuilt(stored), stored))


def _required(rebuilt: Any, stored: Any) -> Any:
    """A single object that is no longer within reach answers NOT_FOUND, as it would on a read."""
    if rebuilt is None and isinstance(stored, dict) and "ref" in stored:
        raise NotFound(stored["ref"][0])
    return rebuilt


def _collect_refs(value: Any, into: dict[str, set[uuid.UUID]]) -> None:
    if isinstance(value, list):
        for item in value:
            _collect_refs(item, into)
    elif isinstance(value, dict):
        if "ref" in value:
            name, raw_id = value["ref"]
            into.setdefault(name, set()).add(uuid.UUID(raw_id))
        else:
            for item in value.values():
                _collect_refs(item, into)
