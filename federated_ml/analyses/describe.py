"""`describe`: n, mean and SD from (n, Σx, Σx²) for numbers; counts per category.

Numeric variables are those whose non-missing values all parse as numbers at
the site; a variable numeric at one site and categorical at another is
reported as categorical-mismatch, not guessed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from federated_ml.analyses.base import SUPPRESSED, Finished, NextRound, SitePayloads, StudySpec
from shared_cdm.errors import InvalidInput


def _variables(spec: StudySpec) -> list[str]:
    return list(spec.variables or spec.covariates)


def _numeric(series: pd.Series) -> pd.Series | None:
    converted = pd.to_numeric(series, errors="coerce")
    if converted.isna().any():
        return None
    return converted.astype(float)


def _hist_edges(spec: Any, numbers: pd.Series) -> list[float] | None:
    """Bin lower edges: from a list, or multiples of a width (common to all sites)."""
    if spec is None:
        return None
    if isinstance(spec, int | float) and not isinstance(spec, bool) and spec > 0:
        lo = math.floor(float(numbers.min()) / spec) * spec
        hi = math.floor(float(numbers.max()) / spec) * spec
        return [lo + i * spec for i in range(round((hi - lo) / spec) + 2)]
    if isinstance(spec, list) and len(spec) >= 2:
        return sorted(float(x) for x in spec)
    raise InvalidInput("a histogram is a positive bin width or a list of at least 2 edges")


def histogram(numbers: pd.Series, edges: list[float]) -> dict[str, int]:
    """Counts per bin [edge_i, edge_i+1); values outside the edges are not binned."""
    counts, _ = np.histogram(numbers.to_numpy(float), bins=np.asarray(edges))
    return {_edge_key(e): int(c) for e, c in zip(edges[:-1], counts, strict=True) if c > 0}


def _edge_key(edge: float) -> str:
    return repr(float(edge))


def local_variable(series: pd.Series, hist_spec: Any = None) -> dict[str, Any]:
    numbers = _numeric(series)
    if numbers is not None and len(numbers) > 0:
        out: dict[str, Any] = {
            "type": "numeric",
            "n": len(numbers),
            "sum": float(numbers.sum()),
            "sum_sq": float((numbers * numbers).sum()),
            "min": float(numbers.min()),
            "max": float(numbers.max()),
        }
        edges = _hist_edges(hist_spec, numbers)
        if edges is not None:
            out["histogram"] = histogram(numbers, edges)
            if isinstance(hist_spec, int | float):
                out["bin_width"] = float(hist_spec)
            else:
                out["bin_edges"] = edges
        return out
    counts = series.astype(str).value_counts()
    return {
        "type": "categorical",
        "n": len(series),
        "counts": {str(k): int(v) for k, v in counts.items()},
    }


def _combine_numeric(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    n = sum(int(p["n"]) for p in parts)
    s = sum(float(p["sum"]) for p in parts)
    ss = sum(float(p["sum_sq"]) for p in parts)
    mean = s / n if n else math.nan
    var = (ss - n * mean * mean) / (n - 1) if n > 1 else math.nan
    out: dict[str, Any] = {
        "type": "numeric",
        "n": n,
        "mean": mean,
        "sd": math.sqrt(max(var, 0.0)) if n > 1 else None,
    }
    if any("histogram" in p for p in parts):
        out.update(_combine_histogram(parts))
    mins = [p["min"] for p in parts if isinstance(p.get("min"), int | float)]
    maxs = [p["max"] for p in parts if isinstance(p.get("max"), int | float)]
    if mins and len(mins) == len(parts):
        out["min"], out["max"] = min(mins), max(maxs)
    return out


def _combine_histogram(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    counts: dict[float, int] = {}
    incomplete = False
    for part in parts:
        for key, c in part.get("histogram", {}).items():
            if isinstance(c, int):
                counts[float(key)] = counts.get(float(key), 0) + c
            else:
                incomplete = True
                counts.setdefault(float(key), 0)
    width = next((float(p["bin_width"]) for p in parts if "bin_width" in p), None)
    lows = sorted(counts)
    if width is not None:
        highs = [lo + width for lo in lows]
    else:
        edges = sorted({float(e) for p in parts for e in p.get("bin_edges", [])})
        highs = [next(e for e in edges if e > lo) for lo in lows]
    bins = [
        {"low": lo, "high": hi, "count": counts[lo] if counts[lo] or not incomplete else SUPPRESSED}
        for lo, hi in zip(lows, highs, strict=True)
    ]
    return {
        "histogram": bins,
        "histogram_complete": not incomplete,
        "quantiles_approximate": _quantiles(lows, highs, [counts[lo] for lo in lows]),
    }


def _quantiles(lows: list[float], highs: list[float], counts: list[int]) -> dict[str, float]:
    """Quantiles by linear interpolation within histogram bins: approximate by design."""
    total = sum(counts)
    if total == 0:
        return {}
    cum = np.cumsum(counts)
    out = {}
    for q in (0.25, 0.5, 0.75):
        target = q * total
        i = int(np.searchsorted(cum, target, side="left"))
        before = cum[i - 1] if i > 0 else 0
        frac = (target - before) / counts[i] if counts[i] else 0.0
        out[f"q{int(q * 100)}"] = lows[i] + frac * (highs[i] - lows[i])
    return out


def _combine_categorical(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    counts: dict[str, int | str] = {}
    partial: set[str] = set()
    for part in parts:
        for cat, c in part["counts"].items():
            if isinstance(c, int):
                prev = counts.get(cat, 0)
                counts[cat] = prev + c if isinstance(prev, int) else prev
            else:
                partial.add(cat)
                counts.setdefault(cat, 0)
    for cat in partial:
        if counts.get(cat) == 0:
            counts[cat] = SUPPRESSED
    return {
        "type": "categorical",
        "n": sum(int(p["n"]) for p in parts),
        "counts": dict(sorted(counts.items())),
        "incomplete_categories": sorted(c for c in partial if counts[c] != SUPPRESSED),
    }


class DescribeAnalysis:
    name = "describe"

    def columns(self, spec: StudySpec) -> list[str]:
        return _variables(spec)

    def validate(self, spec: StudySpec) -> None:
        if not _variables(spec):
            raise InvalidInput("describe needs at least one variable in `variables`")

    def first_round(self, spec: StudySpec) -> NextRound:
        return NextRound(params={})

    def local(
        self, frame: pd.DataFrame, spec: StudySpec, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        hists = dict((spec.model_extra or {}).get("histograms") or {})
        return {
            "n": len(frame),
            "variables": {v: local_variable(frame[v], hists.get(v)) for v in _variables(spec)},
        }

    def step(self, spec: StudySpec, state: Mapping[str, Any], payloads: SitePayloads) -> Finished:
        usable = {s: p for s, p in payloads.items() if isinstance(p.get("n"), int)}
        notes = [
            f"site {s}: all figures suppressed (fewer rows than its minimum cell size)"
            for s, p in sorted(payloads.items())
            if s not in usable
        ]
        result: dict[str, Any] = {"variables": {}}
        for var in _variables(spec):
            parts = [p["variables"][var] for p in usable.values() if var in p.get("variables", {})]
            kinds = {p["type"] for p in parts}
            if not parts:
                result["variables"][var] = {"type": "unknown", "n": 0}
            elif kinds == {"numeric"}:
                result["variables"][var] = _combine_numeric(parts)
            elif kinds == {"categorical"}:
                cat = _combine_categorical(parts)
                if cat["incomplete_categories"] or SUPPRESSED in cat["counts"].values():
                    notes.append(f"{var}: some category counts suppressed at one or more sites")
                result["variables"][var] = cat
            else:
                result["variables"][var] = {"type": "mismatch", "n": 0}
                notes.append(f"{var}: numeric at some sites and categorical at others")
        n = sum(int(p["n"]) for p in usable.values())
        return Finished(result=result, n=n, n_excluded_missing=None, disclosure=tuple(notes))
