"""Disclosure control: what of an analysis's local payload may leave the site.

Pure functions over the payload and the site's policy. The rule that matters
everywhere: no count below `min_cell_size` is released, neither directly nor as
the difference between released numbers (hence secondary suppression).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_node.policy import Policy
from federated_ml.analyses.base import SUPPRESSED
from shared_cdm.errors import Refused

ALL_SUPPRESSED: Mapping[str, Any] = {"n": SUPPRESSED, "suppressed": True}


@dataclass(frozen=True)
class Released:
    """The payload that may leave, and notes saying what was withheld and why."""

    payload: dict[str, Any]
    notes: tuple[str, ...] = ()


def control(analysis: str, payload: Mapping[str, Any], policy: Policy) -> Released:
    """Apply the rule for `analysis`; Refused when no rule exists for a payload's shape."""
    rule = _RULES.get(analysis)
    if rule is None:
        raise Refused(
            f"this site has no disclosure rule for analysis {analysis!r}; nothing is released",
            code="no_disclosure_rule",
        )
    return rule(payload, policy)


def is_small(value: object, k: int) -> bool:
    """A count that must not be released: anything below the minimum cell size, 0 included."""
    return isinstance(value, int) and not isinstance(value, bool) and value < k


def _row_count(payload: Mapping[str, Any], analysis: str) -> int:
    n = payload.get("n")
    if not isinstance(n, int) or isinstance(n, bool):
        raise Refused(
            f"{analysis}: the local result has no row count, so disclosure control cannot "
            "check it; nothing is released",
            code="no_disclosure_rule",
        )
    return n


def _all_suppressed(k: int, what: str) -> Released:
    return Released(
        dict(ALL_SUPPRESSED),
        (f"{what}: fewer rows than the minimum cell size ({k}); every figure suppressed",),
    )


def _excluded_missing(out: dict[str, Any], k: int, notes: list[str]) -> None:
    if is_small(out.get("n_excluded_missing"), k):
        out["n_excluded_missing"] = SUPPRESSED
        notes.append(f"rows left out for missing values: below {k}, suppressed")


def control_count(payload: Mapping[str, Any], policy: Policy) -> Released:
    k = policy.min_cell_size
    if is_small(_row_count(payload, "count"), k):
        return _all_suppressed(k, "count")
    out = dict(payload)
    notes: list[str] = []
    _excluded_missing(out, k, notes)
    return Released(out, tuple(notes))


def control_describe(payload: Mapping[str, Any], policy: Policy) -> Released:
    k = policy.min_cell_size
    if is_small(_row_count(payload, "describe"), k):
        return _all_suppressed(k, "describe")
    out = dict(payload)
    notes: list[str] = []
    _excluded_missing(out, k, notes)
    variables: dict[str, Any] = {}
    for name, stats in dict(payload.get("variables", {})).items():
        variables[name] = _variable(name, stats, policy, notes)
    out["variables"] = variables
    return Released(out, tuple(notes))


def _variable(name: str, stats: Mapping[str, Any], policy: Policy, notes: list[str]) -> Any:
    k = policy.min_cell_size
    if is_small(stats.get("n"), k):
        notes.append(f"{name}: fewer than {k} values; suppressed")
        return {"type": stats.get("type"), "n": SUPPRESSED, "suppressed": True}
    if stats.get("type") == "numeric":
        out = dict(stats)
        if not policy.release_extremes and ("min" in out or "max" in out):
            out.pop("min", None)
            out.pop("max", None)
            notes.append(f"{name}: minimum and maximum withheld (individual values)")
        return out
    if stats.get("type") == "categorical":
        counts, primary, secondary = suppress_cells(dict(stats.get("counts", {})), k)
        if primary:
            notes.append(
                f"{name}: {primary} categor{'y' if primary == 1 else 'ies'} below {k} suppressed"
                + (f", {secondary} more suppressed so they cannot be derived" if secondary else "")
            )
        return dict(stats, counts=counts)
    return {"type": stats.get("type"), "n": SUPPRESSED, "suppressed": True}


def suppress_cells(counts: Mapping[str, Any], k: int) -> tuple[dict[str, Any], int, int]:
    """Cells below k become SUPPRESSED; then more cells, smallest first, until the
    suppressed cells cannot be recovered from the total: never exactly one of them,
    and their sum (the total minus the released cells) is not itself below k.

    Returns the released counts, the number suppressed for being small, and the
    number suppressed only to protect those.
    """
    numbers = {c: v for c, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}
    hidden = {c for c, v in numbers.items() if v < k}
    primary = len(hidden)
    remaining = sorted((v, str(c)) for c, v in numbers.items() if c not in hidden)

    def exposed() -> bool:
        total = sum(numbers[c] for c in hidden)
        return bool(hidden) and (len(hidden) == 1 or total < k)

    while exposed() and remaining:
        hidden.add(remaining.pop(0)[1])
    released = {c: (SUPPRESSED if c in hidden else v) for c, v in counts.items()}
    return released, primary, len(hidden) - primary


def control_sums(payload: Mapping[str, Any], policy: Policy) -> Released:
    """Sums over every row (gradients, Hessians, log-likelihoods): released whole when
    the row count reaches k, else nothing. Not for per-time or per-cell counts."""
    k = policy.min_cell_size
    if is_small(_row_count(payload, "analysis"), k):
        return _all_suppressed(k, "analysis")
    out = dict(payload)
    notes: list[str] = []
    _excluded_missing(out, k, notes)
    return Released(out, tuple(notes))


_RULES: Mapping[str, Callable[[Mapping[str, Any], Policy], Released]] = {
    "count": control_count,
    "describe": control_describe,
    "cox": control_sums,
    "logistic": control_sums,
}
