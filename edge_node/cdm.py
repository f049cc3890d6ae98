"""The site's CDM database as a dataset: its tables, its version, its registration.

Studies with `"dataset": "cdm"` run on an analysis dataset that each site builds
from its CDM tables by the study's `cdm_dataset` spec (docs/analysis-datasets.md).
The version is a hash of each CDM table's row count and largest key: it changes
whenever the ETL adds or removes rows, which invalidates cached answers and keeps
the ledger's cohorts apart. (An in-place edit that keeps counts and keys does not
change it; the ETL appends.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Engine

from edge_node.store.datasets import DatasetRecord, DatasetRegistry
from shared_cdm.analysis_dataset import DatasetSpec, parse_dataset_spec
from shared_cdm.db import upgrade
from shared_cdm.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from federated_ml.analyses.base import StudySpec

CDM = "cdm"
CDM_DATASET = "cdm"  # the dataset name studies use


def cdm_metadata() -> sa.MetaData:
    from shared_cdm.models import Base

    return Base.metadata


def upgrade_cdm(analysis_db_url: str) -> None:
    """Create or upgrade the CDM tables in the analysis database."""
    upgrade(analysis_db_url)


def cdm_present(engine: Engine) -> bool:
    return sa.inspect(engine).has_table("person")


def require_cdm(engine: Engine) -> None:
    if not cdm_present(engine):
        raise NotFound(
            "this site's analysis database has no CDM tables; run `oncofed-edge init` "
            "(it creates them) and load the CDM",
            code="cdm_missing",
        )


def _table_state(conn: sa.Connection, table: sa.Table) -> dict[str, Any]:
    measures: list[sa.ColumnElement[Any]] = [sa.func.count().label("rows")]
    measures += [sa.func.max(c).label(f"max_{c.name}") for c in table.primary_key.columns]
    row = conn.execute(sa.select(*measures).select_from(table)).one()
    return {key: None if value is None else str(value) for key, value in row._mapping.items()}


def cdm_version(engine: Engine) -> tuple[str, int]:
    """(version hash, number of persons) of the CDM tables as they are now."""
    require_cdm(engine)
    metadata = cdm_metadata()
    present = set(sa.inspect(engine).get_table_names())
    with engine.connect() as conn:
        state = {
            name: _table_state(conn, table)
            for name, table in sorted(metadata.tables.items())
            if name in present
        }
    digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
    return digest, int(state["person"]["rows"])


def cdm_record(
    engine: Engine, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> DatasetRecord:
    version, persons = cdm_version(engine)
    present = set(sa.inspect(engine).get_table_names())
    return DatasetRecord(
        name=CDM_DATASET,
        kind=CDM,
        version=version,
        columns=tuple(sorted(t for t in cdm_metadata().tables if t in present)),
        row_count=persons,
        table_name="person",
        source_file="",
        registered_at=clock(),
    )


def refresh_cdm(
    engine: Engine,
    registry: DatasetRegistry,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DatasetRecord | None:
    """Register (or re-version) the CDM dataset; None when there are no CDM tables."""
    if not cdm_present(engine):
        return None
    record = cdm_record(engine, clock)
    known = registry.find(CDM_DATASET)
    if known is None or known.version != record.version or known.kind != CDM:
        registry.put(record)
        return record
    return known


def study_dataset_spec(spec: StudySpec) -> DatasetSpec:
    """The `cdm_dataset` spec a CDM study carries, validated."""
    raw = (spec.model_extra or {}).get("cdm_dataset")
    if raw is None:
        raise InvalidInput(
            'a study on dataset "cdm" needs a `cdm_dataset` spec (see docs/analysis-datasets.md)',
            code="cdm_dataset_missing",
        )
    try:
        return parse_dataset_spec(raw)
    except InvalidInput as exc:
        raise InvalidInput(f"cdm_dataset.{exc.message}", code="invalid_cdm_dataset") from exc
