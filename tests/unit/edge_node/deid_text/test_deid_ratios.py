"""A bare N/M is a date only with date context: counts, ratios and scores stay.

Examples written for this test."""

from __future__ import annotations

import pytest

from edge_node.deid_text import detect


def found(text: str, lang: str | None = None) -> list[tuple[str, str]]:
    return [(text[s:e], t) for s, e, t in detect(text, lang)]


@pytest.mark.parametrize(
    ("text", "lang", "ratio"),
    [
        ("淋巴结转移情况：(3/21)，未见脉管癌栓", "zh", "3/21"),
        ("第7组 2/4，第10组 0/2", "zh", "2/4"),
        ("第7组 2/4，第10组 0/2", "zh", "0/2"),
        ("清扫淋巴结 4/12 枚见癌转移", "zh", "4/12"),
        ("左肺门淋巴结（1/5）见转移", "zh", "1/5"),
        ("Lymph nodes: (3/22) positive for carcinoma.", "en", "3/22"),
        ("Station 7: 1/4 nodes involved.", "en", "1/4"),
        ("Pain score 6/10 on arrival.", "en", "6/10"),
        ("ECOG 1/2 at review.", "en", "1/2"),
        ("Tumour occupies 2/3 of the lumen.", "en", "2/3"),
        ("Completed 4/6 cycles of FOLFOX.", "en", "4/6"),
        ("Gleason pattern (3/4) in cores.", "en", "3/4"),
    ],
)
def test_clinical_ratio_is_kept(text: str, lang: str, ratio: str) -> None:
    assert all(ratio not in value for value, _ in found(text, lang))


@pytest.mark.parametrize(
    ("text", "lang", "date"),
    [
        ("Bloods on 3/14 were normal.", "en", "3/14"),
        ("Admitted 9/16, discharged 9/20.", "en", "9/16"),
        ("CT 5/17 showed no new nodes.", "en", "5/17"),
        ("复查日期：(6/12)", "zh", "6/12"),
        ("于 10/19 拔除引流管", "zh", "10/19"),
    ],
)
def test_day_month_with_date_context_is_a_date(text: str, lang: str, date: str) -> None:
    assert (date, "DATE") in found(text, lang)


@pytest.mark.parametrize(
    ("text", "lang", "date"),
    [
        ("Follow-up Thursday 12th, bloods before.", "en", "Thursday 12th"),
        ("Date: 4/11", "en", "4/11"),
        ("9.21复查胸部CT", "zh", "9.21"),
        ("23/7/14 outside report", "en", "23/7/14"),
        ("下月8日返院化疗", "zh", "下月8日"),
        ("手术时间：7-19", "zh", "7-19"),
    ],
)
def test_dates_without_a_year_found_by_their_neighbours(text: str, lang: str, date: str) -> None:
    assert any(date in v and t == "DATE" for v, t in found(text, lang))


@pytest.mark.parametrize(
    ("text", "lang"),
    [("CEA 4.12，较前下降", "zh"), ("病灶大小3-5cm", "zh"), ("术后第9天拔管", "zh")],
)
def test_values_and_ranges_are_not_dates(text: str, lang: str) -> None:
    assert found(text, lang) == []
