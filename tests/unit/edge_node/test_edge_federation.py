"""Every analysis through three real edges (`TaskRunner.run`, their own databases and
certificates) driven round by round like the hub: exact KM, log-rank and Cox equal
lifelines on the pooled rows; the tabulations equal pandas; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_gbsg2
from lifelines.statistics import multivariate_logrank_test
from sqlalchemy.orm import Session

from edge_node.ledger.models import LedgerRelease
from edge_node.store.models import SecaggKey
from federated_ml.analyses import secure_rounds as sr
from federated_ml.analyses.base import SUPPRESSED
from protocol.messages import ResultStatus
from tests.unit.edge_node.edge_consortium import EdgeConsortium

TIGHT = {"precision": 1e-12, "max_steps": 200}
SURVIVAL = {"time": "time", "event": "cens"}


def gbsg2_sites() -> dict[str, pd.DataFrame]:
    d = load_gbsg2()
    site = np.random.default_rng(3).integers(0, 3, size=len(d))
    return {f"site-{'abc'[k]}": g.reset_index(drop=True) for k, g in d.groupby(site)}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return gbsg2_sites()


@pytest.fixture(scope="module")
def pooled(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat([t.assign(site=s) for s, t in tables.items()], ignore_index=True)


@pytest.fixture(scope="module")
def edges(
    three_site_urls: list[str],
    tables: dict[str, pd.DataFrame],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EdgeConsortium]:
    urls = dict(zip(tables, three_site_urls, strict=True))
    consortium = EdgeConsortium.open(urls, tables, Path(tmp_path_factory.mktemp("csv")))
    try:
        yield consortium
    finally:
        consortium.close()


def close(a: float, b: float, digits: float = 1e-6) -> bool:
    return abs(a - b) <= digits * max(abs(b), 1e-12)


def test_exact_km_by_group_equals_lifelines_on_the_pooled_rows(
    edges: EdgeConsortium, pooled: pd.DataFrame
) -> None:
    out = edges.run(
        {"analysis": "kaplan_meier", **SURVIVAL, "group": "horTh", "time_grid_days": "exact"}
    )
    assert out.result["mode"] == "exact"
    for level, grp in pooled.groupby("horTh"):
        ref = KaplanMeierFitter().fit(grp["time"], grp["cens"])
        got = out.result["groups"][level]
        np.testing.assert_allclose(got["time"], ref.survival_function_.index)
        np.testing.assert_allclose(got["survival"], ref.survival_function_.iloc[:, 0], rtol=1e-12)
        np.testing.assert_allclose(got["ci_lower"], ref.confidence_interval_.iloc[:, 0], rtol=1e-9)
        assert got["at_risk"] == ref.event_table["at_risk"].tolist()
        assert got["median"] == ref.median_survival_time_
    assert out.n == len(pooled)
    # The per-time vectors left every site only masked, and each site kept its key pair.
    exact_round = edges.results[-1]
    for result in exact_round.values():
        assert all(isinstance(v, str) for v in result.payload[sr.SECURE].values())
    for site in edges.sites.values():
        with Session(site.state) as session:
            assert session.query(SecaggKey).count() >= 1


def test_logrank_equals_lifelines_on_the_pooled_rows(
    edges: EdgeConsortium, pooled: pd.DataFrame
) -> None:
    out = edges.run({"analysis": "logrank", **SURVIVAL, "group": "tgrade"})
    ref = multivariate_logrank_test(pooled["time"], pooled["tgrade"], pooled["cens"])
    assert close(out.result["test_statistic"], ref.test_statistic, 1e-9)
    assert close(out.result["p"], ref.p_value, 1e-7)
    assert out.result["df"] == 2


@pytest.mark.parametrize("covariates", [["age", "tsize"], ["age", "tsize", "pnodes"]])
def test_pooled_cox_equals_lifelines_on_the_pooled_rows(
    edges: EdgeConsortium, pooled: pd.DataFrame, covariates: list[str]
) -> None:
    out = edges.run({"analysis": "cox", **SURVIVAL, "covariates": covariates, "strata": None})
    ref = CoxPHFitter().fit(
        pooled[["time", "cens", *covariates]], "time", "cens", fit_options=TIGHT
    )
    for c in covariates:
        assert close(out.result["coef"][c], ref.params_[c])
        assert close(out.result["se"][c], ref.standard_errors_[c])
    assert close(out.result["log_likelihood"], ref.log_likelihood_)
    assert out.result["events"] == int(pooled["cens"].sum())


def test_stratified_cox_equals_lifelines_with_site_strata(
    edges: EdgeConsortium, pooled: pd.DataFrame
) -> None:
    covariates = ["age", "tsize", "pnodes"]
    out = edges.run({"analysis": "cox", **SURVIVAL, "covariates": covariates})
    ref = CoxPHFitter().fit(
        pooled[["time", "cens", "site", *covariates]],
        "time",
        "cens",
        strata=["site"],
        fit_options=TIGHT,
    )
    for c in covariates:
        assert close(out.result["coef"][c], ref.params_[c])
        assert close(out.result["se"][c], ref.standard_errors_[c])
    assert close(out.result["log_likelihood"], ref.log_likelihood_)


def test_logistic_equals_statsmodels(edges: EdgeConsortium, pooled: pd.DataFrame) -> None:
    covariates = ["age", "tsize", "pnodes"]
    out = edges.run({"analysis": "logistic", "outcome": "cens", "covariates": covariates})
    fit = sm.Logit(pooled["cens"], sm.add_constant(pooled[covariates].astype(float))).fit(
        disp=0, tol=1e-14
    )
    for name, ref_name in [("intercept", "const"), *[(c, c) for c in covariates]]:
        assert close(out.result["coef"][name], fit.params[ref_name])
        assert close(out.result["se"][name], fit.bse[ref_name])


def test_tabulations_equal_pandas(edges: EdgeConsortium, pooled: pd.DataFrame) -> None:
    where = {"field": "age", "op": ">=", "value": 40}
    cohort = pooled[pooled["age"] >= 40]
    count = edges.run({"analysis": "count", "where": where})
    assert count.result["count"] == len(cohort)
    describe = edges.run({"analysis": "describe", "variables": ["tsize"], "where": where})
    assert describe.result["variables"]["tsize"]["mean"] == pytest.approx(cohort["tsize"].mean())
    table = edges.run({"analysis": "crosstab", "rows": "tgrade", "cols": "horTh"})
    expected = pd.crosstab(pooled["tgrade"], pooled["horTh"])
    for r in expected.index:
        for c in expected.columns:
            assert table.result["table"][r][c] == int(expected.loc[r, c])
    ttest = edges.run({"analysis": "ttest", "value": "age", "group": "horTh"})
    assert ttest.result["groups"]["yes"]["n"] == int((pooled["horTh"] == "yes").sum())


def test_time_grid_km_releases_no_count_below_k(edges: EdgeConsortium) -> None:
    start = len(edges.results)
    out = edges.run({"analysis": "kaplan_meier", **SURVIVAL, "time_grid_days": 60})
    assert out.result["mode"] == "time_grid"
    k = next(iter(edges.sites.values())).runner.policy.min_cell_size
    widened = 0
    for results in edges.results[start:]:
        for result in results.values():
            payload = result.payload
            if "invalid_bins" in payload:
                widened += 1
                assert set(payload) == {"n", "edges", "invalid_bins"}
            for bins in payload.get("bins", {}).values():
                assert all(v == 0 or v >= k for v in [*bins["d"], *bins["c"]])
    assert widened > 0  # 60-day bins are too fine for ~230 rows per site


def test_every_release_is_on_each_sites_ledger(edges: EdgeConsortium) -> None:
    edges.run({"analysis": "count"})
    last = edges.results[-1]
    for name, site in edges.sites.items():
        with Session(site.state) as session:
            row = session.query(LedgerRelease).filter_by(task_id=last[name].task_id).one()
        assert row.requester == "alice" and row.analysis == "count"
        assert row.released["n"] == last[name].payload["n"]


def test_a_site_below_the_cell_rule_says_so(edges: EdgeConsortium) -> None:
    where = {"field": "tsize", "op": ">", "value": 100}  # a handful of patients in all
    out = edges.run({"analysis": "count", "where": where})
    assert out.result["suppressed_sites"]
    results = edges.results[-1]
    for result in results.values():
        assert result.status is ResultStatus.OK
        if result.payload.get("suppressed"):
            assert result.payload == {"n": SUPPRESSED, "suppressed": True}
            assert "minimum cell size" in result.disclosure[0]
