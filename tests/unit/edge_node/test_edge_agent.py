"""The hub agent against a fake stub: storage before submission, crash recovery,
deduplication, retries, approval, heartbeats. (Real gRPC runs in tests/integration.)"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from edge_node.agent import EdgeAgent, registration_for
from edge_node.datasets import add_dataset
from edge_node.hub_client import HubClient, RetryPolicy
from edge_node.policy import Decision, Policy
from edge_node.runner import TaskRunner
from edge_node.store.models import Delivery, TaskDecision
from edge_node.store.tasks import TaskStore
from protocol import serde
from protocol.messages import (
    RegistrationAck,
    ResultStatus,
    SubmitAck,
    TaskAssignment,
    TaskResult,
)
from shared_cdm.errors import Unauthenticated, Unavailable
from tests.unit.edge_node.conftest import EdgeDbs

N_ROWS = 12


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class KilledProcess(BaseException):
    """The process dying: nothing in the agent may catch it."""


@dataclass
class FakeHub:
    """Stands in for `EdgeHubStub`: takes and returns real protobuf messages."""

    queue: list[TaskAssignment] = field(default_factory=list)
    submitted: list[TaskResult] = field(default_factory=list)
    failures: dict[str, list[BaseException]] = field(default_factory=lambda: defaultdict(list))
    calls: list[tuple[str, float | None]] = field(default_factory=list)
    heartbeats: list[int] = field(default_factory=list)
    on_submit: Callable[[TaskResult], None] | None = None
    resend_answered: bool = False  # a hub that keeps sending a task it has an answer for
    heartbeat_interval_s: int = 10

    def _enter(self, rpc: str, timeout: float | None) -> None:
        self.calls.append((rpc, timeout))
        if self.failures[rpc]:
            raise self.failures[rpc].pop(0)

    def Register(self, request: Any, timeout: float | None = None) -> Any:
        self._enter("Register", timeout)
        serde.registration_from_proto(request)
        ack = RegistrationAck("site-a", self.heartbeat_interval_s)
        return serde.registration_ack_to_proto(ack)

    def Heartbeat(self, request: Any, timeout: float | None = None) -> Any:
        self._enter("Heartbeat", timeout)
        self.heartbeats.append(request.pending_tasks)
        return SimpleNamespace(server_time_unix_ms=0)

    def PullTasks(self, request: Any, timeout: float | None = None) -> Any:
        self._enter("PullTasks", timeout)
        answered = {r.task_id for r in self.submitted}
        open_tasks = [t for t in self.queue if self.resend_answered or t.task_id not in answered]
        return SimpleNamespace(
            tasks=[serde.task_to_proto(t) for t in open_tasks][: request.max_tasks]
        )

    def SubmitResult(self, request: Any, timeout: float | None = None) -> Any:
        self._enter("SubmitResult", timeout)
        result = serde.result_from_proto(request)
        if self.on_submit is not None:
            self.on_submit(result)
        duplicate = any(r.task_id == result.task_id for r in self.submitted)
        self.submitted.append(result)
        return serde.submit_ack_to_proto(SubmitAck(accepted=True, duplicate=duplicate))


@dataclass
class CountingRunner:
    """The real runner, counting how often each task is computed."""

    inner: TaskRunner
    runs: list[str] = field(default_factory=list)

    def decide(self, task: TaskAssignment) -> TaskDecision:
        return self.inner.decide(task)

    def run(self, task: TaskAssignment, *, approved: bool = False) -> TaskResult:
        self.runs.append(task.task_id)
        return self.inner.run(task, approved=approved)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def _task(task_id: str = "task-1", analysis: str = "count") -> TaskAssignment:
    spec = {"analysis": analysis, "dataset": "default", "variables": ["age"], "round_params": {}}
    return TaskAssignment(
        task_id=task_id,
        study_id="study-1",
        round=0,
        analysis=analysis,
        dataset="default",
        spec=spec,
        requester="alice",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def dbs(edge_dbs: EdgeDbs, tmp_path: Path) -> EdgeDbs:
    path = tmp_path / "site.csv"
    path.write_text("id,age\n" + "".join(f"{i},{40 + i}\n" for i in range(N_ROWS)), "utf-8")
    add_dataset("default", path, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    return edge_dbs


def _agent(
    dbs: EdgeDbs,
    hub: FakeHub,
    *,
    policy: Policy | None = None,
    sleeps: list[float] | None = None,
    clock: Clock | None = None,
    attempts: int = 4,
) -> tuple[EdgeAgent, CountingRunner]:
    runner = CountingRunner(
        TaskRunner.create(dbs.analysis, dbs.state, policy or Policy(min_cell_size=5))
    )
    client = HubClient(
        hub,
        timeout_s=3.0,
        retry=RetryPolicy(attempts=attempts, initial_s=0.5, max_s=2.0, jitter_s=0.01),
        sleep=(sleeps.append if sleeps is not None else lambda _s: None),
    )
    agent = EdgeAgent(
        client=client,
        tasks=TaskStore(dbs.state),
        runner=runner,  # type: ignore[arg-type]
        registration=lambda: registration_for(dbs.registry),
        poll_interval_s=0.01,
        monotonic=clock or Clock(),
    )
    return agent, runner


def test_result_is_stored_before_it_is_submitted(dbs: EdgeDbs) -> None:
    hub = FakeHub(queue=[_task()])
    agent, _ = _agent(dbs, hub)
    seen_at_submit: list[Any] = []

    def check_stored(result: TaskResult) -> None:
        record = agent.tasks.get(result.task_id)
        seen_at_submit.append((record.delivery, record.result))

    hub.on_submit = check_stored
    agent.start()
    report = agent.step()
    assert (report.received, report.answered, report.submitted) == (1, 1, 1)
    assert hub.submitted[0].status is ResultStatus.OK
    assert hub.submitted[0].payload == {"n": N_ROWS}
    assert seen_at_submit == [(Delivery.PENDING, hub.submitted[0])]
    assert agent.tasks.get("task-1").delivery is Delivery.SUBMITTED


def test_registration_announces_the_datasets(dbs: EdgeDbs) -> None:
    hub = FakeHub()
    sent: list[Any] = []
    original = hub.Register

    def spy(request: Any, timeout: float | None = None) -> Any:
        sent.append(serde.registration_from_proto(request))
        return original(request, timeout)

    hub.Register = spy  # type: ignore[method-assign]
    agent, _ = _agent(dbs, hub)
    agent.start()
    (dataset,) = sent[0].datasets
    assert (dataset.name, dataset.kind, dataset.columns) == ("default", "flat", ("id", "age"))
    assert dataset.version == dbs.registry.get("default").version


def test_crash_between_storing_and_submitting_delivers_once_after_restart(dbs: EdgeDbs) -> None:
    hub = FakeHub(queue=[_task()])
    first, first_runner = _agent(dbs, hub)

    def die(_result: TaskResult) -> None:
        raise KilledProcess

    hub.on_submit = die
    first.start()
    with pytest.raises(KilledProcess):
        first.step()
    assert first_runner.runs == ["task-1"]
    stored = first.tasks.get("task-1")
    assert stored.delivery is Delivery.PENDING and stored.result is not None
    assert hub.submitted == []

    hub.on_submit = None
    second, second_runner = _agent(dbs, hub)  # a new process on the same state database
    second.start()
    second.step()
    second.step()
    assert hub.submitted == [stored.result]
    assert second_runner.runs == []  # the stored answer is sent, not recomputed
    assert second.tasks.get("task-1").delivery is Delivery.SUBMITTED


def test_crash_before_storing_computes_again_and_delivers_once(dbs: EdgeDbs) -> None:
    hub = FakeHub(queue=[_task()])
    first, runner = _agent(dbs, hub)

    def die(task: TaskAssignment, *, approved: bool = False) -> TaskResult:
        raise KilledProcess

    runner.run = die  # type: ignore[method-assign]
    first.start()
    with pytest.raises(KilledProcess):
        first.step()
    second, second_runner = _agent(dbs, hub)
    second.start()
    second.step()
    second.step()
    assert second_runner.runs == ["task-1"]
    assert [r.task_id for r in hub.submitted] == ["task-1"]


def test_duplicate_delivery_of_a_task_is_not_run_twice(dbs: EdgeDbs) -> None:
    hub = FakeHub(queue=[_task(), _task()], resend_answered=True)
    agent, runner = _agent(dbs, hub)
    agent.start()
    for _ in range(3):
        agent.step()
    assert runner.runs == ["task-1"]
    assert [r.task_id for r in hub.submitted] == ["task-1"]


def test_unavailable_is_retried_with_growing_backoff_then_succeeds(dbs: EdgeDbs) -> None:
    hub = FakeHub(queue=[_task()])
    hub.failures["SubmitResult"] = [
        FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"),
        FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED),
        FakeRpcError(grpc.StatusCode.UNAVAILABLE),
    ]
    sleeps: list[float] = []
    agent, _ = _agent(dbs, hub, sleeps=sleeps)
    agent.start()
    agent.step()
    assert len(sleeps) == 3
    assert sleeps[0] < sleeps[1] < sleeps[2] <= 2.0 + 0.01  # exponential, capped
    assert [r.task_id for r in hub.submitted] == ["task-1"]
    assert all(timeout == 3.0 for _, timeout in hub.calls)  # every RPC has a deadline


def test_hub_away_longer_than_the_retries_keeps_the_result_for_later(dbs: EdgeDbs) -> None:
    hub = FakeHub(queue=[_task()])
    hub.failures["SubmitResult"] = [FakeRpcError(grpc.StatusCode.UNAVAILABLE)] * 4
    agent, runner = _agent(dbs, hub, attempts=4)
    agent.start()
    with pytest.raises(Unavailable, match="submit result"):
        agent.step()
    assert agent.tasks.get("task-1").delivery is Delivery.PENDING
    agent.step()
    assert [r.task_id for r in hub.submitted] == ["task-1"]
    assert runner.runs == ["task-1"]


def test_a_final_refusal_is_not_retried_and_sets_the_result_aside(dbs: EdgeDbs) -> None:
    hub = FakeHub(queue=[_task()])
    hub.failures["SubmitResult"] = [
        FakeRpcError(grpc.StatusCode.PERMISSION_DENIED, "not_your_task: belongs to another node")
    ]
    sleeps: list[float] = []
    agent, _ = _agent(dbs, hub, sleeps=sleeps)
    agent.start()
    agent.step()
    record = agent.tasks.get("task-1")
    assert sleeps == []
    assert record.delivery is Delivery.UNDELIVERABLE
    assert "another node" in record.submit_error
    assert agent.tasks.pending_submissions() == []


def test_manual_task_waits_for_the_operator(dbs: EdgeDbs) -> None:
    hub = FakeHub(queue=[_task()])
    policy = Policy(min_cell_size=5, analyses={"count": Decision.MANUAL})
    agent, runner = _agent(dbs, hub, policy=policy)
    agent.start()
    agent.step()
    agent.step()
    assert runner.runs == []
    assert hub.submitted == []
    assert agent.tasks.get("task-1").decision is TaskDecision.AWAITING_APPROVAL
    agent.tasks.approve("task-1")  # what `oncofed-edge tasks approve` does
    agent.step()
    assert runner.runs == ["task-1"]
    assert [(r.task_id, r.status) for r in hub.submitted] == [("task-1", ResultStatus.OK)]


def test_operator_rejection_is_submitted_as_refused_with_the_reason(dbs: EdgeDbs) -> None:
    hub = FakeHub(queue=[_task()])
    agent, runner = _agent(dbs, hub, policy=Policy(5, analyses={"count": Decision.MANUAL}))
    agent.start()
    agent.step()
    agent.tasks.reject("task-1", "study not approved by our ethics board")
    agent.step()
    assert runner.runs == []
    (result,) = hub.submitted
    assert result.status is ResultStatus.REFUSED
    assert "ethics board" in result.message and result.payload == {}


def test_policy_deny_is_submitted_as_refused_without_running(dbs: EdgeDbs) -> None:
    hub = FakeHub(queue=[_task()])
    agent, runner = _agent(dbs, hub, policy=Policy(5, analyses={"count": Decision.DENY}))
    agent.start()
    agent.step()
    assert runner.runs == []
    (result,) = hub.submitted
    assert result.status is ResultStatus.REFUSED
    assert "policy" in result.message


def test_heartbeat_follows_the_hubs_interval_and_reports_waiting_tasks(dbs: EdgeDbs) -> None:
    hub = FakeHub(queue=[_task()], heartbeat_interval_s=5)
    clock = Clock()
    agent, _ = _agent(dbs, hub, clock=clock, policy=Policy(5, analyses={"count": Decision.MANUAL}))
    agent.start()
    agent.step()
    assert hub.heartbeats == []  # registration just happened
    clock.now += 4.9
    agent.step()
    assert hub.heartbeats == []
    clock.now += 0.2
    agent.step()
    assert hub.heartbeats == [1]  # the manual task is waiting


def test_heartbeat_to_a_hub_that_forgot_us_registers_again(dbs: EdgeDbs) -> None:
    hub = FakeHub()
    clock = Clock()
    agent, _ = _agent(dbs, hub, clock=clock)
    agent.start()
    hub.failures["Heartbeat"] = [FakeRpcError(grpc.StatusCode.NOT_FOUND, "unregistered")]
    clock.now += 60
    agent.step()
    assert [rpc for rpc, _ in hub.calls].count("Register") == 2


def test_unreadable_task_is_answered_failed(dbs: EdgeDbs) -> None:
    hub = FakeHub()
    bad = serde.task_to_proto(_task("task-bad"))
    bad.spec_json = b"[not json"
    hub.PullTasks = lambda request, timeout=None: SimpleNamespace(tasks=[bad])  # type: ignore[method-assign]
    agent, runner = _agent(dbs, hub)
    agent.start()
    agent.step()
    (result,) = hub.submitted
    assert (result.task_id, result.status) == ("task-bad", ResultStatus.FAILED)
    assert "spec" in result.message
    assert runner.runs == []


def test_run_loop_reports_ready_then_stops_on_request(dbs: EdgeDbs) -> None:
    hub = FakeHub(queue=[_task()])
    hub.failures["Register"] = [FakeRpcError(grpc.StatusCode.UNAVAILABLE)] * 4  # one round lost
    agent, _ = _agent(dbs, hub)
    stop = threading.Event()
    ready: list[str] = []

    def on_submit(_result: TaskResult) -> None:
        stop.set()

    hub.on_submit = on_submit
    thread = threading.Thread(
        target=agent.run, args=(stop, lambda ack: ready.append(ack.node_name))
    )
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert ready == ["site-a"]
    assert [r.task_id for r in hub.submitted] == ["task-1"]


def test_run_loop_survives_a_hub_error_but_not_a_refused_identity(dbs: EdgeDbs) -> None:
    hub = FakeHub(queue=[_task()])
    hub.failures["PullTasks"] = [FakeRpcError(grpc.StatusCode.INTERNAL, "hub bug")]
    agent, _ = _agent(dbs, hub)
    stop = threading.Event()
    hub.on_submit = lambda _result: stop.set()
    agent.run(stop)
    assert [r.task_id for r in hub.submitted] == ["task-1"]

    hub.failures["PullTasks"] = [FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, "bad cert")]
    with pytest.raises(Unauthenticated, match="bad cert"):
        agent.run(threading.Event())
