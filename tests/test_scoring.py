"""Scoring engine: published values, reversal, prorating, risk answers, refusals and custom definitions.

Pure tests: no database. Expected values are literals (or an independent Decimal oracle), never the engine's
own helpers, so a wrong table, edge or rounding rule fails here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from programme_api.domain.errors import DomainError, ErrorCode
from programme_api.domain.instruments import SHIPPED_INSTRUMENTS, ShippedInstrument, shipped_instrument
from programme_api.domain.scoring import (
    AnswerError,
    AnswerProblem,
    AnswerProblemCode,
    DefinitionError,
    ScoreResult,
    score_answers,
    score_bounds,
    validate_definition,
)

SWEMWBS = shipped_instrument("swemwbs").definition
WEMWBS = shipped_instrument("wemwbs").definition
PHQ9 = shipped_instrument("phq9").definition
GAD7 = shipped_instrument("gad7").definition
CORE10 = shipped_instrument("core10").definition
HHI = shipped_instrument("hhi").definition
UCLA3 = shipped_instrument("ucla3").definition

ALL_SHIPPED = pytest.mark.parametrize("instrument", SHIPPED_INSTRUMENTS, ids=lambda instrument: instrument.code)


def keyed(values: Sequence[int | None]) -> dict[str, int | None]:
    """Answers ``item1..itemN`` from a list, None meaning unanswered."""
    return {f"item{number}": value for number, value in enumerate(values, start=1)}


def answers_for_total(definition: Mapping[str, Any], total: int, *, last: tuple[str, ...] = ()) -> dict[str, int]:
    """Raw answers whose scored (reversed) sum is ``total``; items in ``last`` are raised only when needed."""
    items = sorted(definition["items"], key=lambda item: item["key"] in last)
    reversed_items = set(definition["scoring"]["reversed"])
    remaining = total - sum(item["min"] for item in items)
    answers = {}
    for item in items:
        scored = item["min"] + min(remaining, item["max"] - item["min"])
        remaining -= scored - item["min"]
        answers[item["key"]] = item["min"] + item["max"] - scored if item["key"] in reversed_items else scored
    assert remaining == 0
    return answers


def codes(error: AnswerError) -> list[tuple[str, str]]:
    """The (field, code) pairs of a refusal, in order."""
    return [(problem.field, problem.code.value) for problem in error.problems]


def half_up(numerator: int, denominator: int, decimals: int) -> float:
    """Independent oracle for the documented rounding: exact division, halves rounded up."""
    quotient = Decimal(numerator) / Decimal(denominator)
    return float(quotient.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


# SWEMWBS and WEMWBS

PUBLISHED_SWEMWBS = [
    (7, 7.00), (8, 9.51), (9, 11.25), (10, 12.40), (11, 13.33), (12, 14.08), (13, 14.75), (14, 15.32),
    (15, 15.84), (16, 16.36), (17, 16.88), (18, 17.43), (19, 17.98), (20, 18.59), (21, 19.25), (22, 19.98),
    (23, 20.73), (24, 21.54), (25, 22.35), (26, 23.21), (27, 24.11), (28, 25.03), (29, 26.02), (30, 27.03),
    (31, 28.13), (32, 29.31), (33, 30.70), (34, 32.55), (35, 35.00),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "metric"), PUBLISHED_SWEMWBS)
def test_swemwbs_every_raw_score_converts_to_the_published_metric_score(raw: int, metric: float) -> None:
    result = score_answers(SWEMWBS, answers_for_total(SWEMWBS, raw))
    assert result == ScoreResult(raw_score=float(raw), score=metric, band=None, risk_items=(), missing_items=())


def test_swemwbs_conversion_depends_on_the_sum_not_on_which_items() -> None:
    assert score_answers(SWEMWBS, keyed([2, 1, 1, 1, 1, 1, 3])).score == 12.40
    assert score_answers(SWEMWBS, keyed([1, 1, 1, 1, 1, 1, 4])).score == 12.40
    assert score_answers(SWEMWBS, keyed([5, 1, 1, 1, 1, 1, 5])).score == 15.84


def test_swemwbs_refuses_any_missing_item_because_the_table_needs_the_full_sum() -> None:
    with pytest.raises(AnswerError) as caught:
        score_answers(SWEMWBS, keyed([3, 3, 3, None, 3, 3, 3]))
    assert codes(caught.value) == [("answers.item4", "MISSING_ITEM")]


@pytest.mark.parametrize(
    ("answers", "expected"),
    [([1] * 14, 14.0), ([5] * 14, 70.0), ([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4], 40.0), ([3] * 14, 42.0)],
)
def test_wemwbs_is_the_plain_sum(answers: list[int | None], expected: float) -> None:
    result = score_answers(WEMWBS, keyed(answers))
    assert (result.raw_score, result.score, result.band) == (expected, expected, None)


# Band edges


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
        (15, "moderately_severe"), (19, "moderately_severe"), (20, "severe"), (27, "severe"),
    ],
)  # fmt: skip
def test_phq9_band_edges(total: int, band: str) -> None:
    result = score_answers(PHQ9, answers_for_total(PHQ9, total, last=("item9",)))
    assert (result.score, result.band) == (float(total), band)


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
        (15, "severe"), (21, "severe"),
    ],
)  # fmt: skip
def test_gad7_band_edges(total: int, band: str) -> None:
    result = score_answers(GAD7, answers_for_total(GAD7, total))
    assert (result.score, result.band, result.risk_items) == (float(total), band, ())


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "healthy"), (5, "healthy"), (6, "low"), (10, "low"), (11, "mild"), (14, "mild"), (15, "moderate"),
        (19, "moderate"), (20, "moderate_severe"), (24, "moderate_severe"), (25, "severe"), (40, "severe"),
    ],
)  # fmt: skip
def test_core10_band_edges(total: int, band: str) -> None:
    result = score_answers(CORE10, answers_for_total(CORE10, total, last=("item6",)))
    assert (result.raw_score, result.score, result.band) == (float(total), float(total), band)


@pytest.mark.parametrize(("total", "band"), [(3, "not_lonely"), (5, "not_lonely"), (6, "lonely"), (9, "lonely")])
def test_ucla3_band_edges(total: int, band: str) -> None:
    result = score_answers(UCLA3, answers_for_total(UCLA3, total))
    assert (result.score, result.band) == (float(total), band)


def test_phq9_worked_example() -> None:
    result = score_answers(PHQ9, keyed([1, 2, 3, 0, 1, 2, 3, 0, 1]))
    assert result == ScoreResult(13.0, 13.0, "moderate", ("item9",), ())


# Reversal


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([0] * 10, 8.0),  # items 2 and 3 answered 0 count 4 each
        ([4] * 10, 32.0),  # items 2 and 3 answered 4 count 0 each
        ([0, 4, 4, 0, 0, 0, 0, 0, 0, 0], 0.0),  # lowest possible total
        ([4, 0, 0, 4, 4, 4, 4, 4, 4, 4], 40.0),  # highest possible total
        ([1, 3, 2, 0, 0, 0, 0, 0, 0, 0], 4.0),  # 1 + (4-3) + (4-2)
    ],
)
def test_core10_reverses_items_2_and_3(answers: list[int | None], expected: float) -> None:
    result = score_answers(CORE10, keyed(answers))
    assert (result.raw_score, result.score) == (expected, expected)


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([1] * 12, 18.0),  # items 3 and 6 answered 1 count 4 each
        ([4] * 12, 42.0),  # items 3 and 6 answered 4 count 1 each
        ([4, 4, 1, 4, 4, 1, 4, 4, 4, 4, 4, 4], 48.0),
        ([1, 1, 4, 1, 1, 4, 1, 1, 1, 1, 1, 1], 12.0),
        ([2, 2, 3, 2, 2, 1, 2, 2, 2, 2, 2, 2], 26.0),  # 10 * 2 + (5-3) + (5-1)
    ],
)
def test_hhi_reverses_items_3_and_6(answers: list[int | None], expected: float) -> None:
    result = score_answers(HHI, keyed(answers))
    assert (result.raw_score, result.score, result.band) == (expected, expected, None)


# Prorating


@pytest.mark.parametrize(
    ("answers", "raw", "score", "band", "risk"),
    [
        ([None, 4, 4, 1, 1, 0, 2, 2, 2, 2], 10.0, 11.1, "mild", ()),  # 10 * 10 / 9 = 11.11
        ([None, 4, 4, 1, 1, 0, 1, 2, 2, 2], 9.0, 10.0, "low", ()),
        ([1, 4, 4, 1, 1, 0, 1, 2, 2, None], 8.0, 8.9, "low", ()),  # 8.89
        ([None, 4, 4, 1, 1, 0, 2, 2, 2, 3], 11.0, 12.2, "mild", ()),  # 12.22
        ([None, 4, 4, 2, 2, 0, 3, 2, 2, 2], 13.0, 14.4, "mild", ()),  # 14.44: short of the moderate cut-off 15
        ([None, 4, 4, 2, 2, 0, 3, 3, 2, 2], 14.0, 15.6, "moderate", ()),  # 15.56
        ([None, 2, 2, 3, 3, 0, 3, 3, 3, 3], 22.0, 24.4, "moderate_severe", ()),  # 24.44
        ([None, 0, 0, 4, 4, 4, 4, 4, 4, 4], 36.0, 40.0, "severe", ("item6",)),
        ([4, None, 0, 4, 4, 4, 4, 4, 4, 4], 36.0, 40.0, "severe", ("item6",)),  # a missing reversed item prorates too
        ([0, 4, None, 0, 0, 0, 0, 0, 0, 0], 0.0, 0.0, "healthy", ()),
    ],
)
def test_core10_prorates_one_missing_item_to_one_decimal(
    answers: list[int | None], raw: float, score: float, band: str, risk: tuple[str, ...]
) -> None:
    result = score_answers(CORE10, keyed(answers))
    missing = tuple(f"item{n}" for n, value in enumerate(answers, start=1) if value is None)
    assert result == ScoreResult(raw, score, band, risk, missing)


def test_core10_prorating_treats_absent_and_null_alike() -> None:
    answers = keyed([None, 4, 4, 1, 1, 0, 1, 2, 2, 2])
    absent = {key: value for key, value in answers.items() if value is not None}
    assert score_answers(CORE10, absent) == score_answers(CORE10, answers)


def test_core10_refuses_two_missing_items() -> None:
    with pytest.raises(AnswerError) as caught:
        score_answers(CORE10, keyed([None, 4, 4, 1, None, 1, 1, 2, 2, 2]))
    assert codes(caught.value) == [
        ("answers", "TOO_MANY_MISSING"),
        ("answers.item1", "MISSING_ITEM"),
        ("answers.item5", "MISSING_ITEM"),
    ]
    assert caught.value.problems[0].message == "2 items are unanswered; at most 1 may be missing"


# Risk items


@pytest.mark.parametrize(("answer", "risk"), [(0, ()), (1, ("item9",)), (2, ("item9",)), (3, ("item9",))])
def test_phq9_item9_above_not_at_all_is_a_risk_answer(answer: int, risk: tuple[str, ...]) -> None:
    assert score_answers(PHQ9, keyed([0] * 8 + [answer])).risk_items == risk


@pytest.mark.parametrize(("answer", "risk"), [(0, ()), (1, ("item6",)), (4, ("item6",))])
def test_core10_item6_above_not_at_all_is_a_risk_answer(answer: int, risk: tuple[str, ...]) -> None:
    assert score_answers(CORE10, keyed([0, 4, 4, 0, 0, answer, 0, 0, 0, 0])).risk_items == risk


def test_a_missing_risk_item_raises_no_risk_but_is_reported_missing() -> None:
    result = score_answers(CORE10, keyed([0, 4, 4, 0, 0, None, 0, 0, 0, 0]))
    assert (result.risk_items, result.missing_items, result.score) == ((), ("item6",), 0.0)


def test_high_scores_elsewhere_raise_no_risk() -> None:
    assert score_answers(PHQ9, keyed([3] * 8 + [0])).risk_items == ()
    assert score_answers(GAD7, keyed([3] * 7)).risk_items == ()


# Refused answers


@pytest.mark.parametrize("value", [4, -1, 99, True, False, 2.0, "2", [1]])
def test_phq9_refuses_values_that_are_not_whole_numbers_on_the_scale(value: object) -> None:
    answers: dict[str, object] = {**keyed([0] * 9), "item3": value}
    with pytest.raises(AnswerError) as caught:
        score_answers(PHQ9, answers)
    assert caught.value.problems == (
        AnswerProblem("answers.item3", "must be a whole number from 0 to 3", AnswerProblemCode.OUT_OF_RANGE),
    )


def test_unknown_items_are_refused_by_name() -> None:
    with pytest.raises(AnswerError) as caught:
        score_answers(GAD7, {**keyed([0] * 7), "item8": 1, "mood": 2})
    assert codes(caught.value) == [("answers.item8", "UNKNOWN_ITEM"), ("answers.mood", "UNKNOWN_ITEM")]


def test_missing_items_without_a_prorating_rule_are_each_reported() -> None:
    with pytest.raises(AnswerError) as caught:
        score_answers(PHQ9, keyed([0, None, 0, 0, 0, 0, 0, 0]))
    assert codes(caught.value) == [("answers.item2", "MISSING_ITEM"), ("answers.item9", "MISSING_ITEM")]


def test_every_problem_is_reported_at_once_in_item_order() -> None:
    with pytest.raises(AnswerError) as caught:
        score_answers(CORE10, {"item1": 5, "item2": True, "item4": 1, "extra": 1})
    assert codes(caught.value) == [
        ("answers.item1", "OUT_OF_RANGE"),
        ("answers.item2", "OUT_OF_RANGE"),
        ("answers", "TOO_MANY_MISSING"),
        *[(f"answers.item{n}", "MISSING_ITEM") for n in (3, 5, 6, 7, 8, 9, 10)],
        ("answers.extra", "UNKNOWN_ITEM"),
    ]


def test_answer_error_is_an_invalid_domain_error_that_never_repeats_the_answer() -> None:
    with pytest.raises(AnswerError) as caught:
        score_answers(PHQ9, {**keyed([0] * 9), "item9": 17})
    error = caught.value
    assert isinstance(error, DomainError)
    assert (error.code, error.field) == (ErrorCode.INVALID, "answers.item9")
    assert error.message == "answers.item9: must be a whole number from 0 to 3"
    assert "17" not in str(error)


def test_answer_error_with_several_problems_points_at_answers() -> None:
    with pytest.raises(AnswerError) as caught:
        score_answers(UCLA3, {"item1": 0, "item2": 4, "item3": 1})
    assert caught.value.field == "answers"


def test_answer_error_needs_a_problem() -> None:
    with pytest.raises(ValueError, match="at least one problem"):
        AnswerError([])


# Property tests over the shipped instruments


@st.composite
def valid_answers(draw: st.DrawFn, definition: Mapping[str, Any]) -> dict[str, int | None]:
    """Answers on each item's scale, with up to ``max_missing`` of them absent or null."""
    items = definition["items"]
    answers: dict[str, int | None] = {
        item["key"]: draw(st.integers(item["min"], item["max"]), label=item["key"]) for item in items
    }
    max_missing = definition["scoring"]["missing"]["max_missing"]
    keys = [item["key"] for item in items]
    for key in draw(st.lists(st.sampled_from(keys), unique=True, max_size=max_missing)):
        if draw(st.booleans()):
            del answers[key]
        else:
            answers[key] = None
    return answers


