"""The JSON functions of the two databases, and how each renders values exactly as the schema serialises them.

PostgreSQL builds JSON with ``json_build_object``/``json_agg``; SQLite (3.38 or later) with
``json_object``/``json_group_array``. SQLite has no base64: global IDs and cursors there come from Python
functions registered on the connection (``register_sqlite_functions``), which call the very functions the
resolvers use (``relay.to_global_id``, ``pagination.encode_cursor``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, TypeGuard, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, ColumnClause
from sqlalchemy.sql.selectable import Exists, ScalarSelect

from ...domain.pagination import encode_cursor
from ..relay import to_global_id
from .operation import Unsupported

_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
MAX_FIELDS_PER_OBJECT = 50  # json_build_object takes at most 100 arguments
Rows = TypeVar("Rows", bound=sa.Select)  # type: ignore[type-arg]


def text(value: str) -> Any:
    """A name known when compiling (a response key or type name), written into the statement."""
    if not _NAME.match(value):
        raise Unsupported(f"unexpected name {value!r}")
    return sa.literal_column(f"'{value}'", sa.Text)


def constant(value: str) -> Any:
    """A constant of the compiler's own (a format, an enum's stored value), written into the statement.

    Constants as parameters would cost per row: PostgreSQL cannot fold them once it plans generically.
    """
    return sa.literal_column("'" + value.replace("'", "''") + "'", sa.Text)


class JsonDialect:
    """What differs between the databases; the builder uses only these."""

    name = ""

    def object(self, pairs: list[tuple[str, Any]]) -> Any:
        raise NotImplementedError

    def embed(self, subquery: Any) -> Any:
        """A scalar subquery's JSON value placed inside an object."""
        raise NotImplementedError

    def array(self, item: Any, order: list[Any], where: Any | None = None) -> Any:
        """The aggregate of ``item`` over the rows (in ``order``), an empty array when there are none."""
        raise NotImplementedError

    def boolean(self, condition: Any) -> Any:
        raise NotImplementedError

    def constant_boolean(self, value: bool) -> Any:
        raise NotImplementedError

    def global_id(self, type_name: str, row_id: Any) -> Any:
        raise NotImplementedError

    def datetime(self, column: Any) -> Any:
        raise NotImplementedError

    def date(self, column: Any) -> Any:
        raise NotImplementedError

    def time(self, column: Any) -> Any:
        """``time.isoformat()``: microseconds only when there are some."""
        raise NotImplementedError

    def cursor(self, values: list[tuple[Any, str]]) -> Any:
        """``pagination.encode_cursor`` of the row's sort key; kinds: s(tring), u(uid), t(imestamp), d(ate),
        i(nteger)."""
        raise NotImplementedError

    def last_fetched(self, cursor: Any, position: Any, in_page: Any, *, ascending: bool) -> Any:
        """The cursor of the page's row fetched last (the highest position within the page); ``ascending``
        says whether the rows reach the aggregate by increasing position."""
        raise NotImplementedError

    def in_order(self, rows: sa.Select[Any]) -> sa.Select[Any]:
        """A select whose order the aggregate over it must keep (SQLite aggregates in row order)."""
        return rows

    def per_row(self, statement: Rows) -> Rows:
        """``statement`` (a parent's few rows, such as a participant's marks) with its checks of related rows
        (``EXISTS``) made lookups per row, which the database may not turn into a join (``_probes``)."""
        return statement

    def finish(self, data: Any) -> sa.Select[Any]:
        raise NotImplementedError

    rearrange: Callable[[sa.Select[Any]], sa.Select[Any]] | None = None
    """A rewriting of the finished, checked statement for the database's limits (``access.compile_read``)."""

    def _check(self, pairs: list[tuple[str, Any]]) -> list[Any]:
        if len(pairs) > MAX_FIELDS_PER_OBJECT:
            raise Unsupported("too many fields in one object")
        flat: list[Any] = []
        for key, value in pairs:
            flat += [text(key), value]
        return flat


