"""Kaplan–Meier and log-rank from per-time counts (no rows needed).

Given, for each time point, the number of events and of censorings (pooled
over sites), these reproduce lifelines' `KaplanMeierFitter` (exponential
Greenwood intervals, "log-log" in R) and the log-rank test exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

FloatArray = NDArray[np.float64]


def time_counts(
    time: FloatArray, event: NDArray[np.bool_], grid: FloatArray
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Events and censorings at each grid point; a time falls to the first point >= it.

    With the grid as every distinct time this is exact; with bins it counts
    each bin at its upper edge.
    """
    idx = np.searchsorted(grid, time, side="left")
    if idx.size and idx.max() >= grid.size:
        raise ValueError("a time lies beyond the last grid point")
    d = np.bincount(idx[event], minlength=grid.size).astype(np.int64)
    c = np.bincount(idx[~event], minlength=grid.size).astype(np.int64)
    return d, c


@dataclass(frozen=True)
class KaplanMeier:
    time: list[float]
    at_risk: list[int]
    events: list[int]
    censored: list[int]
    survival: list[float]
    ci_lower: list[float]
    ci_upper: list[float]
    median: float | None  # None: the curve never reaches 0.5
    median_ci: tuple[float | None, float | None]


def _first_at_or_below(time: FloatArray, curve: FloatArray, q: float) -> float | None:
    hit = np.flatnonzero(curve <= q)
    return float(time[hit[0]]) if hit.size else None


def kaplan_meier(
    time: FloatArray,
    d: NDArray[np.int64],
    c: NDArray[np.int64],
    alpha: float = 0.05,
    *,
    actuarial: bool = False,
) -> KaplanMeier:
    """KM over time points with counts; points with no event and no censoring are dropped
    (except time 0, which lifelines always shows). `actuarial` (for binned counts) takes
    censorings as leaving half-way through their bin: the life-table estimator."""
    keep = (d + c > 0) | (time == 0)
    time, d, c = time[keep], d[keep], c[keep]
    if time.size == 0 or time[0] > 0:
        time, d, c = np.r_[0.0, time], np.r_[0, d], np.r_[0, c]
    n_total = int(d.sum() + c.sum())
    at_risk = n_total - np.r_[0, np.cumsum(d + c)[:-1]]
    exposed = at_risk - c / 2.0 if actuarial else at_risk.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(exposed > 0, 1.0 - d / np.maximum(exposed, 1e-300), 1.0)
        survival = np.cumprod(factor).astype(np.float64)
        denom = exposed * (exposed - d)
        greenwood = np.cumsum(np.where(denom > 0, d / np.where(denom > 0, denom, 1.0), 0.0))
        z = stats.norm.ppf(1 - alpha / 2)
        v = np.log(survival)
        lower = np.exp(-np.exp(np.log(-v) - z * np.sqrt(greenwood) / v))
        upper = np.exp(-np.exp(np.log(-v) + z * np.sqrt(greenwood) / v))
    lower, upper = np.nan_to_num(lower, nan=1.0), np.nan_to_num(upper, nan=1.0)
    return KaplanMeier(
        time=time.tolist(),
        at_risk=at_risk.astype(int).tolist(),
        events=d.astype(int).tolist(),
        censored=c.astype(int).tolist(),
        survival=survival.tolist(),
        ci_lower=lower.tolist(),
        ci_upper=upper.tolist(),
        median=_first_at_or_below(time, survival, 0.5),
        median_ci=(_first_at_or_below(time, lower, 0.5), _first_at_or_below(time, upper, 0.5)),
    )


@dataclass(frozen=True)
class LogRank:
    statistic: float
    df: int
    p: float
    observed: list[float]
    expected: list[float]


def logrank(d: NDArray[np.int64], n: NDArray[np.int64]) -> LogRank:
    """Log-rank test for G groups from per-time events `d[g, t]` and at-risk `n[g, t]`."""
    d, n = np.asarray(d, dtype=float), np.asarray(n, dtype=float)
    groups = d.shape[0]
    d_tot, n_tot = d.sum(axis=0), n.sum(axis=0)
    use = (n_tot > 0) & (d_tot > 0)
    d, n, d_tot, n_tot = d[:, use], n[:, use], d_tot[use], n_tot[use]
    expected = n * (d_tot / n_tot)
    observed_minus = (d - expected).sum(axis=1)
    scale = np.where(n_tot > 1, d_tot * (n_tot - d_tot) / (n_tot * n_tot * (n_tot - 1)), 0.0)
    var = np.zeros((groups, groups))
    for g in range(groups):
        for h in range(groups):
            delta = n_tot if g == h else 0.0
            var[g, h] = np.sum(scale * n[g] * (delta - n[h]))
    k = groups - 1
    stat = float(observed_minus[:k] @ np.linalg.solve(var[:k, :k], observed_minus[:k]))
    return LogRank(
        statistic=stat,
        df=k,
        p=float(stats.chi2.sf(stat, k)),
        observed=d.sum(axis=1).tolist(),
        expected=expected.sum(axis=1).tolist(),
    )


def at_risk_from_counts(d: NDArray[np.int64], c: NDArray[np.int64]) -> NDArray[np.int64]:
    """At-risk at each time point from counts ordered by time."""
    total = d.sum() + c.sum()
    return np.asarray(total - np.r_[0, np.cumsum(d + c)[:-1]], dtype=np.int64)


def finite_or_none(x: float) -> float | None:
    return None if x is None or math.isinf(x) or math.isnan(x) else x


def invalid_bins(bins: list[tuple[NDArray[np.int64], NDArray[np.int64]]], k: int) -> list[int]:
    """Indices of bins where some group's events or censorings are in 1..k-1."""
    bad: set[int] = set()
    for d, c in bins:
        for arr in (d, c):
            bad.update(np.flatnonzero((arr > 0) & (arr < k)).tolist())
    return sorted(bad)


def merge_bins(edges: list[float], bad: set[int]) -> list[float]:
    """Widen bins: a bad bin merges with the next (the last with the one before);
    a bin just merged into is not merged again in the same pass, so the grid
    coarsens no more than needed."""
    last = len(edges) - 1
    drop: set[int] = set()
    touched: set[int] = set()
    for i in sorted(bad):
        if i in touched:
            continue
        if i < last:
            drop.add(i)
            touched.add(i + 1)
        elif last > 0 and last - 1 not in drop:
            drop.add(last - 1)
    return [e for i, e in enumerate(edges) if i not in drop]
