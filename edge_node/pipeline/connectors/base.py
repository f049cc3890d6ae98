"""The connector interface, its errors, and `open_connector` (a source spec -> a connector)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from edge_node.pipeline.records import SourceBatch, SourceRow
from shared_cdm.errors import InvalidInput, NotFound


class SourceMissing(NotFound):
    """A source, table, file or column that the mapping names is not there (now)."""

    code = "source_missing"

    def __init__(self, source: str, table: str | None, what: str) -> None:
        where = f"source {source!r}" + (f", table {table!r}" if table is not None else "")
        super().__init__(f"{where}: {what} not found")
        self.source = source
        self.table = table
        self.what = what


@runtime_checkable
class Connector(Protocol):
    """Reads the tables of one source system as batches of text rows.

    `read` resumes after a watermark it produced earlier (None: from the
    beginning); `read_where` fetches the rows whose `column` is one of `values`
    (backfill), with no watermark. `key` names the column whose value is
    `SourceRow.key` (default: the connector's natural row identity).
    """

    name: str

    def tables(self) -> list[str]: ...

    def columns(self, table: str) -> list[str]: ...

    def read(
        self,
        table: str,
        *,
        key: str | None,
        watermark: str | None,
        batch_size: int = 5000,
    ) -> Iterator[SourceBatch]: ...

    def read_where(
        self,
        table: str,
        column: str,
        values: Collection[str],
        *,
        batch_size: int = 5000,
        key: str | None = None,
    ) -> Iterator[SourceBatch]: ...

    def sample(self, table: str, n: int = 1000) -> list[SourceRow]: ...

    def close(self) -> None: ...


_KEYS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (required, optional)
    "sql": ({"url"}, {"schema"}),
    "csv": ({"path"}, {"encoding", "delimiter"}),
    "fhir": ({"path"}, set()),
    "hl7v2": ({"path"}, {"encoding"}),
    "lab_sheets": ({"index", "folder"}, {"encoding", "file_column"}),  # scans + OCR
}


def open_connector(name: str, spec: Mapping[str, Any], base_dir: Path) -> Connector:
    """The connector for one `sources:` entry of the mapping; relative paths
    resolve against `base_dir` (the mapping's folder)."""
    if not isinstance(spec, Mapping):
        raise InvalidInput(
            f"source {name!r}: expected a mapping like {{kind: csv, path: ...}}, "
            f"got {type(spec).__name__}",
            code="invalid_source",
        )
    kind = spec.get("kind")
    if kind not in _KEYS:
        raise InvalidInput(
            f"source {name!r}: unknown kind {kind!r}; one of {', '.join(_KEYS)}",
            code="invalid_source",
        )
    required, optional = _KEYS[kind]
    missing = sorted(required - set(spec))
    unknown = sorted(set(spec) - required - optional - {"kind"})
    if missing or unknown:
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"unknown key(s) {', '.join(unknown)}"] if unknown else []
        raise InvalidInput(
            f"source {name!r} ({kind}): {'; '.join(problems)}; "
            f"allowed: {', '.join(sorted(required | optional))}",
            code="invalid_source",
        )
    for k, v in spec.items():
        if k != "kind" and not isinstance(v, str):
            raise InvalidInput(
                f"source {name!r}: {k} must be text, got {type(v).__name__}",
                code="invalid_source",
            )
    base_dir = Path(base_dir)
    if kind == "sql":
        from edge_node.pipeline.connectors.sql import SqlConnector

        return SqlConnector(name, spec["url"], base_dir, schema=spec.get("schema"))
    if kind == "csv":
        from edge_node.pipeline.connectors.csvfile import CsvConnector

        return CsvConnector(
            name,
            base_dir / spec["path"],
            encoding=spec.get("encoding", "auto"),
            delimiter=spec.get("delimiter"),
        )
    if kind == "fhir":
        from edge_node.pipeline.connectors.fhir import FhirConnector

        return FhirConnector(name, base_dir / spec["path"])
    if kind == "lab_sheets":
        from edge_node.pipeline.connectors.labsheets import LabSheetConnector

        return LabSheetConnector(
            name,
            base_dir / spec["index"],
            base_dir / spec["folder"],
            encoding=spec.get("encoding", "auto"),
            file_column=spec.get("file_column"),
        )
    from edge_node.pipeline.connectors.hl7v2 import Hl7Connector

    return Hl7Connector(name, base_dir / spec["path"], encoding=spec.get("encoding", "auto"))


def first_rows(batches: Iterable[SourceBatch], n: int) -> list[SourceRow]:
    """The first `n` rows of a read: what `sample` returns for file sources."""
    rows: list[SourceRow] = []
    for batch in batches:
        rows += batch.rows
        if len(rows) >= n:
            break
    return rows[:n]
