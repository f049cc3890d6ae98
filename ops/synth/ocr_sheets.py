"""Lab sheets for the OCR development set: rendered tables, then degraded.

Each sheet is a tumour-marker report in Chinese or English with header lines
(hospital, patient, dates), a table whose columns come in the sheet's own order
and titles, and a footer. It is then degraded like the images sites receive:

- `scan`: a flatbed scan (grey noise, a tilt under 1.5 degrees), as PNG or PDF;
- `photo`: a phone photo (perspective, a rotation up to 3 degrees, a shadow
  across the page, blur, colour), as JPEG;
- `forwarded`: a photo forwarded through a chat app (downscaled to 70-80 %,
  ~850-950 pixels wide, JPEG quality 40-55).

The truth line per file lists the items as the contract `lab-ocr.md` returns them.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ops.synth.sheets import cjk_font
from shared_cdm.vocab import load_default

DEGRADATIONS = ("scan", "photo", "forwarded")
PAGE = (1400, 1100)  # (height, width) in pixels, ~130 dpi A4


@dataclass(frozen=True)
class Marker:
    code: str  # the contract's code
    vocab_code: str  # the code in shared_cdm's analyte table
    names_zh: tuple[str, ...]
    names_en: tuple[str, ...]
    units: tuple[str, ...]  # as printed; the first is the UCUM spelling
    normal: tuple[float, float]  # mean, sd
    high: float  # upper reference limit
    decimals: int
    detection_limit: float | None = None


MARKERS = (
    Marker("CEA", "CEA", ("癌胚抗原", "癌胚抗原(CEA)"), ("CEA", "Carcinoembryonic antigen"),
           ("ng/mL", "ng/ml", "μg/L"), (3.0, 3.0), 5.0, 2, 0.5),
    Marker("CA125", "CA125", ("糖类抗原125", "糖类抗原CA125"), ("CA125", "CA-125"),
           ("U/mL", "U/ml"), (25.0, 20.0), 35.0, 1),
    Marker("CA15-3", "CA15-3", ("糖类抗原15-3", "糖类抗原153"), ("CA15-3", "CA 15-3"),
           ("U/mL", "U/ml"), (15.0, 10.0), 25.0, 1),
    Marker("CA19-9", "CA19-9", ("糖类抗原19-9", "糖类抗原199"), ("CA19-9", "CA 19-9"),
           ("U/mL", "U/ml"), (25.0, 25.0), 37.0, 1),
    Marker("CA72-4", "CA72-4", ("糖类抗原72-4", "糖类抗原724"), ("CA72-4",),
           ("U/mL",), (5.0, 4.0), 6.9, 2),
    Marker("CYFRA21-1", "CYFRA21-1", ("细胞角蛋白19片段",),
           ("CYFRA21-1", "Cytokeratin 19 fragment"), ("ng/mL", "ng/ml"), (2.5, 2.0), 3.3, 2, 0.5),
    Marker("NSE", "NSE", ("神经元特异性烯醇化酶",), ("NSE", "Neuron-specific enolase"),
           ("ng/mL", "μg/L"), (13.0, 6.0), 16.3, 2),
    Marker("SCC", "SCC", ("鳞状细胞癌抗原", "鳞状细胞癌相关抗原(SCC)"), ("SCC", "SCC-Ag"),
           ("ng/mL",), (1.0, 0.8), 1.5, 2, 0.5),
    Marker("ProGRP", "ProGRP", ("胃泌素释放肽前体",), ("ProGRP",),
           ("pg/mL", "pg/ml"), (45.0, 30.0), 65.7, 1),
    Marker("AFP", "AFP", ("甲胎蛋白",), ("AFP", "Alpha-fetoprotein"),
           ("ng/mL", "μg/L"), (5.0, 5.0), 7.0, 2, 0.5),
    Marker("TPSA", "TPSA", ("总前列腺特异性抗原",), ("TPSA", "Total PSA"),
           ("ng/mL",), (2.5, 2.0), 4.0, 3),
    Marker("fPSA", "FPSA", ("游离前列腺特异性抗原",), ("fPSA", "Free PSA"),
           ("ng/mL",), (0.6, 0.4), 0.93, 3),
    Marker("HE4", "HE4", ("人附睾蛋白4",), ("HE4",),
           ("pmol/L",), (60.0, 30.0), 70.0, 1),
)  # fmt: skip

# column -> (Chinese titles, English titles)
_TITLES = {
    "no": (("序号", "No"), ("No.", "#")),
    "item": (("项目名称", "检验项目", "项目"), ("Item", "Test")),
    "result": (("结果", "检验结果"), ("Result",)),
    "flag": (("提示",), ("Flag",)),
    "unit": (("单位",), ("Unit", "Units")),
    "reference": (("参考范围", "参考值", "参考区间"), ("Reference", "Reference range")),
}
_HOSPITALS_ZH = ("东江市第一人民医院", "西山县中心医院", "南湖大学附属肿瘤医院", "清河市中医院")
_HOSPITALS_EN = ("Harbourview International Hospital", "Riverside Cancer Centre", "Lakeside Clinic")
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"
_EN_NAMES = ("Alice Smith", "Ben Carter", "Chen Wei", "Dana Lee", "Evan Wong", "Fay Lim")


@dataclass(frozen=True)
class Row:
    marker: Marker
    name: str
    result: str  # as printed, e.g. "12.34", "<0.50"
    unit: str
    reference: str
    flag: str  # "", "H", "L"


@cache
def _font(style: str, size: int) -> ImageFont.FreeTypeFont:
    path, index = cjk_font(style)
    return ImageFont.truetype(path, size, index=index)


def _rows(rng: random.Random, language: str) -> list[Row]:
    rows = []
    for marker in rng.sample(MARKERS, rng.randint(3, 9)):
        names = marker.names_zh if language == "zh" else marker.names_en
        value = abs(rng.gauss(*marker.normal)) * (rng.choice((1, 1, 1, 4, 20)))
        limit = marker.detection_limit
        if limit is not None and value < limit:
            result, flag = f"<{limit:.{marker.decimals}f}", ""
        else:
            value = max(value, 10**-marker.decimals)
            result = f"{value:.{marker.decimals}f}"
            flag = "H" if float(result) > marker.high else ""
        reference = f"0-{marker.high:g}" if rng.random() < 0.7 else f"<{marker.high:g}"
        rows.append(
            Row(marker, rng.choice(names), result, rng.choice(marker.units), reference, flag)
        )
    return rows


def _header_lines(rng: random.Random, language: str) -> tuple[str, list[str]]:
    day = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    number = rng.randint(100000, 999999)
    if language == "zh":
        name = rng.choice(_SURNAMES) + "".join(rng.sample(_GIVEN, rng.randint(1, 2)))
        return f"{rng.choice(_HOSPITALS_ZH)}检验报告单", [
            f"姓名：{name}   性别：{rng.choice('男女')}   年龄：{rng.randint(30, 85)}岁   "
            f"住院号：{number}",
            f"标本类型：血清   采样时间：{day} 07:{rng.randrange(60):02d}   科室：肿瘤内科",
        ]
    return f"{rng.choice(_HOSPITALS_EN)} - Laboratory Report", [
        f"Patient: {rng.choice(_EN_NAMES)}   Sex: {rng.choice('MF')}   "
        f"Age: {rng.randint(30, 85)}   MRN: {number}",
        f"Specimen: serum   Collected: {day} 07:{rng.randrange(60):02d}   Ward: Oncology",
    ]


def render(rng: random.Random, language: str) -> tuple[np.ndarray, list[Row]]:
    """A clean page (grey, uint8) and the rows it shows."""
    height, width = PAGE
    rows = _rows(rng, language)
    columns = ["item", "result", "unit", "reference"]
    separate_flag = rng.random() < 0.7
    if separate_flag:
        columns.append("flag")
    rng.shuffle(columns)
    if rng.random() < 0.4:
        columns.insert(0, "no")
    lang = 0 if language == "zh" else 1
    titles = {c: rng.choice(_TITLES[c][lang]) for c in columns}
    style = rng.choice(("sans", "serif"))
    image = Image.new("L", (width, height), 250)
    draw = ImageDraw.Draw(image)
    title, lines = _header_lines(rng, language)
    big, body = _font(style, 38), _font(style, 26)
    draw.text(((width - draw.textlength(title, font=big)) / 2, 50), title, font=big, fill=15)
    y = 130
    for line in lines:
        draw.text((60, y), line, font=body, fill=20)
        y += 44
    y += 20
    draw.line((50, y, width - 50, y), fill=40, width=2)
    y += 14
    arrows = language == "zh" and rng.random() < 0.7
    table = []
    for i, row in enumerate(rows, start=1):
        mark = {"H": "↑", "L": "↓"}.get(row.flag, "") if arrows else row.flag
        table.append(
            {
                "no": str(i),
                "item": row.name,
                "result": row.result if separate_flag or not mark else f"{row.result} {mark}",
                "flag": mark,
                "unit": row.unit,
                "reference": row.reference,
            }
        )
    content = {
        column: max(
            draw.textlength(c, font=body) for c in [titles[column]] + [t[column] for t in table]
        )
        for column in columns
    }  # each column as wide as its widest cell, then a gap that keeps the table on the page
    room = (width - 120 - sum(content.values())) / max(len(columns) - 1, 1)
    gap = min(rng.uniform(40, 90), max(room, 24.0))
    x, xs = 60.0, {}
    for column in columns:
        xs[column] = x
        x += content[column] + gap
    for column in columns:
        draw.text((xs[column], y), titles[column], font=body, fill=15)
    y += 44
    draw.line((50, y, width - 50, y), fill=60, width=1)
    y += 16
    for cells in table:
        for column in columns:
            draw.text((xs[column], y), cells[column], font=body, fill=20)
        y += 50
    draw.line((50, y, width - 50, y), fill=60, width=1)
    footer = (
        "检验者：张敏   审核者：李强"
        if language == "zh"
        else "Tested by: J. Doe   Verified by: K. Roe"
    )
    draw.text((60, height - 140), footer, font=body, fill=30)
    return np.asarray(image, dtype=np.uint8).copy(), rows


def degrade(page: np.ndarray, kind: str, rng: random.Random) -> np.ndarray:
    """`page` as a scan (grey), a phone photo or a forwarded photo (BGR)."""
    nrng = np.random.default_rng(rng.randrange(2**32))
    height, width = page.shape
    if kind == "scan":
        noisy = page.astype(np.int16) + nrng.normal(0, 6, page.shape).astype(np.int16)
        page = np.clip(noisy, 0, 255).astype(np.uint8)
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-1.5, 1.5), 1.0)
        return cv2.warpAffine(page, turn, (width, height), borderValue=250)
    # a photo: the page a little off-square, on a darker desk, under a shadow
    margin = 0.04
    corners = [(0.0, 0.0), (float(width), 0.0), (float(width), float(height)), (0.0, float(height))]
    moved = [
        (x + (rng.uniform(-margin, margin) + margin) * width,
         y + (rng.uniform(-margin, margin) + margin) * height)
        for x, y in corners
    ]  # fmt: skip
    src = np.array(corners, dtype=np.float32)
    dst = np.array(moved, dtype=np.float32)
    out_w, out_h = int(width * (1 + 2 * margin)), int(height * (1 + 2 * margin))
    warp = cv2.getPerspectiveTransform(src, dst)
    photo = cv2.warpPerspective(page, warp, (out_w, out_h), borderValue=90)
    turn = cv2.getRotationMatrix2D((out_w / 2, out_h / 2), rng.uniform(-3.0, 3.0), 1.0)
    lit = np.asarray(cv2.warpAffine(photo, turn, (out_w, out_h), borderValue=90), np.float32)
    ramp = np.linspace(rng.uniform(0.6, 0.75), 1.0, out_w, dtype=np.float32)
    if rng.random() < 0.5:
        ramp = ramp[::-1]
    lit = np.asarray(cv2.GaussianBlur(lit * ramp[None, :], (3, 3), 0.8), np.float32)
    lit = lit + nrng.normal(0, 4, lit.shape).astype(np.float32)
    grey = np.clip(lit, 0, 255).astype(np.uint8)
    colour = cv2.merge([(grey * 0.92).astype(np.uint8), (grey * 0.97).astype(np.uint8), grey])
    if kind == "forwarded":
        scale = rng.uniform(0.7, 0.8)
        colour = cv2.resize(colour, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return colour


def _encode(image: np.ndarray, kind: str, rng: random.Random) -> tuple[str, bytes]:
    if kind == "scan" and rng.random() < 0.4:
        buffer = io.BytesIO()
        # no creation or modification time: the same seed gives the same bytes
        Image.fromarray(image).save(
            buffer, format="PDF", resolution=130.0, creationDate=None, modDate=None
        )
        return "pdf", buffer.getvalue()
    if kind == "scan":
        ok, data = cv2.imencode(".png", image)
        return "png", data.tobytes()
    quality = rng.randint(75, 90) if kind == "photo" else rng.randint(40, 55)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a sheet as JPEG")
    return "jpg", data.tobytes()


def truth_item(row: Row) -> dict[str, object]:
    """The item as the contract returns it."""
    from edge_node.pipeline.units import convert, normalize_unit

    vocab = load_default()
    analyte = vocab.analyte(row.marker.vocab_code)
    qualifier = row.result[0] if row.result[0] in "<>" else None
    value = float(row.result.lstrip("<>"))
    unit = normalize_unit(row.unit)
    value_std = unit_std = None
    if analyte is not None:
        value_std = round(convert(analyte.code, value, unit), 6)
        unit_std = analyte.standard_unit
    return {
        "name": row.name,
        "code": row.marker.code,
        "loinc": analyte.loinc if analyte else None,
        "value": value,
        "qualifier": qualifier,
        "unit": unit,
        "reference_range": row.reference,
        "flag": row.flag or None,
        "value_std": value_std,
        "unit_std": unit_std,
    }


def write_lab_sheets(out: Path, n: int, seed: int) -> dict[str, int]:
    """`n` degraded sheets and `truth.jsonl` in `out`; returns files per degradation."""
    out.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(DEGRADATIONS, 0)
    truth = []
    for i in range(n):
        rng = random.Random(f"oncofed-ocr-sheets/{seed}/{i}")
        language = "zh" if i % 2 == 0 else "en"
        kind = DEGRADATIONS[(i // 2) % len(DEGRADATIONS)]
        page, rows = render(rng, language)
        extension, data = _encode(degrade(page, kind, rng), kind, rng)
        name = f"sheet_{i:04d}.{extension}"
        (out / name).write_bytes(data)
        counts[kind] += 1
        truth.append(
            {"file": name, "degradation": kind, "language": language,
             "items": [truth_item(row) for row in rows]}
        )  # fmt: skip
    text = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in truth)
    (out / "truth.jsonl").write_text(text, encoding="utf-8")
    return counts
