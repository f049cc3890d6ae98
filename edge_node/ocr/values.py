"""Reading a result, flag and unit cell as printed, with the usual OCR slips.

Digits misread as letters (`O`->0, `l`/`I`->1, `S`->5, `B`->8) are repaired only
inside a token that is otherwise numeric; a comma is a decimal point unless the
number also has a dot (then it separates thousands). `≤`/`≥` count as `<`/`>`.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass

from edge_node.pipeline.units import UnitError, is_known_unit, normalize_unit, unit_factor

_DIGIT_SLIPS = str.maketrans({"O": "0", "o": "0", "D": "0", "l": "1", "I": "1", "|": "1",
                              "i": "1", "S": "5", "s": "5", "B": "8", "Z": "2"})  # fmt: skip
_QUALIFIERS = {"<": "<", ">": ">", "≤": "<", "≥": ">", "〈": "<", "〉": ">"}
_UP = frozenset("↑⬆")
_DOWN = frozenset("↓⬇")
# what a lone mark in a flag column reads as: an up arrow is often read as `1`, `t` or `个`
_FLAG_MARKS = {"H": "H", "L": "L", "↑": "H", "↓": "L", "1": "H", "t": "H", "T": "H",
               "个": "H", "高": "H", "低": "L", "偏高": "H", "偏低": "L",
               "HH": "H", "LL": "L"}  # fmt: skip
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_NUMERIC_TOKEN = re.compile(r"[0-9OoDlIi|SsBZ]+(?:[.,][0-9OoDlIi|SsBZ]+)*|[.,][0-9OoDlIi|SsBZ]+")


@dataclass(frozen=True)
class Result:
    value: float
    qualifier: str | None
    flag: str | None
    text: str  # the number as read, after repairs


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def parse_flag(text: str) -> str | None:
    """`H`/`L` from a flag cell (`↑`, `↓`, `H`, `L`, `偏高` ...), else None."""
    cell = fold(text).replace(" ", "")
    if not cell:
        return None
    if cell in _FLAG_MARKS:
        return _FLAG_MARKS[cell]
    if any(c in _UP for c in cell):
        return "H"
    if any(c in _DOWN for c in cell):
        return "L"
    return None


def _number(token: str) -> str | None:
    if not _NUMERIC_TOKEN.fullmatch(token) or not any(c.isdigit() for c in token):
        return None
    token = token.translate(_DIGIT_SLIPS)
    if "," in token:
        token = token.replace(",", "") if "." in token else token.replace(",", ".", 1)
    return token if _NUMBER.fullmatch(token) else None


def parse_result(text: str) -> Result | None:
    """A result cell: `12.3`, `<0.50`, `≥1000`, `8,2`, `12.3 ↑`, `45.1H`, `l2.O`.
    None when the cell holds no number."""
    cell = fold(text)
    flag = None
    if any(c in _UP for c in cell):
        flag = "H"
    elif any(c in _DOWN for c in cell):
        flag = "L"
    cell = "".join(c for c in cell if c not in _UP and c not in _DOWN).strip()
    # a trailing H/L flag, spaced or not: `45.1 H`, `45.1H`
    if m := re.fullmatch(r"(.*?\d)\s*([HL])", cell):
        cell, flag = m.group(1), flag or m.group(2)
    cell = cell.replace(" ", "")
    qualifier = None
    if cell and cell[0] in _QUALIFIERS:
        qualifier, cell = _QUALIFIERS[cell[0]], cell[1:]
    elif cell.startswith(("<=", ">=")):
        qualifier, cell = cell[0], cell[2:]
    if cell.startswith("="):
        cell = cell[1:]
    number = _number(cell)
    if number is None:
        return None
    return Result(float(number), qualifier, flag, number)


def parse_reference(text: str) -> str | None:
    """The reference range as printed, tidied: `0 - 5` -> `0-5`, `＜35` -> `<35`."""
    cell = fold(text).replace(" ", "").replace("~", "-").replace("～", "-").replace("—", "-")
    return cell or None


_UNIT_SLIPS = (("mI", "mL"), ("/I", "/L"), ("|", "l"), ("µ", "u"), ("μ", "u"), ("ug", "ug"))


def parse_unit(text: str, standard_unit: str | None = None) -> str | None:
    """The UCUM spelling of a unit cell (`ng/ml` -> `ng/mL`, `μg/L` -> `ug/L`).
    When the cell cannot be read as a unit of the analyte's kind but its letters
    are the standard unit's with some dropped (OCR reads `U/mL` as `UL`), or
    when it is no unit at all but close to the standard one (`um/`), the
    standard unit is returned; a real unit of another kind is kept as read."""
    cell = fold(text).replace(" ", "")
    if not cell:
        return None
    for slip, fix in _UNIT_SLIPS:
        cell = cell.replace(slip, fix)
    unit = normalize_unit(cell)
    if standard_unit is None or _convertible(unit, standard_unit):
        return unit
    if _subsequence(cell.lower(), standard_unit.lower()):
        return standard_unit
    # not a unit at all, and close to the standard one: a misread (`um/` for `U/mL`)
    close = difflib.SequenceMatcher(None, cell.lower(), standard_unit.lower()).ratio() >= 0.5
    if close and not is_known_unit(cell):
        return standard_unit
    return unit


def _convertible(unit: str, standard_unit: str) -> bool:
    try:
        unit_factor(unit, standard_unit)
    except UnitError:
        return False
    return True


def _subsequence(short: str, long: str) -> bool:
    letters = iter(long)
    return len(short) >= 2 and all(c in letters for c in short)
