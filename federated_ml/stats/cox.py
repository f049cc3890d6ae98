"""Cox partial likelihood, its score and information, on one site's rows.

Summing these over sites at a common beta gives the stratified-by-site
likelihood exactly, so Newton–Raphson at the hub reproduces the pooled
stratified fit. Ties by Efron (lifelines' default) or Breslow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Ties = Literal["efron", "breslow"]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class CoxTerms:
    """Log partial likelihood, score vector and observed information at beta."""

    loglik: float
    gradient: FloatArray
    information: FloatArray
    n: int
    events: int


def cox_terms(
    time: FloatArray, event: NDArray[np.bool_], x: FloatArray, beta: FloatArray, ties: Ties
) -> CoxTerms:
    n, p = x.shape
    if n == 0:
        return CoxTerms(0.0, np.zeros(p), np.zeros((p, p)), 0, 0)
    order = np.lexsort((~event, -time))  # descending time; events after censorings at a tie
    t, e, xs = time[order], event[order], x[order]
    eta = xs @ beta
    shift = float(eta.max())
    w = np.exp(eta - shift)  # scaled for stability; log S0 gets `shift` back below
    wx = w[:, None] * xs
    wxx = wx[:, :, None] * xs[:, None, :]
    cum0, cum1, cum2 = np.cumsum(w), np.cumsum(wx, axis=0), np.cumsum(wxx, axis=0)

    ev = np.flatnonzero(e)
    if ev.size == 0:
        return CoxTerms(0.0, np.zeros(p), np.zeros((p, p)), n, 0)
    # the risk set of time t is every row up to the last row with that time
    last_of_time = np.searchsorted(-t, -t, side="right") - 1
    ev_t = t[ev]
    starts = np.flatnonzero(np.r_[True, ev_t[1:] != ev_t[:-1]])  # first event of each time
    d = np.diff(np.r_[starts, ev.size])
    group = np.repeat(np.arange(starts.size), d)
    rank = np.arange(ev.size) - starts[group]  # l = 0..d-1 within the tied events
    risk_end = last_of_time[ev[starts]][group]
    s0, s1, s2 = cum0[risk_end], cum1[risk_end], cum2[risk_end]
    if ties == "efron":
        frac = (rank / d[group])[:, None]
        d0 = np.add.reduceat(w[ev], starts)[group]
        d1 = np.add.reduceat(wx[ev], starts, axis=0)[group]
        d2 = np.add.reduceat(wxx[ev], starts, axis=0)[group]
        s0 = s0 - frac[:, 0] * d0
        s1 = s1 - frac * d1
        s2 = s2 - frac[:, :, None] * d2
    mean = s1 / s0[:, None]
    loglik = float(np.sum(eta[ev]) - np.sum(np.log(s0) + shift))
    gradient = xs[ev].sum(axis=0) - mean.sum(axis=0)
    information = (s2 / s0[:, None, None]).sum(axis=0) - np.einsum("ki,kj->ij", mean, mean)
    return CoxTerms(loglik, gradient, information, n, int(ev.size))


@dataclass(frozen=True)
class TimeSums:
    """Per-time sums at one beta (WebDISCO): over all rows at each time (a*) and over
    the events at each time (d, e*), plus the sum of x over events."""

    a0: FloatArray  # (T,)
    a1: FloatArray  # (T, p)
    a2: FloatArray  # (T, p, p)
    d: NDArray[np.int64]  # (T,)
    e0: FloatArray
    e1: FloatArray
    e2: FloatArray
    x_events: FloatArray  # (p,)


def time_sums(
    time: FloatArray, event: NDArray[np.bool_], x: FloatArray, beta: FloatArray, grid: FloatArray
) -> TimeSums:
    """A site's per-grid-time sums; exact when every time lies on the grid."""
    n, p = x.shape
    idx = np.searchsorted(grid, time, side="left")
    w = np.exp(x @ beta)
    wx = w[:, None] * x
    wxx = (wx[:, :, None] * x[:, None, :]).reshape(n, p * p)
    size = grid.size
    ev = event.astype(bool)

    def per_time(values: FloatArray, rows: NDArray[np.bool_]) -> FloatArray:
        if values.ndim == 1:
            return np.bincount(idx[rows], weights=values[rows], minlength=size).astype(float)
        cols = [
            np.bincount(idx[rows], weights=values[rows, j], minlength=size)
            for j in range(values.shape[1])
        ]
        return np.stack(cols, axis=1) if cols else np.zeros((size, 0))

    every = np.ones(n, dtype=bool)
    return TimeSums(
        a0=per_time(w, every),
        a1=per_time(wx, every),
        a2=per_time(wxx, every).reshape(size, p, p),
        d=np.bincount(idx[ev], minlength=size).astype(np.int64),
        e0=per_time(w, ev),
        e1=per_time(wx, ev),
        e2=per_time(wxx, ev).reshape(size, p, p),
        x_events=x[ev].sum(axis=0) if ev.any() else np.zeros(p),
    )


