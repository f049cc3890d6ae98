"""The analysis-dataset spec: which persons, from when, followed to what, with which columns.

    {"index": {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C34"},
     "cohort": {"all": [{"field": "age", "op": ">=", "value": 18}]},
     "outcome": {"event": "death", "censor": "last_contact", "max_follow_up_days": 1825},
     "covariates": {"age": {"field": "age"},
                    "stage": {"event": "lung_cancer", "column": "clinical_stage_group",
                              "pick": "first"}},
     "derived": {"age_group": {"cut": "age", "breaks": [50, 65, 80]}}}

`parse_dataset_spec` is the entry point for untrusted JSON and names the bad part by
its JSON path (`covariates.egfr.pick: unknown pick 'median' ...`). Names of fields
and columns are checked against the database when the spec is compiled. See
docs/analysis-datasets.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Discriminator, StrictInt, Tag, model_serializer
from sqlalchemy.sql.elements import ColumnElement

from shared_cdm.cohort import (
    EVENTS,
    Event,
    Node,
    Window,
    compile_derived,
    dump_tree,
    parse_tree,
)
from shared_cdm.errors import InvalidInput

LAST_CONTACT = "last_contact"
# Output columns every dataset has; covariates and derived fields may not take these names.
PERSON_ID, INDEX_DATE, TIME, EVENT = "person_id", "index_date", "time", "event"
RESERVED_COLUMNS = frozenset({PERSON_ID, INDEX_DATE, TIME, EVENT})
# Lower case so names cannot collide case-insensitively (SQLite); 63 is PostgreSQL's limit.
_COLUMN_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EVENT_COVARIATE_KEYS = ("event", "where", "column", "pick", "window", "min_confidence")


class Pick(StrEnum):
    """How an event covariate turns a person's matching events into one value."""

    FIRST = "first"  # value of the earliest event
    LAST = "last"  # value of the latest event
    NEAREST_INDEX = "nearest_index"  # value of the event closest to the index date
    MIN = "min"  # smallest value
    MAX = "max"  # largest value
    COUNT = "count"  # number of events
    EXISTS = "exists"  # 1 if there is any, else 0


ORDERED_PICKS = frozenset({Pick.FIRST, Pick.LAST, Pick.NEAREST_INDEX})
VALUE_PICKS = ORDERED_PICKS | {Pick.MIN, Pick.MAX}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PersonCovariate(_Model):
    """A field of the person (`age` is at the index date); see `CdmSchema.field`."""

    field: str


class EventCovariate(_Model):
    """One value per person from the events of one kind that match `where` and `window`."""

    event: str
    pick: Pick
    column: str | None = None
    where: Node | None = None
    window: Window | None = None
    min_confidence: float | None = None

    @property
    def value_column(self) -> str:
        """The field whose value is taken; the event date when `column` is not given."""
        return self.column or "date"


def _covariate_tag(data: Any) -> str | None:
    if isinstance(data, BaseModel):
        return {PersonCovariate: "person", EventCovariate: "event"}.get(type(data))
    if isinstance(data, dict):
        return "event" if "event" in data else "person"
    return None


Covariate = Annotated[
    Annotated[PersonCovariate, Tag("person")] | Annotated[EventCovariate, Tag("event")],
    Discriminator(_covariate_tag),
]


class Outcome(_Model):
    """Time from the index date to the first `event` (matching `where`), or to censoring."""

    event: str = "death"
    where: Node | None = None
    censor: date | Literal["last_contact"] = "last_contact"
    max_follow_up_days: StrictInt | None = None


class DatasetSpec(_Model):
    index: Event
    cohort: Node | None = None
    outcome: Outcome = Outcome()
    covariates: dict[str, Covariate] = {}
    derived: dict[str, dict[str, Any]] = {}

    @model_serializer(mode="plain")
    def _canonical(self) -> dict[str, Any]:
        # Trees go through dump_tree: pydantic's union serializer warns on a `Node`
        # held by a model outside shared_cdm.cohort.tree (the output is right).
        out: dict[str, Any] = {"index": dump_tree(self.index)}
        if self.cohort is not None:
            out["cohort"] = dump_tree(self.cohort)
        outcome = self.outcome
        out["outcome"] = _without_none(
            {
                "event": outcome.event,
                "where": None if outcome.where is None else dump_tree(outcome.where),
                "censor": str(outcome.censor),
                "max_follow_up_days": outcome.max_follow_up_days,
            }
        )
        out["covariates"] = {name: _dump_covariate(c) for name, c in self.covariates.items()}
        out["derived"] = {name: dict(definition) for name, definition in self.derived.items()}
        return out


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


