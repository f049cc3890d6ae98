"""The result envelope every study ends with (contracts/federated-survival.md). Pure.

Beyond the contract's keys it carries the versions that made the result and,
per site, what that site registered (software, CDM and dataset versions, data
quality), so a reader can tell which data and code a number came from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import federated_ml
import shared_cdm
from federated_ml.analyses import Finished
from federated_ml.analyses.base import SUPPRESSED
from hub.db.models import TaskStatus
from hub.studies.provenance import UNKNOWN, SiteProvenance
from protocol.messages import PROTOCOL_VERSION


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


def result_versions() -> dict[str, str]:
    """The versions of the data model, the algorithms and the protocol in this hub."""
    return {
        "cdm": shared_cdm.CDM_VERSION,
        "algorithm": federated_ml.ALGORITHM_VERSION,
        "protocol": str(PROTOCOL_VERSION),
    }


def _site_entry(outcome: SiteOutcome, provenance: SiteProvenance) -> dict[str, Any]:
    contract = {"name": outcome.name, "n": site_n(outcome), "status": outcome.status.value}
    return {**contract, **provenance.as_json()}


def build_envelope(
    analysis: str,
    finished: Finished,
    outcomes: Sequence[SiteOutcome],
    provenance: Mapping[str, SiteProvenance] | None = None,
) -> dict[str, Any]:
    known = provenance or {}
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
            _site_entry(o, known.get(o.name, UNKNOWN))
            for o in sorted(outcomes, key=lambda o: o.name)
        ],
        "disclosure": list(dict.fromkeys(notes)),  # dedupe, keep order
        "result": json_safe(finished.result),
        "versions": result_versions(),
    }


def failure_message(round_no: int, outcomes: Sequence[SiteOutcome]) -> str:
    parts = []
    for o in sorted(outcomes, key=lambda o: o.name):
        why = f": {o.message}" if o.message else ""
        parts.append(f"{o.name} ({o.status.value}{why})")
    return f"no site returned a usable result in round {round_no}: " + ", ".join(parts)


def too_few_sites_message(
    analysis: str, round_no: int, minimum: int, outcomes: Sequence[SiteOutcome]
) -> str:
    answered = sorted(o.name for o in outcomes if o.status is TaskStatus.OK)
    others = []
    for o in sorted(outcomes, key=lambda o: o.name):
        if o.status is not TaskStatus.OK:
            why = f": {o.message}" if o.message else ""
            others.append(f"{o.name} ({o.status.value}{why})")
    return (
        f"{analysis} needs results from at least {minimum} sites, but only "
        f"{len(answered)} answered in round {round_no} ({', '.join(answered)}); "
        f"did not answer: {', '.join(others)}. No result is stored."
    )
