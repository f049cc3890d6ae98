"""Scanned lab sheets as a source: a document-management index (CSV) and the
folder of images it indexes, read through the lab-sheet OCR (`edge_node.ocr`).

The one table, `lab_sheets`, has one row per item the OCR finds on an indexed
sheet: the index row's columns (patient, admission, dates, in the hospital's
own names) and the item's columns (`OCR_COLUMNS`). A row's key is
`<file>#<line>`. A sheet that gives no item (corrupt image, no lab table, file
missing, an image the index does not name) is one `RawReject` keyed by its file.

The watermark records, per file read, its size, mtime, content hash and the
hash of its index row: a re-run OCRs only new or changed sheets (or sheets
whose index row changed). `sample` never runs the OCR: its rows have the index
columns and empty item columns, so a scan source ranks after every lab source
that has values (`sync._rank_sources`) and never becomes the base of a fact a
system of record also gives.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edge_node.pipeline.connectors._files import FileProgress, FileStamp
from edge_node.pipeline.connectors.base import SourceMissing
from edge_node.pipeline.records import RawReject, SourceBatch, SourceRow
from shared_cdm.errors import InvalidInput

if TYPE_CHECKING:
    from edge_node.ocr.engine import OcrEngine, TextBox
    from shared_cdm.vocab import Vocabulary

TABLE = "lab_sheets"
OCR_COLUMNS = (
    "sheet_file",
    "sheet_line",
    "item_code",
    "item_name",
    "result",
    "unit",
    "reference_range",
    "flag",
    "loinc",
    "confidence",
)
SHEETS_PER_BATCH = 8  # ~2 s of OCR each: the watermark moves every few sheets
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf")


class SheetReader(Protocol):
    """What the connector needs of the OCR: `edge_node.ocr.labs.read_file`'s
    record, each item with a `confidence` (0-1)."""

    def read_file(self, path: Path) -> dict[str, Any]: ...


def scored_reader(engine: OcrEngine, vocab: Vocabulary) -> SheetReader:
    """A `LabReader` whose items carry a confidence: the lowest recogniser score
    of the boxes the item's name and result were read from (a value is only as
    sure as its text and the name that says what it measures)."""
    from edge_node.ocr.labs import LabReader, SheetError
    from edge_node.ocr.table import reconstruct

    class _Scored(LabReader):
        def items(self, boxes: list[TextBox]) -> list[dict[str, Any]]:
            columns, rows = reconstruct(boxes)
            if not columns:
                raise SheetError(
                    "no lab table found: no header line naming item and result columns"
                )
            kinds = {c.kind for c in columns}
            out = []
            for row in rows:
                item = self._item(row, kinds)
                if item is None:
                    continue
                scores = [c.confidence for k in ("item", "result") for c in row.cells.get(k, [])]
                item["confidence"] = round(min(scores), 4) if scores else 0.0
                out.append(item)
            return out

    return _Scored(engine, vocab)


@cache
def default_reader() -> SheetReader:
    """The process's reader: the OCR models and the vocabulary load once."""
    from edge_node.ocr.engine import RapidOcrEngine
    from shared_cdm.vocab import load_default

    return scored_reader(RapidOcrEngine(), load_default())


