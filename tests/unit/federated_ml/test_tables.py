from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_gbsg2
from scipy import stats

from federated_ml.analyses.base import SUPPRESSED
from shared_cdm.errors import InvalidInput
from tests.unit.federated_ml.inprocess import Consortium


def sites() -> dict[str, pd.DataFrame]:
    d = load_gbsg2()
    return {f"s{k}": g for k, g in d.groupby(d.index % 3)}


def test_crosstab_chi2_and_fisher_equal_scipy_on_pooled_rows() -> None:
    parts = sites()
    out = Consortium(parts).run({"analysis": "crosstab", "rows": "horTh", "cols": "menostat"})
    pooled = pd.concat(parts.values())
    table = pd.crosstab(pooled["horTh"], pooled["menostat"])
    assert out.result["table"] == {
        r: {c: int(table.loc[r, c]) for c in table.columns} for r in table.index
    }
    chi2, p, dof, _ = stats.chi2_contingency(table.to_numpy(), correction=False)
    tests = out.result["tests"]
    assert tests["chi2"] == pytest.approx(chi2, rel=1e-12)
    assert tests["p"] == pytest.approx(p, rel=1e-12)
    assert tests["df"] == dof
    odds, p_f = stats.fisher_exact(table.to_numpy())
    assert tests["fisher_p"] == pytest.approx(p_f, rel=1e-12)
    assert tests["fisher_odds_ratio"] == pytest.approx(odds, rel=1e-12)


def test_crosstab_with_a_suppressed_cell_reports_no_test() -> None:
    from federated_ml.analyses import analysis_for
    from federated_ml.analyses.base import parse_spec

    spec = parse_spec({"analysis": "crosstab", "rows": "a", "cols": "b"})
    out = analysis_for("crosstab").step(
        spec,
        {},
        {
            "s1": {"n": 30, "cells": {"x": {"u": 20, "v": SUPPRESSED}, "y": {"u": 6, "v": 0}}},
            "s2": {"n": 40, "cells": {"x": {"u": 10, "v": 10}, "y": {"u": 10, "v": 10}}},
        },
    )
    assert out.result["table"]["x"]["v"] == SUPPRESSED
    assert out.result["table"]["y"]["u"] == 16
    assert out.result["tests"] is None
    assert any("tests not computed" in d for d in out.disclosure)


def test_ttest_equals_scipy_on_pooled_rows() -> None:
    parts = sites()
    out = Consortium(parts).run({"analysis": "ttest", "value": "tsize", "group": "horTh"})
    pooled = pd.concat(parts.values())
    no = pooled.loc[pooled["horTh"] == "no", "tsize"]
    yes = pooled.loc[pooled["horTh"] == "yes", "tsize"]
    ref = stats.ttest_ind(no, yes, equal_var=True)
    welch = stats.ttest_ind(no, yes, equal_var=False)
    assert out.result["student"]["t"] == pytest.approx(ref.statistic, rel=1e-9)
    assert out.result["student"]["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert out.result["welch"]["p"] == pytest.approx(welch.pvalue, rel=1e-9)
    assert out.result["groups"]["no"]["sd"] == pytest.approx(np.std(no, ddof=1), rel=1e-9)


def test_ttest_needs_two_groups() -> None:
    parts = {s: f.assign(g="one") for s, f in sites().items()}
    with pytest.raises(InvalidInput, match="exactly two groups"):
        Consortium(parts).run({"analysis": "ttest", "value": "tsize", "group": "g"})
