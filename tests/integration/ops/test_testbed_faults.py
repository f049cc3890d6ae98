"""Faults on the testbed: what real networks and hospitals do to a study.

One testbed (hub, two hospitals, every service) is shared by the module and torn
down by its finalizer even when a test fails. Each test leaves it as it found it
(links up, no delay, every service running), except the last two: one leaves
the hub on a short task deadline, the other revokes a certificate. A
multi-round Cox study run once undisturbed is the reference every disturbed run
must equal.
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ops import testbed as tb
from ops.local_federation import hub_settings_for_local_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # one testbed: its set-up is long

REPO = Path(__file__).resolve().parents[3]
ENSURE = REPO / "ops" / "scripts" / "ensure_wireguard.sh"
SITES = ["hospital-1", "hospital-2"]
TASK_DEADLINE_S = 60  # the configured deadline every study here must finish within
SHORT_DEADLINE_S = 1
STUDY_TIMEOUT = 120.0
CUT_S = 6.0  # long enough for several of the edge's polls (0.5 s) and retries to fail
SLOW_S = 0.3  # each way, so every round trip is 0.6 s longer
# Each way twice the short deadline's half: no answer can come back in time
# (the task reaches the site >= delay after dispatch, the answer the hub >= 2 x delay).
TOO_SLOW_S = 0.6
COVARIATES = ["age", "male"]
CDM_DATASET = {
    "index": {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C"},
    "outcome": {"event": "death", "censor": "last_contact"},
    "covariates": {"age": {"field": "age"}, "sex": {"field": "sex"}},
    "derived": {"male": {"map": "sex", "values": {"male": 1, "female": 0}}},
}
# `no_cache`: the hub would otherwise hand back the reference without asking the sites.
COX: dict[str, Any] = {
    "analysis": "cox",
    "dataset": "cdm",
    "cdm_dataset": CDM_DATASET,
    "time": "time",
    "event": "event",
    "covariates": COVARIATES,
    "no_cache": True,
}


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> tb.Testbed:
    if os.geteuid() != 0:
        pytest.fail("the testbed tests make network namespaces and must run as root")
    done = subprocess.run(["bash", str(ENSURE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"ensure_wireguard.sh failed: {done.stderr}"
    # Both sites must answer every round (a site missing fails the study, naming it).
    min_sites = {**hub_settings_for_local_run()["min_sites"], "cox": 2}  # type: ignore[dict-item]
    options = tb.TestbedOptions(
        sites=len(SITES),
        patients=20,
        hub_settings={
            "task_deadline_s": TASK_DEADLINE_S,
            "sweep_interval_s": 0.5,
            "min_sites": min_sites,
        },
    )
    testbed = tb.Testbed.up(tmp_path_factory.mktemp("faults") / "bed", options, lambda _: None)

    def down() -> None:
        left = testbed.down(keep_files=True)  # logs kept for a failure
        assert left == [], f"testbed {testbed.state.id} left behind: {left}"

    request.addfinalizer(down)
    return testbed


@pytest.fixture(scope="module")
def reference(bed: tb.Testbed) -> dict[str, Any]:
    """The Cox study undisturbed: completed, every site answering, several rounds."""
    study = bed.wait_for_study(bed.submit_study(COX, SITES), timeout=STUDY_TIMEOUT)
    assert study["status"] == "completed", study.get("error")
    assert study["round"] >= 2, "the reference study should take several rounds"
    envelope = study["result"]
    assert [(s["name"], s["status"]) for s in envelope["sites"]] == [(s, "ok") for s in SITES]
    assert all(s["n"] > 0 for s in envelope["sites"])
    assert envelope["n"] == sum(s["n"] for s in envelope["sites"])
    return dict(envelope)


def assert_same_result(study: dict[str, Any], reference: dict[str, Any]) -> None:
    """Coefficients to 1e-8 and every row counted once: the same n, site by site."""
    assert study["status"] == "completed", study.get("error")
    got = study["result"]
    assert [(s["name"], s["n"], s["status"]) for s in got["sites"]] == [
        (s["name"], s["n"], s["status"]) for s in reference["sites"]
    ]
    assert got["n"] == reference["n"]
    for key in ("coef", "se"):
        for covariate in COVARIATES:
            assert abs(got["result"][key][covariate] - reference["result"][key][covariate]) <= 1e-8
    assert abs(got["result"]["log_likelihood"] - reference["result"]["log_likelihood"]) <= 1e-8


def started_in_round(bed: tb.Testbed, round_no: int = 1) -> tuple[str, float]:
    """A Cox study, submitted and past its first round (so it is mid-study)."""
    started = time.monotonic()
    study_id = bed.submit_study(COX, SITES)
    study = bed.wait_for_round(study_id, round_no, timeout=STUDY_TIMEOUT)
    assert study["status"] == "running", f"the study ended before round {round_no}: {study}"
    return study_id, started


def log_text(bed: tb.Testbed, name: str) -> str:
    return Path(bed.process(name).log).read_text(encoding="utf-8", errors="replace")


def test_reference_cox_study_runs_several_rounds(reference: dict[str, Any]) -> None:
    assert reference["analysis"] == "cox"
    assert set(reference["result"]["coef"]) == set(COVARIATES)


def test_link_cut_mid_study_waits_and_resumes_with_the_same_result(
    bed: tb.Testbed, reference: dict[str, Any]
) -> None:
    study_id, started = started_in_round(bed)
    bed.link("hospital-1", up=False)
    try:
        assert not bed.link_is_up("hospital-1")
        time.sleep(CUT_S / 2)
        waiting = bed.study(study_id)
        time.sleep(CUT_S / 2)
        still = bed.study(study_id)
        # Waiting, not failing: no round can end without hospital-1.
        assert still["status"] == "running", still.get("error")
        assert still["round"] == waiting["round"]
    finally:
        bed.link("hospital-1", up=True)
    study = bed.wait_for_study(study_id, timeout=STUDY_TIMEOUT)
    assert_same_result(study, reference)
    assert time.monotonic() - started < TASK_DEADLINE_S


def test_edge_killed_mid_study_restarts_and_the_study_finishes(
    bed: tb.Testbed, reference: dict[str, Any]
) -> None:
    study_id, started = started_in_round(bed)
    bed.kill("edge-hospital-2")
    try:
        assert not bed.running("edge-hospital-2")
        assert bed.study(study_id)["status"] == "running"
    finally:
        bed.start_edge("hospital-2")
    study = bed.wait_for_study(study_id, timeout=STUDY_TIMEOUT)
    assert_same_result(study, reference)
    assert time.monotonic() - started < TASK_DEADLINE_S


def test_hub_killed_mid_study_restarts_and_the_study_finishes(
    bed: tb.Testbed, reference: dict[str, Any]
) -> None:
    study_id, started = started_in_round(bed)
    bed.kill("hub")
    try:
        assert not bed.running("hub")
        time.sleep(2.0)  # the edges' calls fail meanwhile; they must retry, not give up
    finally:
        bed.start_hub()
    study = bed.wait_for_study(study_id, timeout=STUDY_TIMEOUT)
    assert_same_result(study, reference)
    assert time.monotonic() - started < TASK_DEADLINE_S
    for site in SITES:
        assert bed.running(f"edge-{site}"), f"edge {site} gave up while the hub was away"


def task_seconds(bed: tb.Testbed, study_id: str, site: str) -> list[float]:
    """How long each of SITE's tasks took, dispatch to answer, round by round."""
    tasks = sorted(
        (t for t in bed.study_tasks(study_id) if t["site"] == site), key=lambda t: t["round"]
    )
    return [
        (
            datetime.fromisoformat(t["completed_at"]) - datetime.fromisoformat(t["created_at"])
        ).total_seconds()
        for t in tasks
        if t["completed_at"] is not None
    ]


