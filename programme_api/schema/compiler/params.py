"""Values as bind parameters: a compiled statement is kept per document and access shape, and each request
supplies its own values.

Two kinds of parameter slot. The compiler's own (a page size, a cursor's sort key) are computed from the
request's coerced arguments. Statements from the access module and the domain builders (``readable``,
``programme.groups`` ...) carry the principal's and the filters' values as their own bind parameters: the
compiler renames those to fixed names when it builds, and for each request builds the same (small) statement
again for the request's principal and arguments and takes its values, in the same order. A statement whose
parameters no longer line up (a different shape) is refused, so the executor answers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from graphql import FieldNode
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter

from ...domain.principal import Principal
from .. import inputs
from .operation import Fallback, Selection, Unsupported, arguments


@dataclass
class Request:
    """One request's values: the principal and the coerced variables (argument values worked out once)."""

    principal: Principal
    selection: Selection
    memo: dict[int, dict[str, Any]] = field(default_factory=dict)

    def arguments(self, definition: Any, node: FieldNode) -> dict[str, Any]:
        found = self.memo.get(id(node))
        if found is None:
            found = arguments(self.selection, definition, node)
            refused = inputs.problem(definition.args, found)
            if refused is not None:
                raise Fallback(refused[1])  # the executor refuses it, with the field's path
            self.memo[id(node)] = found
        return found


Compute = Callable[[Request], Any]


def bind_parameters(statement: sa.ClauseElement) -> list[BindParameter[Any]]:
    """The statement's bind parameters in traversal order (deterministic for statements of one shape)."""
    seen: dict[int, BindParameter[Any]] = {}
    for element in visitors.iterate(statement):
        if isinstance(element, BindParameter) and id(element) not in seen:
            seen[id(element)] = element
    return list(seen.values())


def _shape(statement: Any) -> Any:
    """SQLAlchemy's cache key of a statement: equal for statements that differ only in their values."""
    key = statement._generate_cache_key()
    if key is None:
        raise Unsupported("a statement SQLAlchemy cannot key")
    return key.key


