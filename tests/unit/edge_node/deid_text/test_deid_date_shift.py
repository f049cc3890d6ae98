"""Dates move by one HMAC-keyed offset per patient, so intervals survive."""

from __future__ import annotations

import re
from datetime import date

from edge_node.deid_text.core import Settings, deidentify, shift_date
from edge_node.pipeline.deid import Pseudonymizer

P = Pseudonymizer(b"s" * 32)


def _dates(text: str) -> list[date]:
    return [
        date(int(y), int(m), int(d)) for y, m, d in re.findall(r"(\d{4})-(\d{2})-(\d{2})", text)
    ]


def test_same_patient_same_offset_intervals_kept() -> None:
    a = deidentify(
        "入院 2021-03-04，出院 2021-03-19。", lang="zh", patient_key="patient:P1", pseudonymizer=P
    )
    b = deidentify("Follow-up 2021-06-01.", lang="en", patient_key="patient:P1", pseudonymizer=P)
    d1, d2 = _dates(a.text)
    (d3,) = _dates(b.text)
    assert (d2 - d1).days == 15
    assert (d3 - d1).days == (date(2021, 6, 1) - date(2021, 3, 4)).days
    assert d1 != date(2021, 3, 4)
    assert abs((d1 - date(2021, 3, 4)).days) <= Settings().max_shift_days


def test_offset_depends_on_patient_and_secret() -> None:
    shifts = {P.date_shift_days(f"patient:P{i}", 180) for i in range(20)}
    assert len(shifts) > 10
    other = Pseudonymizer(b"t" * 32)
    assert any(
        P.date_shift_days(f"patient:P{i}", 180) != other.date_shift_days(f"patient:P{i}", 180)
        for i in range(5)
    )


def test_formats_are_kept_when_shifting() -> None:
    assert shift_date("2021年3月4日", 10) == "2021年3月14日"
    assert shift_date("2021-03-04", -4) == "2021-02-28"
    assert shift_date("2021/3/4", 1) == "2021/3/5"
    assert shift_date("3月4日", 1) == "3月5日"
    assert shift_date("04/03/2021", 1) == "05/03/2021"
    assert shift_date("March 4, 2021", 28) == "April 1, 2021"
    assert shift_date("4 Mar 2021", 1) == "5 Mar 2021"
    assert shift_date("08-MAR-2021", 1) == "09-MAR-2021"
    assert shift_date("2021-03-04 14:30", 1) == "2021-03-05 14:30"