def expected_raw(definition: Mapping[str, Any], answers: Mapping[str, int | None]) -> int:
    """Oracle: the plain sum after reversal, written without the engine's helpers."""
    total = 0
    for item in definition["items"]:
        value = answers.get(item["key"])
        if value is not None:
            total += item["min"] + item["max"] - value if item["key"] in definition["scoring"]["reversed"] else value
    return total


@ALL_SHIPPED
@given(data=st.data())
def test_valid_answers_score_within_range_with_a_band(instrument: ShippedInstrument, data: st.DataObject) -> None:
    definition = instrument.definition
    answers = data.draw(valid_answers(definition))
    result = score_answers(definition, answers)
    low, high = score_bounds(definition)
    assert low <= result.score <= high
    assert result.raw_score == expected_raw(definition, answers)
    assert result.missing_items == tuple(
        item["key"] for item in definition["items"] if answers.get(item["key"]) is None
    )
    labels = [band["label"] for band in definition["scoring"]["bands"]]
    assert result.band in labels if labels else result.band is None
    if instrument.code == "core10" and result.missing_items:
        assert result.score == half_up(int(result.raw_score) * 10, 9, 1)
    elif instrument.code == "swemwbs":
        assert result.score == dict(PUBLISHED_SWEMWBS)[int(result.raw_score)]
    else:
        assert result.score == result.raw_score


