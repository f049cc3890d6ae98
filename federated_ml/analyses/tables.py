"""`crosstab` (chi-square, Fisher's exact for 2×2) and `ttest` (two groups) from
per-site counts and sums.

Per-site cells below a site's minimum cell size come back suppressed; a test
on a table with suppressed cells would be wrong, so it is not computed and the
result says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from federated_ml.analyses.base import SUPPRESSED, Finished, NextRound, SitePayloads, StudySpec
from shared_cdm.errors import InvalidInput


def _extra(spec: StudySpec) -> dict[str, Any]:
    return dict(spec.model_extra or {})


def _released(payloads: SitePayloads) -> dict[str, Mapping[str, Any]]:
    return {s: p for s, p in payloads.items() if isinstance(p.get("n"), int)}


class CrosstabAnalysis:
    name = "crosstab"

    def columns(self, spec: StudySpec) -> list[str]:
        extra = _extra(spec)
        return [str(extra.get("rows")), str(extra.get("cols"))]

    def validate(self, spec: StudySpec) -> None:
        extra = _extra(spec)
        if not extra.get("rows") or not extra.get("cols"):
            raise InvalidInput("crosstab needs `rows` and `cols` columns")

    def first_round(self, spec: StudySpec) -> NextRound:
        return NextRound(params={})

    def local(
        self, frame: pd.DataFrame, spec: StudySpec, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        extra = _extra(spec)
        rows, cols = frame[extra["rows"]].astype(str), frame[extra["cols"]].astype(str)
        cells = pd.crosstab(rows, cols)
        table = {r: {c: int(cells.loc[r, c]) for c in cells.columns} for r in cells.index}
        return {"n": len(frame), "cells": table}

    def step(self, spec: StudySpec, state: Mapping[str, Any], payloads: SitePayloads) -> Finished:
        usable = _released(payloads)
        row_keys = sorted({r for p in usable.values() for r in p["cells"]})
        col_keys = sorted({c for p in usable.values() for row in p["cells"].values() for c in row})
        table: dict[str, dict[str, int | str]] = {r: {} for r in row_keys}
        complete = True
        for r in row_keys:
            for c in col_keys:
                parts = [p["cells"].get(r, {}).get(c, 0) for p in usable.values()]
                if any(v == SUPPRESSED for v in parts):
                    complete = False
                    table[r][c] = SUPPRESSED
                else:
                    table[r][c] = int(sum(parts))
        result: dict[str, Any] = {"rows": row_keys, "cols": col_keys, "table": table}
        notes = [
            f"site {s}: suppressed (fewer rows than its minimum cell size)"
            for s in sorted(set(payloads) - set(usable))
        ]
        if not complete:
            notes.append("some cells are suppressed at one or more sites: tests not computed")
            result["tests"] = None
        elif len(row_keys) >= 2 and len(col_keys) >= 2:
            result["tests"] = table_tests(
                np.array([[table[r][c] for c in col_keys] for r in row_keys], dtype=float)
            )
        else:
            result["tests"] = None
        n = sum(int(p["n"]) for p in usable.values())
        return Finished(result=result, n=n, n_excluded_missing=None, disclosure=tuple(notes))


def table_tests(observed: np.ndarray) -> dict[str, Any]:
    chi2, p, dof, expected = stats.chi2_contingency(observed, correction=False)
    out: dict[str, Any] = {
        "chi2": float(chi2),
        "df": int(dof),
        "p": float(p),
        "min_expected": float(expected.min()),
    }
    if observed.shape == (2, 2):
        yates, p_yates, _, _ = stats.chi2_contingency(observed, correction=True)
        odds, p_fisher = stats.fisher_exact(observed.astype(int))
        out.update(
            chi2_yates=float(yates),
            p_yates=float(p_yates),
            fisher_odds_ratio=float(odds),
            fisher_p=float(p_fisher),
        )
    return out


class TTestAnalysis:
    name = "ttest"

    def columns(self, spec: StudySpec) -> list[str]:
        return [str(_extra(spec).get("value")), str(spec.group)]

    def validate(self, spec: StudySpec) -> None:
        if not _extra(spec).get("value") or not spec.group:
            raise InvalidInput("ttest needs a numeric `value` column and a `group` column")

    def first_round(self, spec: StudySpec) -> NextRound:
        return NextRound(params={})

    def local(
        self, frame: pd.DataFrame, spec: StudySpec, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        values = pd.to_numeric(frame[_extra(spec)["value"]], errors="coerce")
        if values.isna().any():
            raise InvalidInput(f"ttest value column {_extra(spec)['value']!r} must be numeric")
        groups = {}
        for level, v in values.groupby(frame[str(spec.group)].astype(str)):
            groups[str(level)] = {
                "n": len(v),
                "sum": float(v.sum()),
                "sum_sq": float((v * v).sum()),
            }
        return {"n": len(frame), "groups": groups}

    def step(self, spec: StudySpec, state: Mapping[str, Any], payloads: SitePayloads) -> Finished:
        pooled: dict[str, list[float]] = {}
        partial = False
        for p in _released(payloads).values():
            for level, g in p["groups"].items():
                if not isinstance(g.get("n"), int):
                    partial = True
                    continue
                acc = pooled.setdefault(level, [0, 0.0, 0.0])
                acc[0] += g["n"]
                acc[1] += g["sum"]
                acc[2] += g["sum_sq"]
        levels = sorted(pooled)
        if len(levels) != 2:
            raise InvalidInput(f"ttest needs exactly two groups, found {levels}")
        summary = {}
        for lv in levels:
            n, s, ss = pooled[lv]
            mean = s / n
            var = (ss - n * mean * mean) / (n - 1) if n > 1 else math.nan
            summary[lv] = {"n": int(n), "mean": mean, "sd": math.sqrt(max(var, 0.0))}
        a, b = (summary[lv] for lv in levels)
        student = stats.ttest_ind_from_stats(
            a["mean"], a["sd"], a["n"], b["mean"], b["sd"], b["n"], equal_var=True
        )
        welch = stats.ttest_ind_from_stats(
            a["mean"], a["sd"], a["n"], b["mean"], b["sd"], b["n"], equal_var=False
        )
        result = {
            "groups": summary,
            "difference": a["mean"] - b["mean"],
            "student": {
                "t": float(student.statistic),
                "p": float(student.pvalue),
                "df": a["n"] + b["n"] - 2,
            },
            "welch": {"t": float(welch.statistic), "p": float(welch.pvalue)},
        }
        notes = (
            ("a group was suppressed at some site: figures cover the others",) if partial else ()
        )
        n = int(sum(v[0] for v in pooled.values()))
        return Finished(result=result, n=n, n_excluded_missing=None, disclosure=notes)
