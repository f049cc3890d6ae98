"""Sensitivity runs: the same study again with low-confidence extracted facts left out.

A study whose spec has `"sensitivity": {"min_confidence": t}` gets, when it
starts, a second study (its *sensitivity run*) with the spec restricted by
`shared_cdm.cohort.sensitivity.study_spec_with_min_confidence`. The run is an
ordinary study: its own tasks at every site, so each site applies its disclosure
rules to it and records it as a release of its own. When both have ended, the
primary study's result gets a `sensitivity` section: the run's result next to
the primary one and, for every number both share, the change. See
docs/cohort-query.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hub.db.models import Study, StudyStatus
from hub.studies import repository
from hub.studies.envelope import json_safe
from shared_cdm.cohort.sensitivity import (
    SENSITIVITY,
    sensitivity_threshold,
    study_spec_with_min_confidence,
)

IDENTICAL_NOTE = (
    "no event of this study reads extracted facts below the threshold, so the "
    "sensitivity run would ask the same question; it was not run"
)


def validate(spec: Mapping[str, Any]) -> None:
    """Refuse a malformed `sensitivity` option, or trees it cannot restrict."""
    threshold = sensitivity_threshold(spec)
    if threshold is not None:
        study_spec_with_min_confidence(spec, threshold)


def wants_sensitivity(spec: Mapping[str, Any]) -> bool:
    return spec.get(SENSITIVITY) is not None


def run_for(primary: Study, now: datetime) -> Study | None:
    """The sensitivity run to start with `primary`, or None when it has none or the
    restriction changes nothing (the answer would be the primary one again)."""
    threshold = sensitivity_threshold(primary.spec)
    if threshold is None:
        return None
    spec = study_spec_with_min_confidence(primary.spec, threshold)
    if spec == {k: v for k, v in primary.spec.items() if k != SENSITIVITY}:
        return None
    title = primary.title or primary.id
    return Study(
        id=str(uuid.uuid4()),
        owner=primary.owner,
        title=f"{title} (sensitivity: min_confidence {threshold:g})"[:300],
        spec=spec,
        sites=list(primary.sites),
        status=StudyStatus.RUNNING.value,
        current_round=0,
        driver_state={},
        cache_key=None,  # never a cache source: its result belongs to the primary study
        sensitivity_of=primary.id,
        created_at=now,
        updated_at=now,
    )


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool | int | float)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compare(primary: Any, sensitivity: Any) -> Any:
    """Every number both results hold, as {primary, sensitivity, change}; other values
    that differ as {primary, sensitivity}. Lists (curves, intervals) are left to the
    side-by-side results: their points need not line up. None when nothing compares."""
    if isinstance(primary, Mapping) and isinstance(sensitivity, Mapping):
        out = {}
        for key in sorted(set(primary) & set(sensitivity), key=str):
            compared = compare(primary[key], sensitivity[key])
            if compared is not None:
                out[str(key)] = compared
        return out or None
    if _number(primary) and _number(sensitivity):
        return {"primary": primary, "sensitivity": sensitivity, "change": sensitivity - primary}
    if _scalar(primary) and _scalar(sensitivity) and primary != sensitivity:
        return {"primary": primary, "sensitivity": sensitivity}
    return None


def section(primary: Study, run: Study | None) -> dict[str, Any]:
    """The `sensitivity` part of the primary study's result."""
    threshold = sensitivity_threshold(primary.spec)
    out: dict[str, Any] = {"min_confidence": threshold}
    if run is None:
        return {**out, "status": "identical", "note": IDENTICAL_NOTE}
    out.update(study_id=run.id, status=run.status)
    if run.status == StudyStatus.FAILED.value:
        out["error"] = run.error
    envelope = run.result
    if run.status != StudyStatus.COMPLETED.value or envelope is None:
        return out
    mine = primary.result or {}
    out.update(
        n=envelope.get("n"),
        n_excluded_missing=envelope.get("n_excluded_missing"),
        sites=envelope.get("sites", []),
        disclosure=envelope.get("disclosure", []),
        result=envelope.get("result"),
        comparison={
            "n": compare(mine.get("n"), envelope.get("n")),
            "result": compare(mine.get("result"), envelope.get("result")),
        },
    )
    return out


def _run_of(session: Session, primary_id: str) -> Study | None:
    return session.scalar(sa.select(Study).where(Study.sensitivity_of == primary_id))


def record_outcome(session: Session, study: Study, now: datetime) -> None:
    """After `study` ended: put its sensitivity run's outcome into the primary result.

    Whichever of the two ends last writes the final section; the primary row is
    the only one written, and is locked first when the run is the one ending.
    """
    if study.sensitivity_of is not None:
        primary = repository.get_study(session, study.sensitivity_of, for_update=True)
        run: Study | None = study
    elif wants_sensitivity(study.spec):
        primary, run = study, _run_of(session, study.id)
    else:
        return
    if primary.status != StudyStatus.COMPLETED.value or primary.result is None:
        return
    primary.result = {**primary.result, SENSITIVITY: json_safe(section(primary, run))}
    primary.updated_at = now
