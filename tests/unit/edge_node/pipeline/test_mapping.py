"""The site mapping file and the row mapper compiled from it."""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from edge_node.pipeline.mapping import (
    RowMapper,
    SiteMapping,
    TableMapping,
    load_mapping,
    parse_mapping,
)
from edge_node.pipeline.records import MappedRecord, Rejection, SourceRow
from edge_node.pipeline.targets import TARGETS
from shared_cdm.errors import InvalidInput
from shared_cdm.vocab import Vocabulary, load_default

HEADER = """\
site: test-site
version: 3
sources:
  emr: {kind: sql, url: "sqlite:///emr.db"}
  lis: {kind: csv, path: lis/, encoding: auto}
"""


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_default()


def _mapping(tables: str, header: str = HEADER) -> SiteMapping:
    return parse_mapping(header + "tables:\n" + tables, path="mapping.yaml")


def _table(entry: str) -> TableMapping:
    return _mapping(entry).tables[0]


def _mapper(entry: str, columns: list[str], vocab: Vocabulary) -> RowMapper:
    return RowMapper(_table(entry), columns, vocab)


def _row(key: str = "1", **values: str | None) -> SourceRow:
    return SourceRow(key, dict(values))


def _ok(result: MappedRecord | Rejection) -> dict[str, Any]:
    assert isinstance(result, MappedRecord), result
    return result.fields


def _rejected(result: MappedRecord | Rejection, code: str) -> Rejection:
    assert isinstance(result, Rejection), result
    assert result.code == code, result
    return result


# --- the file ---------------------------------------------------------------

DOC_EXAMPLE = """\
site: dongjiang-first            # free text
version: 3
extraction:
  icd10_ranges: ["C00-D48"]
sources:
  emr: {kind: sql, url: "sqlite:///emr.db"}
  lis: {kind: csv, path: lis/, encoding: auto}
  fhir: {kind: fhir, path: fhir/}
  hl7: {kind: hl7v2, path: hl7/}
tables:
  - source: emr
    table: patient_master
    target: patient
    key: pat_id
    fields:
      resident_id: id_card_no
      sex: {column: sex, values: {男: male, 女: female}}
      birth_date: {column: birth_date, date_format: "%Y-%m-%d"}
  - source: lis
    table: lab_results
    target: lab
    key: sample_id
    fields:
      value: {column: result}
    analyte_codes: {LIS0001: CEA}
    default_units: {HGB: g/L}
"""


def test_the_documented_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(DOC_EXAMPLE, encoding="utf-8")
    mapping = load_mapping(path)
    assert (mapping.site, mapping.version) == ("dongjiang-first", "3")
    assert mapping.path == path and mapping.base_dir == tmp_path.resolve()
    assert mapping.icd10_ranges == ("C00-D48",)
    assert set(mapping.sources) == {"emr", "lis", "fhir", "hl7"}
    patient, lab = mapping.tables
    assert patient.fields["resident_id"].column == "id_card_no"
    assert patient.fields["sex"].values == {"男": "male", "女": "female"}
    assert patient.fields["birth_date"].date_format == ("%Y-%m-%d",)
    assert lab.analyte_codes == {"LIS0001": "CEA"} and lab.default_units == {"HGB": "g/L"}
    assert lab.watermark is None and lab.label == "lis.lab_results -> lab"


def test_defaults_and_source_options() -> None:
    mapping = _mapping("  []\n")
    assert mapping.extraction.icd10_ranges == ("C00-D48",)
    assert mapping.tables == ()
    emr, lis = mapping.sources["emr"], mapping.sources["lis"]
    assert emr.options() == {"kind": "sql", "url": "sqlite:///emr.db"}
    assert lis.options() == {"kind": "csv", "path": "lis/", "encoding": "auto"}
    base = Path("/data/hospital")
    assert emr.resolved(base)["url"] == "sqlite:////data/hospital/emr.db"
    assert lis.resolved(base)["path"] == "/data/hospital/lis"
    absolute = _mapping("  []\n", HEADER.replace("sqlite:///emr.db", "sqlite:////srv/emr.db"))
    assert absolute.sources["emr"].resolved(base)["url"] == "sqlite:////srv/emr.db"


