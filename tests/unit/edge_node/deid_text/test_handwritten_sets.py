"""Integrity of the hand-written de-identification sets (`devset/independent*`).

Spans are re-derived here from the marked-up sources with a parser of the tests'
own (`marked_sets.py`), so a fault in the builder's offset arithmetic shows up as
a mismatch. What differs between the sets (size, the types each language holds,
how ages and ID numbers are written) is in `SETS`. Nothing here scores the
de-identifier.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from edge_node.deid_text.devset.independent import build as build1
from edge_node.deid_text.devset.independent2 import build as build2
from edge_node.deid_text.devset.independent3 import build as build3
from edge_node.deid_text.devset.independent4 import build as build4
from edge_node.deid_text.devset.independent5 import build as build5
from edge_node.deid_text.devset.independent6 import build as build6
from edge_node.deid_text.evaluate import load, split_path
from tests.unit.edge_node.deid_text.marked_sets import (
    CONTRACT_TYPES,
    assert_spans_are_the_marked_text,
    assert_spans_in_bounds_and_disjoint,
    id_check_ok,
)

BASIC_TYPES = frozenset({"NAME", "DATE", "PHONE", "ADDRESS", "MRN", "AGE"})


@dataclass(frozen=True)
class HandwrittenSet:
    """What one set must hold; the defaults are the later sets' rules, the first is looser."""

    name: str
    build: ModuleType
    word_ages: Mapping[str, int] | None  # None: ages written in words are not checked
    min_notes: int = 120
    min_phi: int = 0
    types_in_each_lang: frozenset[str] = BASIC_TYPES | {"ID_NUMBER"}
    keep_share: float = 1.0  # notes that carry at least one clinical term to keep
    langs: frozenset[str | None] = frozenset({"zh", "en"})
    ids_without_spaces: bool = True  # ID numbers are compared with their spaces taken out


SETS = {
    s.name: s
    for s in (
        HandwrittenSet(
            name="independent",
            build=build1,
            word_ages=None,
            types_in_each_lang=BASIC_TYPES,
            keep_share=0.9,
            langs=frozenset({"zh", "en", None}),
            ids_without_spaces=False,
        ),
        HandwrittenSet(
            name="independent2",
            build=build2,
            word_ages={"ninety-one": 91, "ninety-four": 94, "九十二": 92, "九十三": 93},
        ),
        HandwrittenSet(
            name="independent3",
            build=build3,
            word_ages={
                "ninety": 90,
                "ninety-one": 91,
                "ninety-two": 92,
                "九十": 90,
                "九十四": 94,
                "一百零一": 101,
            },
            min_notes=110,
            min_phi=900,
        ),
        HandwrittenSet(
            name="independent4",
            build=build4,
            word_ages={
                "ninety four": 94,
                "ninety-seven": 97,
                "九十": 90,
                "九十一": 91,
                "九十六": 96,
            },
            min_notes=110,
            min_phi=1000,
            langs=frozenset({"zh", "en", None}),
        ),
        HandwrittenSet(
            name="independent5",
            build=build5,
            word_ages={
                "ninety-one": 91,
                "ninety-two": 92,
                "ninety-three": 93,
                "ninety-six": 96,
                "ninety five": 95,
                "九十": 90,
                "九十一": 91,
                "九十二": 92,
                "九十三": 93,
                "九十四": 94,
                "九十五": 95,
                "一百零二": 102,
            },
            min_notes=110,
            min_phi=1000,
            langs=frozenset({"zh", "en", None}),
        ),
        HandwrittenSet(
            name="independent6",
            build=build6,
            word_ages={
                "ninety": 90,
                "ninety-one": 91,
                "ninety-two": 92,
                "ninety-three": 93,
                "ninety six": 96,
                "九十一": 91,
                "九十三": 93,
                "九十五": 95,
                "九十八": 98,
            },
            min_notes=110,
            min_phi=1000,
            langs=frozenset({"zh", "en", None}),
        ),
    )
}


