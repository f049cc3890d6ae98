"""Parsers for the values hospital systems write: dates, numbers, coded values.

Everything here takes the text as the source wrote it and returns a typed value
or raises `ParseError` with a rejection code. Parsers that see the same strings
over and over (dates, enum values) are objects that cache per distinct string.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Literal

from shared_cdm.errors import InvalidInput
from shared_cdm.vocab import fold

DayOrder = Literal["dmy", "mdy"]
YEAR_RANGE = (1850, 2100)  # outside it a date is a typo, not history
_CACHE_LIMIT = 200_000  # distinct strings per parser before the cache starts over


class ParseError(InvalidInput):
    """A value that cannot be read; `code` is the rejection code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason, code=code)
        self.reason = reason


# --- dates ------------------------------------------------------------------

_TIME = (
    r"(?:[T\s]+(\d{1,2})\s*[:时点]\s*(\d{1,2})\s*分?"
    r"(?:\s*:?\s*(\d{1,2})(?:[.,]\d+)?\s*秒?)?)?"
)
_ZONE = r"\s*(?:Z|[+-]\d{2}:?\d{2})?"
_YMD = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?" + _TIME + _ZONE, re.IGNORECASE
)
_SLASHED = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})" + _TIME)
# HL7 v2 DTM and compact dates: YYYYMMDD[HHMM[SS[.S+]]][+/-ZZZZ]
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T?(\d{2})(\d{2})(\d{2})?(?:\.\d+)?)?(?:[+-]\d{4})?")
_MONTH_NAMES = (
    "jan january",
    "feb february",
    "mar march",
    "apr april",
    "may",
    "jun june",
    "jul july",
    "aug august",
    "sep sept september",
    "oct october",
    "nov november",
    "dec december",
)
_MONTHS = {name: number for number, names in enumerate(_MONTH_NAMES, 1) for name in names.split()}
_DAY_MONTH_NAME = re.compile(r"(\d{1,2})[-\s]+([A-Za-z]{3,9})\.?[-\s,]+(\d{4})" + _TIME)
_MONTH_NAME_DAY = re.compile(r"([A-Za-z]{3,9})\.?\s+(\d{1,2}),?\s+(\d{4})" + _TIME)


def _order_of(formats: Sequence[str]) -> DayOrder | None:
    """Day/month order implied by strftime patterns (`%d/%m/%Y` -> dmy)."""
    for fmt in formats:
        if fmt in ("dmy", "mdy"):
            return fmt  # type: ignore[return-value]
        day, month = fmt.find("%d"), fmt.find("%m")
        if day >= 0 and month >= 0 and fmt.find("%Y") > max(day, month):
            return "dmy" if day < month else "mdy"
    return None


def _build(
    text: str, y: str, mo: str | int, d: str, hh: str | None, mi: str | None, ss: str | None
) -> datetime:
    year = int(y)
    if not YEAR_RANGE[0] <= year <= YEAR_RANGE[1]:
        raise ParseError("invalid_date", f"year {year} out of range in {text!r}")
    try:
        return datetime(year, int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0))
    except ValueError as exc:
        raise ParseError("invalid_date", f"not a calendar date: {text!r} ({exc})") from None


