"""What every mutation shares: typed user errors, the payload and input bases, and the one way to run a write.

``perform`` keeps resolvers thin and every write alike:

1. the caller must hold the mutation's scope: a missing scope is a top-level ``INSUFFICIENT_SCOPE`` error
   (the operation is refused outright; nothing is written);
2. the input is fingerprinted for the idempotency key, and the domain function runs once per key under the
   request lock;
3. any other refusal becomes a ``userErrors`` entry and marks the request failed, so the HTTP edge rolls back
   everything the mutation did (audit event and idempotency record included).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, time
from typing import Any, Protocol, Self, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.utils.str_converters import to_camel_case

from ...domain.access import require_scope
from ...domain.errors import DomainError, ErrorCode
from ...domain.idempotency import MAX_KEY_LENGTH, Once, fingerprint, run_once
from ...domain.principal import Principal
from ..context import Info

R = TypeVar("R")


class Refusable(Protocol):
    """A payload ``perform`` can answer with: one that can say why a mutation was refused."""

    @classmethod
    def refused(cls, error: DomainError, aliases: Mapping[str, str | None] | None = None) -> Self: ...


P = TypeVar("P", bound=Refusable)

# Registers the domain's codes as the GraphQL enum ``UserErrorCode`` (the class itself is decorated in place).
strawberry.enum(ErrorCode, name="UserErrorCode", description="Why a mutation refused its input.")

# Refusals of the whole operation rather than of its input: these stay top-level errors.
TOP_LEVEL_CODES = frozenset({ErrorCode.INSUFFICIENT_SCOPE, ErrorCode.UNAUTHENTICATED})


@strawberry.type(description="Why a mutation refused its input; nothing of the mutation was written.")
class UserError:
    field: str | None = strawberry.field(
        description="Path of the input field at fault (e.g. `input.capacity`); null when it is not one field."
    )
    message: str = strawberry.field(description="What is wrong, for people.")
    code: ErrorCode = strawberry.field(description="What is wrong, for programs.")


@strawberry.type(description="The result of a mutation: the affected objects, or why it was refused.")
class MutationPayload:
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Empty when the mutation succeeded; otherwise nothing was written."
    )

    @classmethod
    def refused(cls, error: DomainError, aliases: Mapping[str, str | None] | None = None) -> Self:
        return cls(user_errors=user_errors(error, aliases))


def user_errors(error: DomainError, aliases: Mapping[str, str | None] | None = None) -> list[UserError]:
    """Every problem a refusal names, each addressed by its GraphQL input path."""
    return [
        UserError(field=api_field(field, aliases or {}), message=message, code=code)
        for field, message, code in error.problems_found()
    ]


@strawberry.input(description="Fields every mutation input has.")
class MutationInput:
    idempotency_key: str | None = strawberry.field(
        default=None,
        description=f"Optional, at most {MAX_KEY_LENGTH} characters. Resending the same key with the same input "
        "returns the first result without writing again; the same key with another input is refused "
        "(`IDEMPOTENCY_KEY_REUSED`). Keys are per caller and mutation.",
    )


def api_field(field: str | None, aliases: Mapping[str, str | None]) -> str | None:
    """The GraphQL path of a domain field name: ``entries.2.participant_id`` -> ``input.entries.2.participantId``."""
    if field is None or field.startswith("input."):
        return field
    if field in aliases:
        return aliases[field]
    # Strawberry's own converter, so the path is spelt exactly as the published schema names the field.
    return "input." + ".".join(to_camel_case(part) for part in field.split("."))


def canonical(value: Any) -> Any:
    """The input as plain JSON data, the idempotency key left out: what "the same input" compares."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            name: canonical(field)
            for name in _compared_fields(type(value))
            if (field := getattr(value, name)) is not strawberry.UNSET
        }
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return value


@functools.cache
def _compared_fields(input_type: type[Any]) -> tuple[str, ...]:
    """The fields of an input type that ``canonical`` compares, looked up once per type (it runs per entry of
    every register)."""
    return tuple(f.name for f in dataclasses.fields(input_type) if f.name != "idempotency_key")


async def perform(
    info: Info,
    *,
    operation: str,
    scope: str | tuple[str, ...],
    input: MutationInput,
    result_type: type[R],
    work: Callable[[AsyncSession, Principal], Awaitable[R]],
    payload: type[P],
    present: Callable[[R], P],
    aliases: Mapping[str, str | None] | None = None,
) -> P:
    """Run one write (see module docstring); ``present`` turns the domain result into the payload.

    ``scope`` may name several scopes, any one of which allows the write.
    """
    ctx = info.context
    principal = ctx.require_principal()
    scopes = (scope,) if isinstance(scope, str) else scope
    if not any(principal.has_scope(one) for one in scopes):
        require_scope(principal, scopes[0])  # any one of them will do; the refusal names the first
    once = Once(operation=operation, key=input.idempotency_key, request_hash=fingerprint(canonical(input)))
    try:
        result = await ctx.run(run_once, once, result_type, work)
    except DomainError as error:
        if error.code in TOP_LEVEL_CODES:
            raise
        ctx.failed = True
        return payload.refused(error, aliases)
    return present(result)