def _dump_covariate(covariate: PersonCovariate | EventCovariate) -> dict[str, Any]:
    if isinstance(covariate, PersonCovariate):
        return {"field": covariate.field}
    return _without_none(
        {
            "event": covariate.event,
            "where": None if covariate.where is None else dump_tree(covariate.where),
            "column": covariate.column,
            "pick": covariate.pick.value,
            "window": None if covariate.window is None else covariate.window.model_dump(),
            "min_confidence": covariate.min_confidence,
        }
    )


def parse_dataset_spec(data: object) -> DatasetSpec:
    """Validate JSON into a spec, or raise InvalidInput naming the bad part's JSON path."""
    spec = _object(data, "spec")
    _check_keys(spec, set(DatasetSpec.model_fields), "spec")
    if spec.get("index") is None:
        raise InvalidInput(
            "index: required; the event that starts follow-up, e.g. "
            '{"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C34"}'
        )
    cohort = spec.get("cohort")
    covariates = _covariates(spec.get("covariates", {}))
    return DatasetSpec(
        index=_index(spec["index"]),
        cohort=None if cohort is None else parse_tree(cohort, path="cohort"),
        outcome=_outcome(spec.get("outcome", {})),
        covariates=covariates,
        derived=_derived(spec.get("derived", {}), list(covariates)),
    )


def dump_dataset_spec(spec: DatasetSpec) -> dict[str, Any]:
    """The JSON form of `spec`; `parse_dataset_spec(dump_dataset_spec(s)) == s`."""
    return spec.model_dump(mode="json")


def dataset_columns(spec: DatasetSpec) -> list[str]:
    """The columns a study may use: the outcome, the covariates and the derived fields.

    `person_id` and `index_date` are in the dataset too, but stay at the site: one
    is the site's key for the person, the other a date (an identifier under HIPAA).
    """
    return [TIME, EVENT, *spec.covariates, *spec.derived]


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return "null" if value is None else type(value).__name__