@dataclass
class Slots:
    """The parameter slots of one compiled statement, and how to fill them for a request."""

    dialect: sa.Dialect
    lists: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    own: list[tuple[str, Compute]] = field(default_factory=list)
    groups: list[tuple[tuple[str, ...], Any, Callable[[Request], sa.ClauseElement], str]] = field(default_factory=list)
    checks: list[Callable[[Request], None]] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)
    # SQLite: the items of each list parameter, as a common table expression the statement names.
    lists_as_tables: list[Any] = field(default_factory=list)

    def check(self, check: Callable[[Request], None]) -> None:
        """A check of the request's values with no parameter of its own (the executor's argument checks)."""
        self.checks.append(check)

    def value(self, compute: Compute, type_: Any) -> BindParameter[Any]:
        """A parameter of the compiler's own, computed from the request."""
        name = f"v{next(self.counter)}"
        self.own.append((name, compute))
        return sa.bindparam(name, type_=type_)

    def domain(
        self,
        statement: Any,
        rebuild: Callable[[Request], Any],
        only: Callable[[BindParameter[Any]], bool] | None = None,
        probe: Any = None,
    ) -> Any:
        """``statement`` with its parameters (those ``only`` picks) renamed to slots that ``rebuild`` fills for
        each request: ``rebuild`` gives a statement whose parameters are exactly those, in the same order.

        A list (``column IN (...)``, one placeholder per item) becomes ONE parameter, so the text does not
        change with the list's length: ``= ANY(array)`` on PostgreSQL, ``IN (SELECT value FROM json_each(?))``
        on SQLite (the items converted as the column's type stores them). With ``only``, ``probe`` is what
        ``rebuild`` gives for the statement's own values (its structure is compared per request).
        """
        parameters = [p for p in bind_parameters(statement) if only is None or only(p)]
        replacements: dict[int, BindParameter[Any]] = {}
        for parameter in parameters:
            name = f"d{next(self.counter)}"
            if parameter.expanding:
                replacements[id(parameter)] = sa.bindparam(name, type_=self._list_type(parameter.type))
                self.lists[name] = self._list_value(parameter.type)
            else:
                replacements[id(parameter)] = sa.bindparam(name, type_=parameter.type)
        source = statement if probe is None else probe
        self.groups.append(
            (tuple(replacements[id(p)].key for p in parameters), _shape(source), rebuild, self._text(source))
        )
        if not replacements:
            return statement

        def replace(element: Any) -> Any:
            if isinstance(element, BindParameter):
                return replacements.get(id(element))
            if (
                isinstance(element, BinaryExpression)
                and element.operator is operators.in_op
                and isinstance(element.right, BindParameter)
                and id(element.right) in replacements
            ):
                return self._in_list(element.left, replacements[id(element.right)])
            return None

        return visitors.replacement_traverse(statement, {}, replace)  # type: ignore[call-overload]

    def _list_type(self, item_type: Any) -> Any:
        return postgresql.ARRAY(item_type) if self.dialect.name == "postgresql" else sa.Text()

    def _list_value(self, item_type: Any) -> Callable[[Any], Any]:
        if self.dialect.name == "postgresql":
            return list
        process = item_type.bind_processor(self.dialect) or (lambda value: value)
        return lambda items: json.dumps([process(item) for item in items])

    def _in_list(self, column: Any, parameter: BindParameter[Any]) -> Any:
        if self.dialect.name == "postgresql":
            return column == sa.any_(parameter)
        # ``column IN <table>``, the table a common table expression of the list's items: at the top of the
        # statement, not one more subquery inside the (possibly deeply nested) condition, where SQLite's
        # parser (before 3.46) runs out of stack.
        items: sa.Select[Any] = sa.select(sa.literal_column("value")).select_from(sa.func.json_each(parameter))
        table = items.cte(f"{parameter.key}_items")
        self.lists_as_tables.append(table)
        return column.op("IN", is_comparison=True)(sa.literal_column(table.name))

    def with_tables(self, statement: sa.Select[Any]) -> sa.Select[Any]:
        """``statement`` with the tables its conditions name (``_in_list``)."""
        return statement.add_cte(*self.lists_as_tables) if self.lists_as_tables else statement

    def _text(self, statement: Any) -> str:
        return str(statement.compile(dialect=self.dialect))

    def _same_shape(self, index: int, rebuilt: Any) -> bool:
        """Whether ``rebuilt`` has the structure the slots were made for.

        Compared by SQLAlchemy's cache key, and when that differs, by the SQL text: running an ORM statement
        memoises ORM compile options on it and its subqueries (``_ORMSelectCompileState``), so the key of a
        statement the executor shares (``access.readable`` is cached per principal) changes once, its text
        does not. The new key is kept, so the text is compiled once per such change, not per request.
        """
        names, shape, rebuild, text = self.groups[index]
        key = _shape(rebuilt)
        if key == shape:
            return True
        if self._text(rebuilt) != text:
            return False
        self.groups[index] = (names, key, rebuild, text)
        return True

    def values(self, request: Request) -> dict[str, Any]:
        """Every slot's value for ``request``; ``Unsupported`` when the request cannot use this statement."""
        for check in self.checks:
            check(request)
        values: dict[str, Any] = {name: compute(request) for name, compute in self.own}
        for index, group in enumerate(self.groups):
            names, rebuild = group[0], group[2]
            rebuilt = rebuild(request)
            parameters = bind_parameters(rebuilt)
            if len(parameters) != len(names) or not self._same_shape(index, rebuilt):
                raise Unsupported("the access statement changed shape")
            for name, parameter in zip(names, parameters, strict=True):
                convert = self.lists.get(name)
                values[name] = parameter.effective_value if convert is None else convert(parameter.effective_value)
        return values
