"""Outcome tables for evaluators, all drawn from one suppression decision over the whole family of tables.

An evaluator may ask for an instrument's outcomes by region, by group topic, by band of sessions attended
(dose) or by timepoint, each for all timepoints or for one. Every answer is a slice of one cube (region x group
topic x timepoint x dose band) of sums; the figures any answer can show are:

- ``(REGION, r, t)`` / ``(GROUP_TOPIC, g, t)`` / ``(DOSE_BAND, d, t)``: a region's, topic's or dose band's
  figure at one timepoint,
- ``(REGION, r, None)`` / ``(GROUP_TOPIC, g, None)`` / ``(DOSE_BAND, d, None)``: the same over all timepoints,
- ``(None, None, t)``: everyone at one timepoint, and ``(None, None, None)``: everyone.

They are tied by lines (a region's timepoints add up to the region; a timepoint's regions add up to the
timepoint, and so do its dose bands; ...). Responses without a change from baseline (baselines themselves,
follow-ups of people with no baseline) have the dose key ``no_baseline``, so the dose bands of a timepoint
add up to it like its regions do. ``OutcomeCube`` decides once, on that whole family, which figures are hidden
(``suppression.protect``), separately for each count of people: responses (``n``), responses with a
baseline, reliable improvements and reliable deteriorations. Each answer is then read from that decision, so
no two answers, and no answer and its total, can be differenced into a hidden figure.

Rules (also in the export codebook, ``SUPPRESSION_RULES``):
- ``n`` is hidden when it is between 1 and threshold - 1; with it go the mean and the SD, and every other
  statistic of the cell (the cell is ``suppressed``).
- Counts of people inside a cell are hidden when they, or their complement, are between 1 and threshold - 1:
  responses with a baseline (complement: without one, ``n - nWithBaseline``), reliable improvement
  (complement: with a baseline but not improved) and reliable deterioration (complement: with a baseline but
  not deteriorated); improvement is also hidden when the people with neither reliable change are between 1 and
  threshold - 1. A count hidden in a cell is hidden with everything computed from its people: the mean change
  goes with the count with a baseline; a count is always hidden where the count it is part of is hidden.
- Complementary figures are then hidden as ``suppression.protect`` describes, on the whole family.
- When everyone together is fewer than the threshold, everything is hidden.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from .analysis import Interval, cohens_dav, cohens_dz, mean_interval, sample_sd
from .models import Timepoint
from .suppression import Line, is_small, protect


class Dimension(enum.StrEnum):
    REGION = "region"
    GROUP_TOPIC = "group_topic"
    TIMEPOINT = "timepoint"
    DOSE_BAND = "dose_band"


class Statistic(enum.StrEnum):
    """The statistics of a cell; a suppressed cell lists the ones withheld."""

    N = "n"
    MEAN = "mean"
    SD = "sd"
    N_WITH_BASELINE = "n_with_baseline"
    MEAN_CHANGE = "mean_change"
    RELIABLE_IMPROVEMENT = "reliable_improvement"
    RELIABLE_DETERIORATION = "reliable_deterioration"
    MEAN_CHANGE_CI = "mean_change_ci"
    SHARE_RELIABLY_IMPROVED = "share_reliably_improved"
    EFFECT_SIZE_DZ = "effect_size_dz"
    EFFECT_SIZE_DAV = "effect_size_dav"


SUPPRESSION_RULES = [
    "Every figure of every table (cells, totals, and each region's, topic's and timepoint's figure over the "
    "others) is decided once, on the whole family of tables the project can ask for, so no two answers can "
    "be differenced into a hidden figure.",
    "A count of responses (n) between 1 and threshold - 1 is hidden, with the cell's mean, SD and every "
    "other statistic; an empty cell (0) is shown.",
    "Counts of people inside a shown cell are hidden when they or their complement are between 1 and "
    "threshold - 1: nWithBaseline (complement n - nWithBaseline), reliableImprovement (complement "
    "nWithBaseline - reliableImprovement; also hidden when nWithBaseline - reliableImprovement - "
    "reliableDeterioration is small), reliableDeterioration (complement nWithBaseline - "
    "reliableDeterioration). meanChange, its confidence interval and the effect sizes are hidden with "
    "nWithBaseline; shareReliablyImproved with reliableImprovement.",
    "Complementary suppression: while a hidden figure could be derived from the shown ones (a total minus "
    "the other cells of its row or column, or any other combination of totals), the smallest non-zero "
    "figure beside it is hidden too; every figure is part of at least two lines (its table's total and its "
    "own total over the other dimension), and each line holds either no hidden figure or at least two.",
    "If all responses of an instrument together are fewer than the threshold, everything is hidden.",
    "Dose bands are one more dimension of the same family: a timepoint's dose bands (with no_baseline for "
    "responses without a change from baseline) add up to the timepoint, so they are decided together with "
    "the regions, topics and timepoints.",
]

Figure = tuple[Dimension | None, str | None, Timepoint | None]
"""(dimension, key, timepoint): ``None`` for the key or the timepoint means all of them."""

COUNTS = ("n", "n_with_baseline", "improved", "deteriorated")


@dataclass(frozen=True)
class Sums:
    """Additive sums of one cube cell or figure: counts of responses and of people, and score sums."""

    n: int = 0
    score_sum: float = 0.0
    score_squares: float = 0.0
    n_with_baseline: int = 0
    change_sum: float = 0.0
    improved: int = 0
    deteriorated: int = 0
    change_squares: float = 0.0
    baseline_sum: float = 0.0
    baseline_squares: float = 0.0
    paired_score_sum: float = 0.0
    paired_score_squares: float = 0.0

    def __add__(self, other: Sums) -> Sums:
        return Sums(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True)
class AggregateCell:
    """One cell of an outcome table; a statistic is None when withheld (listed in ``suppressed_statistics``)."""

    key: str
    suppressed: bool
    n: int | None
    mean: float | None
    sd: float | None
    n_with_baseline: int | None
    mean_change: float | None
    reliable_improvement: int | None
    reliable_deterioration: int | None
    suppressed_statistics: tuple[Statistic, ...] = ()
    mean_change_ci: Interval | None = None
    share_reliably_improved: float | None = None
    effect_size_dz: Interval | None = None
    effect_size_dav: Interval | None = None


@dataclass(frozen=True)
class AggregateTable:
    instrument_code: str
    dimension: Dimension
    threshold: int
    cells: list[AggregateCell]
    total: AggregateCell


CubeKey = tuple[str, str, Timepoint, str]
"""(region, group topic, timepoint, dose band) of one cube cell."""

# Which person counts must be small (or have a small complement) for a count to be hidden in its own right.
_DISCLOSIVE: dict[str, Callable[[Sums], tuple[int, ...]]] = {
    "n": lambda s: (s.n,),
    "n_with_baseline": lambda s: (s.n_with_baseline, s.n - s.n_with_baseline),
    "improved": lambda s: (
        s.improved,
        s.n_with_baseline - s.improved,
        s.n_with_baseline - s.improved - s.deteriorated,
    ),
    "deteriorated": lambda s: (s.deteriorated, s.n_with_baseline - s.deteriorated),
}
# The count whose people each statistic describes: a statistic is withheld wherever that count is hidden.
_COUNT_OF = {
    Statistic.N: "n",
    Statistic.MEAN: "n",
    Statistic.SD: "n",
    Statistic.N_WITH_BASELINE: "n_with_baseline",
    Statistic.MEAN_CHANGE: "n_with_baseline",
    Statistic.RELIABLE_IMPROVEMENT: "improved",
    Statistic.RELIABLE_DETERIORATION: "deteriorated",
    Statistic.MEAN_CHANGE_CI: "n_with_baseline",
    Statistic.SHARE_RELIABLY_IMPROVED: "improved",
    Statistic.EFFECT_SIZE_DZ: "n_with_baseline",
    Statistic.EFFECT_SIZE_DAV: "n_with_baseline",
}
DIMENSIONS = (Dimension.REGION, Dimension.GROUP_TOPIC, Dimension.DOSE_BAND)
"""The dimensions whose keys split a timepoint (the timepoint dimension is the timepoints themselves)."""
# A count is hidden wherever the count it is part of is hidden.
_PART_OF = {"n_with_baseline": "n", "improved": "n_with_baseline", "deteriorated": "n_with_baseline"}


class OutcomeCube:
    """One instrument's cube for one project, with its suppression decided once for every possible table."""

    def __init__(self, cells: Mapping[CubeKey, Sums], threshold: int, dose_order: tuple[str, ...] = ()) -> None:
        """``dose_order`` lists the project's dose band labels in order; bands not in it come after, sorted."""
        self.threshold = threshold
        self.regions = sorted({key[0] for key in cells})
        self.topics = sorted({key[1] for key in cells})
        self.timepoints = [t for t in Timepoint if any(key[2] is t for key in cells)]
        present = {key[3] for key in cells}
        self.doses = [d for d in dose_order if d in present] + sorted(present - set(dose_order))
        self.figures = self._figures(cells)
        self.order = list(self.figures)
        self.lines = self._lines()
        self.hidden = self._decide()

    def _keys(self, dimension: Dimension) -> list[str]:
        if dimension is Dimension.REGION:
            return self.regions
        return self.topics if dimension is Dimension.GROUP_TOPIC else self.doses

    def _figures(self, cells: Mapping[CubeKey, Sums]) -> dict[Figure, Sums]:
        figures: dict[Figure, Sums] = {}
        for dimension in DIMENSIONS:
            for key in self._keys(dimension):
                for timepoint in [*self.timepoints, None]:
                    figures[(dimension, key, timepoint)] = Sums()
        for timepoint in [*self.timepoints, None]:
            figures[(None, None, timepoint)] = Sums()
        for (region, topic, timepoint, dose), sums in cells.items():
            for figure in (
                (Dimension.REGION, region, timepoint),
                (Dimension.REGION, region, None),
                (Dimension.GROUP_TOPIC, topic, timepoint),
                (Dimension.GROUP_TOPIC, topic, None),
                (Dimension.DOSE_BAND, dose, timepoint),
                (Dimension.DOSE_BAND, dose, None),
                (None, None, timepoint),
                (None, None, None),
            ):
                figures[figure] = figures[figure] + sums
        return figures

    def _lines(self) -> list[Line[Figure]]:
        lines: list[Line[Figure]] = []
        for dimension in DIMENSIONS:
            keys = self._keys(dimension)
            for key in keys:
                lines.append(Line((dimension, key, None), tuple((dimension, key, t) for t in self.timepoints)))
            for timepoint in [*self.timepoints, None]:
                lines.append(Line((None, None, timepoint), tuple((dimension, key, timepoint) for key in keys)))
        lines.append(Line((None, None, None), tuple((None, None, t) for t in self.timepoints)))
        return lines

    def _decide(self) -> dict[str, frozenset[Figure]]:
        """Hidden figures per count; each count's primary set includes what the count it is part of hides."""
        hidden: dict[str, frozenset[Figure]] = {}
        everyone = self.figures[(None, None, None)]
        for count in COUNTS:
            values = {figure: getattr(sums, count) for figure, sums in self.figures.items()}
            if everyone.n < self.threshold:
                hidden[count] = frozenset(self.order)
                continue
            primary = {
                figure
                for figure, sums in self.figures.items()
                if any(is_small(value, self.threshold) for value in _DISCLOSIVE[count](sums))
            }
            if count in _PART_OF:
                primary |= hidden[_PART_OF[count]]
            hidden[count] = protect(values, self.lines, primary, self.order)
        return hidden

    def table(self, instrument_code: str, dimension: Dimension, timepoint: Timepoint | None) -> AggregateTable:
        """One answer: the cells of ``dimension`` (at ``timepoint``, or over all) and their total."""
        if dimension is Dimension.TIMEPOINT:
            timepoints = self.timepoints if timepoint is None else [t for t in self.timepoints if t is timepoint]
            keyed: list[tuple[str, Figure]] = [(str(t), (None, None, t)) for t in timepoints]
        else:
            keyed = [(key, (dimension, key, timepoint)) for key in self._keys(dimension)]
        cells = [
            self.cell(key, figure)
            for key, figure in keyed
            if figure in self.figures and (self.figures[figure].n > 0 or figure in self.hidden["n"])
        ]
        total_figure: Figure = (None, None, timepoint)
        total = self.cell("total", total_figure) if total_figure in self.figures else _empty_total()
        return AggregateTable(instrument_code, dimension, self.threshold, cells, total)

    def cell(self, key: str, figure: Figure) -> AggregateCell:
        """A figure as a cell: each statistic shown only where the count of its people is shown."""
        sums = self.figures[figure]
        shown = {count: figure not in self.hidden[count] for count in COUNTS}
        n, with_baseline = sums.n, sums.n_with_baseline
        mean = sums.score_sum / n if n else None
        sd = math.sqrt(max(sums.score_squares - sums.score_sum**2 / n, 0.0) / (n - 1)) if n > 1 else None
        mean_change = sums.change_sum / with_baseline if with_baseline else None
        paired = _paired(sums) if shown["n_with_baseline"] else _Paired()
        share = sums.improved / with_baseline if with_baseline and shown["improved"] else None
        withheld = [statistic for statistic in Statistic if not shown[_COUNT_OF[statistic]]]
        return AggregateCell(
            key=key,
            suppressed=not shown["n"],
            n=n if shown["n"] else None,
            mean=_rounded(mean) if shown["n"] else None,
            sd=_rounded(sd) if shown["n"] else None,
            n_with_baseline=with_baseline if shown["n_with_baseline"] else None,
            mean_change=_rounded(mean_change) if shown["n_with_baseline"] else None,
            reliable_improvement=sums.improved if shown["improved"] else None,
            reliable_deterioration=sums.deteriorated if shown["deteriorated"] else None,
            suppressed_statistics=tuple(withheld),
            mean_change_ci=paired.mean_change_ci,
            share_reliably_improved=_rounded(share),
            effect_size_dz=paired.dz,
            effect_size_dav=paired.dav,
        )