@ALL_SHIPPED
@given(data=st.data())
def test_an_out_of_range_answer_is_refused(instrument: ShippedInstrument, data: st.DataObject) -> None:
    definition = instrument.definition
    answers = {item["key"]: item["min"] for item in definition["items"]}
    item = data.draw(st.sampled_from(definition["items"]))
    answers[item["key"]] = data.draw(
        st.integers(max_value=item["min"] - 1) | st.integers(min_value=item["max"] + 1), label="bad"
    )
    with pytest.raises(AnswerError) as caught:
        score_answers(definition, answers)
    assert codes(caught.value) == [(f"answers.{item['key']}", "OUT_OF_RANGE")]


@ALL_SHIPPED
@given(data=st.data())
def test_an_unknown_item_is_refused(instrument: ShippedInstrument, data: st.DataObject) -> None:
    definition = instrument.definition
    answers: dict[str, object] = {item["key"]: item["max"] for item in definition["items"]}
    key = data.draw(st.text(min_size=1, max_size=12).filter(lambda text: text not in answers), label="key")
    answers[key] = data.draw(st.integers(0, 3) | st.none())
    with pytest.raises(AnswerError) as caught:
        score_answers(definition, answers)
    assert codes(caught.value) == [(f"answers.{key}", "UNKNOWN_ITEM")]


