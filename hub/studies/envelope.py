"""The result envelope every study ends with (contracts/federated-survival.md). Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from federated_ml.analyses import Finished
from federated_ml.analyses.base import SUPPRESSED
from hub.db.models import TaskStatus


@dataclass(frozen=True)
class SiteOutcome:
    """A site's last task in the study: how it ended and what it said."""

    name: str
    status: TaskStatus
    payload: Mapping[str, Any] | None
    message: str
    disclosure: tuple[str, ...]


def json_safe(value: Any) -> Any:
    """A copy that JSON (and PostgreSQL's json type) accepts: NaN and ±inf become null,
    numpy scalars and tuples become plain values. Anything else unknown is an error."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return json_safe(item())
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def site_n(outcome: SiteOutcome) -> int | str:
    """The rows a site released: its payload's `n`, or the suppressed marker."""
    if outcome.status is not TaskStatus.OK:
        return 0  # it released nothing
    n = (outcome.payload or {}).get("n")
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    return SUPPRESSED


def _site_note(outcome: SiteOutcome) -> str | None:
    why = f": {outcome.message}" if outcome.message else ""
    if outcome.status is TaskStatus.REFUSED:
        return f"site {outcome.name} refused the task{why}"
    if outcome.status is TaskStatus.FAILED:
        return f"site {outcome.name} could not compute the task{why}"
    if outcome.status is TaskStatus.EXPIRED:
        return f"site {outcome.name} did not answer before the deadline"
    return None


def _excluded_missing(finished: Finished, outcomes: Sequence[SiteOutcome]) -> int | None:
    if finished.n_excluded_missing is not None:
        return finished.n_excluded_missing
    counts = [
        o.payload["n_excluded_missing"]
        for o in outcomes
        if o.status is TaskStatus.OK
        and o.payload is not None
        and isinstance(o.payload.get("n_excluded_missing"), int)
    ]
    return sum(counts) if counts else None


def build_envelope(
    analysis: str, finished: Finished, outcomes: Sequence[SiteOutcome]
) -> dict[str, Any]:
    notes: list[str] = list(finished.disclosure)
    for outcome in outcomes:
        notes += [f"site {outcome.name}: {d}" for d in outcome.disclosure]
        note = _site_note(outcome)
        if note is not None:
            notes.append(note)
    return {
        "analysis": analysis,
        "n": finished.n,
        "n_excluded_missing": _excluded_missing(finished, outcomes),
        "sites": [
            {"name": o.name, "n": site_n(o), "status": o.status.value}
            for o in sorted(outcomes, key=lambda o: o.name)
        ],
        "disclosure": list(dict.fromkeys(notes)),  # dedupe, keep order
        "result": json_safe(finished.result),
    }


def failure_message(round_no: int, outcomes: Sequence[SiteOutcome]) -> str:
    parts = []
    for o in sorted(outcomes, key=lambda o: o.name):
        why = f": {o.message}" if o.message else ""
        parts.append(f"{o.name} ({o.status.value}{why})")
    return f"no site returned a usable result in round {round_no}: " + ", ".join(parts)