def _object(data: object, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected an object, got {_json_type(data)}")
    return data


def _check_keys(data: Mapping[str, Any], allowed: set[str], path: str) -> None:
    for key in data:
        if key not in allowed:
            raise InvalidInput(f"{path}: unknown key {key!r} (keys: {', '.join(sorted(allowed))})")


def _known_event(name: str, path: str) -> None:
    if name not in EVENTS:
        raise InvalidInput(f"{path}: unknown event {name!r} (events: {', '.join(sorted(EVENTS))})")


def _column_name(name: object, path: str, taken: set[str]) -> str:
    if not isinstance(name, str) or not _COLUMN_NAME.fullmatch(name):
        raise InvalidInput(
            f"{path}: a column name is 1-63 lower-case letters, digits or '_', "
            f"starting with a letter, not {name!r}"
        )
    if name in RESERVED_COLUMNS:
        raise InvalidInput(f"{path}: {name!r} is a column every dataset has; choose another name")
    if name in taken:
        raise InvalidInput(f"{path}: {name!r} is already a covariate")
    return name


def _index(data: object) -> Event:
    node = parse_tree(data, path="index")
    if not isinstance(node, Event):
        raise InvalidInput("index: must be one event, e.g. a diagnosis, not a group or condition")
    if node.window is not None or node.negate or node.min_count != 1:
        raise InvalidInput("index: an index event takes no 'window', 'negate' or 'min_count'")
    _known_event(node.event, "index.event")
    return node


def _outcome(data: object) -> Outcome:
    outcome = _object(data, "outcome")
    _check_keys(outcome, set(Outcome.model_fields), "outcome")
    event = parse_tree(
        {"event": outcome.get("event", "death"), "where": outcome.get("where")}, path="outcome"
    )
    if not isinstance(event, Event):  # parse_tree gives an Event for a dict with "event"
        raise InvalidInput("outcome: must name an event")
    _known_event(event.event, "outcome.event")
    given = outcome.get("censor", LAST_CONTACT)
    censor: date | Literal["last_contact"] = (
        "last_contact" if given == LAST_CONTACT else _censor_date(given)
    )
    cap = outcome.get("max_follow_up_days")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise InvalidInput(
            f"outcome.max_follow_up_days: must be a whole number of days >= 1, not {cap!r}"
        )
    return Outcome(event=event.event, where=event.where, censor=censor, max_follow_up_days=cap)


def _censor_date(value: object) -> date:
    problem = f"must be {LAST_CONTACT!r} or a data cut-off date like '2026-01-01', not {value!r}"
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise InvalidInput(f"outcome.censor: {problem}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"outcome.censor: {problem} (no such date)") from None


def _covariates(data: object) -> dict[str, PersonCovariate | EventCovariate]:
    covariates = _object(data, "covariates")
    out: dict[str, PersonCovariate | EventCovariate] = {}
    for name, item in covariates.items():
        path = f"covariates.{name}"
        _column_name(name, path, set())
        out[name] = _covariate(_object(item, path), path)
    return out


def _covariate(item: dict[str, Any], path: str) -> PersonCovariate | EventCovariate:
    if "field" in item and "event" in item:
        raise InvalidInput(f"{path}: give 'field' (a person field) or 'event', not both")
    if "field" in item:
        field = item["field"]
        if not isinstance(field, str) or not field:
            raise InvalidInput(f"{path}.field: must name a person field, e.g. 'age'")
        for key in item:
            if key in _EVENT_COVARIATE_KEYS:
                raise InvalidInput(
                    f"{path}.{key}: {key!r} belongs to event covariates; "
                    f"{field!r} is a person field with one value per person"
                )
            if key != "field":
                raise InvalidInput(f"{path}: unknown key {key!r}")
        return PersonCovariate(field=field)
    if "event" not in item:
        raise InvalidInput(f"{path}: needs 'field' (a person field such as 'age') or 'event'")
    _check_keys(item, set(_EVENT_COVARIATE_KEYS), path)
    pick = _pick(item.get("pick"), f"{path}.pick")
    column = item.get("column")
    if column is not None and (not isinstance(column, str) or not column):
        raise InvalidInput(f"{path}.column: must name a field of the event, e.g. 'value'")
    if column is not None and pick not in VALUE_PICKS:
        raise InvalidInput(f"{path}.column: pick {pick.value!r} counts events and takes no column")
    leaf = {key: item[key] for key in ("event", "where", "window", "min_confidence") if key in item}
    event = parse_tree(leaf, path=path)
    if not isinstance(event, Event):  # parse_tree gives an Event for a dict with "event"
        raise InvalidInput(f"{path}: must name an event")
    _known_event(event.event, f"{path}.event")
    return EventCovariate(
        event=event.event,
        pick=pick,
        column=column,
        where=event.where,
        window=event.window,
        min_confidence=event.min_confidence,
    )


def _pick(value: object, path: str) -> Pick:
    picks = ", ".join(pick.value for pick in Pick)
    if value is None:
        raise InvalidInput(f"{path}: required for an event covariate (one of {picks})")
    if not isinstance(value, str) or value not in Pick._value2member_map_:
        raise InvalidInput(f"{path}: unknown pick {value!r} (picks: {picks})")
    return Pick(value)


def _derived(data: object, covariates: list[str]) -> dict[str, dict[str, Any]]:
    derived = _object(data, "derived")
    for name in derived:
        _column_name(name, f"derived.{name}", set(covariates))
    # Compile against stand-in columns: checks each definition and what it refers to.
    usable = [*covariates, TIME, EVENT]

    def stand_in(name: str, path: str) -> ColumnElement[Any]:
        if name not in usable:
            raise InvalidInput(
                f"{path}: unknown field {name!r}; a derived field may use the covariates, "
                f"'time', 'event' and derived fields above it"
            )
        return sa.column(name)

    compile_derived(derived, stand_in, path="derived")
    return {name: dict(definition) for name, definition in derived.items()}
