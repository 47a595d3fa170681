"""Effect sizes, intervals, change classification and dose bands against worked values.

The effect sizes use the worked example of Lakens (2013, "Calculating and reporting effect sizes to facilitate
cumulative science", Front. Psychol. 4:863, Table 1): ten people rate two films, Movie 1 = 9 7 8 9 8 9 9 10 9 9
and Movie 2 = 9 6 7 8 7 9 8 8 8 7. Lakens reports M = 8.7 (SD 0.82) and 7.7 (SD 0.95), t(9) = 4.74, d_z = 1.50
and d_av = 1.13. The intervals are worked here by hand from those figures (see each test).
"""

from __future__ import annotations

import math

import pytest
from scipy import stats

from programme_api.domain import analysis
from programme_api.domain.analysis import ChangeClass, Recovery
from programme_api.domain.instruments import shipped_instrument
from programme_api.domain.models import Timepoint
from programme_api.domain.outcome_tables import Dimension, OutcomeCube, Sums

MOVIE_1 = [9, 7, 8, 9, 8, 9, 9, 10, 9, 9]
MOVIE_2 = [9, 6, 7, 8, 7, 9, 8, 8, 8, 7]
CHANGES = [a - b for a, b in zip(MOVIE_1, MOVIE_2, strict=True)]  # 0 1 1 1 1 0 1 2 1 2: mean 1, SD 2/3


def sd(values: list[int]) -> float | None:
    return analysis.sample_sd(len(values), sum(values), sum(v * v for v in values))


def test_lakens_descriptives_from_sums() -> None:
    assert round(sd(MOVIE_1) or 0, 2) == 0.82
    assert round(sd(MOVIE_2) or 0, 2) == 0.95
    assert sd(CHANGES) == pytest.approx(2 / 3, abs=1e-12)


def test_cohens_dz_is_lakens_1_50_with_its_noncentral_t_interval() -> None:
    dz = analysis.cohens_dz(10, 1.0, 2 / 3)
    assert dz is not None
    assert dz.estimate == pytest.approx(1.5, abs=1e-12)  # Lakens: d_z = 1.50
    # t = 1.5 * sqrt(10) = 4.7434 (Lakens: t(9) = 4.74); the interval is the noncentrality parameters that
    # put t at the 97.5th and 2.5th percentiles of the noncentral t(9), divided by sqrt(10).
    assert (round(dz.lower, 4), round(dz.upper, 4)) == (0.5605, 2.4034)
    t_observed = 1.5 * math.sqrt(10)
    assert stats.nct.cdf(t_observed, 9, dz.lower * math.sqrt(10)) == pytest.approx(0.975, abs=1e-9)
    assert stats.nct.cdf(t_observed, 9, dz.upper * math.sqrt(10)) == pytest.approx(0.025, abs=1e-9)


def test_cohens_dav_is_lakens_1_13_and_its_interval_is_dz_rescaled() -> None:
    sd1, sd2 = sd(MOVIE_1), sd(MOVIE_2)
    dav = analysis.cohens_dav(10, 1.0, 2 / 3, sd1, sd2)
    assert dav is not None
    assert round(dav.estimate, 2) == 1.13  # Lakens: d_av = 1.13
    assert round(dav.estimate, 4) == 1.1287  # 1 / ((0.8233 + 0.9487) / 2)
    # d_z's interval times SD(change) / average SD = 0.6667 / 0.8860 = 0.7525.
    assert (round(dav.lower, 4), round(dav.upper, 4)) == (0.4218, 1.8085)


def test_mean_change_interval_by_hand() -> None:
    # 1 +/- t(0.975, 9) * (2/3) / sqrt(10) = 1 +/- 2.262157 * 0.210819 = 1 +/- 0.476905
    interval = analysis.mean_interval(10, 1.0, 2 / 3)
    assert interval is not None
    assert (round(interval.lower, 4), round(interval.upper, 4)) == (0.5231, 1.4769)


def test_no_effect_size_without_spread_or_with_one_pair() -> None:
    assert analysis.cohens_dz(10, 1.0, 0.0) is None
    assert analysis.cohens_dz(1, 1.0, None) is None
    assert analysis.mean_interval(1, 1.0, None) is None
    assert analysis.cohens_dav(10, 1.0, 0.5, 0.0, 0.0) is None


def test_a_cell_computes_the_same_figures_from_additive_sums() -> None:
    """The Lakens pairs as one cube cell: Movie 2 the baseline, Movie 1 the follow-up."""
    sums = Sums(
        n=10,
        score_sum=sum(MOVIE_1),
        score_squares=sum(v * v for v in MOVIE_1),
        n_with_baseline=10,
        change_sum=sum(CHANGES),
        improved=0,
        deteriorated=0,
        change_squares=sum(c * c for c in CHANGES),
        baseline_sum=sum(MOVIE_2),
        baseline_squares=sum(v * v for v in MOVIE_2),
        paired_score_sum=sum(MOVIE_1),
        paired_score_squares=sum(v * v for v in MOVIE_1),
    )
    cube = OutcomeCube({("North", "anxiety", Timepoint.FOLLOW_UP_1, "8+"): sums}, threshold=1)
    cell = cube.table("gse", Dimension.DOSE_BAND, None).cells[0]
    assert cell.key == "8+"
    assert cell.mean_change == 1.0
    assert cell.mean_change_ci == analysis.Interval(1.0, 0.5231, 1.4769)
    assert cell.effect_size_dz == analysis.Interval(1.5, 0.5605, 2.4034)
    assert cell.effect_size_dav == analysis.Interval(1.1287, 0.4218, 1.8085)
    assert cell.share_reliably_improved == 0.0