def test_a_sql_schema_is_passed_on() -> None:
    header = HEADER.replace('url: "sqlite:///emr.db"', 'url: "postgresql://h/db", schema: his')
    assert _mapping("  []\n", header).sources["emr"].options()["schema"] == "his"


def test_fingerprint_follows_content_not_layout() -> None:
    entry = "  - {source: emr, table: t, target: follow_up, key: pid}\n"
    first = _mapping(entry).fingerprint()
    relaid = _mapping(
        "  # a comment\n  - target: follow_up\n    key: pid\n    table: t\n    source: emr\n"
    ).fingerprint()
    assert first == relaid and len(first) == 64
    assert _mapping(entry.replace("pid", "pat")).fingerprint() != first
    assert _mapping(entry, HEADER.replace("version: 3", "version: 4")).fingerprint() != first


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        (
            "  - {source: emr, table: tb_x, target: patient, key: id, wat: 1}\n",
            r"mapping\.yaml: tables\[0\] \(emr\.tb_x\): unknown key 'wat'",
        ),
        (
            "  - {source: emr, table: tb_x, target: patient, key: id,"
            " fields: {sex: {colum: xb}}}\n",
            r"tables\[0\] \(emr\.tb_x\): fields\.sex: unknown key 'colum'",
        ),
        (
            "  - {source: emr, table: tb_x, target: patients, key: id}\n",
            r"tables\[0\] \(emr\.tb_x\): target: unknown target 'patients'; one of patient",
        ),
        (
            "  - {source: emr, table: tb_x, target: patient, key: id, fields: {gender: xb}}\n",
            r"tables\[0\] \(emr\.tb_x\): fields\.gender: patient has no field 'gender'",
        ),
        (
            "  - {source: emr, table: tb_x, target: patient, key: id,"
            " fields: {sex: {column: xb, values: {'1': man}}}}\n",
            r"fields\.sex: values map to \['man'\]; allowed are male, female, unknown",
        ),
        (
            "  - {source: emr, table: tb_x, target: patient, key: id,"
            " fields: {name: {column: xm, date_format: '%Y'}}}\n",
            r"fields\.name: date_format given for a phi field",
        ),
        (
            "  - {source: emr, table: tb_x, target: follow_up, key: id,"
            " fields: {vital_status: {column: zt, values: {yes: dead}}}}\n",
            r"fields\.vital_status\.values: .*quote it",
        ),
        (
            "  - {source: pacs, table: tb_x, target: imaging, key: id}\n",
            r"tables\[0\] \(pacs\.tb_x -> imaging\): source 'pacs' is not under sources "
            r"\(emr, lis\)",
        ),
        (
            "  - {source: emr, table: tb_x, target: patient}\n",
            r"tables\[0\] \(emr\.tb_x\): 'key' is required",
        ),
        (
            "  - {source: emr, table: tb_x, target: patient, key: id, default_units: {HGB: g/L}}\n",
            r"analyte_codes and default_units are for target lab only",
        ),
        (
            "  - {source: lis, table: l, target: lab, key: id,"
            " fields: {value: {column: v, unit: bogons}}}\n",
            r"fields\.value: unknown unit 'bogons'",
        ),
        (
            "  - {source: emr, table: t, target: patient, key: id}\n"
            "  - {source: emr, table: t, target: patient, key: id}\n",
            r"tables\[1\] \(emr\.t -> patient\) is mapped twice",
        ),
        (
            "  - {source: emr, table: t, target: patient, key: id, watermark: updated_at}\n",
            r"watermark: .*reading by a watermark column is not supported yet",
        ),
    ],
)
def test_errors_name_the_file_the_table_entry_and_the_field(tables: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        _mapping(tables)
    assert caught.value.code == "invalid_mapping"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEADER + "colour: blue\ntables: []\n", r"mapping\.yaml: unknown key 'colour'"),
        (HEADER.replace("site: test-site\n", "") + "tables: []\n", r"'site' is required"),
        (
            HEADER.replace("kind: sql", "kind: oracle") + "tables: []\n",
            r"sources\.emr: kind: Input should be 'sql', 'csv', 'fhir', 'hl7v2' or 'lab_sheets'",
        ),
        (
            HEADER.replace('url: "sqlite:///emr.db"', "path: emr.db") + "tables: []\n",
            r"sources\.emr: source 'emr': kind sql needs a url",
        ),
        (
            HEADER.replace("encoding: auto", "encoding: auto, schema: x") + "tables: []\n",
            r"source 'lis': schema does not apply to kind csv",
        ),
        (
            HEADER + "extraction: {icd10_ranges: [C00-X]}\ntables: []\n",
            r"extraction\.icd10_ranges: 'C00-X' is not an ICD-10 code or range",
        ),
        (HEADER + "tables: [\n", r"mapping\.yaml, line \d+: not valid YAML"),
        (HEADER + "site: again\ntables: []\n", r"line 6: .*key 'site' given twice"),
        ("- just a list\n", r"a mapping file is a YAML mapping"),
    ],
)
def test_file_level_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_mapping(text, path="mapping.yaml")


