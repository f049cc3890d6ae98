"""Integrity of the third hand-written de-identification set (independent3).

Spans are re-derived here from the marked-up sources with a parser of this
file's own, so a fault in the shared builder's offsets shows up as a mismatch.
Nothing here scores the de-identifier.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from edge_node.deid_text.devset.independent3 import build
from edge_node.deid_text.evaluate import split_path
from tests.unit.edge_node.deid_text.marked_sets import (
    CONTRACT_TYPES,
    assert_spans_are_the_marked_text,
    assert_spans_in_bounds_and_disjoint,
    id_check_ok,
)

WORD_AGES = {
    "ninety": 90,
    "ninety-one": 91,
    "ninety-two": 92,
    "九十": 90,
    "九十四": 94,
    "一百零一": 101,
}


def set_path() -> Path:
    """The split's file: through the evaluator once registered, else the package's file."""
    try:
        return split_path("independent3")
    except ValueError:
        return build.OUTPUT


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    lines = set_path().read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_set_file_is_the_one_in_this_package() -> None:
    assert set_path() == build.OUTPUT
    assert build.OUTPUT.parent == Path(build.__file__).parent


def test_file_is_built_from_the_current_sources() -> None:
    on_disk = build.OUTPUT.read_text(encoding="utf-8")
    assert on_disk == build.render(build.build())
    assert build.main(["--check"]) == 0


def test_every_span_is_the_marked_text(records: list[dict[str, Any]]) -> None:
    assert_spans_are_the_marked_text(records, build.SOURCE_DIR)


def test_spans_are_in_bounds_and_disjoint(records: list[dict[str, Any]]) -> None:
    assert_spans_in_bounds_and_disjoint(records)


def test_types_are_contract_types_and_all_present(records: list[dict[str, Any]]) -> None:
    seen = {p["type"] for r in records for p in r["phi"]}
    assert seen == CONTRACT_TYPES
    for lang in ("zh", "en"):
        in_lang = {p["type"] for r in records if r["lang"] == lang for p in r["phi"]}
        assert {"NAME", "DATE", "PHONE", "ADDRESS", "MRN", "AGE", "ID_NUMBER"} <= in_lang, lang


def test_size_and_language_balance(records: list[dict[str, Any]]) -> None:
    assert len(records) >= 110
    assert len({r["id"] for r in records}) == len(records)
    assert sum(len(r["phi"]) for r in records) >= 900
    langs = [r["lang"] for r in records]
    assert langs.count("zh") >= 0.4 * len(records)
    assert langs.count("en") >= 0.4 * len(records)
    assert all(r["keep"] for r in records), "every note carries clinical terms to keep"


def test_resident_ids_cover_valid_wrong_and_x_check_digits(
    records: list[dict[str, Any]],
) -> None:
    ids = [
        re.sub(r"\s", "", unicodedata.normalize("NFKC", r["text"][p["start"] : p["end"]]))
        for r in records
        for p in r["phi"]
        if p["type"] == "ID_NUMBER"
    ]
    resident = [i for i in ids if re.fullmatch(r"\d{17}[\dX]", i)]
    assert any(id_check_ok(i) for i in resident)
    assert any(not id_check_ok(i) for i in resident)
    assert any(i.endswith("X") and id_check_ok(i) for i in resident)
    # Hong Kong, Taiwan and Singapore/Malaysia identity numbers are present too.
    assert any(re.fullmatch(r"[A-Z]{1,2}\d{6}\([\dA]\)", i) for i in ids)
    assert any(re.fullmatch(r"[A-Z][12]\d{8}", i) for i in ids)
    assert any(re.fullmatch(r"[STFG]\d{7}[A-Z]", i) for i in ids)
    assert any(re.fullmatch(r"\d{6}-\d{2}-\d{4}", i) for i in ids)


def test_ages_are_over_89(records: list[dict[str, Any]]) -> None:
    ages = []
    for rec in records:
        for p in rec["phi"]:
            if p["type"] == "AGE":
                value = unicodedata.normalize("NFKC", rec["text"][p["start"] : p["end"]])
                ages.append(int(value) if value.isdigit() else WORD_AGES[value])
    assert ages and min(ages) > 89


def test_kept_ages_are_89_or_less(records: list[dict[str, Any]]) -> None:
    """A bare number kept right before 岁/y/-year-old is an age that is not PHI."""
    for rec in records:
        text = rec["text"]
        for k in rec["keep"]:
            after = text[k["end"] : k["end"] + 12]
            if k["term"].isdigit() and re.match(r"(岁|歲|y\b|Y\b| ?y/o|-year-old| yrs?\b)", after):
                assert int(k["term"]) <= 89, (rec["id"], k["term"])


def test_dose_ratios_and_stages_are_kept_not_dates(records: list[dict[str, Any]]) -> None:
    """The traps the set was written to hold are marked KEEP, never PHI."""
    kept = {k["term"] for r in records for k in r["keep"]}
    phi_text = {r["text"][p["start"] : p["end"]] for r in records for p in r["phi"]}
    for trap in ("Norco 5/325 mg", "Percocet 5/325 mg", "C3D8", "T2aN1M0", "Dr. Reddy's"):
        assert any(trap in term for term in kept), trap
        assert not any(trap in span for span in phi_text), trap


def test_records_have_the_evaluator_fields(records: list[dict[str, Any]]) -> None:
    for rec in records:
        assert set(rec) == {"id", "lang", "patient_id", "text", "phi", "keep"}
        assert rec["lang"] in {"zh", "en"}
