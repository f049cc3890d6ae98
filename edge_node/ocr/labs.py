"""Lab sheets (PNG, JPEG, PDF) -> contract items (`contracts/lab-ocr.md`).

One output record per input file; a file that cannot be read or holds no lab
table gets its reason in `errors` and the batch goes on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_node.ocr.analytes import AnalyteNames
from edge_node.ocr.engine import OcrEngine, TextBox
from edge_node.ocr.table import TableRow, reconstruct
from edge_node.ocr.values import parse_flag, parse_reference, parse_result, parse_unit
from edge_node.pipeline.units import UnitConverter, UnitError
from shared_cdm.vocab import Vocabulary, load_default

if TYPE_CHECKING:
    import numpy as np

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
PDF_SUFFIXES = frozenset({".pdf"})
SUFFIXES = IMAGE_SUFFIXES | PDF_SUFFIXES
ITEM_KEYS = ("name", "code", "loinc", "value", "qualifier", "unit", "reference_range", "flag",
             "value_std", "unit_std")  # fmt: skip
PDF_SCALE = 150 / 72  # render PDF pages at 150 dpi: A4 is then ~1240 x 1754 pixels
MAX_PDF_PAGES = 20
MAX_PIXELS = 60_000_000  # a 600 dpi A4 scan is 35 million


class SheetError(Exception):
    """Why one file gave no items; the message goes into its `errors`."""


def load_pages(path: Path) -> list[np.ndarray]:
    """The file's page images (BGR or grey uint8)."""
    import cv2
    import numpy as np

    suffix = path.suffix.lower()
    data = path.read_bytes()
    if not data:
        raise SheetError("empty file")
    if suffix in PDF_SUFFIXES:
        return _pdf_pages(data)
    if suffix not in IMAGE_SUFFIXES:
        raise SheetError(f"unsupported file type {suffix or '(none)'}: expected PNG, JPEG or PDF")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise SheetError(f"not a readable {suffix[1:].upper()} image (corrupt or truncated)")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise SheetError(f"image too large: {image.shape[1]} x {image.shape[0]} pixels")
    return [image]


def _pdf_pages(data: bytes) -> list[np.ndarray]:
    import numpy as np
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise SheetError(
            f"not a readable PDF (corrupt, encrypted or without pages): {exc}"
        ) from None
    try:
        if len(document) == 0:
            raise SheetError("the PDF has no pages")
        if len(document) > MAX_PDF_PAGES:
            raise SheetError(f"the PDF has {len(document)} pages; at most {MAX_PDF_PAGES} are read")
        pages = []
        for page in document:
            bitmap = page.render(scale=PDF_SCALE, grayscale=True)
            pages.append(np.array(bitmap.to_numpy()).squeeze())
        return pages
    finally:
        document.close()


@dataclass
class LabReader:
    """Reads sheets with one engine, one vocabulary and one unit converter,
    all loaded once per process."""

    engine: OcrEngine
    vocab: Vocabulary

    def __post_init__(self) -> None:
        self._names = AnalyteNames(self.vocab)
        self._converter = UnitConverter(self.vocab)

    def items(self, boxes: list[TextBox]) -> list[dict[str, Any]]:
        columns, rows = reconstruct(boxes)
        if not columns:
            raise SheetError("no lab table found: no header line naming item and result columns")
        kinds = {c.kind for c in columns}
        return [item for row in rows if (item := self._item(row, kinds)) is not None]

    def _item(self, row: TableRow, kinds: set[str]) -> dict[str, Any] | None:
        name = row.text("item")
        result = parse_result(row.text("result"))
        if not name or result is None:
            return None
        match = self._names.match(name)
        if match is None and "code" in kinds:
            match = self._names.match(row.text("code"))
        if match is None and not re.search(r"[A-Za-z\u4e00-\u9fff]", name):
            return None  # a number or mark where the name should be: not an item row
        standard = match.analyte.standard_unit if match else None
        unit = parse_unit(row.text("unit"), standard)
        flag = parse_flag(row.text("flag", "")) if "flag" in kinds else None
        value_std = unit_std = None
        if match is not None and unit:
            try:
                value_std = _tidy(self._converter.convert(match.analyte.code, result.value, unit))
                unit_std = standard
            except UnitError:
                pass
        return {
            "name": _name(name),
            "code": match.code if match else None,
            "loinc": match.loinc if match else None,
            "value": result.value,
            "qualifier": result.qualifier,
            "unit": unit,
            "reference_range": parse_reference(row.text("reference", "")),
            "flag": flag or result.flag,
            "value_std": value_std,
            "unit_std": unit_std,
        }

    def _read(self, page: np.ndarray) -> list[TextBox]:
        try:
            return self.engine.read(page)
        except Exception as exc:  # a plugged-in engine may fail on odd images its own way
            raise SheetError(f"the OCR engine failed on this image: {exc}") from exc

    def read_file(self, path: Path) -> dict[str, Any]:
        record: dict[str, Any] = {"file": path.name, "items": [], "errors": []}
        try:
            for page in load_pages(path):
                record["items"].extend(self.items(self._read(page)))
        except SheetError as exc:
            record["errors"].append(str(exc))
        except OSError as exc:
            record["errors"].append(f"cannot read the file: {exc.strerror or exc}")
        return record


def _name(text: str) -> str:
    # Chinese names read as two boxes join without the space
    return re.sub(r"(?<=[\u4e00-\u9fff]) (?=[\u4e00-\u9fff])", "", text)


def _tidy(value: float) -> float:
    return float(f"{value:.10g}")


def input_files(folder: Path) -> list[Path]:
    """The files of `folder` to read, sorted; other suffixes get an error line too."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def read_files(
    paths: list[Path], engine: OcrEngine | None = None, vocab: Vocabulary | None = None
) -> Iterator[dict[str, Any]]:
    """One contract record per file, in order."""
    if engine is None:
        from edge_node.ocr.engine import RapidOcrEngine

        engine = RapidOcrEngine()
    reader = LabReader(engine, vocab or load_default())
    for path in paths:
        yield reader.read_file(path)


def write_jsonl(records: Iterator[dict[str, Any]], out: Path) -> tuple[int, int, int]:
    """Write records as JSONL; (files, items, files with errors)."""
    files = items = failed = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            files += 1
            items += len(record["items"])
            failed += bool(record["errors"])
    return files, items, failed
