"""The rows an analysis gets: the study's cohort (`where`) over a flat table or a CDM
analysis dataset, derived fields, only the columns it reads, complete cases only.

Everything is one SELECT: derived fields and the cohort condition compile to SQL
(`shared_cdm.cohort`). Each row also carries a key that never leaves the site and
feeds the ledger's differencing check: the CDM's person_id, or for a flat table a
hash of the whole row (identical rows are interchangeable, so counting them as a
multiset is exact).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause, Subquery

from edge_node.cdm import cdm_metadata, require_cdm
from federated_ml.analyses.base import StudySpec
from shared_cdm.analysis_dataset import DatasetSpec, dataset_select
from shared_cdm.cohort import FlatSchema, Schema, compile_derived, compile_where, parse_tree
from shared_cdm.errors import InvalidInput

# Columns of a CDM analysis dataset that stay at the site: a key and a date.
PRIVATE_COLUMNS = frozenset({"person_id", "index_date"})
_KEY = "__oncofed_key"


@dataclass(frozen=True, eq=False)  # DataFrames overload ==
class Selection:
    """Complete-case rows (analysis columns only), how many were left out for missing
    values, and the row keys of both (aligned with `frame` for the kept rows)."""

    frame: pd.DataFrame
    n_excluded_missing: int
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    excluded_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))

    def analysed(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Sorted keys of the rows behind the released n."""
        keys = self.keys if mask is None else self.keys[mask]
        return np.sort(keys)

    def selected(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Sorted keys behind n + n_excluded_missing: the cohort before missing values."""
        return np.sort(np.concatenate([self.analysed(mask), self.excluded_keys]))


@dataclass(frozen=True, eq=False)  # SQL expressions overload ==
class DatasetSchema(Schema):
    """A CDM analysis dataset (a subquery) as a subject table without events; person_id
    and index_date cannot be named."""

    dataset: Subquery
    derived_fields: Mapping[str, ColumnElement[Any]] = field(default_factory=dict)

    @property
    def subject_table(self) -> sa.Table:
        raise InvalidInput("an analysis dataset has fields only, no events")

    @property
    def subject_id(self) -> ColumnElement[Any]:
        return self.dataset.c["person_id"]

    def field(self, name: str, path: str) -> ColumnElement[Any]:
        if name in self.derived_fields:
            return self.derived_fields[name]
        if name in self.dataset.c and name not in PRIVATE_COLUMNS:
            return self.dataset.c[name]
        raise InvalidInput(
            f"{path}: unknown field {name!r} (fields: {', '.join(self.field_names())})"
        )

    def field_names(self) -> list[str]:
        columns = [c.key for c in self.dataset.c if c.key not in PRIVATE_COLUMNS]
        return [*self.derived_fields, *(c for c in columns if c not in self.derived_fields)]


def _derived(spec: StudySpec, schema: Schema, taken: set[str]) -> dict[str, ColumnElement[Any]]:
    raw = (spec.model_extra or {}).get("derived")
    if not raw:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidInput("derived: must be an object of name -> definition")
    clash = sorted(set(raw) & (taken | PRIVATE_COLUMNS))
    if clash:
        raise InvalidInput(f"derived: {', '.join(map(repr, clash))} is already a column")
    return compile_derived(raw, schema.field, path="derived")


def select_rows(engine: Engine, table: sa.Table, spec: StudySpec, columns: list[str]) -> Selection:
    """Rows of a flat dataset table; the row key is a hash of the whole row."""
    derived = _derived(spec, FlatSchema(table), set(table.c.keys()))
    schema = FlatSchema(table, derived_fields=derived)
    return _select(engine, table, schema, list(table.c), spec, columns)


def select_cdm_rows(
    engine: Engine, dataset: DatasetSpec, spec: StudySpec, columns: list[str]
) -> Selection:
    """Rows of the CDM analysis dataset the study's `cdm_dataset` spec describes."""
    require_cdm(engine)
    subquery = dataset_select(dataset, cdm_metadata()).subquery("dataset")
    derived = _derived(spec, DatasetSchema(subquery), set(subquery.c.keys()))
    schema = DatasetSchema(subquery, derived)
    return _select(engine, subquery, schema, [subquery.c["person_id"]], spec, columns)


def _select(
    engine: Engine,
    source: FromClause,
    schema: Schema,
    key_columns: list[Any],
    spec: StudySpec,
    columns: list[str],
) -> Selection:
    wanted = list(dict.fromkeys(columns))
    unknown = [c for c in wanted if c not in schema.field_names()]
    if unknown:
        raise InvalidInput(
            f"dataset {spec.dataset!r} has no column {', '.join(repr(c) for c in unknown)} "
            f"(columns: {', '.join(schema.field_names())})",
            code="unknown_column",
        )
    keys = [column.label(f"{_KEY}{i}") for i, column in enumerate(key_columns)]
    selected = keys + [schema.field(c, "columns").label(c) for c in wanted]
    statement = sa.select(*selected).select_from(source)
    if spec.where is not None:
        statement = statement.where(compile_where(parse_tree(spec.where), schema))
    with engine.connect() as conn:
        frame = pd.read_sql(statement, conn)
    data = frame[wanted]
    complete = data.notna().all(axis=1).to_numpy() if wanted else np.ones(len(frame), bool)
    row_keys = row_hashes(frame[[k.name for k in keys]])
    # A count reads no column; an empty frame with the right length keeps the row count.
    kept = data[complete].reset_index(drop=True) if wanted else pd.DataFrame(index=frame.index)
    return Selection(kept, int((~complete).sum()), row_keys[complete], row_keys[~complete])


def _canonical(value: Any) -> str:
    """One spelling per value whatever type the driver returned (5, 5.0, Decimal('5'))."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\x00"
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal | np.integer | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return str(value)


def row_hashes(keys: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row of `keys` (pandas' fixed-key SipHash: same on every run)."""
    if keys.empty:
        return np.zeros(len(keys), np.uint64)
    canonical = keys.map(_canonical)
    return pd.util.hash_pandas_object(canonical, index=False).to_numpy(dtype=np.uint64)