def test_a_missing_file_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read the mapping"):
        load_mapping(tmp_path / "nope.yaml")


def test_yaml_numbers_become_text() -> None:
    entry = (
        "  - source: lis\n    table: l\n    target: lab\n    key: 2021\n"
        "    analyte_codes: {'0001': CEA, 17: HGB}\n"
        "    fields: {value: {column: v, default: 0}}\n"
    )
    table = _table(entry)
    assert table.key == "2021"
    assert table.analyte_codes == {"0001": "CEA", "17": "HGB"}
    assert table.fields["value"].default == "0"


# --- compiling against the columns ------------------------------------------

PATIENT = "  - {source: emr, table: PATIENTS, target: patient, key: PatientNo}\n"


def test_default_aliases_are_found_folded(vocab: Vocabulary) -> None:
    columns = ["PatientNo", "FullName", "Gender", "DOB", "NationalID", "Phone", "Extra"]
    mapper = _mapper(PATIENT, columns, vocab)
    assert mapper.resolved == {
        "patient_id": "PatientNo",
        "name": "FullName",
        "sex": "Gender",
        "birth_date": "DOB",
        "resident_id": "NationalID",
        "phone": "Phone",
    }


def test_explicit_columns_and_aliases_win_over_defaults(vocab: Vocabulary) -> None:
    entry = (
        "  - source: emr\n    table: t\n    target: patient\n    key: a\n"
        "    fields:\n      patient_id: hosp_no\n      name: {aliases: [nm, fullname]}\n"
    )
    mapper = _mapper(entry, ["pat_id", "HOSP_NO", "fullname", "nm"], vocab)
    assert mapper.resolved["patient_id"] == "HOSP_NO"  # folded match of the named column
    assert mapper.resolved["name"] == "nm"


def test_a_default_alias_never_takes_a_column_named_for_another_field(
    vocab: Vocabulary,
) -> None:
    entry = (
        "  - source: emr\n    table: t\n    target: patient\n    key: mrn\n"
        "    fields: {patient_id: mrn, name: phone, sex: {aliases: [gcode], default: unknown}}\n"
    )
    mapper = _mapper(entry, ["mrn", "phone", "gcode"], vocab)
    assert mapper.resolved == {"patient_id": "mrn", "name": "phone", "sex": "gcode"}
    fields = _ok(mapper.map(_row(mrn="1", phone="王五", gcode=None)))
    assert (fields["name"], fields["phone"], fields["sex"]) == ("王五", None, "unknown")


