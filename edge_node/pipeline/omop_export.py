"""Export the analysis database as OMOP CDM v5.4 CSV files.

One `<table>.csv` per CDM table: OMOP's column names in OMOP's DDL order, a
header row, UTF-8 without BOM, comma-separated, RFC 4180 quoting and CRLF line
ends, dates `YYYY-MM-DD`, datetimes `YYYY-MM-DD HH:MM:SS`, NULL as an empty
field. OncoFed's extension columns (src_system, src_table, src_row,
confidence) and extension tables (lung_cancer_dataset, value_provenance) are
left out unless `with_provenance` is set; `src_row` holds pseudonyms only, but
the extension is not OMOP and most tools do not expect it.

Rows are streamed (a server-side cursor on PostgreSQL), so memory stays flat
whatever the table size. Each file is written under a temporary name and
renamed when complete; `manifest.json`, written last, marks a finished export.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shared_cdm.db import CDM_VERSION_TABLE, current_revision, make_engine
from shared_cdm.errors import InvalidInput, NotFound
from shared_cdm.models import Base

CDM_VERSION = "5.4"
MANIFEST_FILE = "manifest.json"

# OMOP tables the CDM models hold, in the order of the OMOP v5.4 DDL.
OMOP_TABLES: tuple[str, ...] = (
    "person",
    "observation_period",
    "visit_occurrence",
    "condition_occurrence",
    "drug_exposure",
    "procedure_occurrence",
    "measurement",
    "death",
    "note",
    "note_nlp",
    "specimen",
    "care_site",
    "episode",
    "episode_event",
    "cdm_source",
    "concept",
)
EXTENSION_TABLES: tuple[str, ...] = ("lung_cancer_dataset", "value_provenance")
EXTENSION_COLUMNS = frozenset({"src_system", "src_table", "src_row", "confidence"})

_BATCH_ROWS = 5_000
_HASH_CHUNK = 1 << 20
_TMP_PREFIX = "."
_TMP_SUFFIX = ".tmp"

Formatter = Callable[[Any], Any]


def export_omop(
    analysis_db_url: str,
    out_dir: Path,
    *,
    with_provenance: bool = False,
    tables: list[str] | None = None,
) -> dict[str, int]:
    """Write the CDM tables of `analysis_db_url` as CSV files into `out_dir`.

    `tables` picks some tables (default: every OMOP table, plus the extension
    tables when `with_provenance`). `out_dir` may be missing, empty or hold a
    previous export, which is replaced; anything else there is an error.
    Returns the number of rows written per table.
    """
    out_dir = Path(out_dir)
    chosen = _chosen_tables(tables, with_provenance)
    _check_out_dir(out_dir)

    engine = make_engine(analysis_db_url)
    try:
        present = set(sa.inspect(engine).get_table_names())
        if "person" not in present:
            raise NotFound("the analysis database has no CDM tables to export", code="cdm_missing")
        missing = [name for name in chosen if name not in present]
        if missing:
            raise InvalidInput(
                f"the analysis database lacks {', '.join(missing)}: its CDM schema is "
                "older than this software; upgrade it (`oncofed-edge init`) and export again",
                code="cdm_outdated",
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        # No manifest while files are being replaced: a half-done export is not complete.
        (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
        counts: dict[str, int] = {}
        with _snapshot(engine) as conn:
            for name in chosen:
                table = Base.metadata.tables[name]
                counts[name] = _export_table(conn, table, out_dir, with_provenance)
    finally:
        engine.dispose()

    keep = {f"{name}.csv" for name in chosen}
    for path in out_dir.iterdir():
        if path.name not in keep and path.name != MANIFEST_FILE:
            path.unlink()  # a previous export's file (only those pass _check_out_dir)
    write_export_manifest(
        out_dir,
        counts,
        with_provenance=with_provenance,
        schema_revision=current_revision(analysis_db_url, version_table=CDM_VERSION_TABLE),
    )
    return counts


def write_export_manifest(
    out_dir: Path,
    row_counts: Mapping[str, int],
    *,
    with_provenance: bool = False,
    schema_revision: str | None = None,
    exported_at: datetime | None = None,
) -> Path:
    """Write `manifest.json` for the files of `row_counts` (CDM version, export
    time, rows and sha256 per file); returns its path."""
    out_dir = Path(out_dir)
    when = (exported_at or datetime.now(UTC)).astimezone(UTC)
    manifest = {
        "format": "OMOP CDM CSV",
        "cdm_version": CDM_VERSION,
        "oncofed_schema_revision": schema_revision,
        "exported_at": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "with_provenance": with_provenance,
        "tables": {
            name: {
                "file": f"{name}.csv",
                "rows": rows,
                "sha256": _sha256(out_dir / f"{name}.csv"),
            }
            for name, rows in row_counts.items()
        },
    }
    path = out_dir / MANIFEST_FILE
    tmp = _tmp_path(path)
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def export_columns(table: sa.Table, with_provenance: bool) -> list[sa.Column[Any]]:
    """The columns written for `table`: OMOP's in DDL order, then the extension's."""
    if table.name in EXTENSION_TABLES:
        return list(table.columns)
    omop = [c for c in table.columns if c.name not in EXTENSION_COLUMNS]
    extra = [c for c in table.columns if c.name in EXTENSION_COLUMNS]
    return omop + extra if with_provenance else omop


def _chosen_tables(tables: Sequence[str] | None, with_provenance: bool) -> list[str]:
    known = OMOP_TABLES + EXTENSION_TABLES
    if tables is None:
        return list(known if with_provenance else OMOP_TABLES)
    unknown = sorted(set(tables) - set(known))
    if unknown:
        raise InvalidInput(
            f"no CDM table named {', '.join(unknown)}; known: {', '.join(known)}",
            code="unknown_table",
        )
    extension = [t for t in tables if t in EXTENSION_TABLES]
    if extension and not with_provenance:
        raise InvalidInput(
            f"{', '.join(extension)} is an OncoFed extension table, not OMOP: "
            "export it with provenance",
            code="extension_table",
        )
    wanted = set(tables)
    return [t for t in known if t in wanted]  # canonical order, no duplicates


def _export_file_names() -> set[str]:
    names = {f"{t}.csv" for t in OMOP_TABLES + EXTENSION_TABLES} | {MANIFEST_FILE}
    return names | {_tmp_path(Path(n)).name for n in names}


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInput(f"export target {out_dir} is not a directory", code="bad_export_dir")
    if not out_dir.exists():
        return
    ours = _export_file_names()
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in ours or not p.is_file())
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise InvalidInput(
            f"export directory {out_dir} holds files that are not an OMOP export's "
            f"({shown}); choose an empty or new directory",
            code="export_dir_not_empty",
        )


@contextmanager
def _snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read-only connection; on PostgreSQL every table is read from one snapshot,
    so a sync loading meanwhile cannot make the files disagree with each other."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.rollback()  # read only: nothing to keep


def _export_table(
    conn: sa.Connection, table: sa.Table, out_dir: Path, with_provenance: bool
) -> int:
    columns = export_columns(table, with_provenance)
    formatters = [_formatter(c) for c in columns]
    query = sa.select(*columns).order_by(*table.primary_key.columns)
    result = conn.execution_options(stream_results=True, yield_per=_BATCH_ROWS).execute(query)
    path = out_dir / f"{table.name}.csv"
    tmp = _tmp_path(path)
    rows = 0
    try:
        with tmp.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, dialect="excel", lineterminator="\r\n")
            writer.writerow([c.name for c in columns])
            for batch in result.partitions():
                writer.writerows(_formatted(batch, formatters))
                rows += len(batch)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        result.close()
        tmp.unlink(missing_ok=True)
    return rows


def _formatted(
    batch: Iterable[Sequence[Any]], formatters: Sequence[Formatter]
) -> Iterator[list[Any]]:
    for row in batch:
        yield [fmt(value) for fmt, value in zip(formatters, row, strict=True)]


def _formatter(column: sa.Column[Any]) -> Formatter:
    kind = column.type
    if isinstance(kind, sa.DateTime):
        return _format_datetime
    if isinstance(kind, sa.Date):
        return _format_date
    return _format_plain


def _format_plain(value: Any) -> Any:
    return "" if value is None else value


def _format_date(value: date | None) -> str:
    return "" if value is None else value.isoformat()


def _format_datetime(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(sep=" ", timespec="seconds")


def _tmp_path(path: Path) -> Path:
    return path.with_name(f"{_TMP_PREFIX}{path.name}{_TMP_SUFFIX}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
