"""Compile a dataset spec to one SELECT with one row per person, for SQLite and PostgreSQL.

The statement nests three levels, each a subquery of the next:

1. `indexed`, over `person`: the index date (first matching index event), the cohort
   condition evaluated at that date, and the person-field covariates;
2. `followed`, over `indexed`: the event covariates, the first outcome date and the
   last contact date, each a scalar subquery correlated to `indexed`;
3. the outer SELECT: `time` and `event` from those dates, the derived fields, and the
   rule that drops rows with negative time.

Every value is a bound parameter and every name is looked up in the metadata, so
nothing from a spec is pasted into SQL text. Validation errors carry the JSON path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from shared_cdm.analysis_dataset.spec import (
    EVENT,
    INDEX_DATE,
    ORDERED_PICKS,
    PERSON_ID,
    TIME,
    DatasetSpec,
    EventCovariate,
    Outcome,
    PersonCovariate,
    Pick,
)
from shared_cdm.cohort import (
    CdmSchema,
    Node,
    Schema,
    Window,
    compile_derived,
    compile_where,
    days_between,
    index_first_event,
)
from shared_cdm.cohort.schema import EventSource
from shared_cdm.errors import InvalidInput

# Where a person is seen: (table, date column). The index date counts as a contact too.
CONTACT_DATES = (
    ("observation_period", "observation_period_end_date"),
    ("visit_occurrence", "visit_start_date"),
    ("visit_occurrence", "visit_end_date"),
    ("condition_occurrence", "condition_start_date"),
    ("procedure_occurrence", "procedure_date"),
    ("drug_exposure", "drug_exposure_start_date"),
    ("measurement", "measurement_date"),
)
# Internal columns of the inner levels; output names cannot start with "_".
_IN_COHORT, _OUTCOME_DATE, _LAST_CONTACT = "_in_cohort", "_outcome_date", "_last_contact"


def dataset_select(spec: DatasetSpec, metadata: sa.MetaData) -> sa.Select[Any]:
    """SELECT person_id, index_date, time, event, each covariate, each derived field.

    One row per person who has an index event, meets the cohort condition and has
    time >= 0, ordered by person_id.
    """
    schema = CdmSchema(metadata)
    indexed = _indexed(spec, schema, in_cohort_only=True)
    followed = _followed(spec, schema, indexed, with_covariates=True)
    time, event = _time_and_event(spec.outcome, followed)
    covariates = {name: followed.c[name] for name in spec.covariates}

    def resolve(name: str, path: str) -> ColumnElement[Any]:
        named: dict[str, ColumnElement[Any]] = {**covariates, TIME: time, EVENT: event}
        if name not in named:
            raise InvalidInput(f"{path}: unknown field {name!r}")
        return named[name]

    derived = compile_derived(spec.derived, resolve, path="derived")
    return (
        sa.select(
            followed.c[PERSON_ID],
            followed.c[INDEX_DATE],
            time.label(TIME),
            event.label(EVENT),
            *(column.label(name) for name, column in covariates.items()),
            *derived.values(),
        )
        .where(time >= 0)
        .order_by(followed.c[PERSON_ID])
    )


def dataset_counts_select(spec: DatasetSpec, metadata: sa.MetaData) -> sa.Select[Any]:
    """One row: n_index (persons with an index event), n_cohort (of those, meeting the
    cohort condition) and n_excluded_negative_time (of those, dropped for time < 0)."""
    schema = CdmSchema(metadata)
    indexed = _indexed(spec, schema, in_cohort_only=False)
    followed = _followed(spec, schema, indexed, with_covariates=False)
    time, _event = _time_and_event(spec.outcome, followed)
    in_cohort = followed.c[_IN_COHORT] == 1
    negative = sa.case((sa.and_(in_cohort, time < 0), 1), else_=0)
    return sa.select(
        sa.func.count().label("n_index"),
        sa.func.coalesce(sa.func.sum(followed.c[_IN_COHORT]), 0).label("n_cohort"),
        sa.func.coalesce(sa.func.sum(negative), 0).label("n_excluded_negative_time"),
    ).select_from(followed)


def _indexed(spec: DatasetSpec, schema: CdmSchema, *, in_cohort_only: bool) -> Subquery:
    """Level 1, over `person`: persons with an index event, and what is known at it."""
    index_date = index_first_event(schema, spec.index, path="index")
    at_index = schema.with_index_date(index_date)
    columns: list[ColumnElement[Any]] = [
        schema.subject_id.label(PERSON_ID),
        index_date.label(INDEX_DATE),
    ]
    criteria: list[ColumnElement[bool]] = [index_date.is_not(None)]
    in_cohort = None if spec.cohort is None else compile_where(spec.cohort, at_index, path="cohort")
    if in_cohort_only:
        criteria.extend([] if in_cohort is None else [in_cohort])
        columns += [
            at_index.field(covariate.field, f"covariates.{name}.field").label(name)
            for name, covariate in spec.covariates.items()
            if isinstance(covariate, PersonCovariate)
        ]
    else:
        flag = sa.literal(1) if in_cohort is None else sa.case((in_cohort, 1), else_=0)
        columns.append(flag.label(_IN_COHORT))
    return (
        sa.select(*columns).select_from(schema.subject_table).where(*criteria).subquery("indexed")
    )


def _followed(
    spec: DatasetSpec, schema: CdmSchema, indexed: Subquery, *, with_covariates: bool
) -> Subquery:
    """Level 2, over `indexed`: event covariates, first outcome date, last contact date."""
    columns: list[ColumnElement[Any]] = list(indexed.c)
    if with_covariates:
        columns += [
            _aggregate(covariate, schema, indexed, f"covariates.{name}").label(name)
            for name, covariate in spec.covariates.items()
            if isinstance(covariate, EventCovariate)
        ]
    columns.append(_first_outcome(spec.outcome, schema, indexed).label(_OUTCOME_DATE))
    if spec.outcome.censor == "last_contact":
        columns.append(_last_contact(schema, indexed).label(_LAST_CONTACT))
    return sa.select(*columns).select_from(indexed).subquery("followed")


def _time_and_event(
    outcome: Outcome, followed: Subquery
) -> tuple[ColumnElement[int], ColumnElement[int]]:
    """Days from the index to the first outcome event (event 1), else to censoring (0)."""
    index_date = followed.c[INDEX_DATE]
    outcome_date = followed.c[_OUTCOME_DATE]
    censor_date: ColumnElement[Any]
    if isinstance(outcome.censor, date):
        censor_date = sa.literal(outcome.censor, sa.Date())
    else:
        last = followed.c[_LAST_CONTACT]
        censor_date = sa.case((last > index_date, last), else_=index_date)
    to_outcome = days_between(index_date, outcome_date)
    to_censor = days_between(index_date, censor_date)
    observed: ColumnElement[bool] = outcome_date.is_not(None)
    if isinstance(outcome.censor, date):
        # An outcome after the data cut-off is not yet known at the cut-off.
        observed = sa.and_(observed, to_outcome <= to_censor)
    time: ColumnElement[int] = sa.case((observed, to_outcome), else_=to_censor)
    cap = outcome.max_follow_up_days
    if cap is None:
        return time, sa.case((observed, 1), else_=0)
    capped: ColumnElement[int] = sa.case((time > cap, cap), else_=time)
    return capped, sa.case((sa.and_(observed, to_outcome <= cap), 1), else_=0)


@dataclass(frozen=True, eq=False)  # SQL expressions overload ==
class _EventRow(Schema):
    """One event row as the subject, so an event's `where` tree compiles with compile_where."""

    source: EventSource
    table: sa.Table

    @property
    def subject_table(self) -> sa.Table:
        return self.table

    @property
    def subject_id(self) -> ColumnElement[Any]:
        return self.source.subject_key

    def field(self, name: str, path: str) -> ColumnElement[Any]:
        return self.source.field(name, path)

    def field_names(self) -> list[str]:
        return sorted({"date", *self.source.aliases, *self.source.table.c.keys()})


