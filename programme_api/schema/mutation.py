"""The root Mutation: one field per write, each in its own module under ``schema/mutations``."""

from __future__ import annotations

import strawberry


@strawberry.type
class Mutation:
    @strawberry.field(description="Placeholder removed when the first write lands.")
    def noop(self) -> bool:
        return True
