"""Scanned lab sheets: a few PNG images of tumour-marker reports per hospital.

The Chinese hospitals (A, C) print Chinese sheets: `XX医院检验报告单`, the
patient line (姓名/性别/年龄/住院号/科室), a table of 项目名称/结果/单位/参考范围/提示
with ↑/↓ flags (columns in each hospital's own order) and the 检验者/审核者/报告时间
footer, drawn with a CJK TrueType font (`cjk_font`) by Pillow. The English
hospital (B) prints English sheets with OpenCV's Hershey font, which draws ASCII
only, so its units are drawn in ASCII (`umol/L`, `x10^9/L`). Every sheet then
gets light scanner noise and a small tilt. The truth keeps what each sheet shows;
`lab_sheets/index.csv` is the scan index a document-management system keeps
(file, patient, admission, report and scan dates, document type) in the
hospital's own column names, date style and encoding.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ops.synth.labs import TUMOUR_MARKERS
from ops.synth.phi import Staff
from ops.synth.records import PatientRecords
from ops.synth.variants import HospitalVariant, get_variant
from shared_cdm.errors import Unavailable

SHEETS_PER_HOSPITAL = 5
HOSPITAL_NAMES_EN = {
    "A": "Dongjiang First People's Hospital",
    "B": "Harbourview International Hospital",
    "C": "Xishan County Central Hospital",
}
SHEET_SIZE = {"en": (620, 900), "zh": (720, 1000)}  # (height, width) in pixels
# The font package the project pins (SIL Open Font License): Noto Sans SC and
# Noto Serif SC. Debian's and others' CJK fonts are used when it is missing.
FONT_PACKAGE = "pylopdf_fonts_zh_cn"
_PACKAGE_FONTS = {"sans": "NotoSansSC-Regular.otf", "serif": "NotoSerifSC-Regular.otf"}
_SYSTEM_FONTS = (  # (path, face index in a collection)
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
)
# Each Chinese hospital's sheet: its font and its columns, in order, with titles
# and x positions.
_ZH_LAYOUT = {
    "A": (
        "sans",
        (
            ("no", "序号", 40),
            ("item", "项目名称", 110),
            ("result", "结果", 420),
            ("flag", "提示", 540),
            ("unit", "单位", 620),
            ("reference", "参考范围", 790),
        ),
    ),
    "C": (
        "serif",
        (
            ("item", "项目名称", 40),
            ("code", "代号", 330),
            ("result", "结果", 430),
            ("unit", "单位", 560),
            ("reference", "参考范围", 710),
            ("flag", "提示", 900),
        ),
    ),
}
_EN_COLUMNS = ("item", "result", "unit", "reference")
# The scan index the document-management system keeps (`lab_sheets/index.csv`),
# in each hospital's own column names; dates in its own style, in the encoding
# of its other exports. Columns: file, patient, admission, report date, scan
# date, document type.
INDEX_FILE = "index.csv"
INDEX_COLUMNS = {
    "A": ("file_name", "pat_id", "adm_id", "report_date", "scan_date", "doc_type"),
    "B": ("FileName", "MRN", "VisitNo", "ReportDate", "ScanDate", "DocumentType"),
    "C": ("文件名", "病人ID", "住院号", "报告日期", "扫描日期", "文书类型"),
}
_DOCUMENT_TYPE = {"zh": "检验报告单", "en": "Laboratory report"}
_ASCII = str.maketrans({"μ": "u", "×": "x", "年": "-", "月": "-", "日": ""})


@dataclass(frozen=True)
class SheetLine:
    item: str
    result: str
    unit: str
    reference: str
    flag: str = ""  # "↑", "↓" or ""
    code: str = ""  # the LIS item code
    no: str = ""  # the row number

    def shown(self, columns: tuple[str, ...]) -> dict[str, str]:
        cells = {
            "no": self.no,
            "item": self.item,
            "code": self.code,
            "result": self.result,
            "flag": self.flag,
            "unit": self.unit,
            "reference": self.reference,
        }
        return {c: cells[c] for c in columns}


@dataclass(frozen=True)
class LabSheet:
    sheet_id: str
    patient_id: str
    admission_id: str
    report_date: str
    lines: tuple[SheetLine, ...]
    language: str = "en"
    hospital: str = ""
    patient: dict[str, str] = field(default_factory=dict)  # the patient line, as printed
    details: dict[str, str] = field(default_factory=dict)  # sample, requester, times
    footer: dict[str, str] = field(default_factory=dict)  # tester, reviewer, report time


def flag(result: str, reference: str) -> str:
    """`↑` above the reference range, `↓` below it; nothing for `<0.5` or no range."""
    low_high = reference.split("-")
    if len(low_high) != 2 or result.startswith("<"):
        return ""
    try:
        value, low, high = float(result), float(low_high[0]), float(low_high[1])
    except ValueError:
        return ""
    return "↑" if value > high else "↓" if value < low else ""


def sheet_for(
    rec: PatientRecords,
    names: dict[str, tuple[str, str]],
    number: int,
    *,
    variant: HospitalVariant,
    staff: Staff,
    seed: int,
) -> LabSheet | None:
    """The tumour markers of the patient's first admission, if it had any with results."""
    markers = {
        r["lab_id"]: r["analyte"]
        for r in rec.truth_labs
        if r["analyte"] in TUMOUR_MARKERS and r["problem"] is None
    }
    rows = [r for r in rec.lis if r["lab_id"] in markers]
    if not rows:
        return None
    first = rows[0]["admission_id"]
    rows = [r for r in rows if r["admission_id"] == first]
    sheet_id = f"sheet_{number:03d}"
    if variant.language != "zh":
        lines = tuple(
            SheetLine(
                names[markers[r["lab_id"]]][1],
                str(r["result"]),
                str(r["unit"]).translate(_ASCII),
                str(r["reference_range"]),
            )
            for r in rows
        )
        day = str(rows[0]["report_date"]).translate(_ASCII)
        return LabSheet(sheet_id, rows[0]["patient_id"], first, day, lines)
    lines = tuple(
        SheetLine(
            names[markers[r["lab_id"]]][0],
            str(r["result"]),
            str(r["unit"]),
            str(r["reference_range"]),
            flag(str(r["result"]), str(r["reference_range"])),
            str(r["item_code"]),
            str(i),
        )
        for i, r in enumerate(rows, start=1)
    )
    rng = random.Random(f"oncofed-synth/{seed}/{variant.code}/{sheet_id}")
    visit = rec.visits[first]
    age = (visit.admit - date.fromisoformat(rec.truth["birth_date"])).days // 365
    day = str(rows[0]["report_date"])
    tester, reviewer = rng.sample(staff.technologists, 2)
    patient = {
        "name": rec.name,
        "sex": "男" if rec.truth["male"] else "女",
        "age": f"{age}岁",
        "admission_id": first,
        "department": visit.department,
        "bed": str(visit.bed),
    }
    details = {
        "sample_id": str(rows[0]["lab_id"]),
        "sample_type": "血清",
        "requested_by": rec.attending,
        "sampled_at": f"{day} {rng.randint(6, 8):02d}:{rng.randrange(60):02d}",
    }
    footer = {
        "tester": tester.name.full,
        "reviewer": reviewer.name.full,
        "report_time": f"{day} {rng.randint(13, 17):02d}:{rng.randrange(60):02d}",
    }
    return LabSheet(
        sheet_id,
        rows[0]["patient_id"],
        first,
        day,
        lines,
        "zh",
        variant.hospital_name,
        patient,
        details,
        footer,
    )


