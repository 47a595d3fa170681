"""Small-number suppression for published tables: primary cells below the threshold, then secondary cells.

Primary suppression hides every cell whose n is below the threshold (but above zero: an empty cell reveals
nothing about anyone). A table is published with its total, so a single hidden cell could be recovered as
``total - sum(shown cells)``; secondary suppression therefore hides the next-smallest cell of the same
margin whenever exactly one cell is hidden. If the total itself is below the threshold, everything is hidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Suppression:
    """Which cells (by key) to hide, and whether the total is hidden too."""

    primary: frozenset[str]
    secondary: frozenset[str]
    total_suppressed: bool

    def hides(self, key: str) -> bool:
        return self.total_suppressed or key in self.primary or key in self.secondary


def suppress(counts: Mapping[str, int], threshold: int) -> Suppression:
    """Decide suppression for one margin (cells that add up to one published total)."""
    total = sum(counts.values())
    if total < threshold:
        return Suppression(frozenset(k for k, n in counts.items() if n > 0), frozenset(), True)
    primary = frozenset(key for key, n in counts.items() if 0 < n < threshold)
    secondary: frozenset[str] = frozenset()
    if len(primary) == 1:
        shown = sorted((n, key) for key, n in counts.items() if key not in primary and n > 0)
        if shown:
            secondary = frozenset({shown[0][1]})
    return Suppression(primary, secondary, False)
