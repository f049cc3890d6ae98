"""What flows between the pipeline's stages.

Connectors yield `SourceBatch`es of `SourceRow`s (text as the source wrote it);
the mapping turns a row into a `MappedRecord` of one target kind (typed values,
standard codes and units) or a `Rejection`; the rest of the pipeline works on
mapped records only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One record as read: its key in the source and its columns as text.

    `key` is the source's own row identity (primary key value, CSV line number,
    HL7 message control ID + segment index, FHIR resource id). Empty strings and
    SQL NULLs are both `None`.
    """

    key: str
    values: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class RawReject:
    """A record the connector could not read at all (a truncated CSV line,
    undecodable bytes, an unparsable HL7 message). `raw` keeps what was there."""

    key: str
    code: str
    reason: str
    raw: str


@dataclass(slots=True)
class SourceBatch:
    """Rows read in one go, and the watermark to store once they are processed.

    The watermark is an opaque string owned by the connector; passing it back to
    `read` resumes after this batch.
    """

    rows: list[SourceRow] = field(default_factory=list)
    rejects: list[RawReject] = field(default_factory=list)
    watermark: str | None = None


@dataclass(frozen=True, slots=True)
class MappedRecord:
    """A source row in the pipeline's terms: a target kind and typed fields.

    Field names and types are the target's (see `targets.TARGETS`): dates are
    `datetime.date`, numbers `float`, codes canonical (`C34.1`, analyte codes,
    ATC), lab values in the analyte's standard unit.
    """

    target: str
    source: str  # source system name from the mapping, e.g. "emr"
    table: str  # source table or file
    key: str  # SourceRow.key
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a row cannot be loaded; quarantined with the row."""

    source: str
    table: str
    key: str
    code: str  # machine-readable, e.g. "invalid_date", "non_numeric_value"
    reason: str  # one line for the site operator
    field: str | None = None
    raw: dict[str, str | None] | None = None
