"""What any value a caller sends must keep to, whatever field it arrives in.

Text never holds U+0000 (PostgreSQL's ``text`` cannot store it, and no name, reason or key needs it) and has
a maximum length; times carry a UTC offset (a time without one means a different instant in every
organisation's timezone); times and dates lie in the years ``MIN_YEAR``-``MAX_YEAR`` (beyond them date
arithmetic and the databases' own types overflow, and no programme has sessions there). Each check answers
what is wrong, for people, or None; the callers name the field.
"""

from __future__ import annotations

from datetime import date, datetime

MIN_YEAR = 1900
MAX_YEAR = 2200
DEFAULT_MAX_TEXT = 1000


def text_problem(value: str, max_length: int = DEFAULT_MAX_TEXT) -> str | None:
    if "\x00" in value:
        return "must not contain NUL characters"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    return None


def datetime_problem(value: datetime) -> str | None:
    if value.tzinfo is None or value.utcoffset() is None:
        return "must carry a UTC offset (e.g. 2026-03-01T18:00:00Z or +01:00)"
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        return f"must lie in the years {MIN_YEAR} to {MAX_YEAR}"
    return None


def date_problem(value: date) -> str | None:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        return f"must lie in the years {MIN_YEAR} to {MAX_YEAR}"
    return None


def value_problem(value: object, max_length: int = DEFAULT_MAX_TEXT) -> str | None:
    """The check for the value's kind (text, time, date); other values pass."""
    if isinstance(value, str):
        return text_problem(value, max_length)
    if isinstance(value, datetime):
        return datetime_problem(value)
    if isinstance(value, date):
        return date_problem(value)
    return None
