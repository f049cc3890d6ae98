"""Merging one fact given by several sources.

Sources are ranked by their missing rate (lowest first). A merged fact keeps,
field by field, the value of the best-ranked source that has one; the row's own
provenance is its base (the best-ranked contributor), and fields filled from
another source carry their own provenance. Taking the best-ranked value per
field is associative, commutative and idempotent, so the result does not depend
on the order in which sources arrive, or on a batch being processed twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

WORST_RANK = 1_000_000


@dataclass(frozen=True, slots=True)
class Origin:
    """Where one value came from: a source row, ranked."""

    system: str
    table: str
    row: str  # pseudonymised row key
    rank: int

    @property
    def label(self) -> str:
        return f"{self.system}/{self.table}"


@dataclass(slots=True)
class Contribution:
    """One source's version of a fact: its merge-field values and origin."""

    values: dict[str, Any]
    origin: Origin


@dataclass(slots=True)
class Conflict:
    field: str
    kept: Any
    kept_origin: Origin
    other: Any
    other_origin: Origin


@dataclass(slots=True)
class MergedFact:
    values: dict[str, Any]
    base: Origin
    origins: dict[str, Origin]  # field -> origin, for every non-null field
    conflicts: list[Conflict] = field(default_factory=list)
    contributors: int = 1

    def filled(self) -> dict[str, Origin]:
        """Fields whose value came from another row than the base."""
        return {f: o for f, o in self.origins.items() if o != self.base}


def same_value(a: Any, b: Any, rel_tol: float) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=1e-9)
    return bool(a == b)


def _key(origin: Origin) -> tuple[int, str, str, str]:
    return (origin.rank, origin.system, origin.table, origin.row)


def merge(
    contributions: Sequence[Contribution],
    fields: Iterable[str],
    *,
    rel_tol: Mapping[str, float] | None = None,
    ignore_conflicts: Iterable[str] = (),
) -> MergedFact:
    """Combine contributions: best-ranked non-null per field; differences reported."""
    if not contributions:
        raise ValueError("nothing to merge")
    tolerances = dict(rel_tol or {})
    quiet = set(ignore_conflicts)
    ordered = sorted(contributions, key=lambda c: _key(c.origin))
    base = ordered[0].origin
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    conflicts: list[Conflict] = []
    seen_rows = {(c.origin.system, c.origin.table, c.origin.row) for c in ordered}
    for name in fields:
        for contribution in ordered:
            value = contribution.values.get(name)
            if value is None:
                continue
            if name not in values:
                values[name], origins[name] = value, contribution.origin
            elif name not in quiet and not same_value(
                values[name], value, tolerances.get(name, 0.0)
            ):
                conflicts.append(
                    Conflict(name, values[name], origins[name], value, contribution.origin)
                )
        values.setdefault(name, None)
    return MergedFact(values, base, origins, conflicts, contributors=len(seen_rows))
