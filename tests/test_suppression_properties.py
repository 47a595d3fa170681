"""Property: nothing an evaluator can ask for determines a suppressed figure.

For a random small population (counts per region x group topic x timepoint x dose band), every answer the API
allows is computed through ``OutcomeCube.table``, the function ``evaluation.aggregate`` answers with: each
dimension (region, group topic, timepoint, dose band), each timepoint filter (none, or any one timepoint). Instruments have
disjoint responses, so their tables share no figure and one instrument's cube is the whole problem.

The check is written independently of the implementation, from the reader's side. The unknowns are the
population's cube cells (what the evaluator does not see). Every figure shown in any answer (a count, or a
key left out of a slice, which reads as zero) is a known linear equation over those cells: the sum of the
cells it covers. A suppressed figure is derivable exactly when its own sum lies in the span of the known
sums; the test reduces the known sums to echelon form over the rationals and asserts that every suppressed
figure leaves a non-zero remainder. This is done separately for each count of people (responses, responses
with a baseline, reliable improvements, reliable deteriorations), since each is its own set of unknowns.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from programme_api.domain.analysis import NO_DOSE
from programme_api.domain.models import Timepoint
from programme_api.domain.outcome_tables import AggregateCell, AggregateTable, CubeKey, Dimension, OutcomeCube, Sums
from programme_api.domain.suppression import is_small

REGIONS = ["North", "South", "East"]
TOPICS = ["anxiety", "depression", "loneliness"]
BANDS = ["0-3", "4-7", "8+"]
COUNT_FIELDS = {
    "n": "n",
    "n_with_baseline": "n_with_baseline",
    "improved": "reliable_improvement",
    "deteriorated": "reliable_deterioration",
}


@st.composite
def populations(draw: st.DrawFn) -> tuple[dict[CubeKey, Sums], int]:
    """Up to 3 regions x 2 topics x 3 timepoints x 2 dose bands (and ``no_baseline``); counts drawn to
    straddle the threshold (empty cells are left out, as the database leaves them out). As in the database,
    responses in a dose band all have a baseline and those in ``no_baseline`` none; baselines are all in
    ``no_baseline``."""
    threshold = draw(st.integers(2, 10))
    regions = REGIONS[: draw(st.integers(1, 3))]
    topics = TOPICS[: draw(st.integers(1, 2))]
    timepoints = draw(st.lists(st.sampled_from(list(Timepoint)), min_size=1, max_size=3, unique=True))
    bands = draw(st.lists(st.sampled_from(BANDS), min_size=1, max_size=2, unique=True))
    count = st.one_of(st.just(0), st.integers(1, threshold - 1), st.integers(threshold, 4 * threshold))
    cells: dict[CubeKey, Sums] = {}
    for region in regions:
        for topic in topics:
            for timepoint in timepoints:
                for dose in [NO_DOSE] if timepoint is Timepoint.BASELINE else [NO_DOSE, *bands]:
                    n = draw(count)
                    if n == 0:
                        continue
                    with_baseline = 0 if dose == NO_DOSE else n
                    improved = draw(st.integers(0, with_baseline))
                    deteriorated = draw(st.integers(0, with_baseline - improved))
                    cells[(region, topic, timepoint, dose)] = Sums(
                        n, 3.0 * n, 10.0 * n, with_baseline, 1.5 * with_baseline, improved, deteriorated,
                        change_squares=4.0 * with_baseline,
                    )  # fmt: skip
    return cells, threshold


def every_answer(cube: OutcomeCube) -> list[tuple[Dimension, Timepoint | None, AggregateTable]]:
    return [
        (dimension, timepoint, cube.table("swemwbs", dimension, timepoint))
        for dimension in Dimension
        for timepoint in [None, *Timepoint]
    ]


def covered(
    dimension: Dimension | None, key: str | None, timepoint: Timepoint | None, space: list[CubeKey]
) -> frozenset[CubeKey]:
    """The cube cells a figure adds up: a cell of ``dimension`` named ``key`` (None: all) at ``timepoint``."""
    position = {Dimension.REGION: 0, Dimension.GROUP_TOPIC: 1, Dimension.DOSE_BAND: 3}
    found = set()
    for cell in space:
        if timepoint is not None and cell[2] is not timepoint:
            continue
        if dimension is Dimension.TIMEPOINT and cell[2] is not Timepoint(key):
            continue
        if dimension in position and cell[position[dimension]] != key:
            continue
        found.add(cell)
    return frozenset(found)


def published(
    answers: list[tuple[Dimension, Timepoint | None, AggregateTable]],
) -> tuple[list[CubeKey], list[tuple[frozenset[CubeKey], AggregateCell | None]]]:
    """Every figure the evaluator saw: (cells it covers, the cell as answered; None for a key left out)."""
    keys: dict[Dimension, set[str]] = {dimension: set() for dimension in Dimension}
    for dimension, _, table in answers:
        keys[dimension] |= {cell.key for cell in table.cells}
    space = [
        (region, topic, Timepoint(timepoint), dose)
        for region in sorted(keys[Dimension.REGION])
        for topic in sorted(keys[Dimension.GROUP_TOPIC])
        for timepoint in sorted(keys[Dimension.TIMEPOINT])
        for dose in sorted(keys[Dimension.DOSE_BAND]) or [NO_DOSE]  # answers with no dose table: one band
    ]
    figures: list[tuple[frozenset[CubeKey], AggregateCell | None]] = []
    for dimension, timepoint, table in answers:
        listed = {cell.key: cell for cell in table.cells}
        wanted = [str(timepoint)] if dimension is Dimension.TIMEPOINT and timepoint else keys[dimension]
        for key in sorted(wanted):
            figures.append((covered(dimension, key, timepoint, space), listed.get(key)))
        figures.append((covered(None, None, timepoint, space), table.total))
    return space, figures


class Span:
    """The rational span of known sums, in reduced echelon form (pivot column -> row)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.rows: dict[int, list[Fraction]] = {}

    def reduce(self, vector: list[Fraction]) -> list[Fraction]:
        vector = list(vector)
        for pivot, row in self.rows.items():
            if vector[pivot] != 0:
                factor = vector[pivot]
                vector = [a - factor * b for a, b in zip(vector, row, strict=True)]
        return vector

    def add(self, vector: list[Fraction]) -> None:
        rest = self.reduce(vector)
        pivot = next((i for i, value in enumerate(rest) if value != 0), None)
        if pivot is None:
            return
        rest = [value / rest[pivot] for value in rest]
        for other, row in self.rows.items():
            if row[pivot] != 0:
                self.rows[other] = [a - row[pivot] * b for a, b in zip(row, rest, strict=True)]
        self.rows[pivot] = rest

    def contains(self, vector: list[Fraction]) -> bool:
        return not any(self.reduce(vector))


