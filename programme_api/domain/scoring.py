"""Score survey answers from an instrument's stored definition alone.

A definition is the JSON object kept in ``survey_instruments.definition``; shipped instruments
(``domain/instruments.py``) and organisations' custom instruments share one shape::

    {
      "higher_is_better": true,            # which direction of change is improvement
      "reliable_change": 3.0,              # score points a change must exceed to count as reliable
      "risk_items": ["item9"],             # a raw answer above the item's lowest option is a risk answer
      "instructions": "...",               # optional, only where the wording licence allows
      "response_labels": ["...", ...],     # optional, one per option, items must share one scale
      "items": [{"key": "item1", "label": "Item 1", "min": 1, "max": 5, "reverse": false}, ...],
      "scoring": {
        "method": "sum" | "mean",
        "reversed": ["item2"],             # scored as min + max - answer
        "lookup": {"7": 7.0, ...} | null,  # raw sum -> score table (string keys: JSON objects have no int keys)
        "bands": [{"label": "mild", "min": 5, "max": 9}, ...],
        "missing": {"max_missing": 1, "rule": "none" | "prorate"},
        "decimals": 2                      # optional, how computed (prorated or mean) scores are rounded
      }
    }

Scoring rules, chosen so that a stored score can be recomputed exactly from the stored answers:

- ``raw_score`` is the plain sum of the answered items after reversal.
- ``score`` is the lookup value of the raw sum (lookup tables need every item), else the mean of the answered
  items (``mean``), else the sum prorated to the full item count: ``raw * items / answered`` (``sum``). Prorated
  and mean scores are computed exactly with fractions and rounded half up (halves away from zero) to ``decimals``
  places (default 2), so CORE-10 with one item missing is ``sum * 10 / 9`` to one decimal place.
- Bands are cut-offs: a score belongs to the highest band whose ``min`` it reaches. Published bands are written
  on the whole-number scale (PHQ-9 mild 5-9, moderate 10-14), so a prorated 9.4 is still mild: it has not
  reached the moderate cut-off of 10. Bands must cover the whole score range, so every score gets one.
"""

from __future__ import annotations

import enum
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeGuard

from .errors import DomainError, ErrorCode

METHODS = ("sum", "mean")
MISSING_RULES = ("none", "prorate")
DEFAULT_DECIMALS = 2
MAX_DECIMALS = 4
MAX_ITEMS = 200
MAX_LABEL_LENGTH = 500
MAX_INSTRUCTIONS_LENGTH = 4000
ITEM_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")

_TOP_REQUIRED = frozenset({"higher_is_better", "reliable_change", "risk_items", "items", "scoring"})
_TOP_OPTIONAL = frozenset({"instructions", "response_labels"})
_ITEM_REQUIRED = frozenset({"key", "label", "min", "max"})
_ITEM_OPTIONAL = frozenset({"reverse"})
_SCORING_REQUIRED = frozenset({"method", "reversed", "bands", "missing"})
_SCORING_OPTIONAL = frozenset({"lookup", "decimals"})
_BAND_KEYS = frozenset({"label", "min", "max"})
_MISSING_KEYS = frozenset({"max_missing", "rule"})


class AnswerProblemCode(enum.StrEnum):
    UNKNOWN_ITEM = "UNKNOWN_ITEM"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    MISSING_ITEM = "MISSING_ITEM"
    TOO_MANY_MISSING = "TOO_MANY_MISSING"


@dataclass(frozen=True, slots=True)
class AnswerProblem:
    """One thing wrong with submitted answers, addressed to an input field such as ``answers.item3``."""

    field: str
    message: str
    code: AnswerProblemCode


class AnswerError(DomainError):
    """Answers refused as a whole, listing every problem so a form can mark all of them at once.

    It is a ``DomainError`` (code ``INVALID``) so the API reports it like any other refusal; ``problems``
    carries the per-field detail. Messages never repeat the answer given: answers are health data.
    """

    def __init__(self, problems: Sequence[AnswerProblem]) -> None:
        if not problems:
            raise ValueError("AnswerError needs at least one problem")
        self.problems: tuple[AnswerProblem, ...] = tuple(problems)
        message = "; ".join(f"{problem.field}: {problem.message}" for problem in self.problems)
        field = self.problems[0].field if len(self.problems) == 1 else "answers"
        super().__init__(ErrorCode.INVALID, message, field)

    def problems_found(self) -> list[tuple[str | None, str, ErrorCode]]:
        return [(problem.field, problem.message, ErrorCode(problem.code.value)) for problem in self.problems]


