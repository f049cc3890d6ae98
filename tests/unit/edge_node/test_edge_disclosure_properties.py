"""Property: for random datasets, random cohort trees and random minimum cell sizes,
no count that count, describe (with histograms), crosstab or time-grid KM releases is
below k (suppressed markers aside), and suppressed cells cannot be recovered from
their row, column or variable total. Rows are selected by the real SQL path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_node.disclosure import control
from edge_node.policy import Policy
from edge_node.selection import select_rows
from federated_ml.analyses import analysis_for
from federated_ml.analyses.base import SUPPRESSED, parse_spec
from shared_cdm.db import make_engine
from shared_cdm.errors import Refused

STAGES = ["I", "II", "III", "IV"]
KM_EDGES = [500.0, 1000.0, 1500.0, 2000.0]
SPECS: dict[str, dict[str, Any]] = {
    "count": {"analysis": "count"},
    "describe": {
        "analysis": "describe",
        "variables": ["age", "stage"],
        "histograms": {"age": [20, 40, 60, 80, 100]},
    },
    "crosstab": {"analysis": "crosstab", "rows": "stage", "cols": "sex"},
    "kaplan_meier": {"analysis": "kaplan_meier", "time": "time", "event": "status"},
}


@st.composite
def tables(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(min_value=0, max_value=60))
    col = lambda s: draw(st.lists(s, min_size=n, max_size=n))  # noqa: E731
    return pd.DataFrame(
        {
            "age": col(st.one_of(st.none(), st.integers(20, 99))),
            "sex": col(st.sampled_from(["m", "f"])),
            "stage": col(st.one_of(st.none(), st.sampled_from(STAGES))),
            "time": col(st.integers(1, 2000)),
            "status": col(st.integers(0, 1)),
        }
    ).astype({"age": float, "sex": object, "stage": object, "time": int, "status": int})


_leaves = st.one_of(
    st.builds(
        lambda op, v: {"field": "age", "op": op, "value": v},
        st.sampled_from([">=", "<", "!="]),
        st.integers(20, 99),
    ),
    st.builds(lambda v: {"field": "sex", "op": "=", "value": v}, st.sampled_from(["m", "f"])),
    st.builds(
        lambda v: {"field": "stage", "op": "in", "value": v},
        st.lists(st.sampled_from(STAGES), min_size=1, max_size=3, unique=True),
    ),
    st.builds(lambda t: {"field": "time", "op": ">", "value": t}, st.integers(1, 2000)),
)
trees = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.builds(lambda c: {"all": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"any": c}, st.lists(children, min_size=1, max_size=3)),
    ),
    max_leaves=5,
)


def _km_spec(base: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return base, {"phase": "grid", "edges": KM_EDGES}


def released_payload(
    frame: pd.DataFrame, name: str, where: Any, k: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(local payload before control, released payload) for one random case."""
    engine = make_engine("sqlite://")
    try:
        frame.to_sql("ds_default", engine, index=False)
        table = sa.Table("ds_default", sa.MetaData(), autoload_with=engine)
        raw, params = dict(SPECS[name]), {}
        if name == "kaplan_meier":
            raw, params = _km_spec(raw)
        if where is not None:
            raw["where"] = where
        spec = parse_spec(raw)
        analysis = analysis_for(spec.analysis)
        columns = analysis.columns(spec)
        rows = select_rows(engine, table, spec, columns)
        payload = analysis.local(rows.frame, spec, params)
        if columns:
            payload["n_excluded_missing"] = rows.n_excluded_missing
        try:
            return payload, control(name, payload, Policy(min_cell_size=k), params).payload
        except Refused:
            return payload, {}  # the site takes no part: nothing is released
    finally:
        engine.dispose()


def counts_in(payload: Any, path: str = "") -> Iterator[tuple[str, Any, bool]]:
    """(where, value, zero allowed) for every released count."""
    if not isinstance(payload, dict):
        return
    for key, value in payload.items():
        here = f"{path}.{key}"
        if key in ("n", "n_excluded_missing"):
            yield here, value, False
        elif key in ("counts", "histogram"):
            yield from ((f"{here}.{c}", v, False) for c, v in value.items())
        elif key == "cells":
            for r, row in value.items():
                yield from ((f"{here}.{r}.{c}", v, True) for c, v in row.items())
        elif key == "bins":
            for level, b in value.items():
                yield from ((f"{here}.{level}", v, True) for v in [*b["d"], *b["c"]])
        elif isinstance(value, dict):
            yield from counts_in(value, here)


def hidden_lines_are_safe(raw: dict[str, int], released: dict[str, Any], k: int) -> bool:
    hidden = [raw[c] for c, v in released.items() if v == SUPPRESSED]
    return not hidden or (len(hidden) >= 2 and sum(hidden) >= k) or len(hidden) == len(raw)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=tables(),
    where=st.one_of(st.none(), trees),
    name=st.sampled_from(sorted(SPECS)),
    k=st.integers(min_value=2, max_value=12),
)
def test_no_released_count_is_below_k(frame: pd.DataFrame, where: Any, name: str, k: int) -> None:
    raw, released = released_payload(frame, name, where, k)
    for place, value, zero_ok in counts_in(released):
        ok = value == SUPPRESSED or (
            isinstance(value, int) and (value >= k or (zero_ok and value == 0))
        )
        assert ok, (place, value)
    if not released or released.get("suppressed"):
        return
    if name == "describe":
        for var, stats in released["variables"].items():
            for key in ("counts", "histogram"):
                if key in stats:
                    assert hidden_lines_are_safe(raw["variables"][var][key], stats[key], k)
    if name == "crosstab":
        cells, out = raw["cells"], released["cells"]
        for r in cells:
            assert hidden_lines_are_safe(cells[r], out[r], k)
        for c in {c for row in cells.values() for c in row}:
            column = {r: cells[r][c] for r in cells}
            assert hidden_lines_are_safe(column, {r: out[r][c] for r in cells}, k)
    if name == "kaplan_meier" and "invalid_bins" in released:
        assert set(released) == {"n", "edges", "invalid_bins"}
