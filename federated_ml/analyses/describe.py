"""`describe`: n, mean and SD from (n, Σx, Σx²) for numbers; counts per category.

Numeric variables are those whose non-missing values all parse as numbers at
the site; a variable numeric at one site and categorical at another is
reported as categorical-mismatch, not guessed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

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


def local_variable(series: pd.Series) -> dict[str, Any]:
    numbers = _numeric(series)
    if numbers is not None and len(numbers) > 0:
        return {
            "type": "numeric",
            "n": len(numbers),
            "sum": float(numbers.sum()),
            "sum_sq": float((numbers * numbers).sum()),
            "min": float(numbers.min()),
            "max": float(numbers.max()),
        }
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
    mins = [p["min"] for p in parts if isinstance(p.get("min"), int | float)]
    maxs = [p["max"] for p in parts if isinstance(p.get("max"), int | float)]
    if mins and len(mins) == len(parts):
        out["min"], out["max"] = min(mins), max(maxs)
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
        return {
            "n": len(frame),
            "variables": {v: local_variable(frame[v]) for v in _variables(spec)},
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