def parse_datetime(
    text: str, formats: Sequence[str] = (), order: DayOrder | None = None
) -> datetime:
    """A date or date-time in any common hospital style.

    ISO (`2021-03-04`, `2021/3/4`, `2021-03-04 08:30[:00]`, `...T08:30:00Z`),
    Chinese (`2021年3月4日`, `2021年3月4日 8时30分`), compact and HL7 (`20210304`,
    `202103040830`), month names (`4 Mar 2021`, `March 4, 2021`), full-width
    digits. `04/03/2021` needs the day/month `order` (or a strftime pattern in
    `formats` that implies it); the patterns in `formats` are tried first.
    """
    raw = text
    text = unicodedata.normalize("NFKC", text).strip()
    if not text:
        raise ParseError("invalid_date", "empty date")
    for fmt in formats:
        if fmt in ("dmy", "mdy"):
            continue
        try:
            value = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return _build(raw, str(value.year), value.month, str(value.day), *_hms(value))
    order = order or _order_of(formats)
    if m := _YMD.fullmatch(text):
        return _build(raw, *m.groups())
    if m := _COMPACT.fullmatch(text):
        return _build(raw, *m.groups())
    if m := _SLASHED.fullmatch(text):
        first, second, year, *clock = m.groups()
        if order is None:
            raise ParseError(
                "invalid_date",
                f"day/month order of {raw!r} is unknown: set the field's date_format "
                "(e.g. %d/%m/%Y)",
            )
        day, month = (first, second) if order == "dmy" else (second, first)
        return _build(raw, year, month, day, *clock)
    for pattern, day_first in ((_DAY_MONTH_NAME, True), (_MONTH_NAME_DAY, False)):
        if m := pattern.fullmatch(text):
            a, b, year, *clock = m.groups()
            day, name = (a, b) if day_first else (b, a)
            month = _MONTHS.get(name.lower())
            if month is not None:
                return _build(raw, year, month, day, *clock)
    raise ParseError("invalid_date", f"not a date: {raw!r}")


def _hms(value: datetime) -> tuple[str, str, str]:
    return str(value.hour), str(value.minute), str(value.second)


def parse_date(text: str, formats: Sequence[str] = (), order: DayOrder | None = None) -> date:
    """`parse_datetime` without the time of day."""
    return parse_datetime(text, formats, order).date()


class DateParser:
    """`parse_datetime` for one column, cached per distinct string (a column
    holds few distinct dates), failures included."""

    __slots__ = ("_cache", "_formats", "_order", "as_date")

    def __init__(self, formats: Sequence[str] = (), *, as_date: bool = True) -> None:
        self._formats = tuple(formats)
        self._order = _order_of(self._formats)
        self._cache: dict[str, date | ParseError] = {}
        self.as_date = as_date

    def __call__(self, text: str) -> date:
        """A `date` (or `datetime` if built with `as_date=False`)."""
        found = self._cache.get(text)
        if found is None:
            try:
                value = parse_datetime(text, self._formats, self._order)
                found = value.date() if self.as_date else value
            except ParseError as exc:
                found = exc
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[text] = found
        if isinstance(found, ParseError):
            raise found
        return found


# --- numbers ----------------------------------------------------------------

_NUMBER = re.compile(
    r"(<=|>=|≤|≥|<|>|=|≦|≧)?\s*([+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][+-]?\d+)?"
    r"|[+-]?\.\d+(?:[eE][+-]?\d+)?)"
)
# abnormal flags an LIS appends: `12.5↑`, `3.1 L`, `8.0(H)`, `7.2*`
_FLAGS = re.compile(r"\s*(?:[↑↓*]+|\(?\s*[HL]\s*\)?)$", re.IGNORECASE)
_OPERATORS = {"≤": "<=", "≦": "<=", "≥": ">=", "≧": ">="}


def parse_number(text: str) -> tuple[float, str | None]:
    """(value, operator) from a written number.

    `12.5` -> (12.5, None); `<0.5` and `＜0.5` -> (0.5, "<"); `>1000` -> (1000, ">");
    `≤0.5` -> (0.5, "<="); `=3` -> (3, "="); `1,234.5` -> (1234.5, None); trailing
    abnormal flags (`↑`, `H`) are ignored. Anything else raises `non_numeric_value`.
    """
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value) and "_" not in text:
            return value, None
        raise ParseError("non_numeric_value", f"not a number: {text!r}")
    found = _QUALIFIED.get(text)
    if found is None:
        found = _parse_qualified(text)
        if len(_QUALIFIED) >= _CACHE_LIMIT:
            _QUALIFIED.clear()
        _QUALIFIED[text] = found
    if isinstance(found, ParseError):
        raise found
    return found


