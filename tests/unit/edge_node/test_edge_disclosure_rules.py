"""Each disclosure rule at its boundary (k - 1 refused or suppressed, k released), and the
round checks: minimum sites, secure aggregation allowed, vectors only masked."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge_node.disclosure import check_round, control, participating_sites, suppress_table
from edge_node.policy import Policy
from federated_ml import secure_agg
from federated_ml.analyses import secure_rounds as sr
from federated_ml.analyses.base import SUPPRESSED
from shared_cdm.errors import Refused

K = 5
POLICY = Policy(min_cell_size=K)
MASK = {sr.SECAGG: {"phase": "mask", "context": "c", "peers": {"a": {}, "b": {}, "c": {}}}}


# --- describe: histogram bins -------------------------------------------------------------


def _hist(bins: dict[str, int]) -> dict[str, Any]:
    n = sum(bins.values())
    age = {"type": "numeric", "n": n, "sum": 1.0, "sum_sq": 1.0, "histogram": bins}
    return {"n": n, "variables": {"age": age}}


def test_histogram_bin_at_k_is_released() -> None:
    bins = {"40.0": K, "50.0": 20, "60.0": 9}
    released = control("describe", _hist(bins), POLICY).payload
    assert released["variables"]["age"]["histogram"] == bins


def test_histogram_bin_below_k_takes_its_smallest_neighbour_with_it() -> None:
    released = control("describe", _hist({"40.0": K - 1, "50.0": 20, "60.0": 9}), POLICY)
    hist = released.payload["variables"]["age"]["histogram"]
    assert hist == {"40.0": SUPPRESSED, "50.0": 20, "60.0": SUPPRESSED}
    assert any("age histogram: 1 cell below 5 suppressed, 1 more" in n for n in released.notes)


# --- crosstab -----------------------------------------------------------------------------


def test_crosstab_cell_at_k_is_released() -> None:
    cells = {"I": {"no": K, "yes": 12}, "II": {"no": 30, "yes": 8}}
    released = control("crosstab", {"n": 55, "cells": cells}, POLICY)
    assert released.payload["cells"] == cells
    assert released.notes == ()


def test_crosstab_cell_below_k_is_protected_in_its_row_and_its_column() -> None:
    cells = {"I": {"no": K - 1, "yes": 12, "na": 40}, "II": {"no": 30, "yes": 8, "na": 50}}
    released = control("crosstab", {"n": 144, "cells": cells}, POLICY).payload["cells"]
    # Row I: "no" is small, "yes" (12) goes with it; column "no": 30 goes with it;
    # then row II has one hidden cell, so its smallest other (8) goes, which column "yes"
    # already protects (12 and 8 hidden).
    assert released == {
        "I": {"no": SUPPRESSED, "yes": SUPPRESSED, "na": 40},
        "II": {"no": SUPPRESSED, "yes": SUPPRESSED, "na": 50},
    }


def test_crosstab_zero_cells_are_released_and_rows_stay_protected() -> None:
    table, primary, _secondary = suppress_table({"a": {"x": 0, "y": 2, "z": 9}}, K)
    assert primary == 1
    hidden = [c for c, v in table["a"].items() if v == SUPPRESSED]
    assert len(hidden) >= 2 and "y" in hidden
    assert table["a"]["x"] in (0, SUPPRESSED)


def test_crosstab_below_k_rows_is_all_suppressed() -> None:
    released = control("crosstab", {"n": K - 1, "cells": {"a": {"x": K - 1}}}, POLICY)
    assert released.payload == {"n": SUPPRESSED, "suppressed": True}


# --- ttest ----------------------------------------------------------------------------------


def _groups(a: int, b: int) -> dict[str, Any]:
    return {
        "n": a + b,
        "groups": {
            "x": {"n": a, "sum": 1.0 * a, "sum_sq": 2.0 * a},
            "y": {"n": b, "sum": 3.0 * b, "sum_sq": 9.0 * b},
        },
    }


def test_ttest_groups_at_k_are_released() -> None:
    released = control("ttest", _groups(K, 20), POLICY)
    assert released.payload["groups"]["x"]["n"] == K
    assert released.payload["n"] == K + 20
    assert released.counted_levels is None


def test_ttest_group_below_k_is_suppressed_and_n_counts_only_the_rest() -> None:
    released = control("ttest", _groups(K - 1, 20), POLICY)
    assert released.payload["groups"]["x"] == {"n": SUPPRESSED, "suppressed": True}
    # n = 24 would give the suppressed group's size away as 24 - 20.
    assert released.payload["n"] == 20
    assert released.counted_levels == ("y",)


# --- kaplan_meier / logrank ---------------------------------------------------------------


def test_km_horizon_releases_only_n_levels_and_horizon() -> None:
    payload = {"n": K, "levels": ["a"], "horizon": 300.0, "n_excluded_missing": 7, "x": 1}
    released = control("kaplan_meier", payload, POLICY, {"phase": "horizon"})
    assert released.payload == {
        "n": K,
        "levels": ["a"],
        "horizon": 300.0,
        "n_excluded_missing": 7,
    }


def test_km_site_below_k_refuses_to_take_part() -> None:
    payload = {"n": K - 1, "levels": ["a"], "horizon": 300.0}
    with pytest.raises(Refused, match="fewer rows than its minimum cell size"):
        control("logrank", payload, POLICY, {"phase": "horizon"})


def test_exact_km_refuses_vectors_without_a_mask_round() -> None:
    payload = {"n": 50, sr.SECURE: {"d|all": [1, 0, 2]}}
    for params in ({"phase": "exact"}, {"phase": "exact", **sr.keys_round("c")}):
        with pytest.raises(Refused, match="only masked"):
            control("kaplan_meier", payload, POLICY, params)
        with pytest.raises(Refused, match="mask phase"):
            check_round("kaplan_meier", params, POLICY)
    released = control("kaplan_meier", payload, POLICY, {"phase": "exact", **MASK})
    assert released.payload[sr.SECURE] == {"d|all": [1, 0, 2]}


def test_exact_km_below_k_is_refused_even_masked() -> None:
    with pytest.raises(Refused):
        control("kaplan_meier", {"n": K - 1, sr.SECURE: {"d|all": [1]}}, POLICY, MASK)


def _grid(d: list[int], c: list[int]) -> dict[str, Any]:
    return {"n": sum(d) + sum(c), "edges": [100.0, 200.0, 300.0], "bins": {"all": {"d": d, "c": c}}}


def test_grid_bins_at_k_or_zero_are_released() -> None:
    released = control("kaplan_meier", _grid([K, 0, 9], [0, K, 6]), POLICY, {"phase": "grid"})
    assert released.payload["bins"] == {"all": {"d": [K, 0, 9], "c": [0, K, 6]}}


def test_grid_with_a_bin_below_k_releases_only_where_it_is() -> None:
    released = control("kaplan_meier", _grid([K, 9, 9], [0, K - 1, 6]), POLICY, {"phase": "grid"})
    assert set(released.payload) == {"n", "edges", "invalid_bins"}
    assert released.payload["invalid_bins"] == [1]


# --- cox / logistic -------------------------------------------------------------------------


def _terms(n: int, events: int, p: int = 1) -> dict[str, Any]:
    return {
        "n": n,
        "events": events,
        "loglik": -1.0,
        "gradient": [0.1] * p,
        "information": [[1.0] * p] * p,
    }


def test_cox_needs_k_events() -> None:
    assert control("cox", _terms(20, K), POLICY).payload["events"] == K
    with pytest.raises(Refused, match="event count"):
        control("cox", _terms(20, K - 1), POLICY)


def test_cox_withholds_the_event_count_when_it_would_reveal_few_censored() -> None:
    assert control("cox", _terms(20, 20), POLICY).payload["events"] == 20  # none censored
    assert control("cox", _terms(20, 20 - K), POLICY).payload["events"] == 20 - K
    few = control("cox", _terms(20, 20 - K + 1), POLICY)
    assert few.payload["events"] == SUPPRESSED
    assert few.payload["n"] == 20 and "gradient" in few.payload
    assert any("withheld" in note for note in few.notes)


def test_logistic_needs_k_in_each_outcome_class() -> None:
    assert control("logistic", _terms(20, K), POLICY).payload["events"] == K
    assert control("logistic", _terms(20, 20 - K), POLICY).payload["events"] == 20 - K
    for events in (K - 1, 20 - K + 1):
        with pytest.raises(Refused, match="outcome class"):
            control("logistic", _terms(20, events), POLICY)


def test_parameters_at_most_one_third_of_the_rows() -> None:
    policy = Policy(min_cell_size=2)
    assert control("logistic", _terms(9, 4, p=3), policy).payload["n"] == 9
    with pytest.raises(Refused, match="4 parameters"):
        control("logistic", _terms(9, 4, p=4), policy)
    with pytest.raises(Refused, match="parameters"):
        control("cox", _terms(11, 4, p=4), policy)
    relaxed = Policy(min_cell_size=2, max_parameters_ratio=0.5)
    assert control("cox", _terms(8, 4, p=4), relaxed).payload["n"] == 8


def test_pooled_cox_sums_go_only_masked_with_k_events_and_few_parameters() -> None:
    sums = {"n": 30, sr.SECURE: {"it0|a0": [1, 2], "it0|d": [3, 2]}}
    params = {"phase": "sums", "beta": [0.0], **MASK}
    assert control("cox", sums, POLICY, params).payload[sr.SECURE]["it0|d"] == [3, 2]
    with pytest.raises(Refused, match="only masked"):
        control("cox", sums, POLICY, {"phase": "sums", "beta": [0.0]})
    few = {"n": 30, sr.SECURE: {"it0|d": [2, 2]}}
    with pytest.raises(Refused, match="event count"):
        control("cox", few, POLICY, params)
    with pytest.raises(Refused, match="parameters"):
        control("cox", sums, POLICY, {**params, "beta": [0.0] * 11})


# --- rounds: minimum sites, secure aggregation ------------------------------------------------


def test_min_sites_from_the_hubs_n_sites() -> None:
    strict = Policy(min_cell_size=K, min_sites=3)
    check_round("count", {"n_sites": 3}, strict)
    check_round("count", {}, strict)  # the round does not say: accepted
    with pytest.raises(Refused, match="2 site"):
        check_round("count", {"n_sites": 2}, strict)
    check_round("count", {"n_sites": 2}, Policy(min_sites=2))
    check_round("count", {"n_sites": 1}, POLICY)  # by default the hub's minimum rules
    with pytest.raises(Refused, match="at least 4"):
        check_round("describe", {"n_sites": 3}, Policy(min_sites=4))


def test_min_sites_from_a_mask_rounds_peers() -> None:
    assert participating_sites(MASK) == 3
    with pytest.raises(Refused, match="at least 4"):
        check_round("kaplan_meier", {"phase": "exact", **MASK}, Policy(min_sites=4))


def test_a_site_that_does_not_allow_secure_aggregation_refuses_its_rounds() -> None:
    no = Policy(allow_secure_aggregation=False)
    with pytest.raises(Refused, match="allow_secure_aggregation"):
        check_round("kaplan_meier", {"phase": "horizon", **sr.keys_round("c")}, no)
    check_round("kaplan_meier", {"phase": "grid", "edges": [1.0]}, no)


def test_pooled_cox_counts_events_in_lane_encoded_vectors() -> None:
    params = {"phase": "sums", "beta": [0.0], **MASK}
    lanes = {"n": 30, sr.SECURE: {"it0|d": secure_agg.int_lanes(np.array([3, 2, 0]))}}
    assert control("cox", lanes, POLICY, params).payload["n"] == 30
    few = {"n": 30, sr.SECURE: {"it0|d": secure_agg.int_lanes(np.array([2, 2, 0]))}}
    with pytest.raises(Refused, match="event count"):
        control("cox", few, POLICY, params)


def test_cox_concordance_round_releases_pair_counts_only_with_k_rows() -> None:
    pairs = {"concordant": 40, "discordant": 12, "tied": 1}
    out = control("cox", {"n": 20, "concordance": pairs, "extra": "x"}, POLICY)
    assert out.payload == {"n": 20, "concordance": pairs}
    with pytest.raises(Refused):
        control("cox", {"n": K - 1, "concordance": pairs}, POLICY)