def test_a_named_column_that_is_absent_is_an_error(vocab: Vocabulary) -> None:
    entry = "  - {source: emr, table: t, target: patient, key: a, fields: {sex: xb}}\n"
    with pytest.raises(InvalidInput, match=r"column 'xb' of field sex is not in the table; its"):
        _mapper(entry, ["brid", "gender"], vocab)


def test_missing_required_fields_are_named_with_the_columns_seen(vocab: Vocabulary) -> None:
    entry = "  - {source: lis, table: results, target: lab, key: a}\n"
    with pytest.raises(InvalidInput) as caught:
        _mapper(entry, ["a", "result", "whatever"], vocab)
    message = str(caught.value)
    assert "item_name" in message and "result_date" in message
    assert "patient_id or admission_id" in message
    assert "a, result, whatever" in message
    assert "lis.results -> lab" in message


def test_a_diagnosis_table_needs_a_code_or_a_text(vocab: Vocabulary) -> None:
    entry = "  - {source: emr, table: dx, target: diagnosis, key: id}\n"
    with pytest.raises(InvalidInput, match="icd10 or diagnosis_text"):
        _mapper(entry, ["id", "patient_id"], vocab)


def test_lab_mapping_names_an_unknown_analyte(vocab: Vocabulary) -> None:
    entry = "  - {source: lis, table: l, target: lab, key: id, analyte_codes: {X1: NOPE}}\n"
    with pytest.raises(InvalidInput, match="'NOPE' is not an analyte"):
        _mapper(entry, ["id", "patient_id", "item_name", "result", "report_date"], vocab)


def test_default_units_are_checked_against_the_analyte(vocab: Vocabulary) -> None:
    entry = "  - {source: lis, table: l, target: lab, key: id, default_units: {CEA: U/mL}}\n"
    with pytest.raises(InvalidInput, match=r"default_units\.CEA: CEA: 'U/mL' cannot be"):
        _mapper(entry, ["id", "patient_id", "item_name", "result", "report_date"], vocab)


# --- mapping rows -----------------------------------------------------------


def test_a_patient_row_becomes_typed_fields(vocab: Vocabulary) -> None:
    entry = (
        "  - source: emr\n    table: tb_brxx\n    target: patient\n    key: brid\n"
        "    fields:\n      sex: {column: xb, values: {'1': male, '2': female}}\n"
        "      birth_date: {column: csrq, date_format: '%Y年%m月%d日'}\n"
    )
    mapper = _mapper(entry, ["brid", "xm", "xb", "csrq", "sfzh"], vocab)
    record = mapper.map(
        _row("3100001", brid="3100001", xm="张三", xb="1", csrq="1944年6月18日", sfzh=" 44 ")
    )
    assert isinstance(record, MappedRecord)
    assert (record.target, record.source, record.table, record.key) == (
        "patient",
        "emr",
        "tb_brxx",
        "3100001",
    )
    assert record.fields == {
        "patient_id": "3100001",
        "name": "张三",
        "sex": "male",
        "birth_date": date(1944, 6, 18),
        "resident_id": "44",
        "phone": None,
        "address": None,
    }


def test_an_empty_sex_is_unknown_and_a_strange_one_is_rejected(vocab: Vocabulary) -> None:
    mapper = _mapper(PATIENT, ["PatientNo", "Gender"], vocab)
    assert _ok(mapper.map(_row(PatientNo="P1", Gender=None)))["sex"] == "unknown"
    assert _ok(mapper.map(_row(PatientNo="P1", Gender="女")))["sex"] == "female"
    rejection = _rejected(mapper.map(_row("P1", PatientNo="P1", Gender="X")), "invalid_enum")
    assert rejection.field == "sex" and "Gender" in rejection.reason
    assert rejection.raw == {"PatientNo": "P1", "Gender": "X"}
    assert (rejection.source, rejection.table, rejection.key) == ("emr", "PATIENTS", "P1")