class PostgresJson(JsonDialect):
    name = "postgresql"
    JSON = postgresql.JSON()

    def object(self, pairs: list[tuple[str, Any]]) -> Any:
        return sa.func.json_build_object(*self._check(pairs), type_=self.JSON)

    def embed(self, subquery: Any) -> Any:
        return subquery

    def array(self, item: Any, order: list[Any], where: Any | None = None) -> Any:
        aggregate: Any = sa.func.json_agg(aggregate_order_by(item, *order), type_=self.JSON)
        if where is not None:
            aggregate = aggregate.filter(where)
        return sa.func.coalesce(aggregate, sa.literal_column("'[]'::json"), type_=self.JSON)

    def boolean(self, condition: Any) -> Any:
        return condition

    def constant_boolean(self, value: bool) -> Any:
        return sa.true() if value else sa.false()

    def global_id(self, type_name: str, row_id: Any) -> Any:
        """URL-safe base64 of ``Type:uuid`` without padding; a name of up to 20 characters never reaches the
        76 characters after which PostgreSQL's base64 breaks lines."""
        if len(type_name) > 20:
            raise Unsupported(f"global IDs of {type_name}")
        raw = sa.func.encode(
            sa.cast(constant(type_name + ":").concat(sa.cast(row_id, sa.Text)), sa.LargeBinary), constant("base64")
        )
        return _base64url(raw)

    def datetime(self, column: Any) -> Any:
        """``datetime.isoformat()`` of a UTC instant: microseconds only when there are some, ``+00:00``."""
        utc = sa.func.timezone(constant("UTC"), column)
        whole = sa.func.date_trunc(constant("second"), column) == column
        return sa.case(
            (whole, sa.func.to_char(utc, constant('YYYY-MM-DD"T"HH24:MI:SS"+00:00"'))),
            else_=sa.func.to_char(utc, constant('YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')),
        )

    def date(self, column: Any) -> Any:
        return sa.func.to_char(column, constant("YYYY-MM-DD"))

    def time(self, column: Any) -> Any:
        whole = sa.func.to_char(column, constant("US")) == constant("000000")
        return sa.case(
            (whole, sa.func.to_char(column, constant("HH24:MI:SS"))),
            else_=sa.func.to_char(column, constant("HH24:MI:SS.US")),
        )

    def cursor(self, values: list[tuple[Any, str]]) -> Any:
        """orjson's compact JSON of the tagged key, built as text, then URL-safe base64 without padding."""
        parts: list[Any] = []
        for column, kind in values:
            if kind == "s":
                parts.append(sa.cast(sa.func.to_json(column), sa.Text))
            elif kind == "u":
                uuid_hex = sa.func.replace(sa.cast(column, sa.Text), constant("-"), constant(""))
                parts.append(constant('{"u":"').concat(uuid_hex).concat(constant('"}')))
            elif kind == "t":
                parts.append(constant('{"t":"').concat(self.datetime(column)).concat(constant('"}')))
            elif kind == "i":
                parts.append(sa.cast(column, sa.Text))
            else:
                raise Unsupported(f"cursor of kind {kind}")
        joined: Any = constant("[")
        for index, part in enumerate(parts):
            joined = joined.concat(constant(",") if index else constant("")).concat(part)
        joined = joined.concat(constant("]"))
        raw = sa.func.encode(sa.func.convert_to(joined, constant("UTF8")), constant("base64"))
        return _base64url(sa.func.replace(raw, sa.literal_column("E'\\n'"), constant("")))

    def last_fetched(self, cursor: Any, position: Any, in_page: Any, *, ascending: bool) -> Any:
        cursors = sa.func.array_agg(aggregate_order_by(cursor, position.desc())).filter(in_page)
        return sa.type_coerce(cursors, postgresql.ARRAY(sa.Text))[1]

    def finish(self, data: Any) -> sa.Select[Any]:
        return sa.select(sa.cast(data, sa.Text))  # the text as PostgreSQL wrote it, not parsed here

    def rearrange(self, statement: sa.Select[Any]) -> sa.Select[Any]:
        return _lists_once(statement)

    def per_row(self, statement: Rows) -> Rows:
        return _probes(statement)