def each(*names: str) -> pytest.MarkDecorator:
    """Run the test once per named set (every set when none is named)."""
    chosen = names or tuple(SETS)
    return pytest.mark.parametrize("hset", [SETS[n] for n in chosen], ids=chosen)


@functools.cache
def records_of(name: str) -> list[dict[str, Any]]:
    return load(split_path(name))


@each()
def test_split_is_registered_and_points_into_its_package(hset: HandwrittenSet) -> None:
    assert split_path(hset.name) == hset.build.OUTPUT
    assert hset.build.OUTPUT.parent == Path(hset.build.__file__).parent


@each()
def test_file_is_built_from_the_current_sources(hset: HandwrittenSet) -> None:
    build = hset.build
    on_disk = build.OUTPUT.read_text(encoding="utf-8")
    assert on_disk == build.render(build.build())
    assert build.main(["--check"]) == 0


@each()
def test_every_span_is_the_marked_text(hset: HandwrittenSet) -> None:
    assert_spans_are_the_marked_text(records_of(hset.name), hset.build.SOURCE_DIR)


@each()
def test_spans_are_in_bounds_and_disjoint(hset: HandwrittenSet) -> None:
    assert_spans_in_bounds_and_disjoint(records_of(hset.name))


@each()
def test_types_are_contract_types_and_all_present(hset: HandwrittenSet) -> None:
    records = records_of(hset.name)
    seen = {p["type"] for r in records for p in r["phi"]}
    assert seen <= CONTRACT_TYPES
    assert seen == CONTRACT_TYPES
    for lang in ("zh", "en"):
        in_lang = {p["type"] for r in records if r["lang"] == lang for p in r["phi"]}
        assert hset.types_in_each_lang <= in_lang, lang


@each()
def test_size_and_language_balance(hset: HandwrittenSet) -> None:
    records = records_of(hset.name)
    assert len(records) >= hset.min_notes
    assert len({r["id"] for r in records}) == len(records)
    assert sum(len(r["phi"]) for r in records) >= hset.min_phi
    langs = [r["lang"] for r in records]
    assert langs.count("zh") >= 0.4 * len(records)
    assert langs.count("en") >= 0.4 * len(records)
    with_keep = sum(1 for r in records if r["keep"])
    assert with_keep >= hset.keep_share * len(records), "notes carry clinical terms to keep"


def id_numbers(hset: HandwrittenSet) -> list[str]:
    ids = [
        unicodedata.normalize("NFKC", r["text"][p["start"] : p["end"]])
        for r in records_of(hset.name)
        for p in r["phi"]
        if p["type"] == "ID_NUMBER"
    ]
    return [re.sub(r"\s", "", i) for i in ids] if hset.ids_without_spaces else ids


@each()
def test_resident_ids_cover_valid_wrong_and_x_check_digits(hset: HandwrittenSet) -> None:
    resident = [i for i in id_numbers(hset) if re.fullmatch(r"\d{17}[\dX]", i)]
    assert any(id_check_ok(i) for i in resident)
    assert any(not id_check_ok(i) for i in resident)
    assert any(i.endswith("X") and id_check_ok(i) for i in resident)


@each("independent2", "independent3", "independent4", "independent5", "independent6")
def test_hong_kong_taiwan_and_singapore_malaysia_ids_are_present(hset: HandwrittenSet) -> None:
    ids = id_numbers(hset)
    assert any(re.fullmatch(r"[A-Z]{1,2}\d{6}\([\dA]\)", i) for i in ids)
    assert any(re.fullmatch(r"[A-Z][12]\d{8}", i) for i in ids)
    assert any(re.fullmatch(r"[STFG]\d{7}[A-Z]", i) for i in ids)
    assert any(re.fullmatch(r"\d{6}-\d{2}-\d{4}", i) for i in ids)