# qualified numbers (`<0.5`) repeat endlessly (detection limits): parsed once
_QUALIFIED: dict[str, tuple[float, str | None] | ParseError] = {}


def _parse_qualified(text: str) -> tuple[float, str | None] | ParseError:
    folded = _FLAGS.sub("", unicodedata.normalize("NFKC", text).strip())
    match = _NUMBER.fullmatch(folded)
    if match is None:
        return ParseError("non_numeric_value", f"not a number: {text!r}")
    operator, digits = match.groups()
    value = float(digits.replace(",", ""))
    if not math.isfinite(value):
        return ParseError("non_numeric_value", f"not a finite number: {text!r}")
    return value, _OPERATORS.get(operator, operator) if operator else None


_RANGE = re.compile(
    r"\s*([+-]?\d+(?:\.\d+)?)\s*(?:--|-|~|～|—|–|至|to)\s*([+-]?\d+(?:\.\d+)?)\s*"
    r"|\s*(<=|<|≤)\s*(\d+(?:\.\d+)?)\s*|\s*(>=|>|≥)\s*(\d+(?:\.\d+)?)\s*"
)


def parse_range(text: str) -> tuple[float | None, float | None]:
    """A reference range: `115-175`, `3.5~9.5`, `0.0--21.0`, `<5`, `>60`.
    Anything else gives (None, None): a range is informative, never a reason
    to reject the row."""
    match = _RANGE.fullmatch(unicodedata.normalize("NFKC", text))
    if match is None:
        return None, None
    low, high, _, below, _, above = match.groups()
    if low is not None and high is not None:
        return float(low), float(high)
    if below is not None:
        return None, float(below)
    return (float(above) if above is not None else None), None


# --- coded values -----------------------------------------------------------

SEX_VALUES: dict[str, str] = {
    **dict.fromkeys(("男", "男性", "M", "MALE", "MAN"), "male"),
    **dict.fromkeys(("女", "女性", "F", "FEMALE", "WOMAN"), "female"),
    **dict.fromkeys(("U", "UNKNOWN", "未知", "未说明", "不详", "UNK"), "unknown"),
}
VITAL_STATUS_VALUES: dict[str, str] = {
    **dict.fromkeys(("存活", "生存", "健在", "在世", "ALIVE", "LIVING", "LIVE"), "alive"),
    **dict.fromkeys(("死亡", "已故", "去世", "DEAD", "DECEASED", "DIED", "DEATH"), "dead"),
}
# Digit codes (GB/T 2261.1 sex `1`/`2`, vital status `0`/`1`) differ between
# hospitals, so they are never defaults: the mapping names them.
DEFAULT_VALUE_MAPS: dict[str, dict[str, str]] = {
    "sex": SEX_VALUES,
    "vital_status": VITAL_STATUS_VALUES,
}


class EnumMap:
    """Written value -> allowed value, compared after folding case and width.
    The mapping's own value map overrides the defaults."""

    __slots__ = ("_allowed", "_map", "name")

    def __init__(
        self,
        name: str,
        allowed: Iterable[str],
        values: Mapping[str, str] | None = None,
        defaults: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self._allowed = tuple(allowed)
        self._map: dict[str, str] = {}
        for source in (defaults or {}, values or {}):
            for written, meant in source.items():
                if meant not in self._allowed:
                    raise InvalidInput(
                        f"{name}: {meant!r} is not one of {', '.join(self._allowed)}",
                        code="invalid_mapping",
                    )
                self._map[fold(written)] = meant
        for allowed_value in self._allowed:  # the target's own spelling always works
            self._map.setdefault(fold(allowed_value), allowed_value)

    def __call__(self, text: str) -> str:
        found = self._map.get(text)
        if found is None:
            found = self._map.get(fold(text))
            if found is None:
                raise ParseError(
                    "invalid_enum",
                    f"{self.name}: {text!r} is not a known value "
                    f"(known: {', '.join(sorted(self._map)[:12])})",
                )
            self._map[text] = found  # the unfolded spelling too, for the next row
        return found