@dataclass(frozen=True)
class _Paired:
    mean_change_ci: Interval | None = None
    dz: Interval | None = None
    dav: Interval | None = None


def _paired(sums: Sums) -> _Paired:
    """Interval and effect sizes of the responses with a baseline, from the cell's additive sums."""
    n = sums.n_with_baseline
    if n < 2:
        return _Paired()
    mean_change = sums.change_sum / n
    sd_change = sample_sd(n, sums.change_sum, sums.change_squares)
    sd_baseline = sample_sd(n, sums.baseline_sum, sums.baseline_squares)
    sd_follow_up = sample_sd(n, sums.paired_score_sum, sums.paired_score_squares)
    return _Paired(
        _rounded_interval(mean_interval(n, mean_change, sd_change)),
        _rounded_interval(cohens_dz(n, mean_change, sd_change)),
        _rounded_interval(cohens_dav(n, mean_change, sd_change, sd_baseline, sd_follow_up)),
    )


@functools.lru_cache(maxsize=64)
def decided_cube(
    threshold: int, cells: tuple[tuple[CubeKey, Sums], ...], dose_order: tuple[str, ...] = ()
) -> OutcomeCube:
    """The cube of these sums, its suppression decided once: a report asks for many tables of the same data,
    and the decision is a pure function of the sums (cubes are never changed after they are built)."""
    return OutcomeCube(dict(cells), threshold, dose_order)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _rounded_interval(interval: Interval | None) -> Interval | None:
    if interval is None:
        return None
    return Interval(round(interval.estimate, 4), round(interval.lower, 4), round(interval.upper, 4))


def _empty_total() -> AggregateCell:
    """The total of a timepoint nobody answered at: nothing to hide."""
    return AggregateCell("total", False, 0, None, None, 0, None, 0, 0)
