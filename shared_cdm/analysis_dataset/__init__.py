"""Analysis datasets (F11, F13): one row per person derived from the CDM by a spec.

The hub sends a spec; each site compiles it to one SQL statement over its own CDM
database and runs studies on the result. See docs/analysis-datasets.md.
"""

from shared_cdm.analysis_dataset.compiler import (
    CONTACT_DATES,
    dataset_counts_select,
    dataset_select,
)
from shared_cdm.analysis_dataset.loader import (
    DatasetCounts,
    DatasetFrame,
    count_dataset,
    load_dataset,
)
from shared_cdm.analysis_dataset.spec import (
    LAST_CONTACT,
    RESERVED_COLUMNS,
    Covariate,
    DatasetSpec,
    EventCovariate,
    Outcome,
    PersonCovariate,
    Pick,
    dataset_columns,
    dump_dataset_spec,
    parse_dataset_spec,
)

__all__ = [
    "CONTACT_DATES",
    "LAST_CONTACT",
    "RESERVED_COLUMNS",
    "Covariate",
    "DatasetCounts",
    "DatasetFrame",
    "DatasetSpec",
    "EventCovariate",
    "Outcome",
    "PersonCovariate",
    "Pick",
    "count_dataset",
    "dataset_columns",
    "dataset_counts_select",
    "dataset_select",
    "dump_dataset_spec",
    "load_dataset",
    "parse_dataset_spec",
]