def test_dates_that_do_not_parse_and_empty_required_fields(vocab: Vocabulary) -> None:
    entry = "  - {source: emr, table: adm, target: admission, key: adm_id}\n"
    mapper = _mapper(entry, ["adm_id", "pat_id", "admit_date", "discharge_date"], vocab)
    fields = _ok(
        mapper.map(_row(adm_id="A1", pat_id="P1", admit_date="2021-03-04", discharge_date=None))
    )
    assert fields["admit_date"] == date(2021, 3, 4) and fields["discharge_date"] is None
    bad = mapper.map(_row(adm_id="A1", pat_id="P1", admit_date="2021-02-30"))
    assert _rejected(bad, "invalid_date").field == "admit_date"
    empty = mapper.map(_row(adm_id="A1", pat_id="P1", admit_date="  "))
    assert _rejected(empty, "missing_required").field == "admit_date"
    no_id = mapper.map(_row(adm_id=None, pat_id="P1", admit_date="2021-03-04"))
    assert _rejected(no_id, "missing_required").field == "admission_id"


def test_a_record_that_links_to_nobody_is_rejected(vocab: Vocabulary) -> None:
    entry = "  - {source: emr, table: notes, target: note, key: doc_id}\n"
    mapper = _mapper(entry, ["doc_id", "adm_id", "pat_id", "content"], vocab)
    assert _ok(mapper.map(_row(doc_id="1", adm_id="A1", content="text")))["text"] == "text"
    rejection = mapper.map(_row(doc_id="1", content="text"))
    assert _rejected(rejection, "missing_required").field == "patient_id"


def test_defaults_and_value_maps_on_text_fields(vocab: Vocabulary) -> None:
    entry = (
        "  - source: emr\n    table: dx\n    target: diagnosis\n    key: id\n"
        "    fields:\n      diagnosis_type: {column: t, values: {'1': primary, '2': secondary}}\n"
        "      diagnosis_date: {default: '2020-01-01'}\n"
    )
    mapper = _mapper(entry, ["id", "patient_id", "icd10", "t"], vocab)
    fields = _ok(mapper.map(_row(id="1", patient_id="P", icd10="C34.1", t="2")))
    assert fields["diagnosis_type"] == "secondary"
    assert fields["diagnosis_date"] == date(2020, 1, 1)


# --- labs -------------------------------------------------------------------

LAB = """\
  - source: lis
    table: lab_results
    target: lab
    key: sample_id
    analyte_codes: {TM006: HGB}
    default_units: {CEA: ng/mL}
"""
LAB_COLUMNS = [
    "sample_id",
    "pat_id",
    "adm_id",
    "item_code",
    "item_name",
    "result",
    "unit",
    "ref_range",
    "report_time",
]


def _lab(mapper: RowMapper, **values: str | None) -> MappedRecord | Rejection:
    row = {
        "sample_id": "S1",
        "pat_id": "P1",
        "adm_id": "A1",
        "item_code": None,
        "item_name": "血红蛋白",
        "result": "14.3",
        "unit": "g/dL",
        "ref_range": "11.5-17.5",
        "report_time": "2021-03-04 08:30",
    }
    row.update(values)
    return mapper.map(SourceRow("S1", row))


@pytest.fixture(scope="module")
def lab(vocab: Vocabulary) -> RowMapper:
    return RowMapper(_table(LAB), LAB_COLUMNS, vocab)


