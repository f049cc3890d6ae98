"""Parsing dates, numbers, ranges and coded values as hospitals write them."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from edge_node.pipeline.values import (
    DateParser,
    EnumMap,
    ParseError,
    parse_date,
    parse_datetime,
    parse_number,
    parse_range,
)
from shared_cdm.errors import InvalidInput

# --- dates ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2021-03-04",
        "2021/3/4",
        "2021.03.04",
        "2021年3月4日",
        "2021年03月04日",
        "20210304",
        "２０２１－０３－０４",
        "２０２１年３月４日",
        " 2021-03-04 ",
        "4 Mar 2021",
        "04-Mar-2021",
        "March 4, 2021",
    ],
)
def test_dates_in_every_style(text: str) -> None:
    assert parse_date(text) == date(2021, 3, 4)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-03-04 08:30", datetime(2021, 3, 4, 8, 30)),
        ("2021-03-04 08:30:15", datetime(2021, 3, 4, 8, 30, 15)),
        ("2021-03-04T08:30:15Z", datetime(2021, 3, 4, 8, 30, 15)),
        ("2021-03-04T08:30:15.123+08:00", datetime(2021, 3, 4, 8, 30, 15)),
        ("202103040830", datetime(2021, 3, 4, 8, 30)),  # HL7 v2 DTM
        ("20210304083015", datetime(2021, 3, 4, 8, 30, 15)),
        ("20210304083015+0800", datetime(2021, 3, 4, 8, 30, 15)),
        ("2021年3月4日 8时30分", datetime(2021, 3, 4, 8, 30)),
        ("2021-03-04", datetime(2021, 3, 4)),
    ],
)
def test_date_times(text: str, expected: datetime) -> None:
    assert parse_datetime(text) == expected


def test_a_date_time_read_as_a_date_keeps_the_day() -> None:
    assert parse_date("2021-03-04 23:59:59") == date(2021, 3, 4)


def test_slashed_day_month_needs_the_order_from_the_mapping() -> None:
    assert parse_date("04/03/2021", ["%d/%m/%Y"]) == date(2021, 3, 4)
    assert parse_date("04/03/2021", ["%m/%d/%Y"]) == date(2021, 4, 3)
    assert parse_date("04/03/2021", order="dmy") == date(2021, 3, 4)
    assert parse_date("4/3/2021 08:30", ["dmy"]) == date(2021, 3, 4)
    with pytest.raises(ParseError, match="date_format") as caught:
        parse_date("04/03/2021")
    assert caught.value.code == "invalid_date"


def test_the_mapping_format_does_not_block_other_unambiguous_styles() -> None:
    assert parse_date("2021-03-04", ["%d/%m/%Y"]) == date(2021, 3, 4)


@pytest.mark.parametrize(
    "text", ["", "abc", "2021-02-30", "2021-13-01", "1700-01-01", "2021-3", "31/31/2021", "0"]
)
def test_non_dates_are_refused_with_invalid_date(text: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_date(text, order="dmy")
    assert caught.value.code == "invalid_date"
    assert isinstance(caught.value, InvalidInput)


def test_date_parser_caches_values_and_failures() -> None:
    parser = DateParser(["%d/%m/%Y"])
    assert parser("30/05/2016") == date(2016, 5, 30)
    assert parser("30/05/2016") is parser("30/05/2016")
    for _ in range(2):
        with pytest.raises(ParseError):
            parser("not a date")
    assert set(parser._cache) == {"30/05/2016", "not a date"}


def test_date_parser_for_datetimes() -> None:
    parser = DateParser(as_date=False)
    assert parser("2021-03-04 08:30") == datetime(2021, 3, 4, 8, 30)


# --- numbers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "operator"),
    [
        ("12.5", 12.5, None),
        ("  7 ", 7.0, None),
        ("-5.00", -5.0, None),
        ("1e3", 1000.0, None),
        ("<0.5", 0.5, "<"),
        ("< 0.5", 0.5, "<"),
        ("＜0.5", 0.5, "<"),
        (">1000", 1000.0, ">"),
        ("＞1000", 1000.0, ">"),
        ("≤0.5", 0.5, "<="),
        (">=2", 2.0, ">="),
        ("=3", 3.0, "="),
        ("1,234.5", 1234.5, None),
        (">1,000,000", 1000000.0, ">"),
        ("１２．５", 12.5, None),
        ("12.5↑", 12.5, None),
        ("3.1 L", 3.1, None),
        ("8.0(H)", 8.0, None),
        (".5", 0.5, None),
    ],
)
def test_numbers_with_qualifiers(text: str, value: float, operator: str | None) -> None:
    assert parse_number(text) == (value, operator)


@pytest.mark.parametrize(
    "text", ["阴性", "", "nan", "inf", "-Infinity", "1,5", "5-10", "++", "<", "见报告", "1_000"]
)
def test_non_numbers_are_refused_with_non_numeric_value(text: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_number(text)
    assert caught.value.code == "non_numeric_value"


def test_a_qualified_number_is_parsed_once() -> None:
    first = parse_number("<0.7")
    assert parse_number("<0.7") == first == (0.7, "<")
    with pytest.raises(ParseError):
        parse_number("阴性(-)")
    with pytest.raises(ParseError):  # the cached failure raises again
        parse_number("阴性(-)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("115-175", (115.0, 175.0)),
        ("0.0-21.0", (0.0, 21.0)),
        ("3.5~9.5", (3.5, 9.5)),
        ("3.5--9.5", (3.5, 9.5)),
        (" 4.00 - 5.50 ", (4.0, 5.5)),
        ("<5", (None, 5.0)),
        ("≤5.0", (None, 5.0)),
        (">60", (60.0, None)),
        ("阴性", (None, None)),
        ("", (None, None)),
    ],
)
def test_reference_ranges(text: str, expected: tuple[float | None, float | None]) -> None:
    assert parse_range(text) == expected


# --- coded values -----------------------------------------------------------


def test_sex_defaults_fold_case_and_width() -> None:
    sex = EnumMap("sex", ("male", "female", "unknown"), defaults={"男": "male", "F": "female"})
    assert sex("男") == "male"
    assert sex("f") == "female"
    assert sex("Ｆ") == "female"
    assert sex("MALE") == "male"  # the target's own spelling always works


def test_the_mapping_value_map_overrides_the_defaults() -> None:
    vital = EnumMap("vital_status", ("alive", "dead"), {"1": "dead", "0": "alive"}, {"1": "alive"})
    assert vital("1") == "dead"
    assert vital("0") == "alive"


def test_an_unknown_value_is_invalid_enum() -> None:
    sex = EnumMap("sex", ("male", "female", "unknown"), {"1": "male", "2": "female"})
    with pytest.raises(ParseError, match="sex: 'X'") as caught:
        sex("X")
    assert caught.value.code == "invalid_enum"


def test_a_value_map_onto_a_value_the_target_does_not_allow_is_refused() -> None:
    with pytest.raises(InvalidInput, match="'deceased' is not one of alive, dead"):
        EnumMap("vital_status", ("alive", "dead"), {"D": "deceased"})
