"""Training and scoring rows of an ML study, built from this site's analysis database.

The rows come through the same machinery as every other study: the study's dataset
(the CDM analysis dataset its `cdm_dataset` spec describes, or a flat dataset), its
derived fields and its cohort `where`, compiled to one SELECT. Each row is keyed by
the patient's pseudonym (the CDM's `person_source_value`, or the flat dataset's
`id_column`), one row per pseudonym. Categorical features become one indicator per
non-reference level and numeric features are centred and scaled as the spec says, so
every site builds the same model inputs (a `standardise` feature is built as stored:
its constants are pooled across the sites after the rows are built, and applied to
the snapshot by `standardise_snapshot`). Rows stay at the site: the snapshot file
the SuperNode's ClientApp reads lives in the edge's own state directory.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from edge_node.cdm import CDM_DATASET, cdm_metadata, require_cdm, study_dataset_spec
from edge_node.datasets import load_table
from edge_node.selection import PRIVATE_COLUMNS, DatasetSchema
from edge_node.store.datasets import DatasetRegistry
from federated_ml.analyses.base import StudySpec, parse_spec
from federated_ml.flower.features import FeatureRows, SqliteFeatureSource, outcome_columns
from federated_ml.flower.spec import BinaryOutcome, MLStudySpec, input_columns, parse_ml_spec
from shared_cdm.analysis_dataset import dataset_select
from shared_cdm.cohort import FlatSchema, Schema, compile_derived, compile_where, parse_tree
from shared_cdm.errors import InvalidInput

FLOWER = "flower"  # the analysis name of an ML study
DEFAULT_ID_COLUMN = "pseudonym"
SNAPSHOT_TABLE = "ml_features"
_KEY = "__oncofed_pseudonym"
_TRUE = frozenset({"1", "true", "yes", "t", "y"})
_FALSE = frozenset({"0", "false", "no", "f", "n"})


@dataclass(frozen=True)
class MlStudy:
    """An ML study as a site reads it: the cohort part and the model part."""

    study: StudySpec
    ml: MLStudySpec

    @property
    def id_column(self) -> str:
        return str((self.study.model_extra or {}).get("id_column", DEFAULT_ID_COLUMN))


def parse_ml_study(raw: Mapping[str, Any]) -> MlStudy:
    """The study spec of an `analysis: flower` study; InvalidInput names what is wrong."""
    study = parse_spec({k: v for k, v in raw.items() if k != "round_params"})
    if study.analysis != FLOWER:
        raise InvalidInput(f"not an ML study: analysis is {study.analysis!r}, not {FLOWER!r}")
    ml = (study.model_extra or {}).get("ml")
    if ml is None:
        raise InvalidInput("an ML study needs an `ml` block (model, features, outcome, ...)")
    return MlStudy(study, parse_ml_spec(ml))


@dataclass
class SkipCounts:
    """Why rows were left out; counts only, they stay at the site."""

    missing: int = 0
    unknown_level: int = 0
    bad_outcome: int = 0
    duplicate: int = 0

    @property
    def total(self) -> int:
        return self.missing + self.unknown_level + self.bad_outcome + self.duplicate


@dataclass(frozen=True)
class SiteRows:
    """Model inputs (and outcome columns when asked for) per pseudonym."""

    keys: list[str]
    columns: dict[str, np.ndarray]
    skipped: SkipCounts = field(default_factory=SkipCounts)

    def matrix(self, names: Sequence[str]) -> np.ndarray:
        if not self.keys:
            return np.zeros((0, len(names)))
        return np.column_stack([self.columns[n] for n in names])

    def as_feature_rows(self, names: Sequence[str]) -> FeatureRows:
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise InvalidInput(f"the study's rows have no column(s): {', '.join(missing)}")
        return FeatureRows(list(self.keys), {n: self.columns[n] for n in names}, self.skipped.total)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool | np.bool_):
        return None if value is None else float(value)
    if isinstance(value, int | float | Decimal | np.integer | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _binary(value: Any) -> float | None:
    if isinstance(value, str):
        text = value.strip().lower()
        return 1.0 if text in _TRUE else 0.0 if text in _FALSE else None
    f = _number(value)
    return f if f in (0.0, 1.0) else None


def _level(value: Any) -> str | None:
    """The text a level is matched by (3 and 3.0 and "3" are one level)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    f = _number(value)
    if f is not None and not isinstance(value, str):
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return str(value)


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


