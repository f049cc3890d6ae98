"""The hub agent: register, heartbeat, pull, run, store, submit, until told to stop.

Exactly one result per task, whatever the moment the process dies: a task is
kept once (by task ID), its answer is stored before it is submitted, and every
start delivers stored answers the hub has not acknowledged. Submitting twice is
harmless at the hub; computing twice never happens here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError

from edge_node.hub_client import HubClient
from edge_node.runner import TaskRunner, refused
from edge_node.store.datasets import DatasetRegistry
from edge_node.store.models import TaskDecision
from edge_node.store.tasks import TaskStore
from protocol.messages import Registration, RegistrationAck, TaskAssignment, TaskResult
from shared_cdm import CDM_VERSION
from shared_cdm.errors import ErrorKind, NotFound, OncoFedError, Unavailable

_LOG = logging.getLogger(__name__)
EDGE_SOFTWARE_VERSION = "oncofed-edge 0.1.0"
_DEFAULT_HEARTBEAT_S = 10.0
# Kinds of hub answer that will not change on retry: the result is set aside.
_FINAL_REFUSALS = frozenset(
    {ErrorKind.FORBIDDEN, ErrorKind.NOT_FOUND, ErrorKind.INVALID, ErrorKind.CONFLICT}
)

# The hub does not accept who we are: retrying cannot help, the operator must act.
_FATAL = frozenset({ErrorKind.UNAUTHENTICATED, ErrorKind.FORBIDDEN})


def registration_for(registry: DatasetRegistry) -> Registration:
    """What the hub is told at registration: software, CDM version, datasets' shapes."""
    return Registration(
        software_version=EDGE_SOFTWARE_VERSION,
        cdm_version=CDM_VERSION,
        datasets=tuple(record.info() for record in registry.all()),
    )


@dataclass(frozen=True)
class StepReport:
    """What one poll did, for logs and tests."""

    received: int = 0
    answered: int = 0
    submitted: int = 0