def _lists_once(statement: sa.Select[Any]) -> sa.Select[Any]:
    """Each self-contained ``column IN (SELECT c FROM ...)`` (the access module's lists of readable groups, a
    facilitator's groups) made ``column = ANY (CAST((SELECT coalesce(array_agg(c), '{}') FROM ...) AS
    type[]))``: an InitPlan, worked out once per statement. As written, PostgreSQL pulls each into a join of
    the subquery it sits in, and runs that join again for every row of every enclosing subquery: each mark of
    a participant looking up its session paid a join with the groups table."""

    def replace(element: Any) -> Any:
        if (
            isinstance(element, BinaryExpression)
            and element.operator is operators.in_op
            and isinstance(element.right, ScalarSelect)
            and _aggregable(element.right.element)
            and _self_contained(element.right.element)
        ):
            select: sa.Select[Any] = element.right.element
            (column,) = select.selected_columns
            items = sa.func.coalesce(sa.func.array_agg(column), sa.literal_column("'{}'"))
            array = sa.cast(select.with_only_columns(items).scalar_subquery(), postgresql.ARRAY(column.type))
            return element.left == sa.any_(array)
        return None

    rewritten: sa.Select[Any] = visitors.replacement_traverse(statement, {}, replace)  # type: ignore[call-overload]
    return rewritten


def _probes(statement: Rows) -> Rows:
    """Each ``EXISTS (...)`` (a row's session is readable, a mark's session is of the enrolment's group) made
    ``EXISTS (...) IS true``, which PostgreSQL leaves a lookup per row (by the looked-up row's key) rather
    than making it a join. As a join, the planner prices the row-level security check of the looked-up table
    as a cost of every probe and prefers hashing every session of the caller's regions, once per enclosing
    row: 2,200 sessions read for each participant's 40 marks. Only for a parent's few rows: over a region's
    marks (a count) the join is the better plan."""

    def replace(element: Any) -> Any:
        if isinstance(element, Exists):
            return element.is_(sa.true())
        return None

    rewritten: Rows = visitors.replacement_traverse(statement, {}, replace)  # type: ignore[call-overload]
    return rewritten


def _aggregable(select: Any) -> TypeGuard[sa.Select[Any]]:
    """Whether ``select`` lists the rows of one column with nothing an aggregate of them would change."""
    return (
        isinstance(select, sa.Select)
        and len(select.selected_columns) == 1
        and not select._group_by_clauses
        and not select._having_criteria
        and not select._distinct
        and select._limit_clause is None
        and select._offset_clause is None
    )


def _base64url(raw: Any) -> Any:
    c = constant
    return sa.func.rtrim(sa.func.replace(sa.func.replace(raw, c("+"), c("-")), c("/"), c("_")), c("="))


