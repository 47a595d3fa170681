"""The survey instruments the service ships, as versioned data for the ``survey_instruments`` table.

Each ``definition`` is the JSON object ``domain/scoring.py`` scores from (its docstring describes the shape), so
a stored response can always be rescored from its instrument version alone. A change to wording or scoring is a
new ``version``, never an edit: responses keep pointing at the version they were scored with.

Item wording is stored only where its licence allows. PHQ-9 and GAD-7 were developed with an educational grant
from Pfizer and may be reproduced without permission, so their wording is here (``wording_licensed=True``).
(S)WEMWBS, CORE-10, the Herth Hope Index and the UCLA loneliness items are copyright and licensed to users
separately, so their items carry neutral labels ("Item 1") and organisations present their licensed copy.

``reliable_change`` is the change in score points evaluators treat as more than measurement error:

- SWEMWBS 3 (metric score): approximation. A Jacobson-Truax index from population norms (SD about 3.5,
  Cronbach's alpha about 0.85) is 3-4 points, and 3 is the upper end of the 1-3 point minimal important
  difference reported by Shah et al. 2018.
- WEMWBS 8: approximation. Jacobson-Truax with Tennant et al. 2007's population SD (about 8.8) and alpha 0.89
  gives about 8.1. (The scale authors' "3 points" is a minimal important difference, not a reliable change.)
- PHQ-9 6 and GAD-7 4: the reliable improvement criteria of NHS Talking Therapies (formerly IAPT).
- CORE-10 6: the reliable change index reported by Barkham et al. 2013.
- HHI 5: approximation; no index is published. Jacobson-Truax with SD about 5 and test-retest 0.91 (Herth 1992)
  gives about 4.2, rounded up to whole points.
- UCLA-3 3: approximation; Jacobson-Truax with SD about 1.7 and alpha 0.72 (Hughes et al. 2004) gives about
  2.5, rounded up to whole points.
- GSE 6: approximation; no index is published. Jacobson-Truax with SD about 5 and alpha about 0.86 (the
  ranges Scholz et al. 2002 report across 25 countries) gives about 5.2, rounded up to whole points.
- QPR-15 11: approximation; Jacobson-Truax with SD about 11 and alpha 0.89 (Williams et al. 2015) gives
  about 10.1, rounded up to whole points.

The same sources, one line each, are in ``RELIABLE_CHANGE_SOURCES``: evaluators' rows and the codebook cite
them beside every threshold.

Two measures of the things group peer support is expected to change (self-efficacy, personal recovery and
empowerment), chosen because their licences allow a service to use them without a fee:

- General Self-Efficacy Scale (GSE; Schwarzer & Jerusalem 1995, in Weinman, Wright & Johnston, *Measures in
  health psychology: a user's portfolio*, NFER-NELSON, pp. 35-37): the authors grant permission to use and
  reproduce the scale without asking, provided the source is cited (R. Schwarzer, "Everything you wanted to
  know about the General Self-Efficacy Scale", 2014). Ten items 1-4 ("not at all true" .. "exactly true"),
  summed 10-40, no reversed items, no published bands. Items are stored with neutral labels: the permission is
  given to studies, so organisations present their own copy of the wording.
- Questionnaire about the Process of Recovery, 15-item version (QPR-15; Neil et al. 2009, Law et al. 2014,
  psychometrics Williams et al. 2015, Br J Psychiatry 207:551-555): freely available, permission not required
  for use (PhenX Toolkit protocol 661101). Fifteen items 0-4 ("disagree strongly" .. "agree strongly"),
  summed 0-60, higher is more recovery; it covers the CHIME domains, empowerment among them. Neutral labels,
  as for the GSE.

``CASENESS`` holds the NHS Talking Therapies caseness cut-offs (PHQ-9 10 or more, GAD-7 8 or more; NHS Talking
Therapies for anxiety and depression Manual, NHS England): a response at or above its cut-off is a "case";
recovery is a case at baseline that is no longer a case at follow-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ShippedInstrument:
    """One row of ``survey_instruments`` with no organisation: reference data every tenant reads."""

    code: str
    version: int
    name: str
    wording_licensed: bool
    definition: dict[str, Any]


# Stewart-Brown et al. 2009 (Health Qual Life Outcomes 7:15), SWEMWBS raw score (7-35) to Rasch-based metric
# score, as published by Warwick Medical School for comparing SWEMWBS results across studies.
SWEMWBS_METRIC_SCORES: tuple[float, ...] = (
    7.00, 9.51, 11.25, 12.40, 13.33, 14.08, 14.75, 15.32, 15.84, 16.36,
    16.88, 17.43, 17.98, 18.59, 19.25, 19.98, 20.73, 21.54, 22.35, 23.21,
    24.11, 25.03, 26.02, 27.03, 28.13, 29.31, 30.70, 32.55, 35.00,
)  # fmt: skip

_FREQUENCY_OPTIONS = ["Not at all", "Several days", "More than half the days", "Nearly every day"]

_PHQ9_ITEMS = [
    "Little interest or pleasure in doing things",
    "Feeling down, depressed, or hopeless",
    "Trouble falling or staying asleep, or sleeping too much",
    "Feeling tired or having little energy",
    "Poor appetite or overeating",
    "Feeling bad about yourself - or that you are a failure or have let yourself or your family down",
    "Trouble concentrating on things, such as reading the newspaper or watching television",
    "Moving or speaking so slowly that other people could have noticed? Or the opposite - being so fidgety or "
    "restless that you have been moving around a lot more than usual",
    "Thoughts that you would be better off dead or of hurting yourself in some way",
]

_GAD7_ITEMS = [
    "Feeling nervous, anxious, or on edge",
    "Not being able to stop or control worrying",
    "Worrying too much about different things",
    "Trouble relaxing",
    "Being so restless that it is hard to sit still",
    "Becoming easily annoyed or irritable",
    "Feeling afraid, as if something awful might happen",
]


def _items(
    count: int, low: int, high: int, *, labels: Sequence[str] = (), reversed_items: Sequence[int] = ()
) -> list[dict[str, Any]]:
    """Items ``item1..itemN`` on one scale; neutral "Item N" labels unless licensed wording is given."""
    names = list(labels) or [f"Item {number}" for number in range(1, count + 1)]
    return [
        {
            "key": f"item{number}",
            "label": names[number - 1],
            "min": low,
            "max": high,
            "reverse": number in reversed_items,
        }
        for number in range(1, count + 1)
    ]


def _bands(*bands: tuple[str, int, int]) -> list[dict[str, Any]]:
    """Published bands as ``(label, min, max)`` on the whole-number score scale."""
    return [{"label": label, "min": low, "max": high} for label, low, high in bands]


def _definition(
    items: list[dict[str, Any]],
    *,
    higher_is_better: bool,
    reliable_change: float,
    bands: list[dict[str, Any]] | None = None,
    lookup: dict[str, float] | None = None,
    risk_items: Sequence[int] = (),
    max_missing: int = 0,
    decimals: int = 2,
    wording: tuple[str, list[str]] | None = None,
) -> dict[str, Any]:
    """A complete definition dict in the shape ``scoring.validate_definition`` accepts.

    ``wording`` is ``(instructions, response_labels)`` and is given only for licensed instruments.
    """
    definition: dict[str, Any] = {
        "higher_is_better": higher_is_better,
        "reliable_change": reliable_change,
        "risk_items": [f"item{number}" for number in risk_items],
        "items": items,
        "scoring": {
            "method": "sum",
            "reversed": [item["key"] for item in items if item["reverse"]],
            "lookup": lookup,
            "bands": bands or [],
            "missing": {"max_missing": max_missing, "rule": "prorate" if max_missing else "none"},
            "decimals": decimals,
        },
    }
    if wording is not None:
        definition["instructions"], definition["response_labels"] = wording[0], list(wording[1])
    return definition


def _swemwbs() -> ShippedInstrument:
    """Seven positively worded items 1-5; the raw sum 7-35 is converted to the metric score by table."""
    lookup = {str(raw): score for raw, score in zip(range(7, 36), SWEMWBS_METRIC_SCORES, strict=True)}
    definition = _definition(_items(7, 1, 5), higher_is_better=True, reliable_change=3.0, lookup=lookup)
    return ShippedInstrument(
        "swemwbs", 1, "Short Warwick-Edinburgh Mental Wellbeing Scale (SWEMWBS)", False, definition
    )


def _wemwbs() -> ShippedInstrument:
    """Fourteen positively worded items 1-5, summed 14-70."""
    definition = _definition(_items(14, 1, 5), higher_is_better=True, reliable_change=8.0)
    return ShippedInstrument("wemwbs", 1, "Warwick-Edinburgh Mental Wellbeing Scale (WEMWBS)", False, definition)


def _phq9() -> ShippedInstrument:
    """Nine items 0-3, summed 0-27, Kroenke et al. 2001 severity bands; item 9 (self-harm thoughts) is a risk item."""
    bands = _bands(
        ("minimal", 0, 4), ("mild", 5, 9), ("moderate", 10, 14), ("moderately_severe", 15, 19), ("severe", 20, 27)
    )
    instructions = "Over the last 2 weeks, how often have you been bothered by any of the following problems?"
    definition = _definition(
        _items(9, 0, 3, labels=_PHQ9_ITEMS),
        higher_is_better=False,
        reliable_change=6.0,
        bands=bands,
        risk_items=[9],
        wording=(instructions, _FREQUENCY_OPTIONS),
    )
    return ShippedInstrument("phq9", 1, "Patient Health Questionnaire (PHQ-9)", True, definition)


def _gad7() -> ShippedInstrument:
    """Seven items 0-3, summed 0-21, Spitzer et al. 2006 bands at cut-offs 5, 10 and 15."""
    bands = _bands(("minimal", 0, 4), ("mild", 5, 9), ("moderate", 10, 14), ("severe", 15, 21))
    instructions = "Over the last 2 weeks, how often have you been bothered by the following problems?"
    definition = _definition(
        _items(7, 0, 3, labels=_GAD7_ITEMS),
        higher_is_better=False,
        reliable_change=4.0,
        bands=bands,
        wording=(instructions, _FREQUENCY_OPTIONS),
    )
    return ShippedInstrument("gad7", 1, "Generalised Anxiety Disorder Assessment (GAD-7)", True, definition)


def _core10() -> ShippedInstrument:
    """Ten items 0-4, items 2 and 3 positively worded (reversed), total 0-40 (Barkham et al. 2013).

    One missing item is prorated (sum * 10 / 9, one decimal place, halves up), matching CORE's "mean item
    score x 10" clinical score; two or more missing make the form unscorable. Item 6 (plans to end one's life)
    is the risk item. Bands are the published clinical cut-offs.
    """
    bands = _bands(
        ("healthy", 0, 5),
        ("low", 6, 10),
        ("mild", 11, 14),
        ("moderate", 15, 19),
        ("moderate_severe", 20, 24),
        ("severe", 25, 40),
    )
    definition = _definition(
        _items(10, 0, 4, reversed_items=[2, 3]),
        higher_is_better=False,
        reliable_change=6.0,
        bands=bands,
        risk_items=[6],
        max_missing=1,
        decimals=1,
    )
    return ShippedInstrument("core10", 1, "Clinical Outcomes in Routine Evaluation (CORE-10)", False, definition)


def _hhi() -> ShippedInstrument:
    """Twelve items 1-4, items 3 and 6 negatively worded (reversed), summed 12-48 (Herth 1992)."""
    definition = _definition(_items(12, 1, 4, reversed_items=[3, 6]), higher_is_better=True, reliable_change=5.0)
    return ShippedInstrument("hhi", 1, "Herth Hope Index (HHI)", False, definition)


def _gse() -> ShippedInstrument:
    """Ten items 1-4, summed 10-40, none reversed (Schwarzer & Jerusalem 1995); higher is more self-efficacy."""
    definition = _definition(_items(10, 1, 4), higher_is_better=True, reliable_change=6.0)
    return ShippedInstrument("gse", 1, "General Self-Efficacy Scale (GSE)", False, definition)


def _qpr15() -> ShippedInstrument:
    """Fifteen items 0-4, summed 0-60, none reversed (Law et al. 2014); higher is more personal recovery."""
    definition = _definition(_items(15, 0, 4), higher_is_better=True, reliable_change=11.0)
    return ShippedInstrument(
        "qpr15", 1, "Questionnaire about the Process of Recovery, 15 items (QPR-15)", False, definition
    )


def _ucla3() -> ShippedInstrument:
    """Three items 1-3, summed 3-9 (Hughes et al. 2004); 6 or more is the usual "lonely" cut-off."""
    bands = _bands(("not_lonely", 3, 5), ("lonely", 6, 9))
    definition = _definition(_items(3, 1, 3), higher_is_better=False, reliable_change=3.0, bands=bands)
    return ShippedInstrument("ucla3", 1, "UCLA Loneliness Scale, 3-item version (UCLA-3)", False, definition)


SHIPPED_INSTRUMENTS: list[ShippedInstrument] = [
    _swemwbs(),
    _wemwbs(),
    _phq9(),
    _gad7(),
    _core10(),
    _hhi(),
    _ucla3(),
    _gse(),
    _qpr15(),
]

RELIABLE_CHANGE_SOURCES: dict[str, str] = {
    "swemwbs": "approximation: Jacobson-Truax from population norms (SD about 3.5, alpha about 0.85), upper end "
    "of the minimal important difference of Shah et al. 2018",
    "wemwbs": "approximation: Jacobson-Truax with Tennant et al. 2007 (SD about 8.8, alpha 0.89)",
    "phq9": "NHS Talking Therapies reliable improvement criterion (a change of 6 or more)",
    "gad7": "NHS Talking Therapies reliable improvement criterion (a change of 4 or more)",
    "core10": "reliable change index of Barkham et al. 2013",
    "hhi": "approximation: Jacobson-Truax with SD about 5 and test-retest 0.91 (Herth 1992)",
    "ucla3": "approximation: Jacobson-Truax with SD about 1.7 and alpha 0.72 (Hughes et al. 2004)",
    "gse": "approximation: Jacobson-Truax with SD about 5 and alpha about 0.86 (Scholz et al. 2002)",
    "qpr15": "approximation: Jacobson-Truax with SD about 11 and alpha 0.89 (Williams et al. 2015)",
}
CUSTOM_RELIABLE_CHANGE_SOURCE = "declared by the organisation in its custom instrument's definition"

CASENESS: dict[str, float] = {"phq9": 10.0, "gad7": 8.0}
CASENESS_SOURCE = "NHS Talking Therapies caseness cut-offs: PHQ-9 10 or more, GAD-7 8 or more"


def reliable_change_source(code: str) -> str:
    """Where an instrument's reliable change threshold comes from (custom instruments declare their own)."""
    return RELIABLE_CHANGE_SOURCES.get(code, CUSTOM_RELIABLE_CHANGE_SOURCE)


def shipped_instrument(code: str, version: int | None = None) -> ShippedInstrument:
    """The shipped instrument with this code: the given version, or the latest. Raises KeyError if none."""
    matches = [item for item in SHIPPED_INSTRUMENTS if item.code == code and version in (None, item.version)]
    if not matches:
        raise KeyError(f"no shipped instrument {code!r}" + ("" if version is None else f" version {version}"))
    return max(matches, key=lambda item: item.version)


__all__ = [
    "CASENESS",
    "RELIABLE_CHANGE_SOURCES",
    "SHIPPED_INSTRUMENTS",
    "SWEMWBS_METRIC_SCORES",
    "ShippedInstrument",
    "reliable_change_source",
    "shipped_instrument",
]
