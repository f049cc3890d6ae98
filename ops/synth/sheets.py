"""Scanned lab sheets: a few PNG images of tumour-marker reports per hospital.

OpenCV's Hershey fonts draw ASCII only, so sheets are in English for every
variant (Chinese sheets need a TrueType renderer; not done yet), and units are
drawn in ASCII (`umol/L`, `x10^9/L`). The truth keeps what each sheet shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ops.synth.labs import TUMOUR_MARKERS
from ops.synth.records import PatientRecords

SHEETS_PER_HOSPITAL = 5
HOSPITAL_NAMES_EN = {
    "A": "Dongjiang First People's Hospital",
    "B": "Harbourview International Hospital",
    "C": "Xishan County Central Hospital",
}
_ASCII = str.maketrans({"μ": "u", "×": "x", "年": "-", "月": "-", "日": ""})


@dataclass(frozen=True)
class SheetLine:
    item: str
    result: str
    unit: str
    reference: str


@dataclass(frozen=True)
class LabSheet:
    sheet_id: str
    patient_id: str
    admission_id: str
    report_date: str
    lines: tuple[SheetLine, ...]


def sheet_for(rec: PatientRecords, names_en: dict[str, str], number: int) -> LabSheet | None:
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
    lines = tuple(
        SheetLine(
            names_en[markers[r["lab_id"]]],
            str(r["result"]),
            str(r["unit"]).translate(_ASCII),
            str(r["reference_range"]),
        )
        for r in rows
    )
    return LabSheet(
        f"sheet_{number:03d}",
        rows[0]["patient_id"],
        first,
        str(rows[0]["report_date"]).translate(_ASCII),
        lines,
    )


def render(sheet: LabSheet, hospital_code: str, seed: int) -> np.ndarray:
    """A grey A5-ish page with light scanner noise and a small tilt."""
    page = np.full((620, 900), 250, dtype=np.uint8)
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
    rng = np.random.default_rng([seed, ord(hospital_code), int(sheet.sheet_id[-3:])])
    noisy = page.astype(np.int16) + rng.normal(0, 6, page.shape).astype(np.int16)
    page = np.clip(noisy, 0, 255).astype(np.uint8)
    angle = float(rng.uniform(-1.5, 1.5))
    turn = cv2.getRotationMatrix2D((450, 310), angle, 1.0)
    return cv2.warpAffine(page, turn, (900, 620), borderValue=250)


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
        truth.append(
            {
                "image": f"lab_sheets/{sheet.sheet_id}.png",
                "patient_id": sheet.patient_id,
                "admission_id": sheet.admission_id,
                "report_date": sheet.report_date,
                "lines": [vars(line) for line in sheet.lines],
            }
        )
    text = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in truth)
    (out / "truth" / "lab_sheets.jsonl").write_text(text, encoding="utf-8")
