"""Run a dataset spec against a site's CDM database and return the rows as a DataFrame."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shared_cdm.analysis_dataset.compiler import dataset_counts_select, dataset_select
from shared_cdm.analysis_dataset.spec import DatasetSpec


@dataclass(frozen=True)
class DatasetCounts:
    """How many persons each step kept: with an index event, in the cohort, dropped."""

    n_index: int
    n_cohort: int
    n_excluded_negative_time: int


@dataclass(frozen=True, eq=False)  # DataFrames overload ==
class DatasetFrame:
    """The dataset (one row per person) and the counts behind it.

    `frame` has the columns of `dataset_select`; `person_id` and `index_date` stay at
    the site (see `dataset_columns`). `len(frame) == n_cohort - n_excluded_negative_time`.
    """

    frame: pd.DataFrame
    n_index: int
    n_cohort: int
    n_excluded_negative_time: int


def _cdm_metadata() -> sa.MetaData:
    from shared_cdm.models import Base

    return Base.metadata


def count_dataset(
    connection: Connection, spec: DatasetSpec, metadata: sa.MetaData | None = None
) -> DatasetCounts:
    """The counts for `spec`, n_excluded_negative_time among them."""
    row = connection.execute(dataset_counts_select(spec, metadata or _cdm_metadata())).one()
    return DatasetCounts(
        n_index=int(row.n_index),
        n_cohort=int(row.n_cohort),
        n_excluded_negative_time=int(row.n_excluded_negative_time),
    )


def load_dataset(
    engine: Engine, spec: DatasetSpec, metadata: sa.MetaData | None = None
) -> DatasetFrame:
    """Build the dataset for `spec` from the CDM tables (`shared_cdm.models` by default).

    The rows and the counts are read in one transaction, on PostgreSQL at REPEATABLE
    READ, so they describe the same data even while the ETL is writing.
    """
    tables = metadata or _cdm_metadata()
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            result = connection.execute(dataset_select(spec, tables))
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
            counts = count_dataset(connection, spec, tables)
    return DatasetFrame(
        frame=frame,
        n_index=counts.n_index,
        n_cohort=counts.n_cohort,
        n_excluded_negative_time=counts.n_excluded_negative_time,
    )
