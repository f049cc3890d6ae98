"""Differential privacy for counts (OpenDP), for studies that ask: `"dp": {"epsilon": 0.5}`.

`count` noises its n; `describe` noises every category count and every histogram
bin (empty bins included, so a bin's absence says nothing). Noise is the discrete
Laplace mechanism over the vector of counts. Adding or removing one person moves
at most one count per partition (the count itself, one category of each
categorical variable, one bin of each histogram), so the L1 sensitivity is the
number of partitions and the scale is partitions / epsilon: epsilon is spent once
for the whole release. What DP does not cover is said in the release's notes:
describe's n and its sums stay exact (they pass the cell rule as without DP), and
category names are those present at the site. The cell rule applies afterwards,
to the noisy values.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import opendp.prelude as dp

from federated_ml.analyses.base import StudySpec
from shared_cdm.errors import InvalidInput

DP_ANALYSES = frozenset({"count", "describe"})
MAX_EPSILON = 10.0


@dataclass(frozen=True)
class DpRequest:
    epsilon: float


@dataclass(frozen=True)
class Noised:
    payload: dict[str, Any]
    epsilon: float
    notes: tuple[str, ...]


def dp_request(spec: StudySpec) -> DpRequest | None:
    """The study's DP request, checked; None when it asks for none."""
    extra = spec.model_extra or {}
    raw = extra.get("dp")
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) != {"epsilon"}:
        raise InvalidInput('dp must be {"epsilon": <number>}', code="invalid_dp")
    epsilon = raw["epsilon"]
    if not isinstance(epsilon, int | float) or isinstance(epsilon, bool):
        raise InvalidInput("dp.epsilon must be a number", code="invalid_dp")
    if not 0 < epsilon <= MAX_EPSILON:
        raise InvalidInput(f"dp.epsilon must be in (0, {MAX_EPSILON:g}]", code="invalid_dp")
    if spec.analysis not in DP_ANALYSES:
        raise InvalidInput(
            f"dp is available for {', '.join(sorted(DP_ANALYSES))}, not {spec.analysis!r}",
            code="invalid_dp",
        )
    for name, hist in dict(extra.get("histograms") or {}).items():
        if not isinstance(hist, list):
            # A width makes the set of bins follow the site's own minimum and maximum.
            raise InvalidInput(
                f"histograms.{name}: with dp, give the bin edges as a list, not a width",
                code="invalid_dp",
            )
    return DpRequest(float(epsilon))


def _slots(analysis: str, payload: dict[str, Any]) -> tuple[list[tuple[dict[str, Any], str]], int]:
    """(container, key) of every count to noise, and the number of partitions."""
    if analysis == "count":
        return [(payload, "n")], 1
    slots: list[tuple[dict[str, Any], str]] = []
    partitions = 0
    for stats in payload.get("variables", {}).values():
        if stats.get("type") == "categorical":
            slots += [(stats["counts"], c) for c in sorted(stats["counts"])]
            partitions += 1
        elif "histogram" in stats and "bin_edges" in stats:
            bins = stats["histogram"]
            for edge in stats["bin_edges"][:-1]:
                bins.setdefault(repr(float(edge)), 0)
            slots += [(bins, key) for key in sorted(bins, key=float)]
            partitions += 1
    return slots, partitions


def add_noise(analysis: str, payload: Mapping[str, Any], request: DpRequest) -> Noised:
    """The payload with its counts noised, and the epsilon that cost."""
    out = copy.deepcopy(dict(payload))
    slots, partitions = _slots(analysis, out)
    if not slots:
        return Noised(out, 0.0, ("dp: nothing to noise in this result; no epsilon spent",))
    dp.enable_features("contrib")
    scale = partitions / request.epsilon
    measurement = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=scale
    )
    noisy = measurement([int(container[key]) for container, key in slots])
    for (container, key), value in zip(slots, noisy, strict=True):
        container[key] = int(value)
    spent = float(measurement.map(partitions))
    notes = [
        f"dp: {len(slots)} count(s) noised (discrete Laplace, scale {scale:.3g}), epsilon {spent:g}"
    ]
    if analysis == "describe":
        notes.append("dp: describe's n, sums and category names are not noised")
    return Noised(out, spent, tuple(notes))
