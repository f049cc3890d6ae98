"""Chinese lab sheets of hospitals A and C: drawn with a CJK font, true to the LIS."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from ops.synth.hospital import write_hospital
from ops.synth.sheets import SHEET_SIZE, cjk_font, flag
from ops.synth.variants import VARIANTS, get_variant
from shared_cdm.vocab import load_default

cv2 = pytest.importorskip("cv2")
_CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    made = {}
    for variant in "ABC":
        out = tmp_path_factory.mktemp(f"sheets{variant}")
        write_hospital(out, patients=120, seed=4, variant=get_variant(variant))
        made[variant] = out
    return made


def _sheets(out: Path) -> list[dict]:
    lines = (out / "truth" / "lab_sheets.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _lis(out: Path, variant: str) -> dict[str, list[str]]:
    spec = VARIANTS[variant]
    rows = list(
        csv.reader(io.StringIO((out / "lis" / "lab_results.csv").read_text(spec.lis_encoding)))
    )
    return {row[0]: row for row in rows[1:]}


def test_a_cjk_font_is_found_without_downloading() -> None:
    path, index = cjk_font("sans")
    assert Path(path).is_file() and index >= 0


@pytest.mark.parametrize("variant", ["A", "C"])
def test_chinese_sheets_show_chinese_items_in_the_hospitals_own_columns(
    hospitals: dict[str, Path], variant: str
) -> None:
    out = hospitals[variant]
    names_zh = {a.name_zh for a in load_default().analytes}
    sheets = _sheets(out)
    assert len(sheets) == 5
    lis = _lis(out, variant)
    identities = {
        json.loads(line)["patient_id"]: json.loads(line)
        for line in (out / "truth" / "identities.jsonl").read_text("utf-8").splitlines()
    }
    for sheet in sheets:
        assert sheet["language"] == "zh"
        assert sheet["title"] == f"{VARIANTS[variant].hospital_name}检验报告单"
        assert sheet["column_titles"][sheet["columns"].index("item")] == "项目名称"
        assert {"项目名称", "结果", "单位", "参考范围", "提示"} <= set(sheet["column_titles"])
        patient = sheet["patient"]
        assert patient["name"] == identities[sheet["patient_id"]]["name"]
        assert patient["admission_id"] == sheet["admission_id"]
        assert patient["sex"] in ("男", "女") and patient["age"].endswith("岁")
        assert _CJK.search(sheet["footer"]["tester"]) and _CJK.search(sheet["footer"]["reviewer"])
        assert sheet["footer"]["report_time"].startswith(sheet["report_date"])
        sample = lis[sheet["details"]["sample_id"]]
        assert sample[2] == sheet["admission_id"]
        for line in sheet["lines"]:
            assert list(line) == sheet["columns"]
            assert line["item"] in names_zh and _CJK.search(line["item"])
            assert line["flag"] == flag(line["result"], line["reference"])
            assert line["flag"] in ("", "↑", "↓")
    flags = {line["flag"] for sheet in sheets for line in sheet["lines"]}
    assert "↑" in flags


def test_the_two_chinese_hospitals_order_their_columns_differently(
    hospitals: dict[str, Path],
) -> None:
    a, c = _sheets(hospitals["A"])[0], _sheets(hospitals["C"])[0]
    assert a["columns"] != c["columns"] and set(a["columns"]) != set(c["columns"])
    assert a["font"] != c["font"] or a["font"].endswith("ttc")
    assert "code" in c["columns"] and "no" in a["columns"]
    b = _sheets(hospitals["B"])[0]
    assert b["language"] == "en" and b["columns"] == ["item", "result", "unit", "reference"]


@pytest.mark.parametrize("variant", ["A", "C"])
def test_chinese_sheet_images_are_pages_with_ink_where_the_text_is(
    hospitals: dict[str, Path], variant: str
) -> None:
    for sheet in _sheets(hospitals[variant]):
        image = cv2.imread(str(hospitals[variant] / sheet["image"]), cv2.IMREAD_GRAYSCALE)
        assert image is not None and image.shape == SHEET_SIZE["zh"]
        title = image[20:80, 200:800]
        table = image[250 : 250 + 40 * len(sheet["lines"]), 40:960]
        blank = image[520:560, 40:960]  # between the table and the footer
        assert (title < 100).mean() > 0.03  # a bold title
        assert (table < 100).mean() > 0.01
        assert (blank < 100).mean() < 0.002
        assert np.median(image) > 200  # a light page


def test_chinese_sheets_read_back_by_ocr(hospitals: dict[str, Path]) -> None:
    """RapidOCR, with the models its wheel ships, reads what the truth says."""
    rapidocr = pytest.importorskip("rapidocr")
    engine = rapidocr.RapidOCR()
    for variant in ("A", "C"):
        sheet = _sheets(hospitals[variant])[0]
        read = "".join(engine(str(hospitals[variant] / sheet["image"])).txts or ())
        squeezed = read.replace(" ", "")
        assert "检验报告单" in squeezed
        assert sheet["patient"]["name"] in squeezed
        assert sheet["admission_id"] in squeezed
        items = [line["item"] for line in sheet["lines"]]
        assert sum(item in squeezed for item in items) >= len(items) - 1
        results = [line["result"] for line in sheet["lines"]]
        assert sum(result in squeezed for result in results) >= len(results) - 1