def _source(
    engine: Engine, registry: DatasetRegistry, study: MlStudy
) -> tuple[FromClause, Schema, ColumnElement[Any]]:
    """What to select from, the schema fields resolve in, and the pseudonym expression."""
    spec = study.study
    if spec.dataset == CDM_DATASET:
        require_cdm(engine)
        metadata = cdm_metadata()
        subquery = dataset_select(study_dataset_spec(spec), metadata).subquery("dataset")
        derived = _derived(spec, DatasetSchema(subquery), set(subquery.c.keys()))
        person = metadata.tables["person"]
        joined = subquery.join(person, person.c.person_id == subquery.c["person_id"])
        # The pseudonym; a person loaded without one is still one patient, keyed by its id.
        key = sa.func.coalesce(
            person.c.person_source_value, sa.cast(subquery.c["person_id"], sa.String)
        )
        return joined, DatasetSchema(subquery, derived), key
    table = load_table(engine, registry.get(spec.dataset))
    if study.id_column not in table.c:
        raise InvalidInput(
            f"dataset {spec.dataset!r} has no column {study.id_column!r} to key patients by; "
            "name it with `id_column` in the study spec",
            code="unknown_column",
        )
    derived = _derived(spec, FlatSchema(table), set(table.c.keys()))
    schema = FlatSchema(table, id_column=study.id_column, derived_fields=derived)
    return table, schema, sa.cast(table.c[study.id_column], sa.String)


def _fields(study: MlStudy, with_outcome: bool) -> list[str]:
    wanted = list(study.ml.features)
    if with_outcome:
        wanted += outcome_columns(study.ml)
    return wanted


def select_frame(
    engine: Engine, registry: DatasetRegistry, study: MlStudy, *, with_outcome: bool
) -> pd.DataFrame:
    """The cohort's raw field values, one column per feature (and outcome), keyed."""
    source, schema, key = _source(engine, registry, study)
    wanted = _fields(study, with_outcome)
    known = set(schema.field_names())
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise InvalidInput(
            f"dataset {study.study.dataset!r} has no field {', '.join(map(repr, unknown))} "
            f"(fields: {', '.join(schema.field_names())})",
            code="unknown_column",
        )
    columns = [key.label(_KEY), *(schema.field(c, "ml").label(c) for c in wanted)]
    statement = sa.select(*columns).select_from(source)
    if study.study.where is not None:
        statement = statement.where(compile_where(parse_tree(study.study.where), schema))
    with engine.connect() as conn:
        return pd.read_sql(statement.order_by(key), conn)


def encode_rows(frame: pd.DataFrame, ml: MLStudySpec, *, with_outcome: bool) -> SiteRows:
    """Model inputs per pseudonym; a row with a missing or unusable value is counted, not used."""
    inputs = input_columns(ml)
    outcome = outcome_columns(ml) if with_outcome else []
    skipped = SkipCounts()
    seen: set[str] = set()
    keys: list[str] = []
    values: list[list[float]] = []
    for record in frame.to_dict("records"):
        key = record[_KEY]
        if key is None or (isinstance(key, float) and math.isnan(key)):
            skipped.missing += 1
            continue
        if str(key) in seen:
            skipped.duplicate += 1  # one row per patient: the first wins
            continue
        row = _encode(record, ml, skipped)
        if row is None:
            continue
        if with_outcome:
            target = _outcome(record, ml)
            if target is None:
                skipped.bad_outcome += 1
                continue
            row += target
        seen.add(str(key))
        keys.append(str(key))
        values.append(row)
    names = inputs + outcome
    matrix = np.asarray(values, dtype=np.float64).reshape(len(values), len(names))
    return SiteRows(keys, {n: matrix[:, i] for i, n in enumerate(names)}, skipped)


