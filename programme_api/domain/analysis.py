"""Derived outcome figures: change per response, confidence intervals, effect sizes and dose bands.

Pure functions of scores and sums, so every figure an evaluator sees (a row's classification, a table cell's
interval, the report) comes from one implementation and can be checked against worked values.

- Change is ``score - baseline score`` (the participant's first baseline on the same instrument). A change
  is reliable when it reaches the instrument's ``reliable_change`` in the improving direction (improvement) or
  the other (deterioration); otherwise there is no reliable change. Scores carry at most four decimals, so
  comparisons allow ``TOLERANCE`` for the binary representation of such decimals (29.31 - 26.31 is not exactly
  3.0 in floating point).
- Recovery (PHQ-9 and GAD-7, ``instruments.CASENESS``): NHS Talking Therapies counts a person as recovered
  when they were a case at baseline (score at or above the cut-off) and are not at the later measurement.
  Below the cut-off at baseline, recovery does not apply (``NOT_AT_CASENESS``).
- The mean change has a t interval: ``mean +/- t(0.975, n-1) * sd / sqrt(n)``.
- Cohen's d_z is ``mean change / sd of the changes`` (Lakens 2013, eq. 6); its interval inverts the
  noncentral t distribution of the paired t statistic ``t = d_z * sqrt(n)`` (Cumming & Finch 2001): the
  noncentrality parameters for which the observed t sits at the 97.5th and 2.5th percentiles, divided by
  ``sqrt(n)``.
- Cohen's d_av is ``mean change / ((sd at baseline + sd at follow-up) / 2)`` over the same pairs (Cumming 2012;
  Lakens 2013, eq. 10). Its interval is d_z's scaled by ``sd of changes / average sd`` (the approach of
  Algina & Keselman 2003, treating the ratio of standardisers as fixed): an approximation, stated as such in
  the codebook.
"""

from __future__ import annotations

import enum
import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy import optimize, stats

from .errors import DomainError, ErrorCode
from .instruments import CASENESS, reliable_change_source

TOLERANCE = 1e-6
CONFIDENCE = 0.95
DEFAULT_DOSE_BANDS: tuple[int, ...] = (0, 4, 8)
"""Lower bounds of the default bands of sessions attended: 0-3, 4-7, 8 or more."""
NO_DOSE = "no_baseline"
"""The dose key of responses without a change from baseline (baselines, follow-ups with no baseline)."""
MAX_DOSE_BANDS = 10


class ChangeClass(enum.StrEnum):
    RELIABLE_IMPROVEMENT = "reliable_improvement"
    NO_RELIABLE_CHANGE = "no_reliable_change"
    RELIABLE_DETERIORATION = "reliable_deterioration"


class Recovery(enum.StrEnum):
    RECOVERED = "recovered"
    NOT_RECOVERED = "not_recovered"
    NOT_AT_CASENESS = "not_at_caseness"


@dataclass(frozen=True)
class ResponseChange:
    """A follow-up or exit response measured against the same person's baseline."""

    baseline_score: float
    change: float
    reliable_change_threshold: float
    reliable_change_source: str
    classification: ChangeClass
    recovery: Recovery | None


def response_change(
    code: str, definition: dict[str, Any], score: float | None, baseline_score: float | None
) -> ResponseChange | None:
    """The change of one response from its baseline; None without both scores (a baseline itself, say)."""
    if score is None or baseline_score is None:
        return None
    change = round(score - baseline_score, 4)
    threshold = float(definition["reliable_change"])
    signed = change if definition["higher_is_better"] else -change
    if signed >= threshold - TOLERANCE:
        classification = ChangeClass.RELIABLE_IMPROVEMENT
    elif signed <= -threshold + TOLERANCE:
        classification = ChangeClass.RELIABLE_DETERIORATION
    else:
        classification = ChangeClass.NO_RELIABLE_CHANGE
    return ResponseChange(
        baseline_score=baseline_score,
        change=change,
        reliable_change_threshold=threshold,
        reliable_change_source=reliable_change_source(code),
        classification=classification,
        recovery=recovery(code, score, baseline_score),
    )


def recovery(code: str, score: float, baseline_score: float) -> Recovery | None:
    """NHS Talking Therapies recovery for instruments with a caseness cut-off; None for the others."""
    cut_off = CASENESS.get(code)
    if cut_off is None:
        return None
    if baseline_score < cut_off:
        return Recovery.NOT_AT_CASENESS
    return Recovery.RECOVERED if score < cut_off else Recovery.NOT_RECOVERED


# Dose bands


def dose_bands(configured: Sequence[int] | None) -> tuple[int, ...]:
    """A project's band lower bounds (validated), or the default 0-3, 4-7, 8+."""
    if configured is None:
        return DEFAULT_DOSE_BANDS
    bounds = tuple(configured)
    validate_dose_bands(bounds)
    return bounds


