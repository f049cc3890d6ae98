"""Federated Cox and logistic equal pooled fits (lifelines, statsmodels) to 6+ digits.

The sites run in-process here; the same analyses over real processes and mTLS
are exercised by the integration tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from lifelines import CoxPHFitter
from lifelines.datasets import load_gbsg2, load_lung
from statsmodels.duration.hazard_regression import PHReg

from federated_ml.analyses import Finished, analysis_for
from federated_ml.analyses.base import parse_spec
from shared_cdm.errors import InvalidInput
from tests.unit.federated_ml.inprocess import Consortium

TIGHT = {"precision": 1e-12, "max_steps": 200}


def run_federated(spec_raw: Mapping[str, Any], sites: dict[str, pd.DataFrame]) -> Finished:
    spec = parse_spec(spec_raw)
    analysis = analysis_for(spec.analysis)
    analysis.validate(spec)
    cols = analysis.columns(spec)
    nxt = analysis.first_round(spec)
    for _ in range(200):
        payloads = {
            s: analysis.local(f.dropna(subset=cols), spec, nxt.params) for s, f in sites.items()
        }
        out = analysis.step(spec, nxt.state, payloads)
        if isinstance(out, Finished):
            return out
        nxt = out
    raise AssertionError("did not finish")


def lung_sites() -> dict[str, pd.DataFrame]:
    """NCCTG lung split by institution, small ones merged to >= 10 rows per site."""
    d = load_lung().dropna(subset=["inst", "age", "sex", "ph.ecog"])
    sizes = d["inst"].value_counts()
    d["site"] = d["inst"].map(lambda i: f"inst{int(i)}" if sizes[i] >= 10 else "merged")
    return {s: g.drop(columns="site") for s, g in d.groupby("site")}


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(abs(b), 1e-12)


@pytest.mark.parametrize("covariates", [["age", "sex", "ph.ecog"], ["age"]])
def test_stratified_cox_efron_equals_lifelines(covariates: list[str]) -> None:
    sites = lung_sites()
    out = run_federated(
        {"analysis": "cox", "time": "time", "event": "status", "covariates": covariates},
        sites,
    )
    pooled = pd.concat([f.assign(site=s) for s, f in sites.items()])
    cph = CoxPHFitter().fit(
        pooled[["time", "status", "site", *covariates]],
        "time",
        "status",
        strata=["site"],
        fit_options=TIGHT,
    )
    for c in covariates:
        assert close(out.result["coef"][c], cph.params_[c])
        assert close(out.result["se"][c], cph.standard_errors_[c])
        assert close(out.result["p"][c], cph.summary.loc[c, "p"])
        assert close(out.result["hr"][c], cph.hazard_ratios_[c])
    assert close(out.result["log_likelihood"], cph.log_likelihood_)
    assert out.result["events"] == int(pooled["status"].sum())
    assert out.n == len(pooled)


def test_stratified_cox_breslow_equals_statsmodels() -> None:
    sites = lung_sites()
    covs = ["age", "sex", "ph.ecog"]
    out = run_federated(
        {
            "analysis": "cox",
            "time": "time",
            "event": "status",
            "covariates": covs,
            "ties": "breslow",
        },
        sites,
    )
    pooled = pd.concat([f.assign(site=s) for s, f in sites.items()])
    fit = PHReg(
        pooled["time"].to_numpy(float),
        pooled[covs].to_numpy(float),
        status=pooled["status"].to_numpy(int),
        strata=pooled["site"].to_numpy(),
        ties="breslow",
    ).fit()
    for i, c in enumerate(covs):
        assert close(out.result["coef"][c], fit.params[i])
        assert close(out.result["se"][c], fit.bse[i])
    assert close(out.result["log_likelihood"], fit.llf)


def test_cox_event_values_select_the_event_code() -> None:
    sites = {s: f.assign(status=f["status"] + 1) for s, f in lung_sites().items()}  # R coding 1/2
    out = run_federated(
        {
            "analysis": "cox",
            "time": "time",
            "event": "status",
            "event_values": [2],
            "covariates": ["age"],
        },
        sites,
    )
    ref = run_federated(
        {"analysis": "cox", "time": "time", "event": "status", "covariates": ["age"]},
        lung_sites(),
    )
    assert close(out.result["coef"]["age"], ref.result["coef"]["age"])


def test_logistic_equals_statsmodels_on_gbsg2_split_into_four_sites() -> None:
    d = load_gbsg2()
    d["hormone"] = (d["horTh"] == "yes").astype(int)
    rng = np.random.default_rng(11)
    d["site"] = rng.integers(0, 4, size=len(d))
    covs = ["age", "tsize", "pnodes", "hormone"]
    sites = {f"s{k}": g.drop(columns="site") for k, g in d.groupby("site")}
    out = run_federated({"analysis": "logistic", "outcome": "cens", "covariates": covs}, sites)
    fit = sm.Logit(d["cens"], sm.add_constant(d[covs].astype(float))).fit(disp=0, tol=1e-14)
    for name, ref_name in [("intercept", "const"), *[(c, c) for c in covs]]:
        assert close(out.result["coef"][name], fit.params[ref_name])
        assert close(out.result["se"][name], fit.bse[ref_name])
    assert close(out.result["log_likelihood"], fit.llf)


def test_collinear_covariates_are_reported_not_crashed() -> None:
    sites = {s: f.assign(age2=f["age"] * 2) for s, f in lung_sites().items()}
    with pytest.raises(InvalidInput, match="collinear"):
        run_federated(
            {"analysis": "cox", "time": "time", "event": "status", "covariates": ["age", "age2"]},
            sites,
        )


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_pooled_cox_through_secure_aggregation_equals_pooled_fit(ties: str) -> None:
    sites = lung_sites()
    covs = ["age", "sex", "ph.ecog"]
    out = Consortium(sites).run(
        {
            "analysis": "cox",
            "time": "time",
            "event": "status",
            "covariates": covs,
            "strata": None,
            "ties": ties,
        }
    )
    pooled = pd.concat(sites.values())
    if ties == "efron":
        ref = CoxPHFitter().fit(
            pooled[["time", "status", *covs]], "time", "status", fit_options=TIGHT
        )
        coef, se, ll = ref.params_, ref.standard_errors_, ref.log_likelihood_
    else:
        fit = PHReg(
            pooled["time"].to_numpy(float),
            pooled[covs].to_numpy(float),
            status=pooled["status"].to_numpy(int),
            ties="breslow",
        ).fit()
        coef = dict(zip(covs, fit.params, strict=True))
        se = dict(zip(covs, fit.bse, strict=True))
        ll = fit.llf
    for c in covs:
        assert close(out.result["coef"][c], coef[c])
        assert close(out.result["se"][c], se[c])
    assert close(out.result["log_likelihood"], ll)
    assert out.result["events"] == int(pooled["status"].sum())


def test_pooled_cox_refuses_fewer_than_three_sites() -> None:
    sites = dict(list(lung_sites().items())[:2])
    with pytest.raises(InvalidInput, match="at least 3"):
        Consortium(sites).run(
            {
                "analysis": "cox",
                "time": "time",
                "event": "status",
                "covariates": ["age"],
                "strata": None,
            }
        )


def _pairs_brute_force(t: np.ndarray, e: np.ndarray, risk: np.ndarray) -> tuple[int, int, int]:
    conc = disc = tied = 0
    for i in range(len(t)):
        if not e[i]:
            continue
        for j in range(len(t)):
            if t[i] < t[j] or (t[i] == t[j] and not e[j]):
                conc += risk[i] > risk[j]
                disc += risk[i] < risk[j]
                tied += risk[i] == risk[j]
    return conc, disc, tied


def test_cox_concordance_counts_pairs_within_sites() -> None:
    sites = lung_sites()
    covs = ["age", "sex", "ph.ecog"]
    out = run_federated(
        {"analysis": "cox", "time": "time", "event": "status", "covariates": covs}, sites
    )
    beta = np.array([out.result["coef"][c] for c in covs])
    totals = np.zeros(3)
    for frame in sites.values():
        f = frame.dropna(subset=covs)
        totals += _pairs_brute_force(
            f["time"].to_numpy(float), f["status"].to_numpy() == 1, f[covs].to_numpy(float) @ beta
        )
    conc, disc, tied = totals
    c = out.result["concordance"]
    assert c["comparable_pairs"] == conc + disc + tied
    assert c["c_index"] == pytest.approx((conc + 0.5 * tied) / (conc + disc + tied), rel=1e-12)
    assert "within each site" in " ".join(out.disclosure)


def test_cox_concordance_at_one_site_equals_lifelines() -> None:
    from lifelines.utils import concordance_index

    d = load_lung().dropna(subset=["age", "sex", "ph.ecog"])
    out = run_federated(
        {"analysis": "cox", "time": "time", "event": "status", "covariates": ["age", "sex"]},
        {"only": d},
    )
    beta = np.array([out.result["coef"]["age"], out.result["coef"]["sex"]])
    ref = concordance_index(d["time"], -(d[["age", "sex"]].to_numpy(float) @ beta), d["status"])
    assert out.result["concordance"]["c_index"] == pytest.approx(ref, rel=1e-12)


def test_cox_events_unknown_when_a_site_withheld_its_event_count() -> None:
    from federated_ml.analyses.base import SUPPRESSED

    spec = parse_spec(
        {
            "analysis": "cox",
            "time": "time",
            "event": "status",
            "covariates": ["age"],
            "concordance": False,
        }
    )
    cox = analysis_for("cox")
    sites = lung_sites()
    nxt = cox.first_round(spec)
    for _ in range(50):
        payloads = {
            s: cox.local(f.dropna(subset=["age"]), spec, nxt.params) for s, f in sites.items()
        }
        payloads["merged"] = {**payloads["merged"], "events": SUPPRESSED}
        out = cox.step(spec, nxt.state, payloads)
        if isinstance(out, Finished):
            break
        nxt = out
    assert isinstance(out, Finished)
    assert out.result["events"] is None
    released = sum(
        int(f.dropna(subset=["age"])["status"].sum()) for s, f in sites.items() if s != "merged"
    )
    assert out.result["events_released"] == released
    assert any("merged" in note for note in out.disclosure)
