"""Shipped instrument definitions: the published facts each one must carry, checked against literal values."""

from __future__ import annotations

import json

import orjson
import pytest

from programme_api.domain.instruments import SHIPPED_INSTRUMENTS, ShippedInstrument, shipped_instrument
from programme_api.domain.scoring import score_bounds, validate_definition

# Stewart-Brown et al. 2009 conversion table, typed in independently of the module under test.
PUBLISHED_SWEMWBS = {
    7: 7.00, 8: 9.51, 9: 11.25, 10: 12.40, 11: 13.33, 12: 14.08, 13: 14.75, 14: 15.32, 15: 15.84, 16: 16.36,
    17: 16.88, 18: 17.43, 19: 17.98, 20: 18.59, 21: 19.25, 22: 19.98, 23: 20.73, 24: 21.54, 25: 22.35,
    26: 23.21, 27: 24.11, 28: 25.03, 29: 26.02, 30: 27.03, 31: 28.13, 32: 29.31, 33: 30.70, 34: 32.55,
    35: 35.00,
}  # fmt: skip

# code: (items, item min, item max, reversed, risk items, score bounds, higher_is_better, reliable_change)
EXPECTED = {
    "swemwbs": (7, 1, 5, [], [], (7.0, 35.0), True, 3.0),
    "wemwbs": (14, 1, 5, [], [], (14.0, 70.0), True, 8.0),
    "phq9": (9, 0, 3, [], ["item9"], (0.0, 27.0), False, 6.0),
    "gad7": (7, 0, 3, [], [], (0.0, 21.0), False, 4.0),
    "core10": (10, 0, 4, ["item2", "item3"], ["item6"], (0.0, 40.0), False, 6.0),
    "hhi": (12, 1, 4, ["item3", "item6"], [], (12.0, 48.0), True, 5.0),
    "ucla3": (3, 1, 3, [], [], (3.0, 9.0), False, 3.0),
    "gse": (10, 1, 4, [], [], (10.0, 40.0), True, 6.0),
    "qpr15": (15, 0, 4, [], [], (0.0, 60.0), True, 11.0),
}

EXPECTED_BANDS = {
    "swemwbs": [],
    "wemwbs": [],
    "phq9": [
        ("minimal", 0, 4),
        ("mild", 5, 9),
        ("moderate", 10, 14),
        ("moderately_severe", 15, 19),
        ("severe", 20, 27),
    ],
    "gad7": [("minimal", 0, 4), ("mild", 5, 9), ("moderate", 10, 14), ("severe", 15, 21)],
    "core10": [
        ("healthy", 0, 5),
        ("low", 6, 10),
        ("mild", 11, 14),
        ("moderate", 15, 19),
        ("moderate_severe", 20, 24),
        ("severe", 25, 40),
    ],
    "hhi": [],
    "ucla3": [("not_lonely", 3, 5), ("lonely", 6, 9)],
    "gse": [],
    "qpr15": [],
}

BY_CODE = {instrument.code: instrument for instrument in SHIPPED_INSTRUMENTS}
ALL = pytest.mark.parametrize("instrument", SHIPPED_INSTRUMENTS, ids=lambda instrument: instrument.code)


def test_the_nine_instruments_are_shipped_once_each_at_version_1() -> None:
    assert [(item.code, item.version) for item in SHIPPED_INSTRUMENTS] == [
        ("swemwbs", 1),
        ("wemwbs", 1),
        ("phq9", 1),
        ("gad7", 1),
        ("core10", 1),
        ("hhi", 1),
        ("ucla3", 1),
        ("gse", 1),
        ("qpr15", 1),
    ]


@ALL
def test_definition_is_valid_and_survives_a_json_round_trip(instrument: ShippedInstrument) -> None:
    validate_definition(instrument.definition)
    assert orjson.loads(orjson.dumps(instrument.definition)) == instrument.definition
    assert json.loads(json.dumps(instrument.definition)) == instrument.definition


@ALL
def test_items_scale_reversal_risk_and_direction_match_the_published_instrument(instrument: ShippedInstrument) -> None:
    count, low, high, reversed_items, risk, bounds, higher_is_better, reliable_change = EXPECTED[instrument.code]
    definition = instrument.definition
    assert [item["key"] for item in definition["items"]] == [f"item{n}" for n in range(1, count + 1)]
    assert {(item["min"], item["max"]) for item in definition["items"]} == {(low, high)}
    assert definition["scoring"]["reversed"] == reversed_items
    assert [item["key"] for item in definition["items"] if item["reverse"]] == reversed_items
    assert definition["risk_items"] == risk
    assert score_bounds(definition) == bounds
    assert definition["higher_is_better"] is higher_is_better
    assert definition["reliable_change"] == reliable_change
    assert definition["scoring"]["method"] == "sum"


@ALL
def test_bands_are_the_published_cut_offs(instrument: ShippedInstrument) -> None:
    bands = [(band["label"], band["min"], band["max"]) for band in instrument.definition["scoring"]["bands"]]
    assert bands == EXPECTED_BANDS[instrument.code]