def test_slow_site_still_finishes_correctly(bed: tb.Testbed, reference: dict[str, Any]) -> None:
    relay = bed.slow("hospital-2", SLOW_S)
    try:
        study_id = bed.submit_study(COX, SITES)
        study = bed.wait_for_study(study_id, timeout=STUDY_TIMEOUT)
        endpoint = bed.hub_endpoint_of("hospital-2")
    finally:
        bed.fast("hospital-2")
    assert endpoint == relay.source  # the hub reached the site only through the delay
    assert_same_result(study, reference)
    # Every task of the slow site took at least a delayed round trip (task out, answer in).
    slow = task_seconds(bed, study_id, "hospital-2")
    assert len(slow) == study["round"] + 1
    assert min(slow) >= 2 * SLOW_S - 0.01, slow


def test_site_slower_than_the_deadline_fails_the_study_naming_it(bed: tb.Testbed) -> None:
    """Leaves the hub on the short deadline (the test after it runs no study)."""
    bed.configure_hub(task_deadline_s=SHORT_DEADLINE_S)
    bed.kill("hub")
    bed.start_hub()
    relay = bed.slow("hospital-2", TOO_SLOW_S)
    try:
        # Both edges past their reconnect back-off: only the delay can make one late.
        bed.wait_for_contact(SITES, since=datetime.now(UTC))
        started = time.monotonic()
        study = bed.wait_for_study(bed.submit_study(COX, SITES), timeout=STUDY_TIMEOUT)
        elapsed = time.monotonic() - started
        endpoint = bed.hub_endpoint_of("hospital-2")
    finally:
        bed.fast("hospital-2")
    assert endpoint == relay.source  # the hub reached the site only through the delay
    assert study["status"] == "failed"
    assert "hospital-2 (expired" in study["error"], study["error"]
    assert study["result"] is None
    # Failed at the deadline (plus a sweep and the REST poll), not at the test's timeout.
    assert elapsed < SHORT_DEADLINE_S + 10


def test_revoked_certificate_is_refused_while_other_sites_carry_on(bed: tb.Testbed) -> None:
    """The last test: hospital-2 stays revoked."""
    # The delay relay just removed can leave an edge's connection dead until its calls
    # time out; revoke once both edges are talking to the hub again.
    bed.wait_for_contact(SITES, since=datetime.now(UTC), timeout=90)
    revoked = bed.revoke_certificate("hospital-2")
    after = datetime.now(UTC)
    deadline = time.monotonic() + 30
    while bed.running("edge-hospital-2") and time.monotonic() < deadline:
        time.sleep(0.2)
    # Its next call was refused; the edge stops (the operator must act), saying why.
    assert not bed.running("edge-hospital-2"), "the revoked edge is still running"
    assert "certificate_revoked" in log_text(bed, "edge-hospital-2")
    assert f"serial {revoked.serial:x}" in log_text(bed, "hub")
    # Refused by the certificate check, not the network: its tunnel still carries TCP.
    assert tb.tcp_reachable(
        bed.namespace("hospital-2"), bed.hub_tunnel_address, tb.HUB_GRPC_PORT, timeout=2.0
    )
    # The other site's certificate still works: its calls go on being answered.
    bed.wait_for_contact(["hospital-1"], since=after, timeout=30)
    assert bed.running("edge-hospital-1")
