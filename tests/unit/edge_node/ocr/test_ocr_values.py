"""Result, flag, unit and reference parsing, with OCR slips."""

from __future__ import annotations

import pytest

from edge_node.ocr.values import parse_flag, parse_reference, parse_result, parse_unit


@pytest.mark.parametrize(
    ("cell", "value", "qualifier", "flag"),
    [
        ("12.3", 12.3, None, None),
        ("<0.50", 0.5, "<", None),
        ("＜0.5", 0.5, "<", None),
        ("≤0.5", 0.5, "<", None),
        ("≥1000", 1000.0, ">", None),
        (">1000.0", 1000.0, ">", None),
        ("8,2", 8.2, None, None),
        ("1,027.4", 1027.4, None, None),
        ("12.3 ↑", 12.3, None, "H"),
        ("3.1↓", 3.1, None, "L"),
        ("45.1H", 45.1, None, "H"),
        ("2.0 L", 2.0, None, "L"),
        ("l2.O", 12.0, None, None),
        ("O.5S", 0.55, None, None),
        ("１２.５", 12.5, None, None),
    ],
)
def test_results(cell: str, value: float, qualifier: str | None, flag: str | None) -> None:
    result = parse_result(cell)
    assert result is not None
    assert (result.value, result.qualifier, result.flag) == (value, qualifier, flag)


@pytest.mark.parametrize("cell", ["", "阴性", "Result", "H", "ng/mL", "see note"])
def test_cells_without_a_number(cell: str) -> None:
    assert parse_result(cell) is None


@pytest.mark.parametrize(
    ("cell", "flag"),
    [("↑", "H"), ("↓", "L"), ("H", "H"), ("L", "L"), ("偏高", "H"), ("1", "H"), ("", None),
     ("x", None)],
)  # fmt: skip
def test_flags(cell: str, flag: str | None) -> None:
    assert parse_flag(cell) == flag


@pytest.mark.parametrize(
    ("cell", "standard", "unit"),
    [
        ("ng/ml", "ng/mL", "ng/mL"),
        ("μg/L", "ng/mL", "ug/L"),
        ("µg/L", "ng/mL", "ug/L"),
        ("U/ml", "U/mL", "U/mL"),
        ("KU/L", "U/mL", "kU/L"),
        ("pg/ml", "pg/mL", "pg/mL"),
        ("ng/mI", "ng/mL", "ng/mL"),
        ("UL", "U/mL", "U/mL"),  # the slash and `m` dropped by the recogniser
        ("um/", "U/mL", "U/mL"),  # no unit at all, close to the standard one
        ("ng/mL", "U/mL", "ng/mL"),  # a real unit of another kind is kept
        ("pmol/L", "pmol/L", "pmol/L"),
        ("mg/dL", None, "mg/dL"),
    ],
)
def test_units(cell: str, standard: str | None, unit: str) -> None:
    assert parse_unit(cell, standard) == unit


def test_an_unreadable_unit_is_not_replaced() -> None:
    # letters that are not the standard unit's with some dropped stay as read
    assert parse_unit("w/n", "U/mL") != "U/mL"
    assert parse_unit("", "U/mL") is None


def test_reference_ranges() -> None:
    assert parse_reference("0 - 5") == "0-5"
    assert parse_reference("0～35") == "0-35"
    assert parse_reference("＜35") == "<35"
    assert parse_reference("  ") is None
