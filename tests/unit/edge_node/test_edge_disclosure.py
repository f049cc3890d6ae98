"""Disclosure control: exact outputs at the boundary and a property over random data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_node.disclosure import control, suppress_cells
from edge_node.policy import Policy
from federated_ml.analyses.base import SUPPRESSED
from federated_ml.analyses.describe import local_variable
from shared_cdm.errors import Refused

K = 5
POLICY = Policy(min_cell_size=K)


def test_count_just_below_k_is_suppressed() -> None:
    released = control("count", {"n": K - 1}, POLICY)
    assert released.payload == {"n": SUPPRESSED, "suppressed": True}
    assert len(released.notes) == 1
    assert "minimum cell size (5)" in released.notes[0]


def test_count_at_k_is_released() -> None:
    released = control("count", {"n": K}, POLICY)
    assert released.payload == {"n": K}
    assert released.notes == ()


def test_count_of_zero_is_suppressed_too() -> None:
    assert control("count", {"n": 0}, POLICY).payload == {"n": SUPPRESSED, "suppressed": True}


def _describe(n: int, variables: dict[str, Any], excluded: int = 0) -> dict[str, Any]:
    return {"n": n, "variables": variables, "n_excluded_missing": excluded}


def test_describe_below_k_replaces_everything() -> None:
    payload = _describe(
        K - 1, {"age": {"type": "numeric", "n": K - 1, "sum": 10.0, "sum_sq": 30.0}}, 7
    )
    assert control("describe", payload, POLICY).payload == {"n": SUPPRESSED, "suppressed": True}


def test_describe_at_k_releases_sums_and_withholds_extremes() -> None:
    age = {"type": "numeric", "n": K, "sum": 300.0, "sum_sq": 18100.0, "min": 51.0, "max": 70.0}
    released = control("describe", _describe(K, {"age": age}, excluded=K), POLICY)
    assert released.payload == {
        "n": K,
        "n_excluded_missing": K,
        "variables": {"age": {"type": "numeric", "n": K, "sum": 300.0, "sum_sq": 18100.0}},
    }
    assert released.notes == ("age: minimum and maximum withheld (individual values)",)


def test_describe_releases_extremes_when_the_policy_allows() -> None:
    age = {"type": "numeric", "n": K, "sum": 300.0, "sum_sq": 18100.0, "min": 51.0, "max": 70.0}
    released = control("describe", _describe(K, {"age": age}, K), Policy(K, release_extremes=True))
    assert released.payload["variables"]["age"] == age


def test_excluded_missing_below_k_is_suppressed() -> None:
    released = control("describe", _describe(10, {}, excluded=K - 1), POLICY)
    assert released.payload["n_excluded_missing"] == SUPPRESSED
    assert released.payload["n"] == 10
    assert any("missing" in note for note in released.notes)


def test_category_at_k_is_released_and_below_k_with_its_partner_is_not() -> None:
    sex = {"type": "categorical", "n": 25, "counts": {"F": K - 1, "M": 21}}
    stage = {"type": "categorical", "n": 25, "counts": {"I": K, "II": 10, "III": 10}}
    released = control("describe", _describe(25, {"sex": sex, "stage": stage}), POLICY)
    variables = released.payload["variables"]
    # F alone would be 25 - 21: M goes too (secondary suppression).
    assert variables["sex"]["counts"] == {"F": SUPPRESSED, "M": SUPPRESSED}
    assert variables["stage"]["counts"] == {"I": K, "II": 10, "III": 10}
    assert any(
        note.startswith("sex: 1 category below 5 suppressed, 1 more suppressed")
        for note in released.notes
    )
    assert not any(note.startswith("stage") for note in released.notes)


def test_secondary_suppression_takes_the_next_smallest() -> None:
    counts, primary, secondary = suppress_cells({"a": 2, "b": 9, "c": 7, "d": 30}, K)
    assert counts == {"a": SUPPRESSED, "b": 9, "c": SUPPRESSED, "d": 30}
    assert (primary, secondary) == (1, 1)


def test_two_small_cells_whose_sum_is_below_k_pull_in_a_third() -> None:
    # 1 and 1 hidden would still reveal "2 between them" (each therefore 1).
    counts, primary, secondary = suppress_cells({"a": 1, "b": 1, "c": 6, "d": 30}, K)
    assert counts == {"a": SUPPRESSED, "b": SUPPRESSED, "c": SUPPRESSED, "d": 30}
    assert (primary, secondary) == (2, 1)


def test_two_small_cells_adding_up_to_k_need_no_partner() -> None:
    counts, _, secondary = suppress_cells({"a": 2, "b": 3, "c": 30}, K)
    assert counts == {"a": SUPPRESSED, "b": SUPPRESSED, "c": 30}
    assert secondary == 0


def test_an_analysis_without_a_rule_is_refused() -> None:
    with pytest.raises(Refused, match="survival_forest"):
        control("survival_forest", {"n": 100, "events": [1, 2]}, POLICY)


def test_sums_only_analysis_needs_a_row_count() -> None:
    with pytest.raises(Refused, match="row count"):
        control("cox", {"gradient": [0.1]}, POLICY)
    with pytest.raises(Refused, match="fewer rows than its minimum cell size"):
        control("cox", {"n": K - 1, "events": K - 1, "gradient": [0.1]}, POLICY)
    released = control("cox", {"n": K, "events": K, "gradient": [0.1]}, POLICY)
    assert released.payload["gradient"] == [0.1]


# --- property: no released count below k, directly or by difference ---------------------------

_categories = st.sampled_from(["a", "b", "c", "d", "e", "f", "男", "女"])
_numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def _describe_payloads(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(min_value=0, max_value=60))
    variables: dict[str, Any] = {}
    for i in range(draw(st.integers(min_value=1, max_value=3))):
        values = draw(st.lists(_categories if i % 2 else _numbers, min_size=n, max_size=n))
        variables[f"v{i}"] = local_variable(pd.Series(values, dtype=object if i % 2 else float))
    excluded = draw(st.integers(min_value=0, max_value=30))
    return {"n": n, "variables": variables, "n_excluded_missing": excluded}


def _counts(payload: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every value that is a count: n, n_excluded_missing and category cells."""
    if isinstance(payload, dict):
        for k, v in payload.items():
            if k in ("n", "n_excluded_missing"):
                yield k, v
            if k == "counts" and isinstance(v, dict):
                yield from ((f"counts.{c}", x) for c, x in v.items())
            else:
                yield from _counts(v, k)


@settings(max_examples=300, deadline=None)
@given(payload=_describe_payloads(), k=st.integers(min_value=2, max_value=20))
def test_no_released_count_is_below_k(payload: dict[str, Any], k: int) -> None:
    policy = Policy(min_cell_size=k)
    released = control("describe", payload, policy).payload
    for where, value in _counts(released):
        assert value == SUPPRESSED or (isinstance(value, int) and value >= k), (where, value)
    for var in released.get("variables", {}).values():
        assert "min" not in var and "max" not in var
        counts = var.get("counts")
        if counts and isinstance(var.get("n"), int):
            hidden = var["n"] - sum(c for c in counts.values() if c != SUPPRESSED)
            # What the suppressed cells add up to is derivable; it must not be small.
            assert hidden == 0 or hidden >= k
            assert list(counts.values()).count(SUPPRESSED) != 1


@settings(max_examples=200, deadline=None)
@given(n=st.integers(min_value=0, max_value=100), k=st.integers(min_value=2, max_value=20))
def test_no_released_count_is_below_k_for_count(n: int, k: int) -> None:
    released = control("count", {"n": n}, Policy(min_cell_size=k)).payload
    assert released["n"] == SUPPRESSED if n < k else released["n"] == n