@ALL_SHIPPED
@given(data=st.data())
def test_too_many_missing_items_are_refused(instrument: ShippedInstrument, data: st.DataObject) -> None:
    definition = instrument.definition
    keys = [item["key"] for item in definition["items"]]
    max_missing = definition["scoring"]["missing"]["max_missing"]
    dropped = set(data.draw(st.lists(st.sampled_from(keys), unique=True, min_size=max_missing + 1), label="dropped"))
    answers = {item["key"]: item["min"] for item in definition["items"] if item["key"] not in dropped}
    with pytest.raises(AnswerError) as caught:
        score_answers(definition, answers)
    expected = [(f"answers.{key}", "MISSING_ITEM") for key in keys if key in dropped]
    if max_missing:
        expected.insert(0, ("answers", "TOO_MANY_MISSING"))
    assert codes(caught.value) == expected


# Custom instruments


def custom_definition() -> dict[str, Any]:
    """An organisation's three-item check-in: mean of 1-5 answers, one reversed, one item may be skipped."""
    return {
        "higher_is_better": True,
        "reliable_change": 0.8,
        "risk_items": ["safe"],
        "instructions": "Thinking about this week:",
        "response_labels": ["Never", "Rarely", "Sometimes", "Often", "Always"],
        "items": [
            {"key": "mood", "label": "I felt cheerful", "min": 1, "max": 5},
            {"key": "worry", "label": "I felt worried", "min": 1, "max": 5, "reverse": True},
            {"key": "safe", "label": "I felt unsafe", "min": 1, "max": 5, "reverse": False},
        ],
        "scoring": {
            "method": "mean",
            "reversed": ["worry"],
            "lookup": None,
            "bands": [{"label": "struggling", "min": 1, "max": 2.49}, {"label": "coping", "min": 2.5, "max": 5}],
            "missing": {"max_missing": 1, "rule": "prorate"},
        },
    }


def test_custom_definition_is_valid_and_survives_json() -> None:
    definition = custom_definition()
    validate_definition(definition)
    assert score_bounds(definition) == (1.0, 5.0)
    round_tripped = orjson.loads(orjson.dumps(definition))
    assert score_answers(round_tripped, {"mood": 4, "worry": 2, "safe": 3}) == ScoreResult(
        11.0, 3.67, "coping", ("safe",), ()
    )


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"mood": 4, "worry": 2, "safe": 3}, ScoreResult(11.0, 3.67, "coping", ("safe",), ())),  # 11/3
        ({"mood": 4, "worry": 2}, ScoreResult(8.0, 4.0, "coping", (), ("safe",))),  # mean of the answered two
        ({"mood": 1, "worry": 5, "safe": 1}, ScoreResult(3.0, 1.0, "struggling", (), ())),
        ({"mood": 2, "worry": 4, "safe": 3}, ScoreResult(7.0, 2.33, "struggling", ("safe",), ())),
        ({"mood": 2, "worry": 4, "safe": 4}, ScoreResult(8.0, 2.67, "coping", ("safe",), ())),
        ({"mood": 2, "worry": 3}, ScoreResult(5.0, 2.5, "coping", (), ("safe",))),  # exactly on the cut-off
    ],
)
def test_custom_mean_scoring(answers: dict[str, int], expected: ScoreResult) -> None:
    assert score_answers(custom_definition(), answers) == expected