@dataclass(frozen=True, eq=False)
class _Events:
    """A person's events of one kind that match a filter, correlated to `indexed`."""

    source: EventSource
    criteria: list[ColumnElement[bool]]
    indexed: Subquery

    def select(self, *columns: ColumnElement[Any]) -> sa.Select[Any]:
        return (
            sa.select(*columns)
            .select_from(self.source.table)
            .where(*self.criteria)
            .correlate(self.indexed)
        )


def _events(
    schema: CdmSchema,
    indexed: Subquery,
    event: str,
    path: str,
    *,
    where: Node | None = None,
    window: Window | None = None,
    min_confidence: float | None = None,
) -> _Events:
    source = schema.event_source(event, path)
    criteria = [source.subject_key == indexed.c[PERSON_ID]]
    if where is not None:
        table = schema.metadata.tables[schema.events[event].table]
        criteria.append(compile_where(where, _EventRow(source, table), path=f"{path}.where"))
    if window is not None:
        days = days_between(indexed.c[INDEX_DATE], source.date)
        if window.from_days is not None:
            criteria.append(days >= window.from_days)
        if window.to_days is not None:
            criteria.append(days <= window.to_days)
    if min_confidence is not None and "confidence" in source.table.c:
        # Structured sources leave confidence NULL: they count as certain.
        criteria.append(sa.func.coalesce(source.table.c["confidence"], 1.0) >= min_confidence)
    return _Events(source, criteria, indexed)


