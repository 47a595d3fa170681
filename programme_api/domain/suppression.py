"""Small-number suppression that cannot be undone by differencing published tables.

Published tables are linked: a table's cells add up to its total, and the same figures reappear in other
tables as margins (a region's count over all timepoints is also the sum of that region's cells in the tables
filtered by timepoint). Hiding the small cells of one table (primary suppression) is therefore not enough: a
hidden cell is recovered as a published total minus the published cells beside it. This module decides which
figures to hide on the whole family of figures at once, as a set of ``Line``s (``whole = sum(parts)``):

1. Primary: every figure the caller marks as disclosive (cells below the threshold, for instance).
2. Complementary: while some line holds exactly one hidden figure, hide one more figure of that line
   (the smallest non-zero one, so as little as possible is lost; ties broken by key, so the decision is the
   same on every run).
3. Verification: solve the published lines exactly (rational Gaussian elimination). A hidden figure is safe
   when it is not determined by the shown figures: some change of the hidden figures keeps every line true
   and changes it. While one is determined, hide another figure of one of its lines and check again.

The decision depends only on the figures, never on which table is asked for, so every answer drawn from it
is consistent with every other answer.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Line(Generic[K]):
    """One additive relation between published figures: ``whole`` is the sum of ``parts``."""

    whole: K
    parts: tuple[K, ...]

    @property
    def members(self) -> tuple[K, ...]:
        return (self.whole, *self.parts)


def is_small(count: int, threshold: int) -> bool:
    """A count of people that identifies too few of them: between one and ``threshold - 1``.

    Zero is not small: an empty cell says nothing about anyone.
    """
    return 0 < count < threshold


def protect(
    values: Mapping[K, int], lines: Sequence[Line[K]], primary: Iterable[K], order: Sequence[K]
) -> frozenset[K]:
    """The figures to hide: ``primary`` plus complements, such that no hidden figure can be derived.

    ``order`` lists every figure once; it fixes the tie-breaks, so the same inputs always give the same
    answer. If no complement can be found (it cannot happen for tables with margins, but the rule must be
    safe regardless), every figure is hidden.
    """
    rank = {key: position for position, key in enumerate(order)}
    hidden = set(primary)
    while True:
        line = next((line for line in lines if _hidden_count(line, hidden) == 1), None)
        if line is not None:
            complement = _complement([line], hidden, values, rank)
        else:
            exposed = determined(hidden, lines, rank)
            if not exposed:
                return frozenset(hidden)
            first = min(exposed, key=rank.__getitem__)
            complement = _complement([line for line in lines if first in line.members], hidden, values, rank)
        if complement is None:
            return frozenset(order)
        hidden.add(complement)


def _hidden_count(line: Line[K], hidden: set[K]) -> int:
    return sum(1 for member in line.members if member in hidden)


def _complement(
    candidates: Sequence[Line[K]], hidden: set[K], values: Mapping[K, int], rank: Mapping[K, int]
) -> K | None:
    """The cheapest shown figure of these lines: non-zero before zero (hiding a zero protects nothing when
    the reader may assume it), then the smallest, then the first in order."""
    shown = {member for line in candidates for member in line.members if member not in hidden}
    if not shown:
        return None
    return min(shown, key=lambda key: (values[key] == 0, values[key], rank[key]))


def determined(hidden: Iterable[K], lines: Sequence[Line[K]], rank: Mapping[K, int]) -> set[K]:
    """The hidden figures whose value follows from the shown ones through the lines.

    The lines restricted to the hidden figures form a linear system (shown figures are constants). Reduced
    to row echelon form, a hidden figure is determined exactly when its column has a pivot and that pivot's
    row involves no free column: otherwise a free figure can move and this one moves with it.
    """
    columns = sorted(set(hidden), key=rank.__getitem__)
    index = {key: position for position, key in enumerate(columns)}
    rows: list[list[Fraction]] = []
    for line in lines:
        row = [Fraction(0)] * len(columns)
        if line.whole in index:
            row[index[line.whole]] += 1
        for part in line.parts:
            if part in index:
                row[index[part]] -= 1
        if any(row):
            rows.append(row)
    pivots = _reduce(rows, len(columns))
    pivot_columns = {column for _, column in pivots}
    found = set()
    for row_number, column in pivots:
        row = rows[row_number]
        if all(row[other] == 0 for other in range(len(columns)) if other not in pivot_columns):
            found.add(columns[column])
    return found


def _reduce(rows: list[list[Fraction]], width: int) -> list[tuple[int, int]]:
    """Gauss-Jordan elimination in place; returns (row, column) of each pivot."""
    pivots: list[tuple[int, int]] = []
    top = 0
    for column in range(width):
        pivot = next((r for r in range(top, len(rows)) if rows[r][column] != 0), None)
        if pivot is None:
            continue
        rows[top], rows[pivot] = rows[pivot], rows[top]
        lead = rows[top][column]
        rows[top] = [value / lead for value in rows[top]]
        for other in range(len(rows)):
            factor = rows[other][column]
            if other != top and factor != 0:
                rows[other] = [a - factor * b for a, b in zip(rows[other], rows[top], strict=True)]
        pivots.append((top, column))
        top += 1
        if top == len(rows):
            break
    return pivots
