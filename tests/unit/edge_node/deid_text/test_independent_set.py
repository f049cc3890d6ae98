"""Integrity of the hand-written independent de-identification set.

The offsets are re-derived here from the marked-up sources with a separate
parser, so a fault in the builder's offset arithmetic shows up as a mismatch.
Nothing here scores the de-identifier.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from edge_node.deid_text.devset.independent import build
from edge_node.deid_text.evaluate import load, split_path
from tests.unit.edge_node.deid_text.marked_sets import (
    CONTRACT_TYPES,
    assert_spans_are_the_marked_text,
    assert_spans_in_bounds_and_disjoint,
    id_check_ok,
)


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return load(split_path("independent"))


def test_file_is_built_from_the_current_sources() -> None:
    on_disk = split_path("independent").read_text(encoding="utf-8")
    assert on_disk == build.render(build.build())


def test_every_span_is_the_marked_text(records: list[dict[str, Any]]) -> None:
    assert_spans_are_the_marked_text(records, build.SOURCE_DIR)


def test_spans_are_in_bounds_and_disjoint(records: list[dict[str, Any]]) -> None:
    assert_spans_in_bounds_and_disjoint(records)


def test_types_are_contract_types_and_all_present(records: list[dict[str, Any]]) -> None:
    seen = {p["type"] for r in records for p in r["phi"]}
    assert seen <= CONTRACT_TYPES
    assert seen == CONTRACT_TYPES
    for lang in ("zh", "en"):
        in_lang = {p["type"] for r in records if r["lang"] == lang for p in r["phi"]}
        assert {"NAME", "DATE", "PHONE", "ADDRESS", "MRN", "AGE"} <= in_lang, lang


def test_size_and_language_balance(records: list[dict[str, Any]]) -> None:
    assert len(records) >= 120
    assert len({r["id"] for r in records}) == len(records)
    langs = [r["lang"] for r in records]
    assert langs.count("zh") >= 0.4 * len(records)
    assert langs.count("en") >= 0.4 * len(records)
    with_keep = sum(1 for r in records if r["keep"])
    assert with_keep >= 0.9 * len(records), "most notes carry clinical terms to keep"


def test_resident_ids_cover_valid_wrong_and_x_check_digits(
    records: list[dict[str, Any]],
) -> None:
    ids = [
        unicodedata.normalize("NFKC", r["text"][p["start"] : p["end"]])
        for r in records
        for p in r["phi"]
        if p["type"] == "ID_NUMBER"
    ]
    resident = [i for i in ids if re.fullmatch(r"\d{17}[\dX]", i)]
    assert any(id_check_ok(i) for i in resident)
    assert any(not id_check_ok(i) for i in resident)
    assert any(i.endswith("X") and id_check_ok(i) for i in resident)


def test_ages_are_over_89_and_kept_ages_are_not_phi(records: list[dict[str, Any]]) -> None:
    for rec in records:
        for p in rec["phi"]:
            value = unicodedata.normalize("NFKC", rec["text"][p["start"] : p["end"]])
            if p["type"] == "AGE" and value.isdigit():
                assert int(value) > 89, (rec["id"], value)


def test_records_have_the_evaluator_fields(records: list[dict[str, Any]]) -> None:
    for rec in records:
        assert set(rec) == {"id", "lang", "patient_id", "text", "phi", "keep"}
        assert rec["lang"] in {"zh", "en", None}


def write_source(tmp_path: Path, body: str) -> Path:
    (tmp_path / "a.txt").write_text(body, encoding="utf-8")
    return tmp_path


def test_builder_refuses_unknown_type(tmp_path: Path) -> None:
    src = write_source(tmp_path, "### n1 | en | p1 | note\nSeen by ⟦DOCTOR:Smith⟧.\n")
    with pytest.raises(build.SourceError, match="unknown type 'DOCTOR'"):
        build.build(src)


def test_builder_refuses_unbalanced_mark(tmp_path: Path) -> None:
    src = write_source(tmp_path, "### n1 | en | p1 | note\nSeen by ⟦NAME:Smith.\n")
    with pytest.raises(build.SourceError, match="unbalanced"):
        build.build(src)


def test_builder_refuses_bad_header_and_duplicate_ids(tmp_path: Path) -> None:
    src = write_source(tmp_path, "### n1 | fr | p1 | note\ntext\n")
    with pytest.raises(build.SourceError, match="bad header"):
        build.build(src)
    src = write_source(tmp_path, "### n1 | en | p1 | a\nx\n### n1 | en | p1 | b\ny\n")
    with pytest.raises(build.SourceError, match="used twice"):
        build.build(src)


def test_builder_offsets_on_a_small_note(tmp_path: Path) -> None:
    src = write_source(
        tmp_path, "comment\n### n1 | zh | p1 | note\n患者⟦NAME:欧阳乐⟧服⟦KEEP:奥希替尼⟧。\n"
    )
    (rec,) = build.build(src)
    assert rec["text"] == "患者欧阳乐服奥希替尼。\n"
    assert rec["phi"] == [{"start": 2, "end": 5, "type": "NAME"}]
    assert rec["keep"] == [{"start": 6, "end": 10, "term": "奥希替尼"}]
    assert json.loads(build.render([rec]))["lang"] == "zh"
