"""The registry of datasets this site serves (their rows live in the analysis database)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Engine

from edge_node.store.models import RegisteredDataset
from protocol.messages import DatasetInfo
from shared_cdm.db import session_factory
from shared_cdm.errors import NotFound


@dataclass(frozen=True)
class DatasetRecord:
    name: str
    kind: str
    version: str
    columns: tuple[str, ...]
    row_count: int
    table_name: str
    source_file: str
    registered_at: datetime

    def info(self) -> DatasetInfo:
        """What the hub is told about the dataset: its shape, never its rows."""
        return DatasetInfo(self.name, self.kind, self.version, self.columns)


def _record(row: RegisteredDataset) -> DatasetRecord:
    return DatasetRecord(
        name=row.name,
        kind=row.kind,
        version=row.version,
        columns=tuple(str(c) for c in row.columns),
        row_count=row.row_count,
        table_name=row.table_name,
        source_file=row.source_file,
        registered_at=row.registered_at,
    )


class DatasetRegistry:
    def __init__(self, engine: Engine) -> None:
        self._sessions = session_factory(engine)

    def put(self, record: DatasetRecord) -> None:
        """Register a dataset, replacing an earlier registration of the same name."""
        with self._sessions() as session, session.begin():
            row = session.get(RegisteredDataset, record.name) or RegisteredDataset(name=record.name)
            row.kind, row.version = record.kind, record.version
            row.columns, row.row_count = list(record.columns), record.row_count
            row.table_name, row.source_file = record.table_name, record.source_file
            row.registered_at = record.registered_at
            session.add(row)

    def find(self, name: str) -> DatasetRecord | None:
        with self._sessions() as session:
            row = session.get(RegisteredDataset, name)
            return None if row is None else _record(row)

    def get(self, name: str) -> DatasetRecord:
        record = self.find(name)
        if record is None:
            known = ", ".join(r.name for r in self.all()) or "none"
            raise NotFound(
                f"no dataset {name!r} at this site (registered: {known})",
                code="dataset_not_found",
            )
        return record

    def all(self) -> list[DatasetRecord]:
        with self._sessions() as session:
            rows = session.scalars(sa.select(RegisteredDataset).order_by(RegisteredDataset.name))
            return [_record(r) for r in rows]

    def remove(self, name: str) -> DatasetRecord:
        with self._sessions() as session, session.begin():
            row = session.get(RegisteredDataset, name)
            if row is None:
                raise NotFound(f"no dataset {name!r} at this site", code="dataset_not_found")
            record = _record(row)
            session.delete(row)
            return record
