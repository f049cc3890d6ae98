"""`suggest_mapping`: proposed mapping entries from column names and value profiles."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_node.pipeline.mapping import RowMapper, SiteMapping, parse_mapping
from edge_node.pipeline.records import MappedRecord, SourceRow
from edge_node.pipeline.suggest import suggest_mapping, suggest_table
from ops.synth.hospital import write_hospital
from ops.synth.mappings import mapping_text
from ops.synth.variants import get_variant
from shared_cdm.vocab import Vocabulary, load_default

HEADER = """\
site: suggested
version: 1
sources:
  emr: {kind: sql, url: "sqlite:///emr.db"}
  lis: {kind: csv, path: lis/lab_results.csv, encoding: auto}
  pacs: {kind: csv, path: pacs/studies.csv}
"""


class FakeConnector:
    """The three connector methods `suggest_mapping` uses, over rows in memory."""

    def __init__(self, tables: dict[str, list[dict[str, str | None]]]) -> None:
        self._tables = tables
        self.sampled: list[tuple[str, int]] = []

    def tables(self) -> list[str]:
        return sorted(self._tables)

    def columns(self, table: str) -> list[str]:
        return list(self._tables[table][0])

    def sample(self, table: str, n: int = 1000) -> list[SourceRow]:
        self.sampled.append((table, n))
        rows = self._tables[table][:n]
        return [SourceRow(str(i), dict(r)) for i, r in enumerate(rows)]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_default()


def _patients(n: int = 60) -> list[dict[str, str | None]]:
    rng = random.Random(3)
    return [
        {
            "brid": f"{3100001 + i}",
            "xm": rng.choice(["张伟", "王芳", "李娜"]),
            "xb": rng.choice(["1", "2"]),
            "csrq": f"19{rng.randint(40, 80)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日",
            "sfzh": f"44010619{rng.randint(40, 80)}0101{rng.randint(100, 999)}X",
            "beizhu": rng.choice([None, "无", "过敏史"]),
        }
        for i in range(n)
    ]


def _opaque_labs(n: int = 80) -> list[dict[str, str | None]]:
    """A lab export whose column names say nothing: only the values do."""
    rng = random.Random(4)
    items = [("癌胚抗原", "ng/mL"), ("血红蛋白", "g/L"), ("Creatinine", "μmol/L")]
    rows: list[dict[str, str | None]] = []
    for i in range(n):
        name, unit = items[i % 3]
        rows.append(
            {
                "c1": f"X{i:05d}",
                "c2": f"P{i // 4:04d}",
                "c3": name,
                "c4": f"{rng.uniform(1, 150):.1f}",
                "c5": unit if i % 5 else None,
                "c6": f"2021-0{1 + i % 9}-1{i % 10} 08:30",
            }
        )
    return rows


def _load(text: str) -> SiteMapping:
    return parse_mapping(HEADER + text, path="suggested.yaml")


def test_a_patient_table_with_pinyin_columns(vocab: Vocabulary) -> None:
    connector = FakeConnector({"tb_brxx": _patients()})
    text = suggest_mapping(connector, "emr", None, vocab)
    assert connector.sampled == [("tb_brxx", 500)]
    (table,) = _load(text).tables
    assert (table.source, table.table, table.target, table.key) == (
        "emr",
        "tb_brxx",
        "patient",
        "brid",
    )
    assert table.fields["patient_id"].column == "brid"
    assert table.fields["sex"].values == {"1": "male", "2": "female"}
    assert table.fields["birth_date"].date_format == ("%Y年%m月%d日",)
    assert table.fields["resident_id"].column == "sfzh"
    assert "GB/T 2261.1" in text and "check" in text  # digit codes are flagged for review
    assert "# unmatched columns, review: beizhu" in text
    for line in text.splitlines():
        if line.startswith("      ") and ":" in line:  # a field line
            assert "  # 0." in line, line


def test_values_alone_identify_a_lab_table(vocab: Vocabulary) -> None:
    connector = FakeConnector({"export_2021": _opaque_labs()})
    suggestion = suggest_table(
        "export_2021", connector.columns("export_2021"), connector.sample("export_2021"), vocab
    )
    assert suggestion.target == "lab"
    columns = {name: column for name, (column, _) in suggestion.fields.items()}
    assert columns["item_name"] == "c3"
    assert columns["value"] == "c4"
    assert columns["unit"] == "c5"
    assert columns["result_date"] == "c6"
    assert suggestion.key == "c1"
    # rows without a unit get the unit the other rows of the analyte give
    assert suggestion.default_units == {
        "CEA": ("ng/mL", suggestion.default_units["CEA"][1]),
        "HGB": ("g/L", suggestion.default_units["HGB"][1]),
        "CREA": ("μmol/L", suggestion.default_units["CREA"][1]),
    }
    evidence = suggestion.fields["item_name"][1]
    assert "analytes" in evidence.why and 0.5 < evidence.confidence < 1


def test_day_first_dates_get_a_date_format(vocab: Vocabulary) -> None:
    rows: list[dict[str, str | None]] = [
        {"EncounterNo": f"E{i}", "PatientNo": f"P{i}", "AdmitDate": f"{1 + i % 28:02d}/03/2021"}
        for i in range(40)
    ]
    suggestion = suggest_table("ENCOUNTERS", list(rows[0]), _rows(rows), vocab)
    assert suggestion.target == "admission"
    profile = suggestion.profiles["AdmitDate"]
    assert profile.date_format == "%d/%m/%Y" and "day first" in profile.date_note
    ambiguous = [{**r, "AdmitDate": "04/03/2021"} for r in rows]
    suggestion = suggest_table("ENCOUNTERS", list(rows[0]), _rows(ambiguous), vocab)
    assert "undecided" in suggestion.profiles["AdmitDate"].date_note


def test_a_non_unique_key_is_flagged(vocab: Vocabulary) -> None:
    rows: list[dict[str, str | None]] = [
        {"pat_id": f"P{i % 3}", "diag_name": "右肺上叶腺癌", "icd_code": "C34.1"} for i in range(9)
    ]
    suggestion = suggest_table("dx", list(rows[0]), _rows(rows), vocab)
    assert suggestion.target == "diagnosis"
    assert suggestion.key is None and "no unique column" in suggestion.key_note
    text = suggest_mapping(FakeConnector({"dx": rows}), "emr", ["dx"], vocab)
    assert "key: CHOOSE" in text
    assert yaml.safe_load(text)["tables"][0]["fields"]["icd10"] == "icd_code"


def test_an_empty_source_gives_an_empty_list(vocab: Vocabulary) -> None:
    text = suggest_mapping(FakeConnector({}), "emr", None, vocab)
    assert yaml.safe_load(text) == {"tables": []}


def _rows(rows: list[dict[str, str | None]]) -> list[SourceRow]:
    return [SourceRow(str(i), r) for i, r in enumerate(rows)]


# --- the synthetic hospitals through the real connectors --------------------


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    result = {}
    for code in "ABC":
        folder = tmp_path_factory.mktemp(f"suggest_{code}")
        write_hospital(folder, patients=120, seed=5, variant=get_variant(code))
        result[code] = folder
    return result


@pytest.mark.parametrize("code", ["A", "B", "C"])
def test_suggestions_for_the_synthetic_hospitals_match_the_shipped_mappings(
    hospitals: dict[str, Path], code: str, vocab: Vocabulary
) -> None:
    """The proposal picks the operator's target, key and columns for every
    EMR table, the LIS and the PACS index, and maps rows the same way."""
    connectors = pytest.importorskip("edge_node.pipeline.connectors")
    folder = hospitals[code]
    shipped = parse_mapping(mapping_text(code), base_dir=folder)
    text = ""
    opened: dict[str, Any] = {}
    for name, spec in shipped.sources.items():
        opened[name] = connectors.open_connector(name, spec.options(), folder)
        text += suggest_mapping(opened[name], name, None, vocab).replace("tables:\n", "")
    suggested = _load("tables:\n" + text)
    by_table = {(t.source, t.table): t for t in suggested.tables}
    assert len(by_table) == len(shipped.tables) == 11
    for want in shipped.tables:
        got = by_table[(want.source, want.table)]
        assert (got.target, got.key) == (want.target, want.key), want.label
        connector = opened[want.source]
        columns = connector.columns(want.table)
        expected, proposed = RowMapper(want, columns, vocab), RowMapper(got, columns, vocab)
        assert proposed.resolved == expected.resolved, want.label
        for row in connector.sample(want.table, 50):
            a, b = expected.map(row), proposed.map(row)
            assert type(a) is type(b), (want.label, a, b)
            if isinstance(a, MappedRecord):
                assert isinstance(b, MappedRecord) and a.fields == b.fields, want.label
    for connector in opened.values():
        connector.close()
