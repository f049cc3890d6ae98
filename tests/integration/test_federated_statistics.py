"""Every survival and regression analysis over real processes and mutual TLS equals
the pooled lifelines / statsmodels fit of the same rows to at least 6 significant digits.

NCCTG lung is split into sites by institution (institutions under 10 rows merged);
GBSG2 is split at random into 4 sites and lives on 4 of the same edges as a second
dataset. One hub and one edge process per site serve every study in this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_gbsg2, load_lung
from lifelines.statistics import multivariate_logrank_test
from statsmodels.duration.hazard_regression import PHReg

from ops.federation import LocalFederation
from ops.local_federation import hub_settings_for_local_run

pytestmark = pytest.mark.slow

TIGHT = {"precision": 1e-12, "max_steps": 200}
LUNG_COVS = ["age", "sex", "ph.ecog"]
GBSG_COVS = ["age", "tsize", "pnodes", "hormone"]
HORMONE = {"hormone": {"map": "horTh", "values": {"yes": 1, "no": 0}}}


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(abs(b), 1e-12)


def lung_sites() -> dict[str, pd.DataFrame]:
    d = load_lung().dropna(subset=["inst"])
    sizes = d["inst"].value_counts()
    d["site"] = d["inst"].map(lambda i: f"inst{int(i)}" if sizes[i] >= 10 else "merged")
    return {s: g.drop(columns="site") for s, g in d.groupby("site")}


def gbsg_sites(names: list[str]) -> dict[str, pd.DataFrame]:
    d = load_gbsg2()
    which = np.random.default_rng(4).integers(0, len(names), size=len(d))
    return {names[k]: g for k, g in d.groupby(which)}


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("stats")
    lung = lung_sites()
    gbsg = gbsg_sites(sorted(lung)[:4])
    tables: dict[str, Path] = {}
    for site, frame in lung.items():
        tables[site] = root / f"{site}-lung.csv"
        frame.to_csv(tables[site], index=False)
    with LocalFederation(root / "fed", ready_timeout=180) as fed:
        fed.init_ca()
        fed.start_hub(settings=hub_settings_for_local_run())
        fed.add_edges(tables)
        for site, frame in gbsg.items():
            path = root / f"{site}-gbsg2.csv"
            frame.to_csv(path, index=False)
            fed.edge_command(site, "dataset", "add", "gbsg2", str(path))
        fed.wait_for_sites(lung)
        yield {"fed": fed, "lung": lung, "gbsg": gbsg}


# Every lung study runs on the same complete-case cohort: the sites' disclosure
# ledgers refuse two cohorts that differ by fewer than 5 rows (differencing).
COMPLETE_ECOG = {"field": "ph.ecog", "op": "not_null"}


def run(fx: dict[str, Any], spec: dict[str, Any], data: str) -> dict[str, Any]:
    sites = sorted(fx[data])
    dataset = "default" if data == "lung" else "gbsg2"
    where = {"where": COMPLETE_ECOG} if data == "lung" else {}
    study = fx["fed"].run_study({**spec, **where, "dataset": dataset}, sites, timeout=600)
    assert study["status"] == "completed", study.get("error")
    envelope = dict(study["result"])
    statuses = {site["name"]: site["status"] for site in envelope["sites"]}
    assert statuses == dict.fromkeys(sites, "ok"), envelope["disclosure"]
    return envelope


def pooled(fx: dict[str, Any], data: str) -> pd.DataFrame:
    return pd.concat([f.assign(site=s) for s, f in fx[data].items()], ignore_index=True)


@pytest.mark.parametrize("strata", ["site", None])
def test_cox_efron_equals_lifelines(federation: dict[str, Any], strata: str | None) -> None:
    env = run(
        federation,
        {
            "analysis": "cox",
            "time": "time",
            "event": "status",
            "covariates": LUNG_COVS,
            "strata": strata,
        },
        "lung",
    )
    rows = pooled(federation, "lung").dropna(subset=LUNG_COVS)
    cols = ["time", "status", *LUNG_COVS] + (["site"] if strata else [])
    ref = CoxPHFitter().fit(
        rows[cols], "time", "status", strata=["site"] if strata else None, fit_options=TIGHT
    )
    res = env["result"]
    for c in LUNG_COVS:
        assert close(res["coef"][c], ref.params_[c])
        assert close(res["se"][c], ref.standard_errors_[c])
        assert close(res["p"][c], ref.summary.loc[c, "p"])
    assert close(res["log_likelihood"], ref.log_likelihood_)
    assert env["n"] == len(rows)


@pytest.mark.parametrize("strata", ["site", None])
def test_cox_breslow_equals_statsmodels(federation: dict[str, Any], strata: str | None) -> None:
    env = run(
        federation,
        {
            "analysis": "cox",
            "time": "time",
            "event": "status",
            "covariates": LUNG_COVS,
            "strata": strata,
            "ties": "breslow",
        },
        "lung",
    )
    rows = pooled(federation, "lung").dropna(subset=LUNG_COVS)
    fit = PHReg(
        rows["time"].to_numpy(float),
        rows[LUNG_COVS].to_numpy(float),
        status=rows["status"].to_numpy(int),
        strata=rows["site"].to_numpy() if strata else None,
        ties="breslow",
    ).fit()
    for i, c in enumerate(LUNG_COVS):
        assert close(env["result"]["coef"][c], fit.params[i])
        assert close(env["result"]["se"][c], fit.bse[i])


def test_exact_km_by_sex_equals_lifelines(federation: dict[str, Any]) -> None:
    env = run(
        federation,
        {
            "analysis": "kaplan_meier",
            "time": "time",
            "event": "status",
            "group": "sex",
            "time_grid_days": "exact",
        },
        "lung",
    )
    rows = pooled(federation, "lung").dropna(subset=["ph.ecog"])
    for level, grp in rows.groupby("sex"):
        ref = KaplanMeierFitter().fit(grp["time"], grp["status"])
        got = env["result"]["groups"][str(level)]
        np.testing.assert_allclose(got["time"], ref.survival_function_.index)
        np.testing.assert_allclose(got["survival"], ref.survival_function_.iloc[:, 0], rtol=1e-9)
        np.testing.assert_allclose(got["ci_lower"], ref.confidence_interval_.iloc[:, 0], rtol=1e-9)
        assert got["at_risk"] == ref.event_table["at_risk"].tolist()


def test_logrank_equals_lifelines(federation: dict[str, Any]) -> None:
    env = run(
        federation,
        {"analysis": "logrank", "time": "time", "event": "cens", "group": "tgrade"},
        "gbsg",
    )
    rows = pooled(federation, "gbsg")
    ref = multivariate_logrank_test(rows["time"], rows["tgrade"], rows["cens"])
    assert close(env["result"]["test_statistic"], ref.test_statistic)
    assert close(env["result"]["p"], ref.p_value)
    assert env["result"]["df"] == 2


def test_logistic_with_a_derived_covariate_equals_statsmodels(federation: dict[str, Any]) -> None:
    env = run(
        federation,
        {"analysis": "logistic", "outcome": "cens", "covariates": GBSG_COVS, "derived": HORMONE},
        "gbsg",
    )
    rows = pooled(federation, "gbsg").assign(hormone=lambda f: (f["horTh"] == "yes").astype(int))
    fit = sm.Logit(rows["cens"], sm.add_constant(rows[GBSG_COVS].astype(float))).fit(
        disp=0, tol=1e-14
    )
    for name, ref_name in [("intercept", "const"), *[(c, c) for c in GBSG_COVS]]:
        assert close(env["result"]["coef"][name], fit.params[ref_name])
        assert close(env["result"]["se"][name], fit.bse[ref_name])


def test_gbsg2_stratified_cox_equals_lifelines(federation: dict[str, Any]) -> None:
    env = run(
        federation,
        {
            "analysis": "cox",
            "time": "time",
            "event": "cens",
            "covariates": GBSG_COVS,
            "derived": HORMONE,
        },
        "gbsg",
    )
    rows = pooled(federation, "gbsg").assign(hormone=lambda f: (f["horTh"] == "yes").astype(int))
    ref = CoxPHFitter().fit(
        rows[["time", "cens", "site", *GBSG_COVS]],
        "time",
        "cens",
        strata=["site"],
        fit_options=TIGHT,
    )
    for c in GBSG_COVS:
        assert close(env["result"]["coef"][c], ref.params_[c])
