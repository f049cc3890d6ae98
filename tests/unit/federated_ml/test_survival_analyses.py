"""kaplan_meier and logrank analyses across in-process sites equal lifelines pooled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.datasets import load_gbsg2
from lifelines.statistics import multivariate_logrank_test

from shared_cdm.errors import InvalidInput
from tests.unit.federated_ml.inprocess import Consortium


def gbsg2_sites(n_sites: int = 4, seed: int = 5) -> dict[str, pd.DataFrame]:
    d = load_gbsg2()
    site = np.random.default_rng(seed).integers(0, n_sites, size=len(d))
    return {f"s{k}": g for k, g in d.groupby(site)}


def test_exact_km_by_group_equals_lifelines_pooled() -> None:
    sites = gbsg2_sites()
    out = Consortium(sites).run(
        {
            "analysis": "kaplan_meier",
            "time": "time",
            "event": "cens",
            "group": "horTh",
            "time_grid_days": "exact",
        }
    )
    pooled = pd.concat(sites.values())
    assert out.result["mode"] == "exact"
    for level, grp in pooled.groupby("horTh"):
        ref = KaplanMeierFitter().fit(grp["time"], grp["cens"])
        got = out.result["groups"][level]
        np.testing.assert_allclose(got["time"], ref.survival_function_.index)
        np.testing.assert_allclose(got["survival"], ref.survival_function_.iloc[:, 0], rtol=1e-12)
        np.testing.assert_allclose(got["ci_lower"], ref.confidence_interval_.iloc[:, 0], rtol=1e-10)
        assert got["at_risk"] == ref.event_table["at_risk"].tolist()
        assert got["median"] == ref.median_survival_time_
    assert out.n == len(pooled)


def test_exact_km_restarts_keys_when_a_site_drops_out() -> None:
    sites = gbsg2_sites()
    cons = Consortium(sites)
    out = cons.run(
        {"analysis": "kaplan_meier", "time": "time", "event": "cens", "time_grid_days": "exact"},
        drop_in_round={1: "s3"},  # s3 answers the keys round, then disappears
    )
    rest = pd.concat([f for s, f in sites.items() if s != "s3"])
    ref = KaplanMeierFitter().fit(rest["time"], rest["cens"])
    np.testing.assert_allclose(
        out.result["groups"]["all"]["survival"], ref.survival_function_.iloc[:, 0], rtol=1e-12
    )
    assert cons.rounds == 4  # keys, failed mask, keys again, mask


def test_logrank_equals_lifelines_on_pooled_rows() -> None:
    sites = gbsg2_sites(3)
    out = Consortium(sites).run(
        {"analysis": "logrank", "time": "time", "event": "cens", "group": "tgrade"}
    )
    pooled = pd.concat(sites.values())
    ref = multivariate_logrank_test(pooled["time"], pooled["tgrade"], pooled["cens"])
    assert out.result["test_statistic"] == pytest.approx(ref.test_statistic, rel=1e-9)
    assert out.result["p"] == pytest.approx(ref.p_value, rel=1e-7)
    assert out.result["df"] == 2


def test_grid_km_releases_only_counts_meeting_the_cell_rule() -> None:
    d = load_gbsg2()
    sites = {f"s{k}": g for k, g in d.groupby(d.index % 3)}
    cons = Consortium(sites, min_cell_size=5)
    out = cons.run(
        {"analysis": "kaplan_meier", "time": "time", "event": "cens", "time_grid_days": 90}
    )
    grp = out.result["groups"]["all"]
    assert out.result["mode"] == "time_grid"
    edges = np.asarray([t for t in grp["time"] if t > 0])
    assert len(edges) >= 5  # widened where needed, not collapsed
    for frame in sites.values():  # every per-site count behind the curve met the rule
        idx = np.searchsorted(edges, frame["time"].to_numpy(float), side="left")
        for arr in (
            np.bincount(idx[frame["cens"] == 1], minlength=edges.size),
            np.bincount(idx[frame["cens"] == 0], minlength=edges.size),
        ):
            assert all(c == 0 or c >= 5 for c in arr)
    ref = KaplanMeierFitter().fit(d["time"], d["cens"])
    for t, s in zip(grp["time"][1:-1], grp["survival"][1:-1], strict=True):
        assert s == pytest.approx(ref.predict(t), abs=0.01)  # life-table vs KM at the edges


def test_exact_mode_refuses_two_sites() -> None:
    sites = dict(list(gbsg2_sites().items())[:2])
    with pytest.raises(InvalidInput, match="at least 3"):
        Consortium(sites).run(
            {"analysis": "logrank", "time": "time", "event": "cens", "group": "horTh"}
        )


def test_logrank_needs_a_group() -> None:
    with pytest.raises(InvalidInput, match="group"):
        Consortium(gbsg2_sites()).run({"analysis": "logrank", "time": "time", "event": "cens"})


def test_grid_km_with_a_group_too_small_for_one_bin_fails_naming_the_site() -> None:
    d = load_gbsg2()
    sites = {f"s{k}": g for k, g in d.groupby(d.index % 3)}
    tiny = sites["s1"]
    # s1 holds three censored patients of one grade: no grid can release them
    sites["s1"] = pd.concat([tiny[tiny["tgrade"] != "I"], tiny[tiny["tgrade"] == "I"].head(3)])
    sites["s1"].loc[sites["s1"]["tgrade"] == "I", "cens"] = 0
    cons = Consortium(sites, min_cell_size=5)
    with pytest.raises(InvalidInput, match=r"even as one time bin at s1;"):
        cons.run(
            {
                "analysis": "kaplan_meier",
                "time": "time",
                "event": "cens",
                "group": "tgrade",
                "time_grid_days": 90,
            }
        )
    assert cons.rounds < 40  # it stops as soon as the grid is one bin, not by a round cap