def cox_terms_from_sums(s: TimeSums, beta: FloatArray, ties: Ties, n: int) -> CoxTerms:
    """The pooled partial likelihood from pooled per-time sums (one baseline hazard)."""
    r0 = np.cumsum(s.a0[::-1])[::-1]  # risk set: every row with time >= t
    r1 = np.cumsum(s.a1[::-1], axis=0)[::-1]
    r2 = np.cumsum(s.a2[::-1], axis=0)[::-1]
    times = np.flatnonzero(s.d > 0)
    d = s.d[times]
    if ties == "efron":  # one term per tied event, l = 0..d-1
        k = np.repeat(times, d)
        frac = (np.arange(k.size) - np.repeat(np.cumsum(d) - d, d)) / np.repeat(d, d)
        mult = np.ones(k.size)
    else:
        k, frac, mult = times, np.zeros(times.size), d.astype(float)
    s0 = r0[k] - frac * s.e0[k]
    s1 = r1[k] - frac[:, None] * s.e1[k]
    s2 = r2[k] - frac[:, None, None] * s.e2[k]
    mean = s1 / s0[:, None]
    loglik = float(s.x_events @ beta - np.sum(mult * np.log(s0)))
    grad = s.x_events - (mult[:, None] * mean).sum(axis=0)
    info = (mult[:, None, None] * (s2 / s0[:, None, None])).sum(axis=0) - np.einsum(
        "k,ki,kj->ij", mult, mean, mean
    )
    return CoxTerms(loglik, grad, info, n, int(s.d.sum()))


@dataclass(frozen=True)
class PairCounts:
    """Harrell's comparable pairs at one site: the earlier death has the higher risk
    (concordant), the lower (discordant), or the same (tied)."""

    concordant: int
    discordant: int
    tied: int


def concordance_pairs(time: FloatArray, event: NDArray[np.bool_], risk: FloatArray) -> PairCounts:
    """A pair is comparable when i dies first, or dies when j is censored at the same
    time (lifelines' convention); deaths at the same time are not compared."""
    import bisect

    order = np.argsort(-time, kind="stable")
    t, e, r = time[order], event[order].astype(bool), risk[order]
    seen: list[float] = []  # risks of rows that outlive the current time, kept sorted
    conc = disc = tied = 0
    i = 0
    while i < t.size:
        j = i
        while j < t.size and t[j] == t[i]:
            j += 1
        group = range(i, j)
        for k in group:  # censored at this time: outlive the deaths at this time
            if not e[k]:
                bisect.insort(seen, float(r[k]))
        for k in group:
            if e[k]:
                lo = bisect.bisect_left(seen, float(r[k]))
                hi = bisect.bisect_right(seen, float(r[k]))
                conc += lo
                tied += hi - lo
                disc += len(seen) - hi
        for k in group:
            if e[k]:
                bisect.insort(seen, float(r[k]))
        i = j
    return PairCounts(conc, disc, tied)
