"""`oncofed-ops demo` end to end on loopback: three synthetic hospitals through the edge
pipeline, a hub and three edges (real processes, mutual TLS), the lung-cancer study,
and the wire summary checked against the capture it was made from.

Small hospitals and no Flower step keep it within CI's budget; the Flower step has
its own test (tests/integration/federated_ml/test_ml_study.py) and the demo's
wiring of it a unit test.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from ops.demo import DemoOptions, DemoOutcome, run_demo
from ops.demo_data.study import COX_COVARIATES, STAGES
from protocol.capture import REQUEST, RESPONSE, read_capture

# Three edge pipelines and a federation: long on a busy 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PATIENTS = 40
MIN_CELL = 5  # the default policy's minimum cell size


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoOutcome, str]:
    root = tmp_path_factory.mktemp("demo") / "run"
    out = Console(record=True, width=160, file=open("/dev/null", "w"))  # noqa: SIM115
    progress = Console(stderr=True, log_path=False)
    options = DemoOptions(
        workdir=root, network="loopback", patients=PATIENTS, keep_running=False, flower=False
    )
    outcome = run_demo(out=out, progress=progress, options=options)
    print(f"\ndemo seconds: {outcome.seconds}")
    return outcome, out.export_text()


def _result(outcome: DemoOutcome, key: str) -> dict[str, Any]:
    study = outcome.studies[key]
    assert study["status"] == "completed", (key, study.get("error"))
    return dict(study["result"])


def test_every_site_answered_and_counts_add_up(demo: tuple[DemoOutcome, str]) -> None:
    outcome, _ = demo
    assert outcome.network == "loopback"
    assert set(outcome.sites.values()) == {"A", "B", "C"}
    envelope = _result(outcome, "count")
    statuses = {s["name"]: s["status"] for s in envelope["sites"]}
    assert statuses == dict.fromkeys(outcome.sites, "ok"), envelope.get("disclosure")
    by_site = envelope["result"]["by_site"]
    assert all(isinstance(n, int) and n >= MIN_CELL for n in by_site.values()), by_site
    assert envelope["result"]["count"] == sum(by_site.values()) == envelope["n"]
    for site, n in by_site.items():
        assert n <= outcome.persons[site]  # lung-cancer patients among the CDM's persons
    # the same cohort under every aggregate analysis
    for key in ("describe", "kaplan_meier", "cox"):
        assert _result(outcome, key)["n"] == envelope["n"], key


def test_the_small_cohort_shows_the_minimum_cell_size(demo: tuple[DemoOutcome, str]) -> None:
    outcome, printed = demo
    envelope = _result(outcome, "count_small")
    by_site = envelope["result"]["by_site"]
    for n in by_site.values():
        assert n == "suppressed" or (isinstance(n, int) and n >= MIN_CELL), by_site
    released = [n for n in by_site.values() if isinstance(n, int)]
    assert envelope["result"]["count"] == sum(released)
    assert envelope["result"]["count"] < _result(outcome, "count")["n"]
    if "suppressed" in by_site.values():
        assert "suppressed" in printed and "minimum cell size" in printed


def test_descriptive_table(demo: tuple[DemoOutcome, str]) -> None:
    outcome, printed = demo
    variables = _result(outcome, "describe")["result"]["variables"]
    n = _result(outcome, "count")["n"]
    assert variables["age"]["type"] == "numeric" and variables["age"]["n"] == n
    assert 40 < variables["age"]["mean"] < 85
    stages = variables["stage"]["counts"]
    assert set(stages) <= set(STAGES)
    assert set(variables["sex"]["counts"]) <= {"male", "female", "unknown"}
    assert "egfr_status" in printed and "mean" in printed


def test_kaplan_meier_by_stage(demo: tuple[DemoOutcome, str]) -> None:
    outcome, printed = demo
    envelope = _result(outcome, "kaplan_meier")
    groups = envelope["result"]["groups"]
    assert set(groups) <= set(STAGES) and len(groups) >= 2
    assert sum(g["at_risk"][0] for g in groups.values()) == envelope["n"]
    for name, g in groups.items():
        survival = g["survival"]
        assert len(survival) == len(g["time"]) > 0, name
        assert all(0.0 <= s <= 1.0 for s in survival), name
        assert all(a >= b for a, b in itertools.pairwise(survival)), name
    assert "3-year survival" in printed


def test_cox_model_finds_the_stage_iv_effect(demo: tuple[DemoOutcome, str]) -> None:
    outcome, printed = demo
    result = _result(outcome, "cox")["result"]
    assert list(result["coef"]) == list(COX_COVARIATES)
    assert all(se > 0 and math.isfinite(se) for se in result["se"].values())
    # the generator's log hazard ratio of stage IV is 2.2 against stage I, 0.6-1.3 for II-III
    assert result["coef"]["stage_iv"] > 0, result["coef"]
    assert result["hr"]["stage_iv"] == pytest.approx(math.exp(result["coef"]["stage_iv"]))
    assert "stage IV multiplies the hazard" in printed


def test_flower_step_says_it_was_skipped(demo: tuple[DemoOutcome, str]) -> None:
    outcome, printed = demo
    assert outcome.flower == "skipped: --no-flower"
    assert "skipped: --no-flower" in printed


def test_wire_summary_counts_equal_the_capture(demo: tuple[DemoOutcome, str]) -> None:
    outcome, printed = demo
    summary, captured = outcome.wire, outcome.captured
    assert summary is not None and outcome.patient_check is not None
    # what was summarised is what the capture file holds (it only grew afterwards)
    on_disk = read_capture(outcome.workdir / "wire-capture.jsonl")
    assert on_disk[: len(captured)] == list(captured)
    at_hub = [m for m in captured if m.side == "hub" and m.direction in (REQUEST, RESPONSE)]
    assert summary.vantage == "hub"
    assert summary.messages == len(at_hub)
    assert summary.bytes == sum(len(m.data) for m in at_hub)
    expected = Counter((m.method.rsplit("/", 1)[1], m.direction) for m in at_hub)
    got = {
        (line.method, REQUEST if line.direction.startswith("edge") else RESPONSE): line.count
        for line in summary.lines
    }
    assert got == dict(expected)
    assert {"Register", "PullTasks", "SubmitResult"} <= {line.method for line in summary.lines}
    edge_sides = {m.side for m in captured} - {"hub"}
    assert edge_sides == {f"edge {site}" for site in outcome.sites}
    # no patient-level content: checked against every site's pseudonyms, none printed
    check = outcome.patient_check
    assert check.clean, check.statement()
    assert check.persons == outcome.persons and all(n > 0 for n in check.persons.values())
    assert "No patient-level content crossed" in printed
    assert f"{summary.messages}" in printed


def test_the_work_folder_holds_what_the_demo_left(demo: tuple[DemoOutcome, str]) -> None:
    outcome, _ = demo
    root: Path = outcome.workdir
    for site in outcome.sites:
        assert (root / "federation" / "edges" / site / "analysis.db").is_file()
        assert (root / "hospitals" / site / "mapping.yaml").is_file()
    assert (root / "federation" / "hub" / "hub.db").is_file()
