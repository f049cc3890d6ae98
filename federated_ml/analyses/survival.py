"""`kaplan_meier` and `logrank` across sites.

Exact mode: every site puts its per-day (per `time_resolution`) event and
censoring counts, per group, through secure aggregation; the hub reads only
the pooled counts, from which KM and the log-rank test equal lifelines on the
pooled rows. Time-grid mode (KM only): sites release per-bin counts in the
clear, on bins widened until every site's counts meet its cell rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from federated_ml.analyses import secure_rounds as sr
from federated_ml.analyses.base import Finished, NextRound, SitePayloads, StudySpec
from federated_ml.analyses.regression import indicator
from federated_ml.stats.survival import (
    KaplanMeier,
    at_risk_from_counts,
    kaplan_meier,
    logrank,
    merge_bins,
    time_counts,
)
from shared_cdm.errors import InvalidInput

DEFAULT_BIN_DAYS = 30.0
ALL = "all"


def _extra(spec: StudySpec) -> dict[str, Any]:
    return dict(spec.model_extra or {})


def _levels(frame: pd.DataFrame, spec: StudySpec) -> pd.Series:
    if spec.group:
        return frame[spec.group].astype(str)
    return pd.Series(ALL, index=frame.index)


def _time_event(frame: pd.DataFrame, spec: StudySpec) -> tuple[np.ndarray, np.ndarray]:
    extra = _extra(spec)
    t = pd.to_numeric(frame[extra["time"]], errors="coerce")
    if t.isna().any() or (t < 0).any():
        raise InvalidInput(f"time column {extra['time']!r} must hold non-negative numbers")
    e = indicator(frame[extra["event"]], list(extra.get("event_values", [1])))
    return t.to_numpy(float), e


def _km_dict(km: KaplanMeier) -> dict[str, Any]:
    return {
        "time": km.time,
        "survival": km.survival,
        "ci_lower": km.ci_lower,
        "ci_upper": km.ci_upper,
        "at_risk": km.at_risk,
        "events": km.events,
        "censored": km.censored,
        "median": km.median,
        "median_ci95": list(km.median_ci),
    }


def _grid_mode(spec: StudySpec) -> tuple[str, Any]:
    grid = _extra(spec).get("time_grid_days", DEFAULT_BIN_DAYS)
    if grid == "exact":
        return "exact", None
    if isinstance(grid, int | float) and not isinstance(grid, bool) and grid > 0:
        return "width", float(grid)
    if isinstance(grid, list) and grid and all(isinstance(g, int | float) for g in grid):
        edges = sorted({float(g) for g in grid})
        return "edges", edges
    raise InvalidInput("`time_grid_days` must be 'exact', a positive bin width, or a list of days")


class KaplanMeierAnalysis:
    name = "kaplan_meier"

    def columns(self, spec: StudySpec) -> list[str]:
        extra = _extra(spec)
        cols = [str(extra.get("time")), str(extra.get("event"))]
        return cols + ([spec.group] if spec.group else [])

    def validate(self, spec: StudySpec) -> None:
        extra = _extra(spec)
        if not extra.get("time") or not extra.get("event"):
            raise InvalidInput(f"{self.name} needs `time` and `event` columns")
        _grid_mode(spec)
        res = extra.get("time_resolution", 1)
        if not isinstance(res, int | float) or res <= 0:
            raise InvalidInput("`time_resolution` must be a positive number")

    def exact(self, spec: StudySpec) -> bool:
        return _grid_mode(spec)[0] == "exact"

    # ---- rounds ----
    def first_round(self, spec: StudySpec) -> NextRound:
        if self.exact(spec):
            params = {"phase": "horizon", **sr.keys_round("secagg-1")}
            return NextRound(params=params, state={"stage": "keys", "attempt": 1})
        mode, value = _grid_mode(spec)
        if mode == "edges":
            return NextRound(params={"phase": "grid", "edges": value}, state={"stage": "grid"})
        return NextRound(params={"phase": "horizon", "width": value}, state={"stage": "horizon"})

    def local(
        self, frame: pd.DataFrame, spec: StudySpec, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        t, e = _time_event(frame, spec)
        levels = _levels(frame, spec).to_numpy()
        phase = params.get("phase")
        if phase == "horizon":
            step = float(params.get("width") or 100 * _extra(spec).get("time_resolution", 1))
            top = float(t.max()) if t.size else 0.0
            return {
                "n": len(frame),
                "levels": sorted(set(levels.tolist())),
                "horizon": math.ceil(top / step) * step if top > 0 else step,
            }
        grid = self._grid(spec, params)
        if phase == "exact" and not np.allclose(grid[np.searchsorted(grid, t)], t):
            raise InvalidInput("exact mode needs times on the `time_resolution` grid")
        counts = {}
        for level in params.get("levels") or sorted(set(levels.tolist())):
            mask = levels == level
            d, c = time_counts(t[mask], e[mask], grid)
            counts[level] = (d, c)
        if phase == "exact":
            secure = {}
            for level, (d, c) in counts.items():
                secure[f"d|{level}"], secure[f"c|{level}"] = d.tolist(), c.tolist()
            return {"n": len(frame), sr.SECURE: secure}
        bins = {lv: {"d": d.tolist(), "c": c.tolist()} for lv, (d, c) in counts.items()}
        return {"n": len(frame), "edges": grid.tolist(), "bins": bins}

    def _grid(self, spec: StudySpec, params: Mapping[str, Any]) -> np.ndarray:
        if params.get("phase") == "exact":
            res = float(_extra(spec).get("time_resolution", 1))
            return np.arange(int(params["length"]), dtype=float) * res
        edges = [float(x) for x in params.get("edges", [])]
        if not edges:
            raise InvalidInput("time-grid round without edges")
        return np.asarray(edges)

    def step(
        self, spec: StudySpec, state: Mapping[str, Any], payloads: SitePayloads
    ) -> NextRound | Finished:
        stage = state.get("stage")
        if stage == "keys":
            return self._after_keys(spec, state, payloads)
        if stage == "exact":
            if not sr.same_sites(state, payloads):  # a site dropped: masks cannot cancel
                attempt = int(state.get("attempt", 1)) + 1
                if attempt > 3:
                    raise InvalidInput("secure aggregation failed three times: sites dropped out")
                params = {"phase": "horizon", **sr.keys_round(f"secagg-{attempt}")}
                return NextRound(params=params, state={"stage": "keys", "attempt": attempt})
            return self._finish_exact(spec, state, payloads)
        if stage == "horizon":
            width = float(_grid_mode(spec)[1])
            horizon = max(float(p["horizon"]) for p in payloads.values())
            edges = [float(e) for e in np.arange(width, horizon + width / 2, width)]
            return NextRound(params={"phase": "grid", "edges": edges}, state={"stage": "grid"})
        if stage == "grid":
            bad = {int(i) for p in payloads.values() for i in p.get("invalid_bins", [])}
            if not bad:
                return self._finish_grid(spec, payloads)
            old = [float(e) for e in next(iter(payloads.values()))["edges"]]
            edges = merge_bins(old, bad)
            if edges == old:  # one bin already: no coarser grid can pass the cell rule
                refused = sorted(s for s, p in payloads.items() if p.get("invalid_bins"))
                raise InvalidInput(
                    "a group has too few patients for the minimum cell size even as one "
                    f"time bin at {', '.join(refused)}; use fewer groups or more patients"
                )
            return NextRound(params={"phase": "grid", "edges": edges}, state={"stage": "grid"})
        raise InvalidInput(f"unknown {self.name} stage {stage!r}")

    def _after_keys(
        self, spec: StudySpec, state: Mapping[str, Any], payloads: SitePayloads
    ) -> NextRound:
        attempt = int(state.get("attempt", 1))
        res = float(_extra(spec).get("time_resolution", 1))
        horizon = max(float(p["horizon"]) for p in payloads.values())
        levels = sorted({lv for p in payloads.values() for lv in p.get("levels", [])})
        length = round(horizon / res) + 1
        params = {
            "phase": "exact",
            "length": length,
            "levels": levels,
            **sr.mask_round(f"secagg-{attempt}", payloads),
        }
        new_state = {"stage": "exact", "attempt": attempt, "peers": sorted(payloads)}
        return NextRound(params=params, state={**new_state, "levels": levels, "length": length})

    def _finish_exact(
        self, spec: StudySpec, state: Mapping[str, Any], payloads: SitePayloads
    ) -> Finished:
        pooled = sr.unmask(payloads)
        res = float(_extra(spec).get("time_resolution", 1))
        grid = np.arange(int(state["length"]), dtype=float) * res
        counts = {
            lv: (np.asarray(pooled[f"d|{lv}"]), np.asarray(pooled[f"c|{lv}"]))
            for lv in state["levels"]
        }
        return self.finish(spec, grid, counts, payloads, exact=True)

    def _finish_grid(self, spec: StudySpec, payloads: SitePayloads) -> Finished:
        edges = np.asarray(next(iter(payloads.values()))["edges"], dtype=float)
        counts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for p in payloads.values():
            for lv, b in p["bins"].items():
                d0, c0 = counts.get(lv, (np.zeros(edges.size, int), np.zeros(edges.size, int)))
                counts[lv] = (d0 + np.asarray(b["d"], int), c0 + np.asarray(b["c"], int))
        return self.finish(spec, edges, counts, payloads, exact=False)

    def finish(
        self,
        spec: StudySpec,
        grid: np.ndarray,
        counts: Mapping[str, tuple[np.ndarray, np.ndarray]],
        payloads: SitePayloads,
        *,
        exact: bool,
    ) -> Finished:
        groups = {
            lv: _km_dict(kaplan_meier(grid, d, c, actuarial=not exact))
            for lv, (d, c) in sorted(counts.items())
        }
        mode = "exact" if exact else "time_grid"
        notes = (
            ()
            if exact
            else ("time-grid mode: life-table estimate at bin upper edges (approximate)",)
        )
        n = sum(int(p["n"]) for p in payloads.values())
        return Finished(
            result={"mode": mode, "groups": groups}, n=n, n_excluded_missing=None, disclosure=notes
        )


class LogrankAnalysis(KaplanMeierAnalysis):
    name = "logrank"

    def validate(self, spec: StudySpec) -> None:
        super().validate(spec)
        if not spec.group:
            raise InvalidInput("logrank needs a `group` column")

    def exact(self, spec: StudySpec) -> bool:
        return True

    def first_round(self, spec: StudySpec) -> NextRound:
        params = {"phase": "horizon", **sr.keys_round("secagg-1")}
        return NextRound(params=params, state={"stage": "keys", "attempt": 1})

    def finish(
        self,
        spec: StudySpec,
        grid: np.ndarray,
        counts: Mapping[str, tuple[np.ndarray, np.ndarray]],
        payloads: SitePayloads,
        *,
        exact: bool,
    ) -> Finished:
        levels = sorted(counts)
        if len(levels) < 2:
            raise InvalidInput("logrank needs at least two groups with data")
        d = np.array([counts[lv][0] for lv in levels])
        n_at_risk = np.array([at_risk_from_counts(*counts[lv]) for lv in levels])
        res = logrank(d, n_at_risk)
        result = {
            "test_statistic": res.statistic,
            "df": res.df,
            "p": res.p,
            "groups": levels,
            "observed": dict(zip(levels, res.observed, strict=True)),
            "expected": dict(zip(levels, res.expected, strict=True)),
        }
        n = sum(int(p["n"]) for p in payloads.values())
        return Finished(result=result, n=n, n_excluded_missing=None)
