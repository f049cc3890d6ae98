"""Sensitivity analyses on extracted facts: the same question with low-confidence facts left out.

Facts extracted from notes carry a `confidence` (0..1; NULL for structured sources,
which count as certain). `with_min_confidence` raises every event node that reads
a table with such a column to at least `threshold`; an event that already asks
for more keeps its own threshold. `dataset_spec_with_min_confidence` does the same
for an analysis-dataset spec (index event, cohort, event covariates), and
`study_spec_with_min_confidence` for a study spec's JSON (`where`, `cdm_dataset`).
All are pure: the input is never changed. See docs/cohort-query.md.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import cache
from typing import Any

from shared_cdm.analysis_dataset.spec import (
    DatasetSpec,
    EventCovariate,
    dump_dataset_spec,
    parse_dataset_spec,
)
from shared_cdm.cohort.schema import EVENTS
from shared_cdm.cohort.tree import Condition, Event, Group, Node, dump_tree, parse_tree
from shared_cdm.errors import InvalidInput

SENSITIVITY = "sensitivity"
CONFIDENCE_COLUMN = "confidence"


@cache
def confidence_events() -> frozenset[str]:
    """The event kinds whose CDM table has a `confidence` column."""
    from shared_cdm.models import Base  # registers every CDM table

    tables = Base.metadata.tables
    return frozenset(
        name
        for name, kind in EVENTS.items()
        if kind.table in tables and CONFIDENCE_COLUMN in tables[kind.table].c
    )


def check_threshold(threshold: object, path: str = "min_confidence") -> float:
    """`threshold` as a float from 0 to 1, or InvalidInput naming `path`."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise InvalidInput(f"{path}: must be a number from 0 to 1, not {threshold!r}")
    if not 0 <= threshold <= 1:
        raise InvalidInput(f"{path}: must be a number from 0 to 1, not {threshold!r}")
    return float(threshold)


def _raised(current: float | None, threshold: float) -> float:
    return threshold if current is None or current < threshold else current


def with_min_confidence(
    tree: Node, threshold: float, *, events: Collection[str] | None = None
) -> Node:
    """`tree` with every event on a confidence-bearing table at `min_confidence >= threshold`.

    `events` names those event kinds (default: from the CDM tables). Negated events
    are restricted too: "no pT3 with confidence >= 0.9" is the sensitivity reading
    of "no pT3". Conditions, and events on tables without confidence, are kept as is.
    """
    threshold = check_threshold(threshold)
    kinds = confidence_events() if events is None else frozenset(events)
    return _transform(tree, threshold, kinds)


def _transform(node: Node, threshold: float, kinds: frozenset[str]) -> Node:
    if isinstance(node, Group):
        children = tuple(_transform(child, threshold, kinds) for child in node.children)
        return node.model_copy(update={"children": children})
    if isinstance(node, Event) and node.event in kinds:
        raised = _raised(node.min_confidence, threshold)
        if raised != node.min_confidence:
            return node.model_copy(update={"min_confidence": raised})
    if isinstance(node, Condition | Event):
        return node
    raise TypeError(f"not a cohort node: {type(node).__name__}")


def dataset_spec_with_min_confidence(
    spec: DatasetSpec, threshold: float, *, events: Collection[str] | None = None
) -> DatasetSpec:
    """The spec with its index event, cohort and event covariates restricted.

    The outcome is kept: it has no `min_confidence` (deaths and other outcomes
    come from structured sources).
    """
    threshold = check_threshold(threshold)
    kinds = confidence_events() if events is None else frozenset(events)
    index = _transform(spec.index, threshold, kinds)
    covariates = {
        name: covariate.model_copy(
            update={"min_confidence": _raised(covariate.min_confidence, threshold)}
        )
        if isinstance(covariate, EventCovariate) and covariate.event in kinds
        else covariate
        for name, covariate in spec.covariates.items()
    }
    return spec.model_copy(
        update={
            "index": index,
            "cohort": None if spec.cohort is None else _transform(spec.cohort, threshold, kinds),
            "covariates": covariates,
        }
    )


def study_spec_with_min_confidence(
    spec: Mapping[str, Any], threshold: float, *, events: Collection[str] | None = None
) -> dict[str, Any]:
    """A study spec's JSON with `where` and `cdm_dataset` restricted; the `sensitivity`
    key is dropped, since the result is the sensitivity run itself. Trees that change
    come back in canonical form; everything else is copied as given."""
    threshold = check_threshold(threshold, f"{SENSITIVITY}.min_confidence")
    out = {key: value for key, value in spec.items() if key != SENSITIVITY}
    where = spec.get("where")
    if where is not None:
        tree = parse_tree(where)
        restricted = with_min_confidence(tree, threshold, events=events)
        if restricted != tree:
            out["where"] = dump_tree(restricted)
    dataset = spec.get("cdm_dataset")
    if dataset is not None:
        try:
            parsed = parse_dataset_spec(dataset)
        except InvalidInput as exc:
            raise InvalidInput(f"cdm_dataset.{exc.message}") from exc
        restricted_spec = dataset_spec_with_min_confidence(parsed, threshold, events=events)
        if restricted_spec != parsed:
            out["cdm_dataset"] = dump_dataset_spec(restricted_spec)
    return out


def sensitivity_threshold(spec: Mapping[str, Any]) -> float | None:
    """The study's `"sensitivity": {"min_confidence": x}`, or None when it has none."""
    raw = spec.get(SENSITIVITY)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidInput(f'{SENSITIVITY}: must be an object like {{"min_confidence": 0.9}}')
    unknown = sorted(set(raw) - {"min_confidence"})
    if unknown:
        raise InvalidInput(f"{SENSITIVITY}: unknown key {unknown[0]!r} (keys: min_confidence)")
    if "min_confidence" not in raw:
        raise InvalidInput(f"{SENSITIVITY}.min_confidence: required, a number from 0 to 1")
    return check_threshold(raw["min_confidence"], f"{SENSITIVITY}.min_confidence")