class EdgeAgent:
    def __init__(
        self,
        *,
        client: HubClient,
        tasks: TaskStore,
        runner: TaskRunner,
        registration: Callable[[], Registration],
        poll_interval_s: float = 2.0,
        max_tasks: int = 16,
        monotonic: Callable[[], float] = time.monotonic,
        log: logging.Logger = _LOG,
        housekeeping: Callable[[], None] | None = None,
        on_start: Callable[[], object] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.tasks = tasks
        self.runner = runner
        self._registration = registration
        self.poll_interval_s = poll_interval_s
        self.max_tasks = max_tasks
        self._monotonic = monotonic
        self._log = log
        self.heartbeat_interval_s = _DEFAULT_HEARTBEAT_S
        self._last_heartbeat = float("-inf")
        # Per poll (stop ML SuperNodes whose study ran out of time) and at the end.
        self._housekeeping = housekeeping
        # Once, before the first poll (start again the ML SuperNodes a stop or crash ended).
        self._on_start = on_start
        self._on_stop = on_stop

    # --- the pieces -----------------------------------------------------------------------

    def register(self) -> RegistrationAck:
        ack = self.client.register(self._registration())
        if ack.heartbeat_interval_s > 0:
            self.heartbeat_interval_s = float(ack.heartbeat_interval_s)
        self._last_heartbeat = self._monotonic()
        self._log.info("registered with the hub as %s", ack.node_name)
        return ack

    def start(self) -> RegistrationAck:
        """Register, then deliver answers stored before a crash or a stop."""
        ack = self.register()
        self.deliver()
        return ack

    def heartbeat_if_due(self) -> None:
        if self._monotonic() - self._last_heartbeat < self.heartbeat_interval_s:
            return
        try:
            self.client.heartbeat(self.tasks.count_waiting())
        except NotFound:
            # The hub does not know us (its database was reset): announce ourselves again.
            self.register()
            return
        except OncoFedError as exc:
            if exc.kind in _FATAL:
                raise
            # A missed heartbeat must not stop the work; the next one is due in an interval.
            self._log.warning("heartbeat failed: %s", exc)
        self._last_heartbeat = self._monotonic()

    def receive(self, task: TaskAssignment) -> bool:
        """Keep a new task with the policy's decision; False for one already known."""
        decision = self.runner.decide(task)
        reason = "denied by the site's policy" if decision is TaskDecision.REJECTED else ""
        stored = self.tasks.add_if_new(task, decision, reason)
        if stored:
            self._log.info("task %s (%s) received: %s", task.task_id, task.analysis, decision)
        return stored

    def answer(self) -> int:
        """Compute and store the answer of every decided task that has none yet."""
        count = 0
        for record in self.tasks.without_result(TaskDecision.REJECTED):
            why = record.reason or "rejected by the site operator"
            self.tasks.store_result(refused(record.task, f"refused by site: {why}"))
            count += 1
        for record in self.tasks.without_result(TaskDecision.APPROVED):
            result = self.runner.run(record.task, approved=True)
            # Stored before any submission: after a crash this same answer is sent.
            self.tasks.store_result(result)
            self._log.info("task %s answered: %s", record.task.task_id, result.status)
            count += 1
            self.heartbeat_if_due()
        return count

    def deliver(self) -> int:
        """Submit stored answers the hub has not acknowledged; Unavailable propagates."""
        count = 0
        for result in self.tasks.pending_submissions():
            count += self._submit(result)
        return count

    def _submit(self, result: TaskResult) -> int:
        try:
            ack = self.client.submit(result)
        except OncoFedError as exc:
            if exc.kind not in _FINAL_REFUSALS:
                raise
            self._log.error("hub will not take the result of %s: %s", result.task_id, exc)
            self.tasks.mark_undeliverable(result.task_id, exc.message)
            return 0
        note = "duplicate" if ack.duplicate else "" if ack.accepted else "not accepted (late)"
        self.tasks.mark_submitted(result.task_id, note)
        return 1

    def _submit_unstored(self, result: TaskResult) -> None:
        # A task we could not even read: the hub re-sends it until it has an answer.
        try:
            self.client.submit(result)
        except OncoFedError as exc:
            if exc.kind not in _FINAL_REFUSALS:
                raise
            self._log.error("hub will not take the failure of %s: %s", result.task_id, exc)

    def step(self) -> StepReport:
        """One poll: heartbeat when due, pull, keep new tasks, answer, deliver."""
        self.heartbeat_if_due()
        if self._housekeeping is not None:
            self._housekeeping()
        pulled = self.client.pull_tasks(self.max_tasks)
        received = sum(self.receive(task) for task in pulled.tasks)
        for failure in pulled.unreadable:
            self._submit_unstored(failure)
        answered = self.answer()
        submitted = self.deliver()
        return StepReport(received, answered, submitted)

    # --- the loop -------------------------------------------------------------------------

    def run(
        self, stop: threading.Event, on_ready: Callable[[RegistrationAck], None] | None = None
    ) -> None:
        """Until `stop` is set; a hub that is away is waited for, not fatal."""
        ack = self._start_when_reachable(stop)
        if ack is None:
            return
        if self._on_start is not None:
            self._on_start()
        if on_ready is not None:
            on_ready(ack)
        while not stop.is_set():
            try:
                self.step()
            except Unavailable as exc:
                self._log.warning("hub unavailable, will retry: %s", exc)
            except OncoFedError as exc:
                if exc.kind in _FATAL:
                    raise
                self._log.error("poll failed, will retry: %s", exc)
            except OperationalError as exc:
                self._log.warning("state database unavailable, will retry: %s", exc.orig)
            stop.wait(self.poll_interval_s)
        if self._on_stop is not None:
            self._on_stop()  # an ML study's SuperNode does not outlive the agent
        self._log.info("edge agent stopped")

    def _start_when_reachable(self, stop: threading.Event) -> RegistrationAck | None:
        wait = self.poll_interval_s
        while not stop.is_set():
            try:
                return self.start()
            except OncoFedError as exc:
                if exc.kind not in (ErrorKind.UNAVAILABLE, ErrorKind.INTERNAL):
                    raise
                self._log.warning("hub not ready yet (%s); trying again in %.0fs", exc, wait)
            stop.wait(wait)
            wait = min(wait * 2, 30.0)
        return None