def indicator(cells: Iterable[CubeKey], space: list[CubeKey]) -> list[Fraction]:
    chosen = set(cells)
    return [Fraction(1 if cell in chosen else 0) for cell in space]


def derivable_figures(answers: list[tuple[Dimension, Timepoint | None, AggregateTable]]) -> list[str]:
    """Every suppressed figure (of any count) that the shown figures determine, described for the failure."""
    space, figures = published(answers)
    leaks = []
    for count, field in COUNT_FIELDS.items():
        known = Span(len(space))
        for cells, cell in figures:
            if cell is None or getattr(cell, field) is not None:
                known.add(indicator(cells, space))
        for cells, cell in figures:  # a figure over no cells is zero for every population: it reveals nothing
            if cell is not None and getattr(cell, field) is None and cells and known.contains(indicator(cells, space)):
                leaks.append(f"{count} of {cell.key} over {sorted(cells)}")
    return leaks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(populations())
def test_no_suppressed_figure_is_determined_by_all_answers_together(
    population: tuple[dict[CubeKey, Sums], int],
) -> None:
    cells, threshold = population
    answers = every_answer(OutcomeCube(cells, threshold))
    assert derivable_figures(answers) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(populations())
def test_shown_counts_and_their_complements_are_never_small(population: tuple[dict[CubeKey, Sums], int]) -> None:
    """Every shown count of people is 0 or at least the threshold, and so is every complement a reader can
    form inside a cell; means and SDs go with n, the mean change with the count with a baseline."""
    cells, threshold = population
    for _, _, table in every_answer(OutcomeCube(cells, threshold)):
        for cell in [*table.cells, table.total]:
            shown = [value for value in (cell.n, cell.n_with_baseline) if value is not None]
            if cell.n is not None and cell.n_with_baseline is not None:
                shown.append(cell.n - cell.n_with_baseline)
            for inside in (cell.reliable_improvement, cell.reliable_deterioration):
                if inside is not None:
                    shown.append(inside)
                    if cell.n_with_baseline is not None:
                        shown.append(cell.n_with_baseline - inside)
            assert not any(is_small(value, threshold) for value in shown), cell
            if cell.n is None:
                assert cell.suppressed
                assert (cell.mean, cell.sd, cell.n_with_baseline) == (None, None, None)
            if cell.n_with_baseline is None:
                assert (cell.mean_change, cell.reliable_improvement, cell.reliable_deterioration) == (None, None, None)
                assert (cell.mean_change_ci, cell.effect_size_dz, cell.effect_size_dav) == (None, None, None)
            if cell.reliable_improvement is None:
                assert cell.share_reliably_improved is None


def test_the_check_finds_a_leak_when_there_is_one() -> None:
    """The checker itself: the reported pattern (region total and all but one timepoint shown) is a leak."""
    north = [
        AggregateCell(str(t), False, n, None, None, None, None, None, None)
        for t, n in ((Timepoint.BASELINE, 60), (Timepoint.FOLLOW_UP_1, 43))
    ]
    hidden = AggregateCell("exit", True, None, None, None, None, None, None, None)
    total = AggregateCell("total", False, 108, None, None, None, None, None, None)

    def table(dimension: Dimension, cells: list[AggregateCell], n: int | None) -> AggregateTable:
        return AggregateTable("swemwbs", dimension, 10, cells, AggregateCell("total", n is None, n, *[None] * 6))

    answers = [
        (Dimension.TIMEPOINT, None, table(Dimension.TIMEPOINT, [*north, hidden], 108)),
        (Dimension.REGION, None, table(Dimension.REGION, [dataclass_copy(total, "North")], 108)),
        (Dimension.GROUP_TOPIC, None, table(Dimension.GROUP_TOPIC, [dataclass_copy(total, "anxiety")], 108)),
    ]
    assert any(leak.startswith("n of exit") for leak in derivable_figures(answers))


def dataclass_copy(cell: AggregateCell, key: str) -> AggregateCell:
    import dataclasses

    return dataclasses.replace(cell, key=key)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(populations(), st.randoms(use_true_random=False))
def test_the_decision_depends_on_the_figures_only(population: tuple[dict[CubeKey, Sums], int], rng: Any) -> None:
    """The same population in any order (as the database may return it) gives the same answers, so answers
    asked for at different times are drawn from one decision."""
    cells, threshold = population
    shuffled = list(cells.items())
    rng.shuffle(shuffled)
    assert every_answer(OutcomeCube(dict(shuffled), threshold)) == every_answer(OutcomeCube(cells, threshold))