@ALL
def test_only_core10_tolerates_a_missing_item(instrument: ShippedInstrument) -> None:
    expected = (
        {"max_missing": 1, "rule": "prorate"} if instrument.code == "core10" else {"max_missing": 0, "rule": "none"}
    )
    assert instrument.definition["scoring"]["missing"] == expected


def test_swemwbs_lookup_is_the_published_conversion_table() -> None:
    lookup = BY_CODE["swemwbs"].definition["scoring"]["lookup"]
    assert lookup == {str(raw): score for raw, score in PUBLISHED_SWEMWBS.items()}


@pytest.mark.parametrize("code", ["wemwbs", "phq9", "gad7", "core10", "hhi", "ucla3", "gse", "qpr15"])
def test_other_instruments_have_no_lookup(code: str) -> None:
    assert BY_CODE[code].definition["scoring"]["lookup"] is None


@pytest.mark.parametrize("code", ["phq9", "gad7"])
def test_freely_reproducible_instruments_carry_their_wording(code: str) -> None:
    instrument = BY_CODE[code]
    definition = instrument.definition
    assert instrument.wording_licensed is True
    assert definition["instructions"].startswith("Over the last 2 weeks, how often have you been bothered by")
    assert definition["response_labels"] == [
        "Not at all",
        "Several days",
        "More than half the days",
        "Nearly every day",
    ]
    assert all(not item["label"].startswith("Item ") for item in definition["items"])


def test_phq9_and_gad7_item_wording() -> None:
    phq9 = [item["label"] for item in BY_CODE["phq9"].definition["items"]]
    gad7 = [item["label"] for item in BY_CODE["gad7"].definition["items"]]
    assert phq9[0] == "Little interest or pleasure in doing things"
    assert phq9[8] == "Thoughts that you would be better off dead or of hurting yourself in some way"
    assert gad7[0] == "Feeling nervous, anxious, or on edge"
    assert gad7[6] == "Feeling afraid, as if something awful might happen"


@pytest.mark.parametrize("code", ["swemwbs", "wemwbs", "core10", "hhi", "ucla3", "gse", "qpr15"])
def test_copyright_instruments_store_only_neutral_labels(code: str) -> None:
    instrument = BY_CODE[code]
    definition = instrument.definition
    assert instrument.wording_licensed is False
    assert [item["label"] for item in definition["items"]] == [
        f"Item {n}" for n in range(1, len(definition["items"]) + 1)
    ]
    assert "instructions" not in definition
    assert "response_labels" not in definition


def test_shipped_instrument_finds_by_code_and_version() -> None:
    assert shipped_instrument("phq9") is BY_CODE["phq9"]
    assert shipped_instrument("core10", 1) is BY_CODE["core10"]
    with pytest.raises(KeyError, match="'nope'"):
        shipped_instrument("nope")
    with pytest.raises(KeyError, match="version 2"):
        shipped_instrument("phq9", 2)


def test_every_shipped_instrument_cites_its_reliable_change_and_licence() -> None:
    from programme_api.domain import instruments

    assert set(instruments.RELIABLE_CHANGE_SOURCES) == set(BY_CODE)
    assert instruments.reliable_change_source("custom_mood") == (
        "declared by the organisation in its custom instrument's definition"
    )
    assert instruments.CASENESS == {"phq9": 10.0, "gad7": 8.0}
    for cited in ("Schwarzer & Jerusalem 1995", "permission to use and reproduce", "QPR-15",
                  "permission not required", "PhenX Toolkit"):  # fmt: skip
        assert cited in " ".join((instruments.__doc__ or "").split()), cited


@pytest.mark.parametrize(
    ("code", "answers", "score"),
    [
        # GSE: the sum of ten answers 1-4 (Schwarzer & Jerusalem 1995): lowest 10, highest 40.
        ("gse", [1] * 10, 10.0),
        ("gse", [4] * 10, 40.0),
        ("gse", [1, 2, 3, 4, 1, 2, 3, 4, 1, 2], 23.0),
        # QPR-15: the sum of fifteen answers 0-4 (Law et al. 2014): 0 to 60.
        ("qpr15", [0] * 15, 0.0),
        ("qpr15", [4] * 15, 60.0),
        ("qpr15", [3, 3, 2, 4, 1, 0, 2, 3, 3, 4, 2, 2, 1, 3, 4], 37.0),
    ],
)
def test_self_efficacy_and_recovery_scores_are_published_sums(code: str, answers: list[int], score: float) -> None:
    from programme_api.domain.scoring import score_answers

    result = score_answers(BY_CODE[code].definition, {f"item{i + 1}": a for i, a in enumerate(answers)})
    assert (result.raw_score, result.score, result.band) == (score, score, None)


@pytest.mark.parametrize("code", ["gse", "qpr15"])
def test_self_efficacy_and_recovery_measures_refuse_missing_items(code: str) -> None:
    from programme_api.domain.scoring import AnswerError, score_answers

    items = BY_CODE[code].definition["items"]
    answers = {item["key"]: item["min"] for item in items[1:]}
    with pytest.raises(AnswerError):
        score_answers(BY_CODE[code].definition, answers)
