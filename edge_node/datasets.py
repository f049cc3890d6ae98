"""Flat datasets registered from CSV files: one table `ds_<name>` in the analysis database.

A CSV is read completely, checked and typed before anything is written, so a
malformed file never leaves a table behind. Column names are kept exactly as
written (`ph.ecog` stays `ph.ecog`); the SQL layer quotes them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import NoSuchTableError

from edge_node.store.datasets import DatasetRecord, DatasetRegistry
from shared_cdm.errors import InvalidInput, NotFound

FLAT = "flat"
RESERVED_NAME = "cdm"  # the CDM database as a dataset (edge_node.cdm)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,47}$")
# UTF-8 first (a BOM is dropped), then the Chinese national encodings: GB18030 is a
# superset of GBK and GB2312, so one attempt covers the three.
ENCODINGS = ("utf-8-sig", "gb18030")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAX_IDENTIFIER_BYTES = 63  # PostgreSQL truncates longer names silently


def validate_dataset_name(name: str) -> str:
    if name == RESERVED_NAME:
        raise InvalidInput(
            f"dataset name {name!r} is the site's CDM database; choose another name",
            code="invalid_dataset_name",
        )
    if not _NAME.match(name):
        raise InvalidInput(
            f"dataset name {name!r} must be 1-48 characters of lower-case letters, digits "
            "and '_', starting with a letter or digit",
            code="invalid_dataset_name",
        )
    return name


def table_name_for(name: str) -> str:
    return f"ds_{validate_dataset_name(name)}"


def decode_csv(data: bytes, source: str) -> tuple[str, str]:
    """The file's text and the encoding that read it; InvalidInput for binary data."""
    if b"\x00" in data:
        raise InvalidInput(f"{source} is a binary file, not a CSV text file", code="invalid_csv")
    for encoding in ENCODINGS:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _CONTROL.search(text):
            break
        return text, encoding
    raise InvalidInput(
        f"{source} is not CSV text in UTF-8 or GBK/GB18030 (binary data or another encoding)",
        code="invalid_csv",
    )


def _check_header(header: list[str], source: str) -> None:
    if not header or all(not h.strip() for h in header):
        raise InvalidInput(f"{source} has no header row", code="invalid_csv")
    for position, name in enumerate(header, start=1):
        if not name.strip():
            raise InvalidInput(f"{source}: column {position} has no name", code="invalid_csv")
        if len(name.encode("utf-8")) > _MAX_IDENTIFIER_BYTES:
            raise InvalidInput(
                f"{source}: column name {name!r} is longer than {_MAX_IDENTIFIER_BYTES} bytes",
                code="invalid_csv",
            )
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise InvalidInput(f"{source}: column {name!r} appears twice", code="invalid_csv")
        seen.add(name)


def parse_csv(text: str, source: str) -> pd.DataFrame:
    """A frame with pandas-inferred types; InvalidInput for ragged rows or a bad header."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, [])
        _check_header(header, source)
        for row in reader:
            if row and len(row) != len(header):
                raise InvalidInput(
                    f"{source}: line {reader.line_num} has {len(row)} fields, "
                    f"the header has {len(header)}",
                    code="invalid_csv",
                )
    except csv.Error as exc:
        raise InvalidInput(
            f"{source}: not a valid CSV at line {reader.line_num}: {exc}", code="invalid_csv"
        ) from exc
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=None, skip_blank_lines=True)
    except (pd.errors.ParserError, ValueError) as exc:
        raise InvalidInput(f"{source}: not a valid CSV: {exc}", code="invalid_csv") from exc
    if list(frame.columns) != header:
        raise InvalidInput(f"{source}: the header could not be read as written", code="invalid_csv")
    return frame


def add_dataset(
    name: str,
    path: Path,
    *,
    analysis_engine: Engine,
    registry: DatasetRegistry,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DatasetRecord:
    """Load `path` as dataset `name`, replacing an earlier version of it."""
    table = table_name_for(name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror}", code="csv_not_found") from exc
    text, _ = decode_csv(data, str(path))
    frame = parse_csv(text, str(path))
    with analysis_engine.begin() as conn:
        frame.to_sql(table, conn, if_exists="replace", index=False, chunksize=5000)
    record = DatasetRecord(
        name=name,
        kind=FLAT,
        version=hashlib.sha256(data).hexdigest(),
        columns=tuple(str(c) for c in frame.columns),
        row_count=len(frame),
        table_name=table,
        source_file=str(path.resolve()),
        registered_at=clock(),
    )
    registry.put(record)
    return record


def remove_dataset(
    name: str, *, analysis_engine: Engine, registry: DatasetRegistry
) -> DatasetRecord:
    record = registry.remove(name)
    sa.Table(record.table_name, sa.MetaData()).drop(analysis_engine, checkfirst=True)
    return record


def load_table(analysis_engine: Engine, record: DatasetRecord) -> sa.Table:
    """The dataset's table as it is in the analysis database (types reflected)."""
    try:
        return sa.Table(record.table_name, sa.MetaData(), autoload_with=analysis_engine)
    except NoSuchTableError:
        raise NotFound(
            f"dataset {record.name!r} is registered but table {record.table_name!r} is missing "
            f"from the analysis database; add it again with `oncofed-edge dataset add`",
            code="dataset_table_missing",
        ) from None