@dataclass(frozen=True, slots=True)
class DefinitionProblem:
    """One thing wrong with an instrument definition, addressed by path, e.g. ``definition.scoring.bands[1].min``."""

    field: str
    message: str


class DefinitionError(ValueError):
    """A definition that cannot be scored; lists every problem so a custom instrument is fixed in one pass."""

    def __init__(self, problems: Sequence[DefinitionProblem]) -> None:
        self.problems: tuple[DefinitionProblem, ...] = tuple(problems)
        details = "; ".join(f"{problem.field}: {problem.message}" for problem in self.problems)
        super().__init__(f"invalid instrument definition: {details}")


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """What a response stores beside its answers: scores, band, and the risk answers that raise alerts."""

    raw_score: float
    score: float
    band: str | None
    risk_items: tuple[str, ...]
    missing_items: tuple[str, ...]


def score_answers(definition: Mapping[str, Any], answers: Mapping[str, object]) -> ScoreResult:
    """Score one response from the definition dict alone, refusing answers that would give a wrong score.

    The definition is validated first because it comes from a database column (possibly an organisation's
    custom instrument): a malformed one raises ``DefinitionError`` rather than producing a silent bad score.
    Answers are ``{item key: int or None}``; an absent key and ``None`` both mean unanswered.
    """
    validate_definition(definition)
    items: list[dict[str, Any]] = definition["items"]
    scoring: dict[str, Any] = definition["scoring"]
    missing = tuple(item["key"] for item in items if answers.get(item["key"]) is None)
    problems = _answer_problems(items, scoring["missing"], answers, missing)
    if problems:
        raise AnswerError(problems)
    answered = {item["key"]: _answer(answers, item["key"]) for item in items if item["key"] not in missing}
    raw = sum(
        _scored_value(item, answered[item["key"]], scoring["reversed"]) for item in items if item["key"] in answered
    )
    score = _score(scoring, raw, len(answered), len(items))
    return ScoreResult(
        raw_score=float(raw),
        score=score,
        band=_band(scoring["bands"], score),
        risk_items=_risk_answers(items, definition["risk_items"], answered),
        missing_items=missing,
    )


def score_bounds(definition: Mapping[str, Any]) -> tuple[float, float]:
    """The lowest and highest score the definition can produce, e.g. for charts and evaluators' ranges."""
    validate_definition(definition)
    return _score_bounds(definition["items"], definition["scoring"])


def validate_definition(definition: object) -> None:
    """Refuse a definition that scoring could not trust, naming every problem at once.

    Scoring works from the stored dict alone, so this checks everything it relies on: item keys and scales,
    reversed and risk items that exist, a lookup table covering every possible raw sum, bands that are ordered
    and cover the whole score range, and a missing-item rule that can actually be applied. Unknown keys are
    refused too, so a misspelt ``"band"`` is reported instead of silently scoring without bands.
    """
    problems = _definition_problems(definition)
    if problems:
        raise DefinitionError(problems)


# Answers


def _answer(answers: Mapping[str, object], key: str) -> int:
    """An answer already checked to be a whole number; narrows the type for scoring."""
    value = answers[key]
    assert isinstance(value, int)
    return value


def _answer_problems(
    items: Sequence[Mapping[str, Any]],
    missing_rule: Mapping[str, Any],
    answers: Mapping[str, object],
    missing: Sequence[str],
) -> list[AnswerProblem]:
    """Every problem with the answers, in item order, then missing-count, then unknown keys."""
    problems = [problem for item in items if (problem := _range_problem(item, answers.get(item["key"])))]
    problems += _missing_problems(missing_rule, missing)
    known = {item["key"] for item in items}
    problems += [
        AnswerProblem(f"answers.{key}", "is not an item of this instrument", AnswerProblemCode.UNKNOWN_ITEM)
        for key in sorted(str(key) for key in answers if key not in known)
    ]
    return problems


