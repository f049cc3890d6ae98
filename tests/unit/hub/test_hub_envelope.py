from __future__ import annotations

import json
import math

import numpy as np
import pytest

import federated_ml
import shared_cdm
from federated_ml.analyses import Finished
from hub.db.models import TaskStatus
from hub.studies.envelope import SiteOutcome, build_envelope, json_safe, site_n
from hub.studies.provenance import SiteProvenance
from protocol.messages import PROTOCOL_VERSION


def _site(name: str, status: TaskStatus, payload: dict[str, object] | None) -> SiteOutcome:
    return SiteOutcome(name, status, payload, "", ())


def test_json_safe_turns_non_finite_and_numpy_values_into_plain_json() -> None:
    value = {"a": math.nan, "b": [np.float64(1.5), np.int64(3), math.inf], "c": (1, "x")}
    cleaned = json_safe(value)
    assert cleaned == {"a": None, "b": [1.5, 3, None], "c": [1, "x"]}
    json.dumps(cleaned, allow_nan=False)
    with pytest.raises(TypeError):
        json_safe({"x": object()})


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (_site("A", TaskStatus.OK, {"n": 12}), 12),
        (_site("A", TaskStatus.OK, {"n": "suppressed", "suppressed": True}), "suppressed"),
        (_site("A", TaskStatus.OK, {"n": True}), "suppressed"),
        (_site("A", TaskStatus.OK, {}), "suppressed"),
        (_site("A", TaskStatus.REFUSED, None), 0),
        (_site("A", TaskStatus.EXPIRED, None), 0),
    ],
)
def test_site_n(outcome: SiteOutcome, expected: int | str) -> None:
    assert site_n(outcome) == expected


def test_envelope_collects_site_disclosures_and_missing_counts() -> None:
    finished = Finished(result={"mean": math.nan}, n=20, n_excluded_missing=None, disclosure=("x",))
    outcomes = [
        SiteOutcome("B", TaskStatus.OK, {"n": 8, "n_excluded_missing": 2}, "", ("min withheld",)),
        SiteOutcome("A", TaskStatus.OK, {"n": 12, "n_excluded_missing": 1}, "", ()),
        SiteOutcome("C", TaskStatus.EXPIRED, None, "", ()),
    ]
    envelope = build_envelope("describe", finished, outcomes)
    assert envelope["n_excluded_missing"] == 3
    assert [s["name"] for s in envelope["sites"]] == ["A", "B", "C"]
    assert envelope["disclosure"] == [
        "x",
        "site B: min withheld",
        "site C did not answer before the deadline",
    ]
    assert envelope["result"] == {"mean": None}


def test_envelope_carries_versions_and_each_sites_provenance() -> None:
    finished = Finished(result={"count": 20}, n=20, n_excluded_missing=0)
    outcomes = [
        SiteOutcome("A", TaskStatus.OK, {"n": 12}, "", ()),
        SiteOutcome("B", TaskStatus.OK, {"n": 8}, "", ()),
        SiteOutcome("C", TaskStatus.REFUSED, None, "", ()),
    ]
    provenance = {
        "A": SiteProvenance("0.2.0", "5.4-oncofed.1", "2026-01-01", {"completeness": 0.93}),
        "B": SiteProvenance("0.1.0", "5.4-oncofed.1", "v7"),
    }
    envelope = build_envelope("count", finished, outcomes, provenance)
    assert envelope["versions"] == {
        "cdm": shared_cdm.CDM_VERSION,
        "algorithm": federated_ml.ALGORITHM_VERSION,
        "protocol": str(PROTOCOL_VERSION),
    }
    assert envelope["sites"] == [
        {
            "name": "A",
            "n": 12,
            "status": "ok",
            "software_version": "0.2.0",
            "cdm_version": "5.4-oncofed.1",
            "dataset_version": "2026-01-01",
            "data_quality": {"completeness": 0.93},
        },
        {
            "name": "B",
            "n": 8,
            "status": "ok",
            "software_version": "0.1.0",
            "cdm_version": "5.4-oncofed.1",
            "dataset_version": "v7",
        },
        {  # not in the registry: provenance unknown, said so rather than guessed
            "name": "C",
            "n": 0,
            "status": "refused",
            "software_version": "",
            "cdm_version": "",
            "dataset_version": None,
        },
    ]
    contract = {"analysis", "n", "n_excluded_missing", "sites", "disclosure", "result"}
    assert set(envelope) == contract | {"versions"}