def test_a_lab_value_is_converted_to_the_standard_unit(lab: RowMapper) -> None:
    record = _lab(lab)
    assert isinstance(record, MappedRecord)
    assert record.fields == {
        "lab_id": "S1",
        "admission_id": "A1",
        "patient_id": "P1",
        "item_code": None,
        "item_name": "血红蛋白",
        "value": pytest.approx(143.0),
        "unit": "g/L",
        "reference_range": "11.5-17.5",
        "result_date": datetime(2021, 3, 4, 8, 30),
        "analyte": "HGB",
        "operator": None,
        "value_as_written": "14.3",
        "unit_as_written": "g/dL",
        "loinc": "718-7",
        "range_low": pytest.approx(115.0),
        "range_high": pytest.approx(175.0),
        "confidence": None,  # only OCR'd lab sheets carry one
    }
    assert set(record.fields) == {f.name for f in TARGETS["lab"].fields} | {
        "analyte",
        "operator",
        "value_as_written",
        "unit_as_written",
        "loinc",
        "range_low",
        "range_high",
    }


def test_molar_conversion_and_detection_limits(lab: RowMapper) -> None:
    crea = _ok(_lab(lab, item_name="肌酐", result="0.79", unit="mg/dL", ref_range="0.64-1.26"))
    assert crea["value"] == pytest.approx(69.84, abs=0.01) and crea["unit"] == "umol/L"
    assert crea["range_low"] == pytest.approx(56.58, abs=0.01)
    below = _ok(_lab(lab, item_name="CEA", result="<0.5", unit="μg/L", ref_range="<5"))
    assert (below["value"], below["operator"], below["analyte"]) == (0.5, "<", "CEA")
    assert (below["range_low"], below["range_high"]) == (None, 5.0)


def test_item_codes_come_before_names(lab: RowMapper) -> None:
    fields = _ok(_lab(lab, item_code="TM006", item_name="某检验项目"))
    assert fields["analyte"] == "HGB" and fields["item_code"] == "TM006"


def test_default_unit_when_the_unit_column_is_empty(lab: RowMapper) -> None:
    fields = _ok(_lab(lab, item_name="癌胚抗原", result="3.2", unit=None, ref_range=None))
    assert (fields["value"], fields["unit"], fields["unit_as_written"]) == (3.2, "ng/mL", None)
    missing = _lab(lab, item_name="AFP", result="3.2", unit=None)
    assert _rejected(missing, "missing_unit").field == "unit"


@pytest.mark.parametrize(
    ("values", "code", "field"),
    [
        ({"result": None}, "missing_value", "value"),
        ({"result": "  "}, "missing_value", "value"),
        ({"result": "阴性"}, "non_numeric_value", "value"),
        ({"item_name": "白介素6"}, "unknown_analyte", "item_name"),
        ({"unit": "bogons"}, "unknown_unit", "unit"),
        ({"unit": "mmol/L"}, "incompatible_unit", "unit"),
        ({"result": "9999", "unit": "g/L"}, "implausible_value", "value"),
        ({"result": "99999"}, "implausible_value", "value"),
        ({"result": "-5.00", "item_name": "CEA", "unit": "ng/mL"}, "implausible_value", "value"),
        ({"result": "1.2", "unit": "g/L"}, "implausible_value", "value"),  # HGB 1.2 g/L
        ({"report_time": "yesterday"}, "invalid_date", "result_date"),
        ({"report_time": None}, "missing_required", "result_date"),
    ],
)
def test_lab_rejections(lab: RowMapper, values: dict[str, str], code: str, field: str) -> None:
    rejection = _rejected(_lab(lab, **values), code)
    assert rejection.field == field
    assert rejection.reason


def test_a_large_but_possible_value_is_kept(lab: RowMapper) -> None:
    fields = _ok(_lab(lab, item_name="ALT", result="9800", unit="U/L", ref_range="7-40"))
    assert fields["value"] == 9800.0
    sentinel = _lab(lab, item_name="ALT", result="9999", unit="U/L")
    assert "placeholder" in _rejected(sentinel, "implausible_value").reason