@cache
def cjk_font(style: str = "sans") -> tuple[str, int]:
    """(path, face index) of a CJK font, from the pinned font package or the system."""
    if find_spec(FONT_PACKAGE) is not None:
        packaged = resources.files(FONT_PACKAGE) / _PACKAGE_FONTS[style]
        if packaged.is_file():
            return str(packaged), 0
    for path, index in _SYSTEM_FONTS:
        if Path(path).is_file():
            return path, index
    raise Unavailable(
        "Chinese lab sheets need a CJK font: install the Python package "
        "pylopdf-fonts-zh-cn (pinned in pyproject.toml) or a system CJK font "
        "such as Debian's fonts-noto-cjk",
        code="cjk_font_missing",
    )


@cache
def _font(style: str, size: int) -> ImageFont.FreeTypeFont:
    path, index = cjk_font(style)
    return ImageFont.truetype(path, size, index=index)


def render(sheet: LabSheet, hospital_code: str, seed: int) -> np.ndarray:
    if sheet.language == "zh":
        return _scanned(render_zh(sheet, hospital_code), sheet, hospital_code, seed)
    return _scanned(render_en(sheet, hospital_code), sheet, hospital_code, seed)


def render_en(sheet: LabSheet, hospital_code: str) -> np.ndarray:
    """A grey A5-ish page in OpenCV's Hershey font."""
    page = np.full(SHEET_SIZE["en"], 250, dtype=np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(page, HOSPITAL_NAMES_EN[hospital_code], (40, 60), font, 0.9, 20, 2)
    cv2.putText(page, "Tumour marker report", (40, 100), font, 0.7, 20, 1)
    cv2.putText(
        page,
        f"Patient ID: {sheet.patient_id}   Admission: {sheet.admission_id}",
        (40, 140),
        font,
        0.55,
        20,
        1,
    )
    cv2.putText(page, f"Report date: {sheet.report_date}", (40, 170), font, 0.55, 20, 1)
    columns = (40, 400, 560, 700)
    y = 220
    for x, title in zip(columns, ("Item", "Result", "Unit", "Reference"), strict=True):
        cv2.putText(page, title, (x, y), font, 0.6, 20, 2)
    cv2.line(page, (40, y + 12), (860, y + 12), 60, 1)
    for line in sheet.lines:
        y += 40
        cells = (line.item, line.result, line.unit, line.reference)
        for x, cell in zip(columns, cells, strict=True):
            cv2.putText(page, cell, (x, y), font, 0.55, 20, 1)
    return page


def zh_columns(hospital_code: str) -> tuple[str, ...]:
    return tuple(key for key, _, _ in _ZH_LAYOUT[hospital_code][1])


def render_zh(sheet: LabSheet, hospital_code: str) -> np.ndarray:
    """A Chinese 检验报告单 drawn with a CJK TrueType font."""
    height, width = SHEET_SIZE["zh"]
    style, columns = _ZH_LAYOUT[hospital_code]
    image = Image.new("L", (width, height), 250)
    draw = ImageDraw.Draw(image)
    title = f"{sheet.hospital}检验报告单"
    big = _font(style, 34)
    text_width = draw.textlength(title, font=big)
    draw.text(
        ((width - text_width) / 2, 28), title, font=big, fill=20, stroke_width=1, stroke_fill=20
    )
    small, body = _font(style, 17), _font(style, 20)
    colon = "：" if hospital_code == "A" else ":"
    p, d, f = sheet.patient, sheet.details, sheet.footer
    draw.text(
        (40, 92),
        f"标本号{colon}{d['sample_id']}    标本类型{colon}{d['sample_type']}    "
        f"检验项目{colon}肿瘤标志物",
        font=small,
        fill=30,
    )
    draw.text(
        (40, 124),
        f"姓名{colon}{p['name']}   性别{colon}{p['sex']}   年龄{colon}{p['age']}   "
        f"住院号{colon}{p['admission_id']}   科室{colon}{p['department']}   "
        f"床号{colon}{p['bed']}",
        font=body,
        fill=20,
    )
    draw.text(
        (40, 158),
        f"送检医师{colon}{d['requested_by']}    采样时间{colon}{d['sampled_at']}",
        font=body,
        fill=20,
    )
    draw.line((40, 196, width - 40, 196), fill=40, width=2)
    for _, heading, x in columns:
        draw.text((x, 206), heading, font=body, fill=20, stroke_width=1, stroke_fill=20)
    draw.line((40, 240, width - 40, 240), fill=60, width=1)
    y = 252
    for line in sheet.lines:
        cells = line.shown(tuple(key for key, _, _ in columns))
        for key, _, x in columns:
            draw.text((x, y), cells[key], font=body, fill=20)
        y += 40
    draw.line((40, y + 4, width - 40, y + 4), fill=60, width=1)
    draw.line((40, height - 124, width - 40, height - 124), fill=40, width=2)
    draw.text(
        (40, height - 110),
        f"检验者{colon}{f['tester']}    审核者{colon}{f['reviewer']}    "
        f"报告时间{colon}{f['report_time']}",
        font=body,
        fill=20,
    )
    draw.text(
        (40, height - 70),
        "注：本报告仅对所检标本负责。↑ 偏高  ↓ 偏低",
        font=small,
        fill=40,
    )
    return np.asarray(image, dtype=np.uint8).copy()


def _scanned(page: np.ndarray, sheet: LabSheet, hospital_code: str, seed: int) -> np.ndarray:
    """Light scanner noise and a small tilt."""
    height, width = page.shape
    rng = np.random.default_rng([seed, ord(hospital_code), int(sheet.sheet_id[-3:])])
    noisy = page.astype(np.int16) + rng.normal(0, 6, page.shape).astype(np.int16)
    page = np.clip(noisy, 0, 255).astype(np.uint8)
    angle = float(rng.uniform(-1.5, 1.5))
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    return cv2.warpAffine(page, turn, (width, height), borderValue=250)


def _truth(sheet: LabSheet, hospital_code: str) -> dict[str, object]:
    columns = _EN_COLUMNS if sheet.language == "en" else zh_columns(hospital_code)
    row: dict[str, object] = {
        "image": f"lab_sheets/{sheet.sheet_id}.png",
        "language": sheet.language,
        "patient_id": sheet.patient_id,
        "admission_id": sheet.admission_id,
        "report_date": sheet.report_date,
        "columns": list(columns),
        "lines": [line.shown(columns) for line in sheet.lines],
    }
    if sheet.language == "zh":
        row["font"] = Path(cjk_font(_ZH_LAYOUT[hospital_code][0])[0]).name
        row["title"] = f"{sheet.hospital}检验报告单"
        row["column_titles"] = [heading for _, heading, _ in _ZH_LAYOUT[hospital_code][1]]
        row["patient"] = sheet.patient
        row["details"] = sheet.details
        row["footer"] = sheet.footer
    return row


def write_sheets(out: Path, sheets: list[LabSheet], hospital_code: str, seed: int) -> None:
    folder = out / "lab_sheets"
    folder.mkdir(exist_ok=True)
    truth = []
    for sheet in sheets:
        image = render(sheet, hospital_code, seed)
        ok, encoded = cv2.imencode(".png", image)
        if not ok:
            raise RuntimeError(f"OpenCV could not encode {sheet.sheet_id} as PNG")
        (folder / f"{sheet.sheet_id}.png").write_bytes(encoded.tobytes())
        truth.append(_truth(sheet, hospital_code))
    text = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in truth)
    (out / "truth" / "lab_sheets.jsonl").write_text(text, encoding="utf-8")
    write_index(folder, sheets, get_variant(hospital_code), seed)