def _range_problem(item: Mapping[str, Any], value: object) -> AnswerProblem | None:
    """Refuse anything but a whole number on the item's scale; bools and floats are not answers."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and item["min"] <= value <= item["max"]:
        return None
    message = f"must be a whole number from {item['min']} to {item['max']}"
    return AnswerProblem(f"answers.{item['key']}", message, AnswerProblemCode.OUT_OF_RANGE)


def _missing_problems(missing_rule: Mapping[str, Any], missing: Sequence[str]) -> list[AnswerProblem]:
    """Unanswered items beyond what the missing-item rule tolerates: each item, plus the count when it allows some."""
    max_missing: int = missing_rule["max_missing"]
    if len(missing) <= max_missing:
        return []
    problems = [AnswerProblem(f"answers.{key}", "needs an answer", AnswerProblemCode.MISSING_ITEM) for key in missing]
    if max_missing > 0:
        message = f"{len(missing)} items are unanswered; at most {max_missing} may be missing"
        problems.insert(0, AnswerProblem("answers", message, AnswerProblemCode.TOO_MANY_MISSING))
    return problems


def _scored_value(item: Mapping[str, Any], answer: int, reversed_items: Sequence[str]) -> int:
    """Reverse-keyed items count ``min + max - answer`` so every item points the same way."""
    if item["key"] in reversed_items:
        return int(item["min"]) + int(item["max"]) - answer
    return answer


def _risk_answers(
    items: Sequence[Mapping[str, Any]], risk_items: Sequence[str], answered: Mapping[str, int]
) -> tuple[str, ...]:
    """Risk items answered above their lowest option ("not at all"), judged on the answer the person gave."""
    lowest = {item["key"]: item["min"] for item in items}
    return tuple(key for key in risk_items if key in answered and answered[key] > lowest[key])


# Scores


def _score(scoring: Mapping[str, Any], raw: int, answered: int, item_count: int) -> float:
    """Lookup, mean or (prorated) sum of the raw score, as declared; see the module docstring for the rules."""
    decimals: int = scoring.get("decimals", DEFAULT_DECIMALS)
    lookup: Mapping[str, float] | None = scoring.get("lookup")
    if lookup is not None:
        return float(lookup[str(raw)])
    if scoring["method"] == "mean":
        return _round_half_up(Fraction(raw, answered), decimals)
    return _round_half_up(Fraction(raw * item_count, answered), decimals)


def _round_half_up(value: Fraction, decimals: int) -> float:
    """Round exactly, halves away from zero (Decimal's ROUND_HALF_UP, as spreadsheets do).

    Float rounding would not do: ``round(0.125, 2)`` is 0.12 (halves to even, and 0.125 as a float is inexact),
    which would make a stored score differ from the same score worked out by hand or in a spreadsheet.
    """
    scale = 10**decimals
    magnitude = math.floor(abs(value) * scale + Fraction(1, 2))
    return float(Fraction(magnitude if value >= 0 else -magnitude, scale))


def _band(bands: Sequence[Mapping[str, Any]], score: float) -> str | None:
    """The highest band whose ``min`` the score reaches (bands are ascending cut-offs)."""
    label: str | None = None
    for band in bands:
        if score >= band["min"]:
            label = band["label"]
    return label


def _raw_bounds(items: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """Reversal keeps each item on its own scale, so raw bounds are the sums of item minima and maxima."""
    return sum(int(item["min"]) for item in items), sum(int(item["max"]) for item in items)


def _score_bounds(items: Sequence[Mapping[str, Any]], scoring: Mapping[str, Any]) -> tuple[float, float]:
    """Score range of an already checked definition; rounding is monotonic, so rounded bounds stay bounds."""
    lookup: Mapping[str, float] | None = scoring.get("lookup")
    if lookup is not None:
        return float(min(lookup.values())), float(max(lookup.values()))
    low, high = _raw_bounds(items)
    decimals: int = scoring.get("decimals", DEFAULT_DECIMALS)
    divisor = len(items) if scoring["method"] == "mean" else 1
    return _round_half_up(Fraction(low, divisor), decimals), _round_half_up(Fraction(high, divisor), decimals)


# Definition checks


def _definition_problems(definition: object) -> list[DefinitionProblem]:
    """All problems; checks that depend on well-formed items or scoring are skipped until those are fixed."""
    if not isinstance(definition, Mapping):
        return [DefinitionProblem("definition", "must be an object")]
    problems = _key_problems(definition, _TOP_REQUIRED, _TOP_OPTIONAL, "definition")
    problems += _flag_problems(definition)
    item_problems = _item_list_problems(definition.get("items"))
    problems += item_problems
    if item_problems or "items" not in definition:
        return problems
    items: list[Mapping[str, Any]] = definition["items"]
    problems += _response_label_problems(definition.get("response_labels"), items)
    problems += _risk_item_problems(definition.get("risk_items"), items)
    if "scoring" in definition:
        problems += _scoring_problems(definition["scoring"], items)
    return problems


def _key_problems(
    obj: Mapping[Any, Any], required: frozenset[str], optional: frozenset[str], path: str
) -> list[DefinitionProblem]:
    """Missing required keys and unknown keys (usually typos) at one level of the definition."""
    problems = [DefinitionProblem(f"{path}.{key}", "is required") for key in sorted(required - obj.keys())]
    unknown = sorted(str(key) for key in obj if key not in required | optional)
    problems += [DefinitionProblem(f"{path}.{key}", "is not a recognised setting") for key in unknown]
    return problems


def _flag_problems(definition: Mapping[str, Any]) -> list[DefinitionProblem]:
    """Scalar settings: direction of improvement, reliable change threshold, optional instructions."""
    problems: list[DefinitionProblem] = []
    if "higher_is_better" in definition and not isinstance(definition["higher_is_better"], bool):
        problems.append(DefinitionProblem("definition.higher_is_better", "must be true or false"))
    change = definition.get("reliable_change")
    if "reliable_change" in definition and not (_is_number(change) and change > 0):
        problems.append(DefinitionProblem("definition.reliable_change", "must be a positive number of score points"))
    if "instructions" in definition and not _is_text(definition["instructions"], MAX_INSTRUCTIONS_LENGTH):
        problems.append(DefinitionProblem("definition.instructions", "must be non-empty text"))
    return problems


def _item_list_problems(items: object) -> list[DefinitionProblem]:
    """Items must be a non-empty list of well-formed items with unique keys."""
    if items is None:
        return []
    if not isinstance(items, list) or not items:
        return [DefinitionProblem("definition.items", "must be a non-empty list")]
    if len(items) > MAX_ITEMS:
        return [DefinitionProblem("definition.items", f"may hold at most {MAX_ITEMS} items")]
    problems: list[DefinitionProblem] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        path = f"definition.items[{index}]"
        problems += _item_problems(item, path)
        key = item.get("key") if isinstance(item, Mapping) else None
        if isinstance(key, str) and key in seen:
            problems.append(DefinitionProblem(f"{path}.key", f"duplicates item key {key!r}"))
        if isinstance(key, str):
            seen.add(key)
    return problems


def _item_problems(item: object, path: str) -> list[DefinitionProblem]:
    """One item: a key usable in field paths, a label, and a whole-number scale with at least two options."""
    if not isinstance(item, Mapping):
        return [DefinitionProblem(path, "must be an object")]
    problems = _key_problems(item, _ITEM_REQUIRED, _ITEM_OPTIONAL, path)
    key = item.get("key")
    if "key" in item and not (isinstance(key, str) and ITEM_KEY.fullmatch(key)):
        message = "must be 1-40 lower-case letters, digits or underscores, starting with a letter"
        problems.append(DefinitionProblem(f"{path}.key", message))
    if "label" in item and not _is_text(item["label"]):
        problems.append(
            DefinitionProblem(f"{path}.label", f"must be non-empty text of at most {MAX_LABEL_LENGTH} characters")
        )
    for bound in ("min", "max"):
        if bound in item and not _is_whole(item[bound]):
            problems.append(DefinitionProblem(f"{path}.{bound}", "must be a whole number"))
    if _is_whole(item.get("min")) and _is_whole(item.get("max")) and item["min"] >= item["max"]:
        problems.append(DefinitionProblem(f"{path}.max", "must be greater than min"))
    if "reverse" in item and not isinstance(item["reverse"], bool):
        problems.append(DefinitionProblem(f"{path}.reverse", "must be true or false"))
    return problems


def _response_label_problems(labels: object, items: Sequence[Mapping[str, Any]]) -> list[DefinitionProblem]:
    """Shared option labels only make sense when every item uses the same scale, one label per option."""
    if labels is None:
        return []
    path = "definition.response_labels"
    if not isinstance(labels, list) or not all(_is_text(label) for label in labels):
        return [DefinitionProblem(path, "must be a list of non-empty text")]
    scale = _shared_scale(items)
    if scale is None:
        return [DefinitionProblem(path, "needs every item to share one response scale")]
    if len(labels) != scale[1] - scale[0] + 1:
        return [DefinitionProblem(path, f"needs one label per option ({scale[1] - scale[0] + 1})")]
    return []


def _risk_item_problems(risk_items: object, items: Sequence[Mapping[str, Any]]) -> list[DefinitionProblem]:
    """Risk items drive safeguarding alerts, so each must name a real item, once."""
    return _key_list_problems(risk_items, items, "definition.risk_items")


def _key_list_problems(keys: object, items: Sequence[Mapping[str, Any]], path: str) -> list[DefinitionProblem]:
    """A list of distinct item keys that exist in the definition."""
    if keys is None:
        return []
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        return [DefinitionProblem(path, "must be a list of item keys")]
    known = {item["key"] for item in items}
    problems = [
        DefinitionProblem(f"{path}[{i}]", f"{key!r} is not an item") for i, key in enumerate(keys) if key not in known
    ]
    if len(set(keys)) != len(keys):
        problems.append(DefinitionProblem(path, "lists an item more than once"))
    return problems


def _scoring_problems(scoring: object, items: Sequence[Mapping[str, Any]]) -> list[DefinitionProblem]:
    """Method, reversal, missing rule, rounding and lookup first; bands only once the score range is known."""
    path = "definition.scoring"
    if not isinstance(scoring, Mapping):
        return [DefinitionProblem(path, "must be an object")]
    problems = _key_problems(scoring, _SCORING_REQUIRED, _SCORING_OPTIONAL, path)
    if "method" in scoring and scoring["method"] not in METHODS:
        problems.append(DefinitionProblem(f"{path}.method", f"must be one of {', '.join(METHODS)}"))
    problems += _reversed_problems(scoring.get("reversed"), items)
    problems += _missing_rule_problems(scoring.get("missing"), items)
    decimals = scoring.get("decimals", DEFAULT_DECIMALS)
    if not (_is_whole(decimals) and 0 <= decimals <= MAX_DECIMALS):
        problems.append(DefinitionProblem(f"{path}.decimals", f"must be a whole number from 0 to {MAX_DECIMALS}"))
    if scoring.get("lookup") is not None:
        problems += _lookup_problems(scoring, items)
    if problems:
        return problems
    return _band_problems(scoring["bands"], _score_bounds(items, scoring))


def _reversed_problems(reversed_items: object, items: Sequence[Mapping[str, Any]]) -> list[DefinitionProblem]:
    """``scoring.reversed`` is authoritative; an item's own ``reverse`` flag, when given, must agree with it."""
    path = "definition.scoring.reversed"
    problems = _key_list_problems(reversed_items, items, path)
    if problems or reversed_items is None:
        return problems
    assert isinstance(reversed_items, list)
    return [
        DefinitionProblem(f"definition.items[{index}].reverse", f"disagrees with {path}")
        for index, item in enumerate(items)
        if "reverse" in item and item["reverse"] != (item["key"] in reversed_items)
    ]


def _missing_rule_problems(rule: object, items: Sequence[Mapping[str, Any]]) -> list[DefinitionProblem]:
    """``none`` tolerates no gaps; ``prorate`` tolerates 1..n-1 on items sharing one scale (else it is biased)."""
    path = "definition.scoring.missing"
    if rule is None:
        return []
    if not isinstance(rule, Mapping):
        return [DefinitionProblem(path, "must be an object")]
    problems = _key_problems(rule, _MISSING_KEYS, frozenset(), path)
    name, max_missing = rule.get("rule"), rule.get("max_missing")
    if "rule" in rule and name not in MISSING_RULES:
        problems.append(DefinitionProblem(f"{path}.rule", f"must be one of {', '.join(MISSING_RULES)}"))
    if "max_missing" in rule and not (_is_whole(max_missing) and 0 <= max_missing < len(items)):
        message = f"must be a whole number from 0 to {len(items) - 1}"
        problems.append(DefinitionProblem(f"{path}.max_missing", message))
    if problems or not rule.keys() >= _MISSING_KEYS:
        return problems
    if name == "none" and max_missing != 0:
        problems.append(DefinitionProblem(f"{path}.max_missing", "must be 0 when rule is none"))
    if name == "prorate" and max_missing == 0:
        problems.append(DefinitionProblem(f"{path}.max_missing", "must be at least 1 when rule is prorate"))
    if name == "prorate" and _shared_scale(items) is None:
        problems.append(DefinitionProblem(f"{path}.rule", "prorating needs every item to share one response scale"))
    return problems


def _lookup_problems(scoring: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> list[DefinitionProblem]:
    """A lookup maps every possible raw sum (string keys) to a score, in non-decreasing order.

    It needs a complete sum, so it cannot be combined with ``mean`` or with prorating; a decreasing entry is
    almost always a transposed row in a transcribed table.
    """
    path = "definition.scoring.lookup"
    lookup = scoring["lookup"]
    if not isinstance(lookup, Mapping):
        return [DefinitionProblem(path, "must be an object mapping raw sums to scores")]
    problems: list[DefinitionProblem] = []
    if scoring.get("method") != "sum":
        problems.append(DefinitionProblem(path, "needs method sum"))
    missing_rule = scoring.get("missing")
    if isinstance(missing_rule, Mapping) and missing_rule.get("rule") == "prorate":
        problems.append(DefinitionProblem(path, "needs every item answered, so cannot be combined with prorating"))
    low, high = _raw_bounds(items)
    expected = [str(raw) for raw in range(low, high + 1)]
    if sorted(lookup.keys(), key=str) != sorted(expected):
        problems.append(DefinitionProblem(path, f"needs exactly one entry for each raw sum from {low} to {high}"))
        return problems
    values = [lookup[key] for key in expected]
    problems += [
        DefinitionProblem(f"{path}.{key}", "must be a number") for key in expected if not _is_number(lookup[key])
    ]
    if not problems and any(later < earlier for earlier, later in itertools.pairwise(values)):
        problems.append(DefinitionProblem(path, "scores must not decrease as the raw sum rises"))
    return problems


def _band_problems(bands: object, bounds: tuple[float, float]) -> list[DefinitionProblem]:
    """Bands are ascending, non-overlapping cut-offs from the lowest to the highest possible score."""
    path = "definition.scoring.bands"
    if not isinstance(bands, list):
        return [DefinitionProblem(path, "must be a list")]
    problems: list[DefinitionProblem] = []
    for index, band in enumerate(bands):
        problems += _single_band_problems(band, f"{path}[{index}]")
    if problems or not bands:
        return problems
    labels = [band["label"] for band in bands]
    if len(set(labels)) != len(labels):
        problems.append(DefinitionProblem(path, "labels must be distinct"))
    problems += [
        DefinitionProblem(f"{path}[{index + 1}].min", "must be above the previous band's max")
        for index, (earlier, later) in enumerate(itertools.pairwise(bands))
        if later["min"] <= earlier["max"]
    ]
    if bands[0]["min"] != bounds[0]:
        problems.append(DefinitionProblem(f"{path}[0].min", f"must be the lowest possible score, {bounds[0]:g}"))
    if bands[-1]["max"] != bounds[1]:
        message = f"must be the highest possible score, {bounds[1]:g}"
        problems.append(DefinitionProblem(f"{path}[{len(bands) - 1}].max", message))
    return problems


def _single_band_problems(band: object, path: str) -> list[DefinitionProblem]:
    """One band: a label and numeric edges with ``min <= max``."""
    if not isinstance(band, Mapping):
        return [DefinitionProblem(path, "must be an object")]
    problems = _key_problems(band, _BAND_KEYS, frozenset(), path)
    if "label" in band and not _is_text(band["label"]):
        problems.append(DefinitionProblem(f"{path}.label", "must be non-empty text"))
    for edge in ("min", "max"):
        if edge in band and not _is_number(band[edge]):
            problems.append(DefinitionProblem(f"{path}.{edge}", "must be a number"))
    if not problems and band["min"] > band["max"]:
        problems.append(DefinitionProblem(f"{path}.max", "must not be below min"))
    return problems


# Small predicates


def _shared_scale(items: Iterable[Mapping[str, Any]]) -> tuple[int, int] | None:
    """The one ``(min, max)`` every item uses, or None when scales differ."""
    scales = {(item["min"], item["max"]) for item in items}
    return scales.pop() if len(scales) == 1 else None


def _is_whole(value: object) -> TypeGuard[int]:
    """A JSON integer; bool is an int subclass in Python but never a valid number here."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    """A finite JSON number (NaN and infinities would break band comparisons and cannot be stored as JSON)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_text(value: object, limit: int = MAX_LABEL_LENGTH) -> bool:
    """Non-blank text of a sensible length."""
    return isinstance(value, str) and bool(value.strip()) and len(value) <= limit


__all__ = [
    "AnswerError",
    "AnswerProblem",
    "AnswerProblemCode",
    "DefinitionError",
    "DefinitionProblem",
    "ScoreResult",
    "score_answers",
    "score_bounds",
    "validate_definition",
]
