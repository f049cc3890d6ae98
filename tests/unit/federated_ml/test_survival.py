"""KM and log-rank from pooled per-time counts equal lifelines on the pooled rows."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from lifelines.datasets import load_gbsg2, load_lung
from lifelines.statistics import logrank_test, multivariate_logrank_test
from lifelines.utils import median_survival_times

from federated_ml.stats.survival import at_risk_from_counts, kaplan_meier, logrank, time_counts


def pooled_counts(sites, grid):
    d = np.zeros(grid.size, dtype=np.int64)
    c = np.zeros(grid.size, dtype=np.int64)
    for t, e in sites:
        dd, cc = time_counts(t, e, grid)
        d += dd
        c += cc
    return d, c


def test_km_from_site_counts_equals_lifelines_on_lung() -> None:
    lung = load_lung()
    t, e = lung["time"].to_numpy(float), lung["status"].to_numpy() == 1
    sites = [(t[lung["inst"] == i], e[lung["inst"] == i]) for i in lung["inst"].dropna().unique()]
    sites.append((t[lung["inst"].isna()], e[lung["inst"].isna()]))
    grid = np.arange(0, t.max() + 1, dtype=float)
    km = kaplan_meier(grid, *pooled_counts(sites, grid))
    ref = KaplanMeierFitter().fit(t, e)
    assert np.allclose(km.time, ref.survival_function_.index)
    np.testing.assert_allclose(km.survival, ref.survival_function_.iloc[:, 0], rtol=1e-12)
    ci = ref.confidence_interval_
    np.testing.assert_allclose(km.ci_lower, ci.iloc[:, 0], rtol=1e-10)
    np.testing.assert_allclose(km.ci_upper, ci.iloc[:, 1], rtol=1e-10)
    assert km.at_risk == ref.event_table["at_risk"].tolist()
    assert km.events == ref.event_table["observed"].tolist()
    assert km.median == ref.median_survival_time_
    lo, hi = median_survival_times(ref.confidence_interval_).iloc[0]
    assert km.median_ci == (lo, hi)


def test_median_is_none_when_curve_stays_above_half() -> None:
    t = np.array([1.0, 2, 3, 4, 5, 6])
    e = np.array([True, False, False, False, False, False])
    grid = np.arange(0, 7, dtype=float)
    km = kaplan_meier(grid, *time_counts(t, e, grid))
    assert km.median is None
    assert km.survival[-1] == pytest.approx(5 / 6)


def _group_counts(frame, group_col, grid):
    d_rows, n_rows = [], []
    for _, g in sorted(frame.groupby(group_col), key=lambda kv: str(kv[0])):
        d, c = time_counts(g["time"].to_numpy(float), g["cens"].to_numpy() == 1, grid)
        d_rows.append(d)
        n_rows.append(at_risk_from_counts(d, c))
    return np.array(d_rows), np.array(n_rows)


def test_logrank_three_groups_equals_lifelines() -> None:
    g = load_gbsg2()
    grid = np.arange(0, g["time"].max() + 1, dtype=float)
    res = logrank(*_group_counts(g, "tgrade", grid))
    ref = multivariate_logrank_test(g["time"], g["tgrade"], g["cens"])
    assert res.df == 2
    assert res.statistic == pytest.approx(ref.test_statistic, rel=1e-10)
    assert res.p == pytest.approx(ref.p_value, rel=1e-8)


def test_logrank_two_groups_equals_lifelines() -> None:
    g = load_gbsg2()
    grid = np.arange(0, g["time"].max() + 1, dtype=float)
    res = logrank(*_group_counts(g, "horTh", grid))
    yes, no = g[g["horTh"] == "yes"], g[g["horTh"] == "no"]
    ref = logrank_test(no["time"], yes["time"], no["cens"], yes["cens"])
    assert res.statistic == pytest.approx(ref.test_statistic, rel=1e-10)
    assert sum(res.observed) == g["cens"].sum()


def test_time_beyond_grid_is_an_error() -> None:
    with pytest.raises(ValueError, match="beyond"):
        time_counts(np.array([10.0]), np.array([True]), np.array([0.0, 5.0]))