def _report_day(sheet: LabSheet, variant: HospitalVariant) -> date:
    """The sheet's report date, read back from the hospital's date style."""
    text = sheet.report_date
    if variant.date_style == "dmy":
        day, month, year = text.split("/")
        return date(int(year), int(month), int(day))
    if variant.date_style == "zh":
        year, rest = text.split("年")
        month, day = rest.rstrip("日").split("月")
        return date(int(year), int(month), int(day))
    return date.fromisoformat(text)


def write_index(folder: Path, sheets: list[LabSheet], variant: HospitalVariant, seed: int) -> None:
    """`index.csv`: one row per scanned sheet, scanned 0-6 days after its report."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(INDEX_COLUMNS[variant.code])
    kind = _DOCUMENT_TYPE["zh" if variant.language == "zh" else "en"]
    for sheet in sheets:
        reported = _report_day(sheet, variant)
        rng = random.Random(f"oncofed-synth/{seed}/{variant.code}/{sheet.sheet_id}/scan")
        scanned = date.fromordinal(reported.toordinal() + rng.randint(0, 6))
        writer.writerow(
            (
                f"{sheet.sheet_id}.png",
                sheet.patient_id,
                sheet.admission_id,
                variant.format_date(reported),
                variant.format_date(scanned),
                kind,
            )
        )
    (folder / INDEX_FILE).write_bytes(buffer.getvalue().encode(variant.lis_encoding))