class SqliteJson(JsonDialect):
    name = "sqlite"

    def object(self, pairs: list[tuple[str, Any]]) -> Any:
        return sa.func.json_object(*self._check(pairs), type_=sa.Text)

    def embed(self, subquery: Any) -> Any:
        # A subquery's value is text again: ``-> '$'`` marks it as JSON (as ``json()`` would) at less depth of
        # SQLite's parser stack than a function call around the subquery.
        return subquery.op("->", return_type=sa.Text)(constant("$"))

    def array(self, item: Any, order: list[Any], where: Any | None = None) -> Any:
        aggregate = sa.func.json_group_array(item, type_=sa.Text)  # in the order of its rows (``in_order``)
        return aggregate.filter(where) if where is not None else aggregate

    def boolean(self, condition: Any) -> Any:
        return sa.func.json(sa.case((condition, constant("true")), else_=constant("false")), type_=sa.Text)

    def constant_boolean(self, value: bool) -> Any:
        return sa.func.json(constant("true" if value else "false"), type_=sa.Text)

    def global_id(self, type_name: str, row_id: Any) -> Any:
        return sa.func.programme_global_id(constant(type_name), row_id, type_=sa.Text)

    def datetime(self, column: Any) -> Any:
        """SQLAlchemy stores ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC); ``isoformat`` drops zero microseconds."""
        day, clock = sa.func.substr(column, 1, 10), sa.func.substr(column, 12, 8)
        micro = sa.func.substr(column, 20, 7)
        whole = sa.or_(micro == constant(".000000"), micro == constant(""))
        base = day.concat(constant("T")).concat(clock)
        return sa.case((whole, base.concat(constant("+00:00"))), else_=base.concat(micro).concat(constant("+00:00")))

    def date(self, column: Any) -> Any:
        return column

    def time(self, column: Any) -> Any:
        """SQLAlchemy stores ``HH:MM:SS.ffffff``."""
        clock, micro = sa.func.substr(column, 1, 8), sa.func.substr(column, 9, 7)
        whole = sa.or_(micro == constant(".000000"), micro == constant(""))
        return sa.case((whole, clock), else_=clock.concat(micro))

    def cursor(self, values: list[tuple[Any, str]]) -> Any:
        kinds = "".join(kind for _column, kind in values)
        return sa.func.programme_cursor(constant(kinds), *(column for column, _kind in values), type_=sa.Text)

    def last_fetched(self, cursor: Any, position: Any, in_page: Any, *, ascending: bool) -> Any:
        cursors = sa.func.json_group_array(cursor).filter(in_page)
        return sa.func.json_extract(cursors, constant("$[#-1]" if ascending else "$[0]"), type_=sa.Text)

    def in_order(self, rows: sa.Select[Any]) -> sa.Select[Any]:
        # An ORDER BY without a LIMIT in a FROM subquery may be dropped by the planner; with one it is kept.
        return rows if rows._limit_clause is not None else rows.limit(-1)

    def finish(self, data: Any) -> sa.Select[Any]:
        return sa.select(data)

    def rearrange(self, statement: sa.Select[Any]) -> sa.Select[Any]:
        """Each self-contained ``IN (SELECT ...)`` (the access module's lists of readable groups, a
        facilitator's groups) moved to the top of the statement as a common table expression, named where it
        was (``column IN name``). SQLite before 3.46 parses with a fixed stack (100 entries), and each
        subquery inside the already nested JSON of a deep query costs several: the region dashboard of a
        region-bound caller overflowed it by one such subquery. Correlated subqueries stay where they are."""
        tables: list[Any] = []

        def replace(element: Any) -> Any:
            if (
                isinstance(element, BinaryExpression)
                and element.operator is operators.in_op
                and isinstance(element.right, ScalarSelect)
                and _self_contained(element.right.element)
            ):
                table = element.right.element.cte(f"in_{len(tables)}")
                tables.append(table)
                return element.left.op("IN", is_comparison=True)(sa.literal_column(table.name))
            return None

        flat: sa.Select[Any] = visitors.replacement_traverse(statement, {}, replace)  # type: ignore[call-overload]
        return flat.add_cte(*tables) if tables else flat


def _self_contained(select: Any) -> bool:
    """Whether every column ``select`` (and the subqueries in it) reads is of a table one of them selects
    from: nothing of an enclosing query, so it can run on its own."""
    referenced: set[Any] = set()
    selecting: set[Any] = set()
    for element in visitors.iterate(select):
        if isinstance(element, sa.Select):
            selecting.update(element.get_final_froms())
        elif isinstance(element, ColumnClause) and element.table is not None:
            referenced.add(element.table)
    return referenced <= selecting


DIALECTS: dict[str, JsonDialect] = {"postgresql": PostgresJson(), "sqlite": SqliteJson()}


def sqlite_global_id(type_name: str, row_id: str | None) -> str | None:
    return None if row_id is None else str(to_global_id(type_name, uuid.UUID(row_id)))


def sqlite_cursor(kinds: str, *values: Any) -> str:
    key: list[Any] = []
    for kind, value in zip(kinds, values, strict=True):
        if kind == "u":
            key.append(uuid.UUID(value))
        elif kind == "t":
            key.append(datetime.fromisoformat(value).replace(tzinfo=UTC))
        elif kind == "d":
            key.append(date.fromisoformat(value))
        else:
            key.append(value)
    return encode_cursor(tuple(key))


_REGISTERED = "_programme_functions"


async def register_sqlite_functions(driver_connection: Any) -> None:
    """The functions the SQLite statements call, once per (aiosqlite) connection."""
    if getattr(driver_connection, _REGISTERED, False):
        return
    await driver_connection.create_function("programme_global_id", 2, sqlite_global_id, deterministic=True)
    await driver_connection.create_function("programme_cursor", -1, sqlite_cursor, deterministic=True)
    setattr(driver_connection, _REGISTERED, True)