PHQ9 = shipped_instrument("phq9").definition
GAD7 = shipped_instrument("gad7").definition
SWEMWBS = shipped_instrument("swemwbs").definition


@pytest.mark.parametrize(
    ("score", "baseline", "change", "classification", "recovery"),
    [
        (12.0, 18.0, -6.0, ChangeClass.RELIABLE_IMPROVEMENT, Recovery.NOT_RECOVERED),  # 6 down: reliable, still >= 10
        (9.0, 18.0, -9.0, ChangeClass.RELIABLE_IMPROVEMENT, Recovery.RECOVERED),
        (9.0, 10.0, -1.0, ChangeClass.NO_RELIABLE_CHANGE, Recovery.RECOVERED),  # recovered, not reliably
        (13.0, 18.0, -5.0, ChangeClass.NO_RELIABLE_CHANGE, Recovery.NOT_RECOVERED),
        (15.0, 9.0, 6.0, ChangeClass.RELIABLE_DETERIORATION, Recovery.NOT_AT_CASENESS),
        (4.0, 9.0, -5.0, ChangeClass.NO_RELIABLE_CHANGE, Recovery.NOT_AT_CASENESS),
    ],
)
def test_phq9_change_classification_and_recovery(
    score: float, baseline: float, change: float, classification: ChangeClass, recovery: Recovery
) -> None:
    result = analysis.response_change("phq9", PHQ9, score, baseline)
    assert result == analysis.ResponseChange(
        baseline, change, 6.0, "NHS Talking Therapies reliable improvement criterion (a change of 6 or more)",
        classification, recovery,
    )  # fmt: skip


def test_gad7_caseness_is_8() -> None:
    recovered = analysis.response_change("gad7", GAD7, 7.0, 8.0)
    still = analysis.response_change("gad7", GAD7, 8.0, 12.0)
    below = analysis.response_change("gad7", GAD7, 3.0, 7.0)
    assert recovered is not None
    assert still is not None
    assert below is not None
    assert (recovered.recovery, recovered.classification) == (Recovery.RECOVERED, ChangeClass.NO_RELIABLE_CHANGE)
    assert (still.recovery, still.classification) == (Recovery.NOT_RECOVERED, ChangeClass.RELIABLE_IMPROVEMENT)
    assert (below.recovery, below.classification) == (Recovery.NOT_AT_CASENESS, ChangeClass.RELIABLE_IMPROVEMENT)


def test_decimal_scores_reach_the_threshold_exactly() -> None:
    """7.03 -> 10.03 is a rise of exactly 3 (reliable on SWEMWBS), though in binary floats 10.03 - 7.03 falls
    just short of 3."""
    result = analysis.response_change("swemwbs", SWEMWBS, 10.03, 7.03)
    assert result is not None
    assert (result.change, result.classification, result.recovery) == (3.0, ChangeClass.RELIABLE_IMPROVEMENT, None)
    worse = analysis.response_change("swemwbs", SWEMWBS, 7.03, 10.03)
    assert worse is not None
    assert worse.classification is ChangeClass.RELIABLE_DETERIORATION


def test_no_change_without_a_baseline() -> None:
    assert analysis.response_change("phq9", PHQ9, 10.0, None) is None


def test_custom_instruments_cite_their_own_definition() -> None:
    definition = {**PHQ9, "reliable_change": 2.5}
    result = analysis.response_change("custom_mood", definition, 1.0, 4.0)
    assert result is not None
    assert result.reliable_change_source == "declared by the organisation in its custom instrument's definition"
    assert (result.classification, result.recovery) == (ChangeClass.RELIABLE_IMPROVEMENT, None)


@pytest.mark.parametrize(
    ("bounds", "labels"),
    [((0, 4, 8), ["0-3", "4-7", "8+"]), ((0, 1, 2, 6), ["0", "1", "2-5", "6+"]), ((0,), ["0+"])],
)
def test_band_labels(bounds: tuple[int, ...], labels: list[str]) -> None:
    assert analysis.band_labels(bounds) == labels


@pytest.mark.parametrize(
    ("sessions", "band"), [(0, "0-3"), (3, "0-3"), (4, "4-7"), (7, "4-7"), (8, "8+"), (40, "8+"), (None, "no_baseline")]
)
def test_default_dose_bands(sessions: int | None, band: str) -> None:
    assert analysis.dose_band(analysis.dose_bands(None), sessions, has_change=True) == band


def test_a_response_without_change_has_no_dose_band() -> None:
    assert analysis.dose_band((0, 4, 8), 5, has_change=False) == "no_baseline"


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ([], "non-empty list"),
        ([1, 4], "start at 0"),
        ([0, 4, 4], "increase"),
        ([0, "4"], "whole numbers"),
        ([0, True], "whole numbers"),
        (list(range(11)), "at most 10"),
    ],
)
def test_dose_bands_are_validated(bounds: list[object], message: str) -> None:
    from programme_api.domain.errors import DomainError

    with pytest.raises(DomainError, match=message) as refused:
        analysis.validate_dose_bands(bounds)
    assert refused.value.field == "doseBands"