def _encode(record: Mapping[str, Any], ml: MLStudySpec, skipped: SkipCounts) -> list[float] | None:
    row: list[float] = []
    for name in ml.features:
        value = record[name]
        levels = ml.categorical.get(name)
        if levels is not None:
            text = _level(value)
            if text is None:
                skipped.missing += 1
                return None
            if text not in levels:
                skipped.unknown_level += 1
                return None
            position = levels.index(text)
            row += [1.0 if position == i else 0.0 for i in range(1, len(levels))]
            continue
        number = _number(value)
        if number is None:
            skipped.missing += 1
            return None
        center, scale = ml.scaling.get(name, (0.0, 1.0))
        row.append((number - center) / scale)
    return row


def _outcome(record: Mapping[str, Any], ml: MLStudySpec) -> list[float] | None:
    if isinstance(ml.outcome, BinaryOutcome):
        y = _binary(record[ml.outcome.column])
        return None if y is None else [y]
    time = _number(record[ml.outcome.time_column])
    event = _binary(record[ml.outcome.event_column])
    if time is None or event is None or time < 0:
        return None
    return [time, event]


@dataclass(frozen=True)
class AnalysisDbFeatureSource:
    """A `FeatureSource` over the analysis database (training rows: inputs and outcome)."""

    engine: Engine
    registry: DatasetRegistry
    study: MlStudy
    with_outcome: bool = True

    def rows(self) -> SiteRows:
        frame = select_frame(self.engine, self.registry, self.study, with_outcome=self.with_outcome)
        return encode_rows(frame, self.study.ml, with_outcome=self.with_outcome)

    def load(self, columns: Sequence[str]) -> FeatureRows:
        return self.rows().as_feature_rows(columns)


def write_snapshot(path: Path, rows: SiteRows, columns: Sequence[str]) -> Path:
    """The rows as the SQLite table the ClientApp reads; owner-only, replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    conn = sqlite3.connect(tmp)
    try:
        cols = ", ".join(f'"{c}" REAL NOT NULL' for c in columns)
        conn.execute(f'CREATE TABLE "{SNAPSHOT_TABLE}" (row_key TEXT PRIMARY KEY, {cols})')
        data = rows.matrix(columns)
        conn.executemany(
            f'INSERT INTO "{SNAPSHOT_TABLE}" VALUES (?{", ?" * len(columns)})',
            [(k, *map(float, data[i])) for i, k in enumerate(rows.keys)],
        )
        conn.commit()
    finally:
        conn.close()
    os.replace(tmp, path)
    return path


def standardise_snapshot(
    raw: Path, out: Path, columns: Sequence[str], constants: Mapping[str, tuple[float, float]]
) -> Path:
    """The snapshot `raw` with each column named in `constants` as (value - mean) / sd,
    written to `out` (the same arithmetic as `encode_rows` with fixed scaling, so the
    rows trained on and the rows `predict` scores are built alike). `raw` stays as the
    join built it, so repeating this never scales twice."""
    rows = SqliteFeatureSource(raw, SNAPSHOT_TABLE).load(columns)
    unknown = sorted(set(constants) - set(columns))
    if unknown:
        raise InvalidInput(f"the snapshot has no column(s) {', '.join(unknown)} to standardise")
    scaled = {
        name: (values - constants[name][0]) / constants[name][1] if name in constants else values
        for name, values in rows.columns.items()
    }
    return write_snapshot(out, SiteRows(rows.keys, scaled), columns)