def seven_item_prorated() -> dict[str, Any]:
    """Seven 0-3 items, sum prorated over one missing item, bands with whole-number edges."""
    return {
        "higher_is_better": False,
        "reliable_change": 4,
        "risk_items": [],
        "items": [{"key": f"q{n}", "label": f"Question {n}", "min": 0, "max": 3} for n in range(1, 8)],
        "scoring": {
            "method": "sum",
            "reversed": [],
            "bands": [{"label": "low", "min": 0, "max": 4}, {"label": "high", "min": 5, "max": 21}],
            "missing": {"max_missing": 1, "rule": "prorate"},
        },
    }


@pytest.mark.parametrize(
    ("six_answers", "score", "band"),
    [
        ([1, 1, 1, 0, 0, 0], 3.5, "low"),  # 3 * 7 / 6
        ([1, 1, 1, 1, 0, 0], 4.67, "low"),  # 4.67 is past the low band's max of 4 but short of the cut-off 5
        ([1, 1, 1, 1, 1, 0], 5.83, "high"),
        ([3, 3, 3, 3, 3, 3], 21.0, "high"),
    ],
)
def test_prorated_scores_between_band_edges_keep_the_lower_band(
    six_answers: list[int], score: float, band: str
) -> None:
    answers = {f"q{n}": value for n, value in enumerate(six_answers, start=1)}
    result = score_answers(seven_item_prorated(), answers)
    expected = (float(sum(six_answers)), score, band, ("q7",))
    assert (result.raw_score, result.score, result.band, result.missing_items) == expected


def test_rounding_is_half_up_not_to_even() -> None:
    definition: dict[str, Any] = {
        "higher_is_better": True,
        "reliable_change": 1,
        "risk_items": [],
        "items": [{"key": f"q{n}", "label": f"Q{n}", "min": 0, "max": 1} for n in range(8)],
        "scoring": {
            "method": "mean",
            "reversed": [],
            "bands": [],
            "missing": {"max_missing": 0, "rule": "none"},
            "decimals": 2,
        },
    }
    one_in_eight = {f"q{n}": int(n == 0) for n in range(8)}
    assert score_answers(definition, one_in_eight).score == 0.13  # 0.125; round() would give 0.12
    definition["scoring"]["decimals"] = 0
    half = {f"q{n}": int(n < 4) for n in range(8)}
    assert score_answers(definition, half).score == 1.0  # 0.5 rounds up; round() would give 0
    for item in definition["items"]:
        item["min"], item["max"] = -1, 0
    negative_half = {f"q{n}": -int(n < 4) for n in range(8)}
    assert score_answers(definition, negative_half).score == -1.0  # -0.5 rounds away from zero, like Decimal


def test_custom_lookup_table() -> None:
    definition = {
        "higher_is_better": True,
        "reliable_change": 2.5,
        "risk_items": [],
        "items": [{"key": "a", "label": "A", "min": 0, "max": 2}, {"key": "b", "label": "B", "min": 1, "max": 2}],
        "scoring": {
            "method": "sum",
            "reversed": ["b"],
            "lookup": {"1": 0, "2": 10, "3": 10, "4": 25.5},
            "bands": [{"label": "low", "min": 0, "max": 9.99}, {"label": "high", "min": 10, "max": 25.5}],
            "missing": {"max_missing": 0, "rule": "none"},
        },
    }
    assert score_bounds(definition) == (0.0, 25.5)
    assert score_answers(definition, {"a": 0, "b": 2}) == ScoreResult(1.0, 0.0, "low", (), ())
    assert score_answers(definition, {"a": 2, "b": 1}) == ScoreResult(4.0, 25.5, "high", (), ())
    assert score_answers(definition, {"a": 1, "b": 2}) == ScoreResult(2.0, 10.0, "high", (), ())


def test_items_with_different_scales_can_be_summed_without_prorating() -> None:
    definition = {
        "higher_is_better": True,
        "reliable_change": 1,
        "risk_items": ["b"],
        "items": [{"key": "a", "label": "A", "min": -2, "max": 2}, {"key": "b", "label": "B", "min": 1, "max": 10}],
        "scoring": {"method": "sum", "reversed": ["a"], "bands": [], "missing": {"max_missing": 0, "rule": "none"}},
    }
    assert score_bounds(definition) == (-1.0, 12.0)
    assert score_answers(definition, {"a": 2, "b": 1}) == ScoreResult(-1.0, -1.0, None, (), ())
    assert score_answers(definition, {"a": -1, "b": 2}) == ScoreResult(3.0, 3.0, None, ("b",), ())


# Custom definition validation

Mutation = Callable[[dict[str, Any]], object]


def _walk(definition: dict[str, Any], path: str) -> tuple[Any, Any]:
    """The container holding a dotted path's last part, and that part (a number where the container is a list)."""
    target: Any = definition
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    return target, int(last) if isinstance(target, list) else last


def setting(path: str, value: object) -> Mutation:
    """A mutation that sets a dotted path (list indexes as numbers) in a definition."""

    def mutate(definition: dict[str, Any]) -> object:
        target, last = _walk(definition, path)
        target[last] = value
        return definition

    return mutate


