import math

import numpy as np
import pandas as pd
import pytest

from federated_ml.analyses import analysis_for
from federated_ml.analyses.base import SUPPRESSED, Finished, parse_spec
from shared_cdm.errors import InvalidInput


def _frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(7)
    return {
        s: pd.DataFrame(
            {
                "age": rng.normal(62, 9, size=n).round(1),
                "stage": rng.choice(["I", "II", "III", "IV"], size=n),
            }
        )
        for s, n in {"A": 40, "B": 75, "C": 23}.items()
    }


def test_describe_pooled_equals_pandas_on_all_rows() -> None:
    frames = _frames()
    spec = parse_spec({"analysis": "describe", "variables": ["age", "stage"]})
    describe = analysis_for("describe")
    payloads = {s: describe.local(f, spec, {}) for s, f in frames.items()}
    out = describe.step(spec, {}, payloads)
    assert isinstance(out, Finished)
    pooled = pd.concat(frames.values())
    age = out.result["variables"]["age"]
    assert age["n"] == len(pooled)
    assert math.isclose(age["mean"], pooled["age"].mean(), rel_tol=1e-12)
    assert math.isclose(age["sd"], pooled["age"].std(ddof=1), rel_tol=1e-9)
    stage = out.result["variables"]["stage"]
    assert stage["counts"] == pooled["stage"].value_counts().sort_index().to_dict()


def test_describe_marks_suppressed_categories_and_sites() -> None:
    spec = parse_spec({"analysis": "describe", "variables": ["stage"]})
    payloads = {
        "A": {
            "n": 30,
            "variables": {
                "stage": {"type": "categorical", "n": 30, "counts": {"I": 27, "IV": SUPPRESSED}}
            },
        },
        "B": {
            "n": 20,
            "variables": {"stage": {"type": "categorical", "n": 20, "counts": {"I": 12, "IV": 8}}},
        },
        "C": {"n": SUPPRESSED, "suppressed": True},
    }
    out = analysis_for("describe").step(spec, {}, payloads)
    stage = out.result["variables"]["stage"]
    assert stage["counts"] == {"I": 39, "IV": 8}
    assert stage["incomplete_categories"] == ["IV"]
    assert out.n == 50
    assert any("site C" in d for d in out.disclosure)


def test_describe_needs_variables() -> None:
    with pytest.raises(InvalidInput, match="variable"):
        analysis_for("describe").validate(parse_spec({"analysis": "describe"}))


def test_count_total_excludes_suppressed_sites_and_says_so() -> None:
    spec = parse_spec({"analysis": "count"})
    out = analysis_for("count").step(
        spec, {}, {"A": {"n": 12}, "B": {"n": SUPPRESSED, "suppressed": True}, "C": {"n": 7}}
    )
    assert out.result["count"] == 19
    assert out.result["by_site"] == {"A": 12, "B": SUPPRESSED, "C": 7}
    assert out.result["complete"] is False
    assert "B" in out.disclosure[0]


def test_unknown_analysis_lists_known_ones() -> None:
    with pytest.raises(InvalidInput, match="count"):
        analysis_for("kaplan_meyer")


def test_describe_histogram_pools_bins_and_labels_quantiles_approximate() -> None:
    frames = _frames()
    spec = parse_spec({"analysis": "describe", "variables": ["age"], "histograms": {"age": 5}})
    describe = analysis_for("describe")
    out = describe.step(spec, {}, {s: describe.local(f, spec, {}) for s, f in frames.items()})
    age = out.result["variables"]["age"]
    pooled = pd.concat(frames.values())["age"]
    lows = np.floor(pooled / 5) * 5
    expected = lows.value_counts().sort_index()
    assert [(b["low"], b["count"]) for b in age["histogram"]] == list(
        zip(expected.index.tolist(), expected.tolist(), strict=True)
    )
    assert all(b["high"] - b["low"] == 5 for b in age["histogram"])
    assert abs(age["quantiles_approximate"]["q50"] - pooled.median()) < 5
    assert age["histogram_complete"] is True