@dataclass(frozen=True)
class _Entry:
    """One index row: the file it names and its columns as written."""

    key: str  # the index row's own key (line)
    file: str  # as written in the index
    values: dict[str, str | None]

    @property
    def fingerprint(self) -> str:
        text = json.dumps(self.values, ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class LabSheetConnector:
    """`kind: lab_sheets`: `index` (a CSV file) and `folder` (the images)."""

    def __init__(
        self,
        name: str,
        index: Path,
        folder: Path,
        *,
        encoding: str = "auto",
        file_column: str | None = None,
        reader: SheetReader | None = None,
    ) -> None:
        from edge_node.pipeline.connectors.csvfile import CsvConnector

        self.name = name
        self.index_path = index
        self.folder = folder
        self.file_column = file_column
        self._index = CsvConnector(name, index, encoding=encoding)
        self._reader = reader
        self.sheets_read = 0  # files given to the OCR by this connector

    @property
    def reader(self) -> SheetReader:
        if self._reader is None:
            self._reader = default_reader()
        return self._reader

    # -- the index -----------------------------------------------------------

    def _index_table(self) -> str:
        if not self.index_path.is_file():
            raise SourceMissing(self.name, TABLE, f"scan index {self.index_path}")
        tables = self._index.tables()
        if len(tables) != 1:
            raise SourceMissing(self.name, TABLE, f"scan index {self.index_path}")
        return tables[0]

    def _index_columns(self) -> list[str]:
        columns = self._index.columns(self._index_table())
        clash = sorted(set(columns) & set(OCR_COLUMNS))
        if clash:
            raise InvalidInput(
                f"source {self.name!r}: the scan index has column(s) {', '.join(clash)}, "
                "which name OCR columns of the lab_sheets table",
                code="invalid_source",
            )
        if self.file_column is not None and self.file_column not in columns:
            raise SourceMissing(self.name, TABLE, f"file column {self.file_column!r} of the index")
        if not columns:
            raise SourceMissing(self.name, TABLE, f"columns of the scan index {self.index_path}")
        return columns

    def _entries(self) -> tuple[list[_Entry], list[RawReject]]:
        columns = self._index_columns()
        file_column = self.file_column or columns[0]
        entries: list[_Entry] = []
        rejects: list[RawReject] = []
        for batch in self._index.read(self._index_table(), key=None, watermark=None):
            rejects += [
                RawReject(f"index:{r.key}", r.code, f"scan index: {r.reason}", r.raw)
                for r in batch.rejects
            ]
            for row in batch.rows:
                file = (row.values.get(file_column) or "").strip()
                if not file:
                    rejects.append(
                        RawReject(
                            f"index:{row.key}",
                            "sheet_missing",
                            f"scan index row names no file ({file_column} is empty)",
                            json.dumps(row.values, ensure_ascii=False),
                        )
                    )
                    continue
                entries.append(_Entry(row.key, file, dict(row.values)))
        return entries, rejects

    # -- the Connector interface -----------------------------------------------

    def tables(self) -> list[str]:
        return [TABLE]

    def _check(self, table: str) -> None:
        if table != TABLE:
            raise SourceMissing(self.name, table, f"table (a lab_sheets source has only {TABLE})")

    def columns(self, table: str) -> list[str]:
        self._check(table)
        return [*self._index_columns(), *OCR_COLUMNS]

    def read(
        self,
        table: str,
        *,
        key: str | None,
        watermark: str | None,
        batch_size: int = 5000,
    ) -> Iterator[SourceBatch]:
        """Every indexed sheet not read before as it is now; `key` is ignored
        (rows are keyed `<file>#<line>`)."""
        self._check(table)
        if not self.folder.is_dir():
            raise SourceMissing(self.name, TABLE, f"folder {self.folder}")
        entries, rejects = self._entries()
        done_before = FileProgress(watermark).done
        done: dict[str, str] = {}
        batch = SourceBatch(rejects=rejects)
        sheets = 0
        indexed: set[str] = set()
        for entry in entries:
            path, problem = self._path(entry.file)
            if path is None:
                batch.rejects.append(self._reject(entry.file, "sheet_missing", problem or ""))
                continue
            stamp = FileStamp.of(path, self.folder)
            indexed.add(stamp.name)
            old = done_before.get(stamp.name)
            same = self._unchanged(stamp, old, entry)
            if same is not None:
                done[stamp.name] = same
                continue
            fingerprint = f"{FileProgress.fingerprint(stamp)}:{entry.fingerprint}"
            self._sheet(entry, path, batch)
            done[stamp.name] = fingerprint
            sheets += 1
            if sheets >= SHEETS_PER_BATCH or len(batch.rows) >= batch_size:
                batch.watermark = FileProgress.dump(done, None)
                yield batch
                batch, sheets = SourceBatch(), 0
        for stamp in self._unindexed(indexed):
            old = done_before.get(stamp.name)
            same = self._unchanged(stamp, old, None)
            if same is not None:
                done[stamp.name] = same
                continue
            batch.rejects.append(
                self._reject(stamp.name, "sheet_not_indexed", "the scan index does not name it")
            )
            done[stamp.name] = f"{FileProgress.fingerprint(stamp)}:-"
        batch.watermark = FileProgress.dump(done, None)
        if batch.rows or batch.rejects or batch.watermark != watermark:
            yield batch

    def read_where(
        self,
        table: str,
        column: str,
        values: Collection[str],
        *,
        batch_size: int = 5000,
        key: str | None = None,
    ) -> Iterator[SourceBatch]:
        """The items of the sheets whose index `column` is one of `values` (no watermark)."""
        self._check(table)
        wanted = set(values)
        entries, _ = self._entries()
        batch = SourceBatch()
        for entry in entries:
            if entry.values.get(column) not in wanted:
                continue
            path, _ = self._path(entry.file)
            if path is None:
                continue
            self._sheet(entry, path, batch)
            if len(batch.rows) >= batch_size:
                yield batch
                batch = SourceBatch()
        if batch.rows or batch.rejects:
            yield batch

    def sample(self, table: str, n: int = 1000) -> list[SourceRow]:
        """Index rows with empty item columns: sampling never runs the OCR."""
        self._check(table)
        entries, _ = self._entries()
        blank = dict.fromkeys(OCR_COLUMNS)
        return [SourceRow(e.key, {**e.values, **blank}) for e in entries[:n]]

    def close(self) -> None:
        self._index.close()

    # -- sheets ----------------------------------------------------------------

    def _path(self, file: str) -> tuple[Path | None, str | None]:
        path = (self.folder / file).resolve()
        root = self.folder.resolve()
        if root not in path.parents:
            return None, f"{file!r} is outside the folder {self.folder}"
        if not path.is_file():
            return None, f"{file!r} is not in the folder {self.folder}"
        return self.folder / os.path.relpath(path, root), None

    def _unindexed(self, indexed: set[str]) -> list[FileStamp]:
        found = []
        for p in sorted(self.folder.iterdir()):
            if (
                p.is_file()
                and p.suffix.lower() in _IMAGE_SUFFIXES
                and not p.name.startswith((".", "~"))
                and p.name not in indexed
            ):
                found.append(FileStamp.of(p, self.folder))
        return found

    @staticmethod
    def _unchanged(stamp: FileStamp, old: str | None, entry: _Entry | None) -> str | None:
        """The stored fingerprint if the file and its index row are as read then."""
        if old is None:
            return None
        file_part, _, row_part = old.rpartition(":")
        if row_part != (entry.fingerprint if entry is not None else "-"):
            return None
        same = FileProgress.unchanged(stamp, file_part)
        return None if same is None else f"{same}:{row_part}"

    def _reject(self, file: str, code: str, reason: str) -> RawReject:
        return RawReject(file, code, reason, file)

    def _sheet(self, entry: _Entry, path: Path, batch: SourceBatch) -> None:
        """OCR one sheet: its items as rows into `batch`, or one reject."""
        self.sheets_read += 1
        try:
            record = self.reader.read_file(path)
        except Exception as exc:  # an engine's own failure costs this sheet only
            record = {"items": [], "errors": [f"the OCR failed: {type(exc).__name__}: {exc}"]}
        items: list[dict[str, Any]] = record.get("items") or []
        errors: list[str] = record.get("errors") or []
        if errors or not items:
            reason = "; ".join(errors) or "no lab item found on the sheet"
            code = "sheet_unreadable" if errors else "sheet_no_items"
            batch.rejects.append(self._reject(entry.file, code, reason))
            return
        for line, item in enumerate(items, start=1):
            value = item.get("value")
            qualifier = item.get("qualifier") or ""
            confidence = item.get("confidence")
            ocr: dict[str, str | None] = {
                "sheet_file": entry.file,
                "sheet_line": str(line),
                "item_code": item.get("code"),
                "item_name": item.get("name"),
                "result": None if value is None else qualifier + _number_text(value),
                "unit": item.get("unit"),
                "reference_range": item.get("reference_range"),
                "flag": item.get("flag"),
                "loinc": item.get("loinc"),
                "confidence": None if confidence is None else f"{float(confidence):.4f}",
            }
            batch.rows.append(SourceRow(f"{entry.file}#{line}", {**entry.values, **ocr}))