def removing(path: str) -> Mutation:
    """A mutation that deletes a dotted path."""

    def mutate(definition: dict[str, Any]) -> object:
        target, last = _walk(definition, path)
        del target[last]
        return definition

    return mutate


MIXED_SCALES = setting("items.2.max", 4)
MISSING = "definition.scoring.missing"
BANDS = "definition.scoring.bands"
LOOKUP = "definition.scoring.lookup"

MALFORMED: list[tuple[str, Mutation, str, str]] = [
    ("not an object", lambda _: [1, 2], "definition", "must be an object"),
    ("items missing", removing("items"), "definition.items", "is required"),
    ("scoring missing", removing("scoring"), "definition.scoring", "is required"),
    ("misspelt key", setting("band", []), "definition.band", "is not a recognised setting"),
    ("direction not bool", setting("higher_is_better", "yes"), "definition.higher_is_better", "true or false"),
    ("zero reliable change", setting("reliable_change", 0), "definition.reliable_change", "positive number"),
    ("bool reliable change", setting("reliable_change", True), "definition.reliable_change", "positive number"),
    ("nan reliable change", setting("reliable_change", math.nan), "definition.reliable_change", "positive number"),
    ("blank instructions", setting("instructions", "  "), "definition.instructions", "non-empty text"),
    ("no items", setting("items", []), "definition.items", "non-empty list"),
    ("items not a list", setting("items", {"mood": 1}), "definition.items", "non-empty list"),
    ("item not an object", setting("items.0", "mood"), "definition.items[0]", "must be an object"),
    ("item key with spaces", setting("items.0.key", "My Mood"), "definition.items[0].key", "lower-case letters"),
    ("item key not text", setting("items.0.key", 1), "definition.items[0].key", "lower-case letters"),
    ("duplicate item key", setting("items.1.key", "mood"), "definition.items[1].key", "duplicates item key 'mood'"),
    ("empty label", setting("items.0.label", ""), "definition.items[0].label", "non-empty text"),
    ("label too long", setting("items.0.label", "x" * 501), "definition.items[0].label", "at most 500"),
    ("fractional min", setting("items.0.min", 1.5), "definition.items[0].min", "whole number"),
    ("bool max", setting("items.0.max", True), "definition.items[0].max", "whole number"),
    ("single option", setting("items.0.max", 1), "definition.items[0].max", "greater than min"),
    ("item max missing", removing("items.0.max"), "definition.items[0].max", "is required"),
    ("unknown item setting", setting("items.0.weight", 2), "definition.items[0].weight", "not a recognised"),
    ("reverse not bool", setting("items.1.reverse", "yes"), "definition.items[1].reverse", "true or false"),
    ("reverse disagrees", setting("items.0.reverse", True), "definition.items[0].reverse", "disagrees"),
    ("risk item unknown", setting("risk_items", ["mood", "sleep"]), "definition.risk_items[1]", "'sleep' is not"),
    ("risk item twice", setting("risk_items", ["safe", "safe"]), "definition.risk_items", "more than once"),
    ("risk items not a list", setting("risk_items", "safe"), "definition.risk_items", "list of item keys"),
    ("labels wrong length", setting("response_labels", ["No", "Yes"]), "definition.response_labels", "one label"),
    ("labels, mixed scales", MIXED_SCALES, "definition.response_labels", "share one response scale"),
    ("labels not text", setting("response_labels", [1, 2, 3, 4, 5]), "definition.response_labels", "non-empty text"),
    ("scoring not object", setting("scoring", "sum"), "definition.scoring", "must be an object"),
    ("unknown method", setting("scoring.method", "median"), "definition.scoring.method", "one of sum, mean"),
    ("reversed unknown", setting("scoring.reversed", ["worry", "x"]), "definition.scoring.reversed[1]", "'x' is not"),
    ("reversed missing", removing("scoring.reversed"), "definition.scoring.reversed", "is required"),
    ("unknown missing rule", setting("scoring.missing.rule", "impute"), f"{MISSING}.rule", "one of"),
    ("none with gaps", setting("scoring.missing.rule", "none"), f"{MISSING}.max_missing", "must be 0"),
    ("prorate without gaps", setting("scoring.missing.max_missing", 0), f"{MISSING}.max_missing", "at least 1"),
    ("all may be missing", setting("scoring.missing.max_missing", 3), f"{MISSING}.max_missing", "0 to 2"),
    ("missing not an object", setting("scoring.missing", 1), MISSING, "must be an object"),
    ("missing rule absent", removing("scoring.missing.rule"), f"{MISSING}.rule", "is required"),
    ("decimals too many", setting("scoring.decimals", 9), "definition.scoring.decimals", "from 0 to 4"),
    ("decimals negative", setting("scoring.decimals", -1), "definition.scoring.decimals", "from 0 to 4"),
    ("lookup with mean", setting("scoring.lookup", {str(n): n for n in range(3, 16)}), LOOKUP, "method sum"),
    ("lookup not object", setting("scoring.lookup", [1, 2]), LOOKUP, "must be an object"),
    ("bands not a list", setting("scoring.bands", {}), BANDS, "must be a list"),
    ("band not object", setting("scoring.bands", ["low"]), f"{BANDS}[0]", "must be an object"),
    ("band label blank", setting("scoring.bands.0.label", ""), f"{BANDS}[0].label", "non-empty text"),
    ("band edge text", setting("scoring.bands.1.min", "2.5"), f"{BANDS}[1].min", "must be a number"),
    ("band edge missing", removing("scoring.bands.1.max"), f"{BANDS}[1].max", "is required"),
    ("band upside down", setting("scoring.bands.0.max", 0.5), f"{BANDS}[0].max", "not be below min"),
    ("bands overlap", setting("scoring.bands.1.min", 2.49), f"{BANDS}[1].min", "above the previous"),
    ("bands start high", setting("scoring.bands.0.min", 1.5), f"{BANDS}[0].min", "lowest possible score, 1"),
    ("bands end low", setting("scoring.bands.1.max", 4.5), f"{BANDS}[1].max", "highest possible score, 5"),
    ("bands end high", setting("scoring.bands.1.max", 6), f"{BANDS}[1].max", "highest possible score, 5"),
    ("band labels repeat", setting("scoring.bands.1.label", "struggling"), BANDS, "distinct"),
    ("unknown band key", setting("scoring.bands.0.colour", "red"), f"{BANDS}[0].colour", "not a recognised"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "field", "message"), [case[1:] for case in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_custom_definitions_are_refused_with_the_field(mutate: Mutation, field: str, message: str) -> None:
    definition = mutate(custom_definition())
    with pytest.raises(DefinitionError) as caught:
        validate_definition(definition)
    matching = [problem for problem in caught.value.problems if problem.field == field]
    assert matching, caught.value.problems
    assert message in matching[0].message
    assert isinstance(caught.value, ValueError)
    assert f"{field}: " in str(caught.value)


LOOKUP_BASE: dict[str, Any] = {
    "higher_is_better": True,
    "reliable_change": 1,
    "risk_items": [],
    "items": [{"key": "a", "label": "A", "min": 1, "max": 3}, {"key": "b", "label": "B", "min": 1, "max": 3}],
    "scoring": {
        "method": "sum",
        "reversed": [],
        "lookup": {"2": 1.0, "3": 2.0, "4": 3.0, "5": 4.0, "6": 5.0},
        "bands": [],
        "missing": {"max_missing": 0, "rule": "none"},
    },
}

LOOKUP_MALFORMED: list[tuple[str, Mutation, str, str]] = [
    ("entry missing", removing("scoring.lookup.6"), LOOKUP, "each raw sum from 2 to 6"),
    ("entry extra", setting("scoring.lookup.7", 6.0), LOOKUP, "each raw sum from 2 to 6"),
    ("value not number", setting("scoring.lookup.4", "3"), f"{LOOKUP}.4", "must be a number"),
    ("value infinite", setting("scoring.lookup.4", math.inf), f"{LOOKUP}.4", "must be a number"),
    ("decreasing", setting("scoring.lookup.4", 1.5), LOOKUP, "must not decrease"),
    ("with prorating", setting("scoring.missing", {"max_missing": 1, "rule": "prorate"}), LOOKUP, "prorat"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "field", "message"), [case[1:] for case in LOOKUP_MALFORMED], ids=[c[0] for c in LOOKUP_MALFORMED]
)
def test_malformed_lookup_tables_are_refused(mutate: Mutation, field: str, message: str) -> None:
    validate_definition(LOOKUP_BASE)
    definition = mutate(copy.deepcopy(LOOKUP_BASE))
    with pytest.raises(DefinitionError) as caught:
        validate_definition(definition)
    matching = [problem for problem in caught.value.problems if problem.field == field]
    assert matching, caught.value.problems
    assert message in matching[0].message


def test_lookup_keys_must_be_strings_because_json_objects_have_no_integer_keys() -> None:
    definition = copy.deepcopy(LOOKUP_BASE)
    definition["scoring"]["lookup"] = {2: 1.0, 3: 2.0, 4: 3.0, 5: 4.0, 6: 5.0}
    with pytest.raises(DefinitionError, match="lookup: needs exactly one entry"):
        validate_definition(definition)


def test_prorating_needs_items_on_one_scale() -> None:
    definition = seven_item_prorated()
    definition["items"][0]["max"] = 4
    with pytest.raises(DefinitionError) as caught:
        validate_definition(definition)
    assert [(p.field, p.message) for p in caught.value.problems] == [
        ("definition.scoring.missing.rule", "prorating needs every item to share one response scale")
    ]


def test_every_definition_problem_is_reported_at_once() -> None:
    definition = custom_definition()
    definition["reliable_change"] = -1
    definition["risk_items"] = ["nope"]
    definition["scoring"]["method"] = "median"
    definition["scoring"]["decimals"] = 7
    with pytest.raises(DefinitionError) as caught:
        validate_definition(definition)
    assert [problem.field for problem in caught.value.problems] == [
        "definition.reliable_change",
        "definition.risk_items[0]",
        "definition.scoring.method",
        "definition.scoring.decimals",
    ]


def test_scoring_refuses_a_malformed_stored_definition() -> None:
    definition = custom_definition()
    definition["scoring"]["bands"][0]["min"] = 2
    with pytest.raises(DefinitionError, match=r"bands\[0\]\.min"):
        score_answers(definition, {"mood": 1, "worry": 1, "safe": 1})
    with pytest.raises(DefinitionError):
        score_bounds(definition)


def test_optional_settings_may_be_left_out() -> None:
    definition = custom_definition()
    for key in ("instructions", "response_labels"):
        del definition[key]
    del definition["scoring"]["lookup"]
    del definition["items"][1]["reverse"]
    validate_definition(definition)
    assert score_answers(definition, {"mood": 5, "worry": 1, "safe": 1}).score == 3.67  # (5 + 5 + 1) / 3


# Property tests over random custom definitions


@st.composite
def custom_definitions(draw: st.DrawFn) -> dict[str, Any]:
    """Random well-formed definitions covering sum/mean, reversal, prorating, lookups, bands and rounding."""
    count = draw(st.integers(1, 8), label="items")
    shared = draw(st.booleans(), label="shared scale")
    low = draw(st.integers(-3, 3))
    widths = [draw(st.integers(1, 6))] * count if shared else [draw(st.integers(1, 6)) for _ in range(count)]
    lows = [low] * count if shared else [draw(st.integers(-3, 3)) for _ in range(count)]
    keys = [f"q{n}" for n in range(count)]
    reversed_items = draw(st.lists(st.sampled_from(keys), unique=True))
    items: list[dict[str, Any]] = [
        {"key": key, "label": f"Question {key}", "min": lows[n], "max": lows[n] + widths[n]}
        for n, key in enumerate(keys)
    ]
    method = draw(st.sampled_from(["sum", "mean"]))
    prorate = shared and count > 1 and draw(st.booleans(), label="prorate")
    max_missing = draw(st.integers(1, count - 1)) if prorate else 0
    scoring: dict[str, Any] = {
        "method": method,
        "reversed": reversed_items,
        "bands": [],
        "missing": {"max_missing": max_missing, "rule": "prorate" if prorate else "none"},
        "decimals": draw(st.integers(0, 4)),
    }
    if method == "sum" and not prorate and draw(st.booleans(), label="lookup"):
        raw_low, raw_high = sum(item["min"] for item in items), sum(item["max"] for item in items)
        steps = draw(st.lists(st.integers(0, 500), min_size=raw_high - raw_low + 1, max_size=raw_high - raw_low + 1))
        scoring["lookup"] = {str(raw): sum(steps[: n + 1]) / 100 for n, raw in enumerate(range(raw_low, raw_high + 1))}
    definition = {
        "higher_is_better": draw(st.booleans()),
        "reliable_change": draw(st.floats(0.01, 50)),
        "risk_items": draw(st.lists(st.sampled_from(keys), unique=True, max_size=2)),
        "items": items,
        "scoring": scoring,
    }
    scoring["bands"] = draw(bands_within(score_bounds(definition)))
    return definition


@st.composite
def bands_within(draw: st.DrawFn, bounds: tuple[float, float]) -> list[dict[str, Any]]:
    """Zero or more contiguous bands from the lowest to the highest score, cut at hundredths."""
    low, high = bounds
    first_cut, last_cut = math.ceil(low * 100) + 1, math.floor(high * 100)
    if not draw(st.booleans()):
        return []
    cuts = (
        sorted(draw(st.lists(st.integers(first_cut, last_cut), unique=True, max_size=4)))
        if first_cut <= last_cut
        else []
    )
    mins = [low] + [cut / 100 for cut in cuts]
    maxes = [cut / 100 - 0.001 for cut in cuts] + [high]
    return [{"label": f"band{n}", "min": mins[n], "max": maxes[n]} for n in range(len(mins))]


def expected_score(definition: Mapping[str, Any], raw: int, answered: int) -> float:
    """Oracle for the documented score rules, using Decimal rather than the engine's Fraction code."""
    scoring = definition["scoring"]
    decimals = scoring.get("decimals", 2)
    if scoring.get("lookup") is not None:
        return float(scoring["lookup"][str(raw)])
    if scoring["method"] == "mean":
        return half_up(raw, answered, decimals)
    return half_up(raw * len(definition["items"]), answered, decimals)


@settings(max_examples=300)
@given(data=st.data())
def test_random_custom_definitions_validate_and_score_within_range(data: st.DataObject) -> None:
    definition = data.draw(custom_definitions())
    validate_definition(orjson.loads(orjson.dumps(definition)))
    answers = data.draw(valid_answers(definition))
    result = score_answers(definition, answers)
    low, high = score_bounds(definition)
    raw = expected_raw(definition, answers)
    answered = sum(1 for item in definition["items"] if answers.get(item["key"]) is not None)
    assert low <= result.score <= high
    assert result.raw_score == raw
    assert result.score == expected_score(definition, raw, answered)
    lowest = {item["key"]: item["min"] for item in definition["items"]}
    risky = [
        key for key in definition["risk_items"] if (answer := answers.get(key)) is not None and answer > lowest[key]
    ]
    assert result.risk_items == tuple(risky)
    bands = definition["scoring"]["bands"]
    if bands:
        reached = [band["label"] for band in bands if result.score >= band["min"]]
        assert result.band == reached[-1]
    else:
        assert result.band is None


@given(data=st.data())
def test_random_custom_definitions_refuse_bad_answers(data: st.DataObject) -> None:
    definition = data.draw(custom_definitions())
    items = definition["items"]
    answers: dict[str, object] = {item["key"]: item["max"] for item in items}
    item = data.draw(st.sampled_from(items))
    answers[item["key"]] = data.draw(st.integers(item["max"] + 1, item["max"] + 100) | st.floats(allow_nan=False))
    with pytest.raises(AnswerError) as caught:
        score_answers(definition, answers)
    assert codes(caught.value) == [(f"answers.{item['key']}", "OUT_OF_RANGE")]