def test_a_fixed_unit_overrides_the_unit_column(vocab: Vocabulary) -> None:
    entry = (
        "  - source: emr\n    table: hb\n    target: lab\n    key: id\n"
        "    fields: {value: {column: hb_gdl, unit: g/dL}, item_name: {default: HGB}}\n"
    )
    mapper = _mapper(entry, ["id", "adm_id", "hb_gdl", "report_date"], vocab)
    fields = _ok(mapper.map(_row(id="1", adm_id="A", hb_gdl="12.1", report_date="2021-01-02")))
    assert (fields["analyte"], fields["value"], fields["unit"]) == ("HGB", 121.0, "g/L")


# --- diagnoses, drugs, operations, follow-up ----------------------------------

DIAGNOSIS = "  - {source: emr, table: tb_zdxx, target: diagnosis, key: zdid}\n"
DX_COLUMNS = ["zdid", "zyh", "brid", "zddm", "zdmc"]


def test_coded_diagnoses_are_canonical(vocab: Vocabulary) -> None:
    mapper = _mapper(DIAGNOSIS, DX_COLUMNS, vocab)
    fields = _ok(mapper.map(_row(zdid="1", brid="P", zddm="C34.100x001", zdmc="右肺上叶腺癌")))
    assert (fields["icd10"], fields["icd10_from_text"], fields["confidence"]) == (
        "C34.1",
        False,
        1.0,
    )
    bad = _rejected(mapper.map(_row(zdid="1", brid="P", zddm="不详", zdmc="x")), "invalid_code")
    assert bad.field == "icd10" and "zddm" in bad.reason


def test_written_diagnoses_are_coded_from_text(vocab: Vocabulary) -> None:
    mapper = _mapper(DIAGNOSIS, DX_COLUMNS, vocab)
    fields = _ok(mapper.map(_row(zdid="1", brid="P", zddm=None, zdmc="左肺下叶鳞状细胞癌")))
    assert (fields["icd10"], fields["icd10_from_text"], fields["confidence"]) == (
        "C34.3",
        True,
        0.9,
    )
    benign = _ok(mapper.map(_row(zdid="2", brid="P", zddm=None, zdmc="肺部结节（性质待查）")))
    assert (benign["icd10"], benign["icd10_from_text"], benign["confidence"]) == (
        None,
        False,
        None,
    )
    nothing = mapper.map(_row(zdid="3", brid="P", zddm=None, zdmc=None))
    assert _rejected(nothing, "missing_required").field == "icd10"


def test_a_code_map_translates_local_codes(vocab: Vocabulary) -> None:
    entry = (
        "  - source: emr\n    table: dx\n    target: diagnosis\n    key: id\n"
        "    fields: {icd10: {column: code, codes: {LC01: C34.1}}}\n"
    )
    mapper = _mapper(entry, ["id", "patient_id", "code"], vocab)
    assert _ok(mapper.map(_row(id="1", patient_id="P", code="lc01")))["icd10"] == "C34.1"


MEDICATION = "  - {source: emr, table: med, target: medication, key: order_id}\n"


def test_drugs_are_coded_to_atc(vocab: Vocabulary) -> None:
    mapper = _mapper(
        MEDICATION, ["order_id", "adm_id", "drug_name", "dose", "dose_unit", "start_date"], vocab
    )
    row = {"order_id": "1", "adm_id": "A", "dose": "500.0", "dose_unit": "mg/m²"}
    fields = _ok(mapper.map(_row(**row, drug_name="培美曲塞", start_date="2021-01-02")))
    assert fields["drug_code"] == "L01BA04"
    assert (fields["dose"], fields["dose_unit"]) == (500.0, "mg/m2")
    unknown = _ok(mapper.map(_row(**row, drug_name="祖传秘方", start_date="2021-01-02")))
    assert unknown["drug_code"] is None
    bad_dose = mapper.map(_row(**{**row, "dose": "适量"}, drug_name="x", start_date="2021-01-02"))
    assert _rejected(bad_dose, "non_numeric_value").field == "dose"


