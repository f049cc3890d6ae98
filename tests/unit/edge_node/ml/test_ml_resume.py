"""A SuperNode survives an edge restart: the train round keeps `training.json` (the
SuperLink address, the study's wall-clock expiry), and `MlTasks.resume()` at the next
start ends any Flower process a killed edge left running for the study and starts the
SuperNode again with the same key and node config. A study whose time ran out, or
that was released, is not resumed; a damaged file skips its study only."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_node.agent import EdgeAgent, registration_for
from edge_node.hub_client import HubClient, RetryPolicy
from edge_node.ledger.service import Ledger
from edge_node.ml import tasks as ml_tasks
from edge_node.ml.features import parse_ml_study
from edge_node.ml.tasks import FLWR_HOME, TRAINING, MlTasks, TrainingRecord
from edge_node.policy import Policy
from edge_node.runner import TaskRunner
from federated_ml.flower.study import SCALING
from protocol.messages import ResultStatus, TaskAssignment
from shared_cdm.errors import InvalidInput
from tests.unit.edge_node.conftest import EdgeDbs
from tests.unit.edge_node.ml import test_ml_federated_scaling as scaling
from tests.unit.edge_node.test_edge_agent import FakeHub

# The site and the SuperNode stand-in (it notes its arguments, then waits) come from
# the federated-scaling tests.
site = scaling.site
supernode_args = scaling.supernode_args
STUDY = scaling.STUDY
SUPERLINK = "127.0.0.1:9"


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """The databases are not under test here: SQLite only."""
    return sqlite_url


@pytest.fixture(autouse=True)
def quick_start_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ml_tasks, "START_CHECK_S", 0.3)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def edges(site: EdgeDbs, home: Path) -> Iterator[list[MlTasks]]:
    """Every edge (MlTasks) a test makes on the same home, closed at the end."""
    made: list[MlTasks] = []
    yield made
    for ml in made:
        ml.close()


def edge(
    site: EdgeDbs,
    home: Path,
    edges: list[MlTasks],
    *,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> MlTasks:
    ml = MlTasks(
        site.analysis,
        site.registry,
        home,
        home / "ca.crt",
        ledger=Ledger(site.state, Policy(5)),
        clock=clock,
        monotonic=monotonic,
    )
    edges.append(ml)
    return ml


def in_study(task: TaskAssignment, study_id: str) -> TaskAssignment:
    return dataclasses.replace(task, study_id=study_id)


def join_and_train(site: EdgeDbs, ml: MlTasks, study_id: str = STUDY) -> None:
    runner = scaling.runner(site, ml)
    assert runner.run(in_study(scaling.task("join"), study_id)).status is ResultStatus.OK
    train = scaling.task("train", superlink=SUPERLINK, **{SCALING: scaling.constants()})
    result = runner.run(in_study(train, study_id))
    assert result.status is ResultStatus.OK, result.message
    assert result.payload == {"supernode": "started"}


def argv_without_port(args: Path) -> list[str]:
    argv = args.read_text(encoding="utf-8").splitlines()
    at = argv.index("--port")
    return argv[:at] + argv[at + 2 :]  # a free port is chosen at every start


def alive(ml: MlTasks, study_id: str = STUDY) -> bool:
    running = ml.running.get(study_id)
    return running is not None and running.popen.poll() is None


def spawn(home: Path, argv0: str) -> subprocess.Popen[bytes]:
    """A process in a session of its own working in the study's flwr-home, as the
    SuperNode of a SIGKILLed edge is left."""
    return subprocess.Popen(
        ["bash", "-c", f"exec -a {argv0} sleep 60"],
        cwd=home,
        start_new_session=True,
    )


def ended(process: subprocess.Popen[bytes]) -> bool:
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return True


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_gracefully_stopped_edge_starts_the_supernode_again_with_the_same_arguments(
    site: EdgeDbs, home: Path, edges: list[MlTasks], supernode_args: Path
) -> None:
    first = edge(site, home, edges)
    before = time.time()
    join_and_train(site, first)
    started_with = argv_without_port(supernode_args)
    folder = home / "ml" / STUDY
    kept = json.loads((folder / TRAINING).read_text(encoding="utf-8"))
    ml = parse_ml_study(scaling.spec()).ml
    lifetime = (
        ml.start_timeout_s + (ml.rounds + 1) * ml.round_timeout_s + ml_tasks.LIFETIME_MARGIN_S
    )
    assert kept["superlink"] == SUPERLINK
    assert before + lifetime <= kept["expires_at"] <= time.time() + lifetime
    assert not list(folder.glob(".*.tmp"))  # written whole, then renamed

    first.close()
    assert not alive(first) and (folder / TRAINING).exists()  # a graceful stop keeps it
    supernode_args.unlink()

    second = edge(site, home, edges)
    assert second.resume() == [STUDY]
    assert alive(second)
    assert argv_without_port(supernode_args) == started_with  # same key, SuperLink, config
    assert "--auth-supernode-private-key" in started_with
    # Its expiry is the one kept, not a new lifetime from now.
    left = second.running[STUDY].expires_at - time.monotonic()
    assert left == pytest.approx(kept["expires_at"] - time.time(), abs=5)
    assert second.resume() == []  # already running: not started twice


def test_an_orphan_of_a_killed_edge_is_ended_and_replaced(
    site: EdgeDbs,
    home: Path,
    edges: list[MlTasks],
    supernode_args: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    join_and_train(site, edge(site, home, edges))
    edges[0].stop(STUDY)  # the edge is killed: its SuperNode (stood in for below) runs on
    flwr_home = home / "ml" / STUDY / FLWR_HOME
    orphan = spawn(flwr_home, "flower-supernode")
    bystander = spawn(flwr_home, "backup-job")  # not a Flower program: left alone
    processes.extend([orphan, bystander])
    time.sleep(0.2)  # the orphan's argv and cwd are in /proc once bash has exec'd
    supernode_args.unlink()

    restarted = edge(site, home, edges)
    assert restarted.resume() == [STUDY]
    assert ended(orphan) and orphan.returncode == -signal.SIGTERM  # asked to end first
    assert bystander.poll() is None
    assert alive(restarted) and supernode_args.exists()


def test_stopping_a_study_ends_the_superexec_its_exited_supernode_left(
    site: EdgeDbs,
    home: Path,
    edges: list[MlTasks],
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """A SuperNode that the hub's unregistration made exit leaves its SuperExec (own
    session, polls for its parent) running a while: the release must not leave it."""
    ml = edge(site, home, edges)
    join_and_train(site, ml)
    flwr_home = home / "ml" / STUDY / FLWR_HOME
    superexec = spawn(flwr_home, "flower-superexec")
    bystander = spawn(flwr_home, "backup-job")
    processes.extend([superexec, bystander])
    time.sleep(0.2)
    supernode = ml.running[STUDY].popen
    os.killpg(supernode.pid, signal.SIGTERM)  # exits by itself, before the release
    supernode.wait(timeout=5)
    assert superexec.poll() is None  # in a session of its own: the group signal missed it

    ml.stop(STUDY)
    assert ended(superexec) and superexec.returncode == -signal.SIGTERM
    assert bystander.poll() is None
    assert STUDY not in ml.running


def test_a_study_whose_time_ran_out_is_not_resumed(
    site: EdgeDbs,
    home: Path,
    edges: list[MlTasks],
    supernode_args: Path,
    processes: list[subprocess.Popen[bytes]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    join_and_train(site, edge(site, home, edges))
    edges[0].stop(STUDY)
    orphan = spawn(home / "ml" / STUDY / FLWR_HOME, "flower-supernode")
    processes.append(orphan)
    time.sleep(0.2)
    supernode_args.unlink()

    later = edge(site, home, edges, clock=lambda: time.time() + 10**6)
    with caplog.at_level(logging.INFO, logger=ml_tasks.__name__):
        assert later.resume() == []
    assert later.running == {} and not supernode_args.exists()
    assert not (home / "ml" / STUDY / TRAINING).exists()
    assert ended(orphan)
    assert f"ML study {STUDY}: its time ran out while the edge was stopped" in caplog.text


def test_a_damaged_file_skips_its_study_and_the_others_resume(
    site: EdgeDbs,
    home: Path,
    edges: list[MlTasks],
    supernode_args: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = edge(site, home, edges)
    join_and_train(site, first, "study-a")
    join_and_train(site, first, "study-b")
    first.close()
    damaged = home / "ml" / "study-a" / TRAINING
    damaged.write_text('{"superlink": "127.0.0.1:9", "expires_at": ', encoding="utf-8")

    restarted = edge(site, home, edges)
    with caplog.at_level(logging.WARNING, logger=ml_tasks.__name__):
        assert restarted.resume() == ["study-b"]
    assert list(restarted.running) == ["study-b"] and alive(restarted, "study-b")
    assert "/study-b/" in supernode_args.read_text(encoding="utf-8")
    assert "ML study study-a: its SuperNode is not started again, training.json is damaged" in (
        caplog.text
    )
    assert damaged.exists()  # kept for the operator to see


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{", "cannot be read"),
        ("[]", "holds no JSON object"),
        ('{"expires_at": 1}', "names no SuperLink address"),
        ('{"superlink": "127.0.0.1:9", "expires_at": "soon"}', "no valid expiry time"),
        ('{"superlink": "127.0.0.1:9", "expires_at": true}', "no valid expiry time"),
        ('{"superlink": "127.0.0.1:9", "expires_at": NaN}', "no valid expiry time"),
    ],
)
def test_a_damaged_training_file_is_named_with_its_fault(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / TRAINING
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput, match=reason):
        TrainingRecord.read(path)
    TrainingRecord("127.0.0.1:9", 12.5).write(path)
    assert TrainingRecord.read(path) == TrainingRecord("127.0.0.1:9", 12.5)


def test_a_released_study_is_never_resumed(
    site: EdgeDbs, home: Path, edges: list[MlTasks], supernode_args: Path
) -> None:
    first = edge(site, home, edges)
    join_and_train(site, first)
    released = scaling.runner(site, first).run(scaling.task("release"))
    assert released.status is ResultStatus.OK, released.message
    assert not (home / "ml" / STUDY / TRAINING).exists() and first.running == {}
    supernode_args.unlink()

    assert edge(site, home, edges).resume() == []
    assert not supernode_args.exists()


def test_a_supernode_that_outlived_its_study_is_not_resumed(
    site: EdgeDbs, home: Path, edges: list[MlTasks], supernode_args: Path
) -> None:
    now = [1000.0]
    ml = edge(site, home, edges, monotonic=lambda: now[0])
    join_and_train(site, ml)
    ml.reap()
    assert alive(ml) and (home / "ml" / STUDY / TRAINING).exists()
    now[0] += 10**6
    ml.reap()
    assert ml.running == {} and not (home / "ml" / STUDY / TRAINING).exists()


def test_a_train_round_whose_supernode_exits_at_once_leaves_nothing_to_resume(
    site: EdgeDbs,
    home: Path,
    edges: list[MlTasks],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused = tmp_path / "refused-supernode"
    refused.write_text("#!/bin/sh\nexit 3\n", encoding="utf-8")
    os.chmod(refused, 0o755)
    monkeypatch.setattr(ml_tasks, "_bin", lambda name: refused)
    ml = edge(site, home, edges)
    runner = scaling.runner(site, ml)
    assert runner.run(scaling.task("join")).status is ResultStatus.OK
    train = scaling.task("train", superlink=SUPERLINK, **{SCALING: scaling.constants()})
    result = runner.run(train)
    assert result.status is ResultStatus.FAILED
    assert "exited at once (code 3)" in result.message
    assert not (home / "ml" / STUDY / TRAINING).exists()


def test_the_agent_resumes_before_its_first_poll_and_keeps_the_file_when_it_stops(
    site: EdgeDbs, home: Path, edges: list[MlTasks], supernode_args: Path
) -> None:
    join_and_train(site, edge(site, home, edges))
    edges[0].close()
    ml = edge(site, home, edges)
    runner = TaskRunner.create(site.analysis, site.state, Policy(5), ml=ml)
    stop = threading.Event()
    at_first_poll: list[bool] = []

    def housekeeping() -> None:
        at_first_poll.append(alive(ml))
        runner.housekeeping()
        stop.set()

    agent = EdgeAgent(
        client=HubClient(FakeHub(), timeout_s=3.0, retry=RetryPolicy(attempts=1)),
        tasks=site.tasks,
        runner=runner,
        registration=lambda: registration_for(site.registry),
        poll_interval_s=0.01,
        housekeeping=housekeeping,
        on_start=ml.resume,
        on_stop=runner.close,
    )
    agent.run(stop)
    assert at_first_poll == [True]
    assert ml.running == {}  # stopped with the agent
    assert (home / "ml" / STUDY / TRAINING).exists()  # so the next start resumes it
