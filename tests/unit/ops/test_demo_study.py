"""The demo's study specs, its choice of network, its Flower step and its tables."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from edge_node.policy import parse_policy
from federated_ml.analyses import analysis_for
from federated_ml.analyses.base import parse_spec
from ops import demo, testbed
from ops.demo_data.study import (
    DEMO_STUDIES,
    FLOWER_STUDY,
    LUNG_DATASET,
    M_CATEGORIES,
    N_CATEGORIES,
    STAGES,
    T_CATEGORIES,
    stage_number,
)
from ops.synth.cohort import coarse_stage
from protocol.capture import WIRE_CAPTURE_ENV
from shared_cdm.analysis_dataset import dataset_select, parse_dataset_spec
from shared_cdm.errors import InvalidInput
from shared_cdm.models import Base
from shared_cdm.vocab import load_default


def test_stage_formula_matches_the_vocabulary_for_every_staged_tnm() -> None:
    vocab = load_default()
    checked = 0
    for t in T_CATEGORIES:
        for n in N_CATEGORIES:
            for m in M_CATEGORIES:
                group = vocab.lung_stage_group(t, n, m)
                if group is None:  # e.g. T1mi is N0 M0 by definition
                    continue
                assert stage_number(t, n, m) == STAGES.index(coarse_stage(group)) + 1, (t, n, m)
                checked += 1
    assert checked >= 100


def test_the_dataset_compiles_as_the_sites_receive_it() -> None:
    """Sorted keys (as protocol.serde sends it): each derived field after what it uses."""
    received = json.loads(json.dumps(LUNG_DATASET, sort_keys=True))
    select = dataset_select(parse_dataset_spec(received), Base.metadata)
    names = {c.name for c in select.selected_columns}
    assert {"time", "event", "stage", "stage_iv", "egfr_tki", "egfr_status", "sex"} <= names


def test_a_derived_field_out_of_alphabetical_order_compiles_as_sent() -> None:
    # The sites receive the spec with sorted keys (serde): order must not matter.
    renamed = json.loads(json.dumps(LUNG_DATASET))
    renamed["derived"]["zz_stage_number"] = renamed["derived"].pop("pstage_number")
    renamed["derived"]["stage"]["cut"] = "zz_stage_number"
    received = json.loads(json.dumps(renamed, sort_keys=True))
    assert list(received["derived"]).index("stage") < list(received["derived"]).index(
        "zz_stage_number"
    )
    query = dataset_select(parse_dataset_spec(received), Base.metadata)
    assert "stage" in query.selected_columns


@pytest.mark.parametrize("study", [*DEMO_STUDIES, FLOWER_STUDY], ids=lambda s: s.key)
def test_every_study_is_valid_for_its_analysis(study: demo.DemoStudy) -> None:
    spec = parse_spec(dict(study.spec))
    analysis_for(spec.analysis).validate(spec)
    assert study.spec["dataset"] == "cdm"


def test_demo_policy_lets_ml_studies_run_and_keeps_the_rest() -> None:
    text = demo.demo_policy()
    policy = parse_policy(text)
    assert 'flower = "auto"' in text
    assert policy.min_cell_size == 5
    assert parse_policy(text).analyses["flower"].value == "auto"


def test_choose_network(monkeypatch: pytest.MonkeyPatch) -> None:
    assert demo.choose_network("loopback") == ("loopback", None)

    def refuse() -> None:
        raise testbed.TestbedError("the testbed makes network namespaces: run it as root")

    monkeypatch.setattr(demo.testbed, "check_environment", refuse)
    network, reason = demo.choose_network("auto")
    assert network == "loopback"
    assert reason is not None and "run it as root" in reason and "loopback" in reason
    with pytest.raises(testbed.TestbedError):
        demo.choose_network("testbed")
    monkeypatch.setattr(demo.testbed, "check_environment", lambda: None)
    assert demo.choose_network("auto") == ("testbed", None)


def test_options_are_checked() -> None:
    with pytest.raises(InvalidInput, match="--network"):
        demo.DemoOptions(network="wifi").check()
    with pytest.raises(InvalidInput, match="--patients"):
        demo.DemoOptions(patients=3).check()


class _Runner:
    """Records what the Flower step asks of the federation (unit test only)."""

    def __init__(self, study: dict[str, Any]) -> None:
        self.study = study
        self.submitted: list[Mapping[str, Any]] = []

    def submit(self, spec: Mapping[str, Any], sites: Sequence[str], title: str) -> str:
        self.submitted.append(spec)
        return "s-1"

    def wait(self, study_id: str, sites: Sequence[str], timeout: float) -> dict[str, Any]:
        assert study_id == "s-1"
        return self.study


def _steps() -> demo.Steps:
    return demo.Steps(Console(record=True, width=120))


def test_flower_step_skipped_says_why_and_sends_nothing() -> None:
    runner = _Runner({})
    status, study = demo._flower_step(runner, ["a"], _steps(), False, "no ML study API")
    assert (status, study, runner.submitted) == ("skipped: no ML study API", None, [])


def test_flower_step_runs_the_ml_study_when_available() -> None:
    assert demo.flower_available() == (True, "available")
    finished = {"status": "completed", "result": {"result": {"status": "completed"}}}
    runner = _Runner(finished)
    status, study = demo._flower_step(runner, ["a", "b"], _steps(), True, "available")
    assert status == "completed" and study == finished
    assert runner.submitted == [FLOWER_STUDY.spec]
    failed = _Runner({"status": "failed", "error": "SuperLink down"})
    assert demo._flower_step(failed, ["a"], _steps(), True, "")[0] == "failed: SuperLink down"


def _text(render: Any) -> str:
    console = Console(record=True, width=160)
    render(console)
    return console.export_text()


def test_km_and_cox_tables_and_summaries() -> None:
    km = {
        "groups": {
            "IV": {
                "time": [365.0, 730.0, 1095.0, 1460.0, 1825.0],
                "survival": [0.5, 0.3, 0.2, 0.1, 0.1],
                "at_risk": [40, 20, 12, 6, 4],
                "events": [20, 8, 4, 2, 0],
                "median": 365.0,
            },
            "I": {
                "time": [365.0, 730.0, 1095.0, 1460.0, 1825.0],
                "survival": [0.95, 0.9, 0.85, 0.8, 0.75],
                "at_risk": [30, 28, 25, 22, 20],
                "events": [1, 1, 1, 1, 1],
                "median": None,
            },
        }
    }
    text = _text(lambda c: c.print(demo.km_table(km)))
    assert text.index("I ") < text.index("IV")  # stages in order
    assert "0.85" in text and "0.20" in text and "365.00" in text
    assert demo.km_summary(km) == "3-year survival: stage I 0.85, stage IV 0.20"
    cox = {
        "coef": {"age": 0.03, "stage_iv": 1.5},
        "hr": {"age": 1.03, "stage_iv": 4.48},
        "hr_ci95": {"age": [1.01, 1.05], "stage_iv": [2.0, 9.0]},
        "p": {"age": 0.004, "stage_iv": 0.0001},
    }
    text = _text(lambda c: c.print(demo.cox_table(cox)))
    assert "stage_iv" in text and "4.48" in text and "2.00-9.00" in text
    assert "stage IV multiplies the hazard by 4.48" in demo.cox_summary(cox)


def test_count_table_shows_suppressed_sites_and_the_note() -> None:
    envelope = {
        "sites": [
            {"name": "hospital-1", "n": "suppressed", "status": "ok"},
            {"name": "hospital-2", "n": 9, "status": "ok"},
        ],
        "disclosure": ["count suppressed below the minimum cell size at: hospital-1"],
        "result": {"count": 9, "by_site": {"hospital-1": "suppressed", "hospital-2": 9}},
    }
    text = _text(lambda c: demo.print_study(c, DEMO_STUDIES[1], envelope))
    assert "suppressed" in text and "all sites" in text
    assert "disclosure: count suppressed below the minimum cell size" in text


def _refusing_up(*_: object, **__: object) -> None:
    raise testbed.TestbedError("ip netns add: Operation not permitted")


def test_auto_falls_back_to_loopback_when_the_testbed_cannot_be_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(demo.testbed, "check_environment", lambda: None)
    monkeypatch.setattr(demo.testbed, "up", _refusing_up)
    ran: dict[str, Any] = {}

    def loopback(
        out: Console,
        steps: demo.Steps,
        options: demo.DemoOptions,
        root: Path,
        capture: Path,
        *rest: object,
    ) -> str:
        ran.update(root=root, capture=capture, env=os.environ.get(WIRE_CAPTURE_ENV))
        return "ran on loopback"

    monkeypatch.setattr(demo, "_run_on_loopback", loopback)
    progress = Console(record=True, width=200)
    options = demo.DemoOptions(workdir=tmp_path / "run", network="auto", flower=False)
    result = demo.run_demo(out=Console(record=True), progress=progress, options=options)
    assert result == "ran on loopback"
    assert ran["root"] == (tmp_path / "run" / "loopback").resolve()
    assert ran["env"] == str(ran["capture"]) and ran["capture"].parent == ran["root"]
    assert "Operation not permitted" in progress.export_text()
    assert WIRE_CAPTURE_ENV not in os.environ  # restored afterwards

    asked = demo.DemoOptions(workdir=tmp_path / "again", network="testbed", flower=False)
    with pytest.raises(testbed.TestbedError, match="not permitted"):
        demo.run_demo(out=Console(record=True), progress=progress, options=asked)


def test_wire_section_says_what_the_capture_does_not_see() -> None:
    from ops.wire_report import check_no_patient_rows, summarise

    summary, check = summarise([]), check_no_patient_rows([], {"hospital-1": {"ab" * 16}})
    with_flower = _text(lambda c: demo.print_wire(c, summary, check, True))
    assert "SuperLink" in with_flower and "No patient-level content crossed" in with_flower
    assert "SuperLink" not in _text(lambda c: demo.print_wire(c, summary, check, False))
