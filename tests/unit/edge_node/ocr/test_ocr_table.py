"""Table reconstruction from OCR boxes: rows by geometry, columns by header names."""

from __future__ import annotations

import itertools
import random

import pytest

from edge_node.ocr.engine import TextBox
from edge_node.ocr.labs import LabReader
from edge_node.ocr.table import group_lines, header_columns, level_cells, reconstruct
from shared_cdm.vocab import load_default
from tests.unit.edge_node.ocr.conftest import box, table_boxes

ROWS = [
    {"no": "1", "item": "癌胚抗原", "result": "12.35", "flag": "↑", "unit": "ng/mL",
     "reference": "0-5"},
    {"no": "2", "item": "糖类抗原125", "result": "<0.50", "flag": "", "unit": "U/ml",
     "reference": "0-35"},
    {"no": "3", "item": "神经元特异性烯醇化酶", "result": "3.10", "flag": "↓", "unit": "μg/L",
     "reference": "5-16.3"},
    {"no": "4", "item": "胃泌素释放肽前体", "result": "45.6", "flag": "", "unit": "pg/mL",
     "reference": "0-65.7"},
]  # fmt: skip
ZH = {"no": "序号", "item": "项目名称", "result": "结果", "flag": "提示", "unit": "单位",
      "reference": "参考范围"}  # fmt: skip
EN = {"no": "No.", "item": "Test", "result": "Result", "flag": "Flag", "unit": "Unit",
      "reference": "Reference range"}  # fmt: skip
WANT = [
    ("CEA", 12.35, None, "ng/mL", "H", "0-5"),
    ("CA125", 0.5, "<", "U/mL", None, "0-35"),
    ("NSE", 3.1, None, "ug/L", "L", "5-16.3"),
    ("ProGRP", 45.6, None, "pg/mL", None, "0-65.7"),
]


@pytest.fixture(scope="module")
def reader() -> LabReader:
    class NoEngine:
        def read(self, image: object) -> list[TextBox]:
            raise AssertionError("not used: boxes are given")

    return LabReader(NoEngine(), load_default())


def _got(reader: LabReader, boxes: list[TextBox]) -> list[tuple[object, ...]]:
    return [
        (i["code"], i["value"], i["qualifier"], i["unit"], i["flag"], i["reference_range"])
        for i in reader.items(boxes)
    ]


@pytest.mark.parametrize(
    "order", list(itertools.permutations(["result", "flag", "unit", "reference"]))[::5]
)
@pytest.mark.parametrize("titles", [ZH, EN])
def test_columns_in_any_order(
    reader: LabReader, order: tuple[str, ...], titles: dict[str, str]
) -> None:
    header = [(k, titles[k]) for k in ("item", *order)]
    assert _got(reader, table_boxes(header, ROWS)) == WANT


def test_item_column_need_not_come_first(reader: LabReader) -> None:
    header = [(k, EN[k]) for k in ("no", "flag", "result", "unit", "reference", "item")]
    assert _got(reader, table_boxes(header, ROWS, seed=3)) == WANT


@pytest.mark.parametrize("turn", [-4.0, -2.0, 1.5, 4.0])
def test_tilted_page(reader: LabReader, turn: float) -> None:
    header = [(k, ZH[k]) for k in ("no", "item", "result", "flag", "unit", "reference")]
    assert _got(reader, table_boxes(header, ROWS, turn=turn)) == WANT


def test_header_lines_above_the_table_are_not_items(reader: LabReader) -> None:
    preamble = ("Harbourview Hospital - Laboratory Report", "Patient: Chen Wei  Age: 61  MRN 12345",
                "CEA 99.9 ng/mL requested", "Collected: 2026-03-01 07:40")  # fmt: skip
    header = [(k, EN[k]) for k in ("item", "result", "unit", "reference")]
    rows = [{k: v for k, v in r.items() if k != "flag"} for r in ROWS]
    got = _got(reader, table_boxes(header, rows, preamble=preamble))
    assert [g[:4] for g in got] == [w[:4] for w in WANT]


def test_flag_inside_the_result_cell(reader: LabReader) -> None:
    rows = [{**r, "result": f"{r['result']} {r['flag']}".strip()} for r in ROWS]
    header = [(k, ZH[k]) for k in ("item", "result", "unit", "reference")]
    assert _got(reader, table_boxes(header, rows)) == WANT


def test_two_titles_read_as_one_box() -> None:
    boxes = [box("项目名称", 40, 100), box("结果", 340, 100), box("参考范围单位", 480, 100)]
    columns = header_columns(group_lines(level_cells(boxes))[0])
    assert [c.kind for c in columns] == ["item", "result", "reference", "unit"]
    assert columns[2].x1 <= columns[3].x0 + 1e-6


def test_no_header_gives_no_table() -> None:
    boxes = [box("出院小结", 40, 40), box("患者因咳嗽入院", 40, 90), box("12.3", 300, 90)]
    assert reconstruct(boxes) == ([], [])


def test_reader_says_when_there_is_no_table(reader: LabReader) -> None:
    from edge_node.ocr.labs import SheetError

    with pytest.raises(SheetError, match="no lab table"):
        reader.items([box("Discharge summary", 40, 40)])


def test_rows_stay_apart_under_a_small_perspective() -> None:
    # each row drifts down by 8 px across the page, as in a phone photo
    rng = random.Random(1)
    boxes = []
    for r in range(8):
        for c, x in enumerate((40, 340, 480, 620)):
            y = 100 + 48 * r + 8 * x / 700 + rng.uniform(-2, 2)
            boxes.append(box(f"r{r}c{c}", x, y))
    lines = group_lines(level_cells(boxes))
    assert [sorted(c.text for c in line.cells) for line in lines] == [
        [f"r{r}c{c}" for c in range(4)] for r in range(8)
    ]


def test_unknown_item_keeps_its_name_without_a_code(reader: LabReader) -> None:
    header = [(k, EN[k]) for k in ("item", "result", "unit")]
    rows = [{"item": "Mystery marker X", "result": "3.2", "unit": "ng/mL"}]
    items = reader.items(table_boxes(header, rows))
    assert [(i["name"], i["code"], i["loinc"], i["value"], i["value_std"]) for i in items] == [
        ("Mystery marker X", None, None, 3.2, None)
    ]


def test_value_converted_to_the_standard_unit(reader: LabReader) -> None:
    header = [(k, EN[k]) for k in ("item", "result", "unit")]
    rows = [
        {"item": "CEA", "result": "4.2", "unit": "μg/L"},
        {"item": "CA125", "result": "0.05", "unit": "KU/mL"},
    ]
    items = reader.items(table_boxes(header, rows))
    assert [(i["unit"], i["value_std"], i["unit_std"]) for i in items] == [
        ("ug/L", 4.2, "ng/mL"),
        ("kU/mL", 50.0, "U/mL"),
    ]