def test_a_drug_code_column_and_its_map_come_first(vocab: Vocabulary) -> None:
    entry = (
        "  - source: emr\n    table: med\n    target: medication\n    key: id\n"
        "    fields: {drug_code: {column: ypdm, codes: {Y001: L01XA01}}}\n"
    )
    mapper = _mapper(entry, ["id", "adm_id", "ypdm", "drug_name", "start_date"], vocab)
    base = {"id": "1", "adm_id": "A", "start_date": "2021-01-02", "drug_name": "紫杉醇"}
    assert _ok(mapper.map(_row(**base, ypdm="Y001")))["drug_code"] == "L01XA01"
    assert _ok(mapper.map(_row(**base, ypdm="l01cd01")))["drug_code"] == "L01CD01"
    # an unknown local code falls back to the name
    assert _ok(mapper.map(_row(**base, ypdm="Y999")))["drug_code"] == "L01CD01"


def test_operations_are_coded_to_icd9cm3(vocab: Vocabulary) -> None:
    entry = "  - {source: emr, table: op, target: operation, key: op_id}\n"
    mapper = _mapper(entry, ["op_id", "adm_id", "op_date", "op_name"], vocab)
    base = {"op_id": "1", "adm_id": "A", "op_date": "2021-01-02"}
    fields = _ok(mapper.map(_row(**base, op_name="胸腔镜下肺叶切除术+淋巴结清扫术")))
    assert fields["procedure_code"] == "32.41"
    assert _ok(mapper.map(_row(**base, op_name="清创缝合")))["procedure_code"] is None


def test_follow_up_vital_status(vocab: Vocabulary) -> None:
    entry = (
        "  - source: emr\n    table: tb_swsf\n    target: follow_up\n    key: brid\n"
        "    fields: {vital_status: {column: zt, values: {'0': alive, '1': dead}}}\n"
    )
    mapper = _mapper(entry, ["brid", "zhsfrq", "zt", "swrq"], vocab)
    alive = _ok(mapper.map(_row(brid="1", zhsfrq="2021年4月22日", zt="0", swrq=None)))
    assert (alive["vital_status"], alive["last_contact_date"]) == ("alive", date(2021, 4, 22))
    dead = _ok(mapper.map(_row(brid="1", zhsfrq="2021年4月22日", zt=None, swrq="2021年4月22日")))
    assert dead["vital_status"] == "dead"  # a death date says so
    assert _ok(mapper.map(_row(brid="1", zt="存活")))["vital_status"] == "alive"  # default map


# --- speed ------------------------------------------------------------------


def test_lab_rows_map_fast(lab: RowMapper) -> None:
    """A loose floor against accidental per-row work (pint, regexes); the
    target on an idle core is 150k rows/s."""
    names = ["血红蛋白", "白蛋白", "肌酐", "癌胚抗原", "白细胞计数"]
    units = ["g/L", "g/L", "μmol/L", "ng/mL", "10^9/L"]
    base = [100, 30, 50, 1, 3]
    rows = [
        SourceRow(
            f"S{i}",
            {
                "sample_id": f"S{i}",
                "pat_id": f"P{i // 20}",
                "adm_id": f"A{i // 10}",
                "item_code": None,
                "item_name": names[i % 5],
                "result": "<0.5"
                if i % 5 == 3 and i % 7 == 0
                else f"{base[i % 5] + i % 9}.{i % 10}",
                "unit": units[i % 5],
                "ref_range": "1-200",
                "report_time": f"2021-03-{1 + i % 28:02d}",
            },
        )
        for i in range(20_000)
    ]
    started = time.perf_counter()
    results = [lab.map(row) for row in rows]
    rate = len(rows) / (time.perf_counter() - started)
    assert all(isinstance(r, MappedRecord) for r in results)
    assert rate > 20_000, f"{rate:.0f} rows/s"