@each()
def test_ages_are_over_89(hset: HandwrittenSet) -> None:
    ages: list[tuple[str, int]] = []
    for rec in records_of(hset.name):
        for p in rec["phi"]:
            if p["type"] == "AGE":
                value = unicodedata.normalize("NFKC", rec["text"][p["start"] : p["end"]])
                if value.isdigit():
                    ages.append((rec["id"], int(value)))
                elif hset.word_ages is not None:
                    ages.append((rec["id"], hset.word_ages[value]))
    assert ages
    assert [a for a in ages if a[1] <= 89] == []


@each("independent2", "independent3", "independent4", "independent5", "independent6")
def test_kept_ages_are_89_or_less(hset: HandwrittenSet) -> None:
    """A bare number kept right before 岁/y/-year-old is an age that is not PHI."""
    for rec in records_of(hset.name):
        text = rec["text"]
        for k in rec["keep"]:
            after = text[k["end"] : k["end"] + 12]
            if k["term"].isdigit() and re.match(r"(岁|歲|y\b|Y\b| ?y/o|-year-old| yrs?\b)", after):
                assert int(k["term"]) <= 89, (rec["id"], k["term"])


@each("independent3")
def test_dose_ratios_and_stages_are_kept_not_dates(hset: HandwrittenSet) -> None:
    """The traps the set was written to hold are marked KEEP, never PHI."""
    records = records_of(hset.name)
    kept = {k["term"] for r in records for k in r["keep"]}
    phi_text = {r["text"][p["start"] : p["end"]] for r in records for p in r["phi"]}
    for trap in ("Norco 5/325 mg", "Percocet 5/325 mg", "C3D8", "T2aN1M0", "Dr. Reddy's"):
        assert any(trap in term for term in kept), trap
        assert not any(trap in span for span in phi_text), trap


@each()
def test_records_have_the_evaluator_fields(hset: HandwrittenSet) -> None:
    for rec in records_of(hset.name):
        assert set(rec) == {"id", "lang", "patient_id", "text", "phi", "keep"}
        assert rec["lang"] in hset.langs


# The builder is shared: each set's entry point is checked on notes written here.


def write_source(tmp_path: Path, body: str) -> Path:
    (tmp_path / "a.txt").write_text(body, encoding="utf-8")
    return tmp_path


@each()
def test_builder_refuses_unknown_type(hset: HandwrittenSet, tmp_path: Path) -> None:
    src = write_source(tmp_path, "### n1 | en | p1 | note\nSeen by ⟦DOCTOR:Smith⟧.\n")
    with pytest.raises(hset.build.SourceError, match="unknown type 'DOCTOR'"):
        hset.build.build(src)


@each()
def test_builder_refuses_unbalanced_mark(hset: HandwrittenSet, tmp_path: Path) -> None:
    src = write_source(tmp_path, "### n1 | en | p1 | note\nSeen by ⟦NAME:Smith.\n")
    with pytest.raises(hset.build.SourceError, match="unbalanced"):
        hset.build.build(src)


@each()
def test_builder_refuses_bad_header_and_duplicate_ids(hset: HandwrittenSet, tmp_path: Path) -> None:
    src = write_source(tmp_path, "### n1 | fr | p1 | note\ntext\n")
    with pytest.raises(hset.build.SourceError, match="bad header"):
        hset.build.build(src)
    src = write_source(tmp_path, "### n1 | en | p1 | a\nx\n### n1 | en | p1 | b\ny\n")
    with pytest.raises(hset.build.SourceError, match="used twice"):
        hset.build.build(src)


@each()
def test_builder_offsets_on_a_small_note(hset: HandwrittenSet, tmp_path: Path) -> None:
    src = write_source(
        tmp_path, "comment\n### n1 | zh | p1 | note\n患者⟦NAME:欧阳乐⟧服⟦KEEP:奥希替尼⟧。\n"
    )
    (rec,) = hset.build.build(src)
    assert rec["text"] == "患者欧阳乐服奥希替尼。\n"
    assert rec["phi"] == [{"start": 2, "end": 5, "type": "NAME"}]
    assert rec["keep"] == [{"start": 6, "end": 10, "term": "奥希替尼"}]
    assert json.loads(hset.build.render([rec]))["lang"] == "zh"
