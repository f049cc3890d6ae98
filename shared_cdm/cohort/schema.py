"""What a cohort tree may name: the subject's fields and the kinds of event.

`FlatSchema` is one row per subject (a CSV-shaped table); `CdmSchema` is the OMOP
database, with `person` as the subject and the fact tables as events. Both work on
whatever `sqlalchemy.Table` objects they are given and always reach columns through
`table.c[name]`, so a name that is not a column is an error, never SQL text.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from shared_cdm.cohort.dates import age_in_years
from shared_cdm.errors import InvalidInput

# OMOP gender concepts; anything else falls back to the site's source value.
MALE_CONCEPT_ID = 8507
FEMALE_CONCEPT_ID = 8532


@dataclass(frozen=True)
class EventKind:
    """Where one kind of event lives: its table, its date, and friendly names for columns.

    Any other column of the table can be named directly too.
    """

    table: str
    date_column: str
    fields: Mapping[str, str] = field(default_factory=dict)
    subject_column: str = "person_id"


EVENTS: Mapping[str, EventKind] = MappingProxyType(
    {
        "diagnosis": EventKind(
            "condition_occurrence",
            "condition_start_date",
            {"code": "condition_source_value", "concept_id": "condition_concept_id"},
        ),
        "procedure": EventKind(
            "procedure_occurrence",
            "procedure_date",
            {"code": "procedure_source_value", "concept_id": "procedure_concept_id"},
        ),
        "drug": EventKind(
            "drug_exposure",
            "drug_exposure_start_date",
            {"code": "drug_source_value", "concept_id": "drug_concept_id"},
        ),
        "measurement": EventKind(
            "measurement",
            "measurement_date",
            {
                "code": "measurement_source_value",
                "concept_id": "measurement_concept_id",
                "value": "value_as_number",
                "unit": "unit_source_value",
            },
        ),
        "visit": EventKind(
            "visit_occurrence",
            "visit_start_date",
            {"code": "visit_source_value", "concept_id": "visit_concept_id"},
        ),
        "death": EventKind("death", "death_date", {"cause": "cause_source_value"}),
        "lung_cancer": EventKind("lung_cancer_dataset", "diagnosis_date"),
    }
)


def _names(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


@dataclass(frozen=True)
class EventSource:
    """One event table under a fresh alias, so nested subqueries never share a FROM."""

    name: str
    table: FromClause
    date: ColumnElement[Any]
    subject_key: ColumnElement[Any]
    aliases: Mapping[str, str]

    def field(self, name: str, path: str) -> ColumnElement[Any]:
        column = self.aliases.get(name, name)
        if name == "date":
            return self.date
        if column not in self.table.c:
            known = sorted({"date", *self.aliases, *(c.key for c in self.table.c)})
            raise InvalidInput(
                f"{path}: event {self.name!r} has no field {name!r} (fields: {_names(known)})"
            )
        return self.table.c[column]


class Schema(ABC):
    """The subject table, how to reach its fields, and which events exist."""

    index_date: ColumnElement[Any] | None = None

    @property
    @abstractmethod
    def subject_table(self) -> sa.Table: ...

    @property
    @abstractmethod
    def subject_id(self) -> ColumnElement[Any]: ...

    @abstractmethod
    def field(self, name: str, path: str) -> ColumnElement[Any]:
        """The SQL expression for a subject-level field, or InvalidInput naming `path`."""

    @abstractmethod
    def field_names(self) -> list[str]:
        """Every field a condition may name, for a menu-style builder."""

    def event_source(self, name: str, path: str) -> EventSource:
        raise InvalidInput(f"{path}: event {name!r}: this table has fields only, no events")

    def event_names(self) -> list[str]:
        return []


@dataclass(frozen=True, eq=False)  # SQL expressions overload ==
class FlatSchema(Schema):
    """One row per subject; the fields are the table's columns plus any derived fields.

    `id_column` defaults to the table's single primary-key column, else its first column.
    """

    table: sa.Table
    id_column: str | None = None
    derived_fields: Mapping[str, ColumnElement[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.id_column is not None and self.id_column not in self.table.c:
            raise InvalidInput(f"table {self.table.name!r} has no column {self.id_column!r}")

    @property
    def subject_table(self) -> sa.Table:
        return self.table

    @property
    def subject_id(self) -> ColumnElement[Any]:
        if self.id_column is not None:
            return self.table.c[self.id_column]
        keys = list(self.table.primary_key.columns)
        return keys[0] if len(keys) == 1 else next(iter(self.table.c))

    def field(self, name: str, path: str) -> ColumnElement[Any]:
        if name in self.derived_fields:
            return self.derived_fields[name]
        if name in self.table.c:
            return self.table.c[name]
        raise InvalidInput(f"{path}: unknown field {name!r} (fields: {_names(self.field_names())})")

    def field_names(self) -> list[str]:
        columns = [c.key for c in self.table.c if c.key not in self.derived_fields]
        return [*self.derived_fields, *columns]


@dataclass(frozen=True, eq=False)  # SQL expressions overload ==
class CdmSchema(Schema):
    """The OMOP database: `person` is the subject, fact tables are events.

    `age` is at `index_date` (a per-person expression, e.g. from `index_first_event`)
    when one is given, else at `reference_date`. Tables missing from `metadata` make
    their events unavailable; naming one is an error, not an empty result.
    """

    metadata: sa.MetaData
    index_date: ColumnElement[Any] | None = None
    reference_date: date | None = None
    events: Mapping[str, EventKind] = field(default_factory=lambda: EVENTS)
    derived_fields: Mapping[str, ColumnElement[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "person" not in self.metadata.tables:
            raise InvalidInput("an OMOP schema needs a 'person' table")

    @property
    def subject_table(self) -> sa.Table:
        return self.metadata.tables["person"]

    @property
    def subject_id(self) -> ColumnElement[Any]:
        return self.subject_table.c["person_id"]

    def with_index_date(self, index_date: ColumnElement[Any] | None) -> CdmSchema:
        return dataclasses.replace(self, index_date=index_date)

    def field(self, name: str, path: str) -> ColumnElement[Any]:
        if name in self.derived_fields:
            return self.derived_fields[name]
        person = self.subject_table
        if name == "age":
            return self._age(path)
        if name == "sex":
            return self._sex()
        if name == "death":
            return self._death(path)
        if name in person.c:
            return person.c[name]
        raise InvalidInput(f"{path}: unknown field {name!r} (fields: {_names(self.field_names())})")

    def field_names(self) -> list[str]:
        builtin = ["age", "sex", "death"]
        columns = [c.key for c in self.subject_table.c if c.key not in builtin]
        return list(dict.fromkeys([*self.derived_fields, *builtin, *columns]))

    def event_names(self) -> list[str]:
        return [name for name, kind in self.events.items() if kind.table in self.metadata.tables]

    def event_source(self, name: str, path: str) -> EventSource:
        kind = self.events.get(name)
        if kind is None:
            raise InvalidInput(
                f"{path}: unknown event {name!r} (events: {_names(sorted(self.events))})"
            )
        table = self.metadata.tables.get(kind.table)
        if table is None:
            raise InvalidInput(f"{path}: event {name!r} needs table {kind.table!r}, not present")
        for column in (kind.date_column, kind.subject_column):
            if column not in table.c:
                raise InvalidInput(f"{path}: table {kind.table!r} has no column {column!r}")
        alias = table.alias()
        return EventSource(
            name, alias, alias.c[kind.date_column], alias.c[kind.subject_column], kind.fields
        )

    def _age(self, path: str) -> ColumnElement[Any]:
        person = self.subject_table
        if self.index_date is not None:
            at: ColumnElement[Any] = self.index_date
        elif self.reference_date is not None:
            at = sa.literal(self.reference_date, sa.Date())
        else:
            raise InvalidInput(f"{path}: 'age' needs an index date or a reference date")
        # De-identified data often keep only the year of birth; fall back to it.
        by_year = sa.cast(sa.extract("year", at), sa.Integer) - person.c["year_of_birth"]
        if "birth_datetime" in person.c:
            return sa.type_coerce(
                sa.func.coalesce(age_in_years(person.c["birth_datetime"], at), by_year),
                sa.Integer(),
            )
        return sa.type_coerce(by_year, sa.Integer())

    def _sex(self) -> ColumnElement[Any]:
        person = self.subject_table
        source = person.c.get("gender_source_value")
        if "gender_concept_id" not in person.c:
            return sa.type_coerce(source if source is not None else sa.null(), sa.String())
        concept = person.c["gender_concept_id"]
        return sa.case(
            (concept == MALE_CONCEPT_ID, "male"),
            (concept == FEMALE_CONCEPT_ID, "female"),
            else_=source,
        )

    def _death(self, path: str) -> ColumnElement[Any]:
        source = self.event_source("death", path)
        return (
            sa.select(sa.literal(1))
            .select_from(source.table)
            .where(source.subject_key == self.subject_id)
            .correlate(self.subject_table)
            .exists()
        )