def validate_dose_bands(bounds: Sequence[object], field: str = "doseBands") -> None:
    """Lower bounds of sessions attended: whole numbers, first 0, strictly increasing, at most ten bands."""
    whole = all(isinstance(bound, int) and not isinstance(bound, bool) for bound in bounds)
    if not bounds or not whole:
        raise DomainError(ErrorCode.INVALID, "must be a non-empty list of whole numbers of sessions", field)
    numbers = [int(str(bound)) for bound in bounds]
    if numbers[0] != 0:
        raise DomainError(ErrorCode.INVALID, "the first band must start at 0 sessions", field)
    if any(later <= earlier for earlier, later in itertools.pairwise(numbers)):
        raise DomainError(ErrorCode.INVALID, "band starts must increase", field)
    if len(numbers) > MAX_DOSE_BANDS:
        raise DomainError(ErrorCode.INVALID, f"at most {MAX_DOSE_BANDS} bands", field)


def band_labels(bounds: Sequence[int]) -> list[str]:
    """``0-3``, ``4-7``, ``8+`` for bounds (0, 4, 8); a band of one number is that number."""
    labels = []
    for position, low in enumerate(bounds):
        if position + 1 == len(bounds):
            labels.append(f"{low}+")
        else:
            high = bounds[position + 1] - 1
            labels.append(str(low) if high == low else f"{low}-{high}")
    return labels


def dose_band(bounds: Sequence[int], sessions: int | None, has_change: bool) -> str:
    """The band label of a response: by sessions attended for a response with a change, else ``NO_DOSE``."""
    if not has_change or sessions is None:
        return NO_DOSE
    labels = band_labels(bounds)
    position = max(index for index, low in enumerate(bounds) if sessions >= low)
    return labels[position]


# Intervals and effect sizes


@dataclass(frozen=True)
class Interval:
    estimate: float
    lower: float
    upper: float


def sample_sd(n: int, total: float, squares: float) -> float | None:
    """Sample standard deviation from a count, a sum and a sum of squares; None below two values."""
    if n < 2:
        return None
    return math.sqrt(max(squares - total * total / n, 0.0) / (n - 1))


def mean_interval(n: int, mean: float, sd: float | None, confidence: float = CONFIDENCE) -> Interval | None:
    """The t interval of a mean; None below two values."""
    if n < 2 or sd is None:
        return None
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half)


def cohens_dz(n: int, mean_change: float, sd_change: float | None, confidence: float = CONFIDENCE) -> Interval | None:
    """Cohen's d_z with its noncentral-t interval; None below two pairs or when every change is the same."""
    if n < 2 or sd_change is None or sd_change <= 0:
        return None
    root = math.sqrt(n)
    t_observed = mean_change / sd_change * root
    lower, upper = _noncentrality_bounds(t_observed, n - 1, confidence)
    return Interval(mean_change / sd_change, lower / root, upper / root)


def cohens_dav(
    n: int,
    mean_change: float,
    sd_change: float | None,
    sd_baseline: float | None,
    sd_follow_up: float | None,
    confidence: float = CONFIDENCE,
) -> Interval | None:
    """Cohen's d_av with d_z's interval rescaled to the average standard deviation (approximate)."""
    dz = cohens_dz(n, mean_change, sd_change, confidence)
    if dz is None or sd_change is None or sd_baseline is None or sd_follow_up is None:
        return None
    average = (sd_baseline + sd_follow_up) / 2
    if average <= 0:
        return None
    ratio = sd_change / average
    return Interval(mean_change / average, dz.lower * ratio, dz.upper * ratio)


@functools.lru_cache(maxsize=4096)
def _noncentrality_bounds(t_observed: float, df: int, confidence: float) -> tuple[float, float]:
    """The noncentrality parameters putting ``t_observed`` at the upper and lower tail quantiles (remembered:
    a report asks for the same cells in several tables, and each costs two root searches).

    The cdf falls as the noncentrality rises; the bracket is widened until it holds the root (with one degree
    of freedom the lower bound can lie far from t). Far in the tail scipy's cdf can return NaN where its
    survival function is still exact, so the cdf is read as ``1 - sf`` there.
    """
    tail = (1 - confidence) / 2

    def cdf(ncp: float) -> float:
        value = float(stats.nct.cdf(t_observed, df, ncp))
        if math.isnan(value):
            value = 1.0 - float(stats.nct.sf(t_observed, df, ncp))
        if math.isnan(value):
            value = 0.0 if ncp > t_observed else 1.0
        return value

    def at(quantile: float) -> float:
        def gap(ncp: float) -> float:
            return cdf(ncp) - quantile

        step = 1.0 + abs(t_observed)
        low, high = t_observed - step, t_observed + step
        for _ in range(60):
            if gap(low) > 0:
                break
            low -= step
            step *= 2
        step = 1.0 + abs(t_observed)
        for _ in range(60):
            if gap(high) < 0:
                break
            high += step
            step *= 2
        return float(optimize.brentq(gap, low, high, xtol=1e-12))

    return at(1 - tail), at(tail)
