"""Statements built once, with a named bound parameter for every value, for the hot write paths.

SQLAlchemy caches a statement's compiled SQL under a key derived from its shape, not its values, but it cannot
do so for a statement whose rows are written into it (``insert().values([row, row, ...])``): such a statement
is compiled again on every call, and for a register that compile cost more than all its SQL together. A
statement built once from ``bound_insert`` has one shape whatever it inserts, so it is compiled once per
process and PostgreSQL reuses one prepared statement for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa


def bound_insert(table: sa.Table, columns: Iterable[str], prefix: str) -> sa.Insert:
    """``INSERT INTO table (columns) VALUES (:<prefix><column>, ...)``; each parameter takes its column's type."""
    return sa.insert(table).values({name: sa.bindparam(prefix + name) for name in columns})


def prefixed(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The execution parameters of a ``bound_insert`` with that prefix, from the row's values by column."""
    return {prefix + name: value for name, value in values.items()}