def _aggregate(
    covariate: EventCovariate, schema: CdmSchema, indexed: Subquery, path: str
) -> ColumnElement[Any]:
    def matching() -> _Events:
        return _events(
            schema,
            indexed,
            covariate.event,
            path,
            where=covariate.where,
            window=covariate.window,
            min_confidence=covariate.min_confidence,
        )

    if covariate.pick in ORDERED_PICKS:
        return _one_event_value(covariate, matching, path)
    events = matching()
    if covariate.pick is Pick.EXISTS:
        return sa.case((events.select(sa.literal(1)).exists(), 1), else_=0)
    if covariate.pick is Pick.COUNT:
        return events.select(sa.func.count()).scalar_subquery()
    value = events.source.field(covariate.value_column, f"{path}.column")
    if covariate.pick is Pick.MIN:
        return events.select(sa.func.min(value)).scalar_subquery()
    if covariate.pick is Pick.MAX:
        return events.select(sa.func.max(value)).scalar_subquery()
    raise InvalidInput(f"{path}.pick: unknown pick {covariate.pick!r}")


def _one_event_value(
    covariate: EventCovariate, matching: Callable[[], _Events], path: str
) -> ColumnElement[Any]:
    """first / last / nearest_index: `column` of one dated event that has a value.

    Ties go to the smallest primary key, so the same data always give the same value.
    SQLite cannot see outer columns in a subquery's ORDER BY, so "nearest" is not a
    sort on the distance to the index: the distance must equal its minimum instead.
    """

    def with_value(events: _Events) -> tuple[ColumnElement[Any], list[ColumnElement[bool]]]:
        value = events.source.field(covariate.value_column, f"{path}.column")
        return value, [value.is_not(None), events.source.date.is_not(None)]

    def distance(events: _Events) -> ColumnElement[Any]:
        return sa.func.abs(days_between(events.indexed.c[INDEX_DATE], events.source.date))

    events = matching()
    value, has_value = with_value(events)
    chosen = events.select(value).where(*has_value)
    if covariate.pick is Pick.FIRST:
        chosen = chosen.order_by(events.source.date.asc())
    elif covariate.pick is Pick.LAST:
        chosen = chosen.order_by(events.source.date.desc())
    else:
        others = matching()  # the same events under a second alias
        nearest = others.select(sa.func.min(distance(others))).where(*with_value(others)[1])
        chosen = chosen.where(distance(events) == nearest.scalar_subquery())
    return chosen.order_by(*events.source.table.primary_key).limit(1).scalar_subquery()


def _first_outcome(outcome: Outcome, schema: CdmSchema, indexed: Subquery) -> ColumnElement[Any]:
    events = _events(schema, indexed, outcome.event, "outcome", where=outcome.where)
    return events.select(sa.func.min(events.source.date)).scalar_subquery()


def _last_contact(schema: CdmSchema, indexed: Subquery) -> ColumnElement[Any]:
    """The latest date the person is seen: MAX over a UNION ALL of every contact date."""
    tables = schema.metadata.tables
    branches = [
        sa.select(
            tables[table].c["person_id"].label("person_id"),
            tables[table].c[column].label("contact_date"),
        )
        for table, column in CONTACT_DATES
        if table in tables and column in tables[table].c
    ]
    if not branches:
        return sa.null()
    contacts = sa.union_all(*branches).subquery("contacts")
    return (
        sa.select(sa.func.max(contacts.c.contact_date))
        .where(contacts.c.person_id == indexed.c[PERSON_ID])
        .correlate(indexed)
        .scalar_subquery()
    )
