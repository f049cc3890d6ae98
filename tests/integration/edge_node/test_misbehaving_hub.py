"""A misbehaving hub against a real edge agent: real gRPC, real mutual TLS (certificates
from `protocol.tls`), the agent in a thread on its real databases. The hub sends a task
the site's policy denies and one it did not approve, a differencing pair, an over-budget
DP request and a mask round with a forged peer key; we assert on what the hub received.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pandas as pd
import pytest

from edge_node.bootstrap import edge_agent
from edge_node.datasets import add_dataset
from edge_node.settings import load_settings
from edge_node.store.database import open_analysis_db, open_state_db
from edge_node.store.datasets import DatasetRegistry
from edge_node.store.tasks import TaskStore
from federated_ml import secure_agg
from federated_ml.analyses import secure_rounds as sr
from protocol import serde
from protocol.generated import oncofed_federation_pb2_grpc as pb_grpc
from protocol.messages import (
    Registration,
    RegistrationAck,
    ResultStatus,
    SubmitAck,
    TaskAssignment,
    TaskResult,
)
from protocol.tls import KeyPair, TlsFiles, create_ca, issue_certificate, server_credentials

SITE = "site-a"
N = 40
POLICY = """\
min_cell_size = 5
min_sites = 3
epsilon_budget_per_requester = 1.0
[analyses]
count = "auto"
kaplan_meier = "auto"
cox = "manual"
logistic = "deny"
"""


@dataclass
class FakeHub(pb_grpc.EdgeHubServicer):  # type: ignore[misc]
    """Hands out whatever tasks the test queues, records every submission."""

    queue: list[TaskAssignment] = field(default_factory=list)
    results: dict[str, TaskResult] = field(default_factory=dict)
    registrations: list[Registration] = field(default_factory=list)
    on_submit: Callable[[TaskResult], None] | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)

    def Register(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.registrations.append(serde.registration_from_proto(request))
        return serde.registration_ack_to_proto(RegistrationAck(SITE, 30))

    def Heartbeat(self, request: Any, context: grpc.ServicerContext) -> Any:
        return serde.heartbeat_reply_to_proto(datetime.now(UTC))

    def PullTasks(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.changed:
            waiting = [t for t in self.queue if t.task_id not in self.results]
        return serde.pull_reply_to_proto(waiting[: request.max_tasks])

    def SubmitResult(self, request: Any, context: grpc.ServicerContext) -> Any:
        result = serde.result_from_proto(request)
        with self.changed:
            duplicate = result.task_id in self.results
            self.results.setdefault(result.task_id, result)
            self.changed.notify_all()
        if self.on_submit is not None and not duplicate:
            self.on_submit(result)
        return serde.submit_ack_to_proto(SubmitAck(accepted=True, duplicate=duplicate))

    def send(self, spec: dict[str, Any], params: dict[str, Any], study: str = "s-1") -> str:
        task = TaskAssignment(
            task_id=str(uuid.uuid4()),
            study_id=study,
            round=0,
            analysis=str(spec["analysis"]),
            dataset="default",
            spec={**spec, "round_params": params},
            requester="mallory",
            created_at=datetime.now(UTC),
            deadline=datetime.now(UTC) + timedelta(minutes=10),
        )
        with self.changed:
            self.queue.append(task)
        return task.task_id

    def answer(self, task_id: str, timeout: float = 30.0) -> TaskResult:
        with self.changed:
            if not self.changed.wait_for(lambda: task_id in self.results, timeout):
                raise AssertionError(f"no answer to {task_id} within {timeout}s")
            return self.results[task_id]


@dataclass
class Federation:
    hub: FakeHub
    ca: KeyPair
    certs: dict[str, KeyPair]
    state_url: str


def _write_pair(folder: Path, name: str, pair: KeyPair) -> None:
    (folder / f"{name}.crt").write_bytes(pair.cert_pem)
    (folder / f"{name}.key").write_bytes(pair.key_pem)


@pytest.fixture
def federation(db_url: str, tmp_path: Path) -> Iterator[Federation]:
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    ca = create_ca()
    (tls_dir / "ca.crt").write_bytes(ca.cert_pem)
    certs = {s: issue_certificate(ca, s, "edge") for s in (SITE, "site-b", "site-c")}
    _write_pair(tls_dir, SITE, certs[SITE])
    _write_pair(tls_dir, "hub", issue_certificate(ca, "hub", "hub"))

    hub = FakeHub()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_EdgeHubServicer_to_server(hub, server)
    hub_files = TlsFiles(tls_dir / "ca.crt", tls_dir / "hub.crt", tls_dir / "hub.key")
    port = server.add_secure_port("127.0.0.1:0", server_credentials(hub_files))
    server.start()

    home = tmp_path / "edge"
    home.mkdir()
    (home / "policy.toml").write_text(POLICY, "utf-8")
    settings = load_settings(
        home,
        site_name=SITE,
        hub_address=f"127.0.0.1:{port}",
        tls_ca_cert=str(tls_dir / "ca.crt"),
        tls_cert=str(tls_dir / f"{SITE}.crt"),
        tls_key=str(tls_dir / f"{SITE}.key"),
        state_db_url=db_url,
        analysis_db_url=db_url,
        poll_interval_s=0.1,
    )
    csv = tmp_path / "site.csv"
    ids = range(1, N + 1)
    pd.DataFrame(
        {"id": ids, "age": [30 + i for i in ids], "time": [10 * i for i in ids],
         "status": [i % 2 for i in ids]}
    ).to_csv(csv, index=False)  # fmt: skip
    state, analysis = open_state_db(db_url), open_analysis_db(db_url)
    add_dataset("default", csv, analysis_engine=analysis, registry=DatasetRegistry(state))
    analysis.dispose()

    stop, ready = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def run_agent() -> None:
        try:
            with edge_agent(settings) as agent:
                agent.run(stop, on_ready=lambda _ack: ready.set())
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run_agent, daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "the edge agent did not register"
        assert not failure, failure
        yield Federation(hub, ca, certs, db_url)
    finally:
        stop.set()
        thread.join(15)
        server.stop(0)
        state.dispose()
    assert not failure, failure


THREE = {"n_sites": 3}
A = {"field": "age", "op": ">=", "value": 41}  # ids 11..40
A_MINUS_TWO = {"all": [A, {"field": "id", "op": "not_in", "value": [39, 40]}]}


def test_an_analysis_the_site_denies_or_did_not_approve_is_not_answered_with_data(
    federation: Federation,
) -> None:
    hub = federation.hub
    denied = hub.send({"analysis": "logistic", "outcome": "status", "covariates": ["age"]}, THREE)
    unapproved = hub.send(
        {"analysis": "cox", "time": "time", "event": "status", "covariates": ["age"]}, THREE
    )
    later = hub.send({"analysis": "count"}, THREE)
    refusal = hub.answer(denied)
    assert refusal.status is ResultStatus.REFUSED and refusal.payload == {}
    assert "denied" in refusal.message
    assert hub.answer(later).status is ResultStatus.OK
    # The manual task waits for the operator: the hub has received nothing for it.
    assert unapproved not in hub.results
    state = open_state_db(federation.state_url)
    try:
        waiting = TaskStore(state).get(unapproved)
    finally:
        state.dispose()
    assert waiting.decision.value == "awaiting_approval" and waiting.result is None
    assert [d.name for d in hub.registrations[0].datasets] == ["default"]


def test_a_differencing_pair_gets_its_second_half_refused(federation: Federation) -> None:
    hub = federation.hub
    first = hub.answer(hub.send({"analysis": "count", "where": A}, THREE))
    assert first.status is ResultStatus.OK and first.payload == {"n": 30}
    second = hub.answer(hub.send({"analysis": "count", "where": A_MINUS_TWO}, THREE))
    assert second.status is ResultStatus.REFUSED and second.payload == {}
    assert "differencing" in second.message


def test_an_over_budget_dp_request_is_refused(federation: Federation) -> None:
    hub = federation.hub
    dp = {"dp": {"epsilon": 0.6}}
    first = hub.answer(hub.send({"analysis": "count", "where": A, **dp}, THREE))
    assert first.status is ResultStatus.OK, first.message
    other = {"field": "age", "op": ">=", "value": 61}
    over = hub.answer(hub.send({"analysis": "count", "where": other, **dp}, THREE))
    assert over.status is ResultStatus.REFUSED and over.payload == {}
    assert "over budget" in over.message


def _announce(fed: Federation, name: str, study: str, signer: str) -> dict[str, str]:
    keys = secure_agg.new_site_keys()
    sig = secure_agg.sign_public_key(
        name, f"{study}|secagg-1", keys.public_b64, fed.certs[signer].key_pem
    )
    return {
        "public_key": keys.public_b64,
        "signature": sig,
        "cert_pem": fed.certs[name].cert_pem.decode(),
    }


def test_a_mask_round_with_a_forged_peer_key_is_refused(federation: Federation) -> None:
    hub = federation.hub
    km = {"analysis": "kaplan_meier", "time": "time", "event": "status", "time_grid_days": "exact"}
    keys = hub.answer(hub.send(km, {"phase": "horizon", **sr.keys_round("secagg-1")}, "s-km"))
    assert keys.status is ResultStatus.OK, keys.message
    own = keys.payload[sr.SECAGG_KEYS]

    def mask(peer_c_signer: str) -> TaskResult:
        peers = {
            SITE: own,
            "site-b": _announce(federation, "site-b", "s-km", "site-b"),
            "site-c": _announce(federation, "site-c", "s-km", peer_c_signer),
        }
        params = {
            "phase": "exact",
            "length": round(keys.payload["horizon"]) + 1,
            "levels": ["all"],
            sr.SECAGG: {"phase": "mask", "context": "secagg-1", "peers": peers},
        }
        return hub.answer(hub.send(km, json.loads(json.dumps(params)), "s-km"))

    forged = mask(peer_c_signer="site-b")  # site-c's key, signed with site-b's certificate key
    assert forged.status is ResultStatus.REFUSED and forged.payload == {}
    assert "fails verification" in forged.message
    # The same round with honest keys goes through, masked: the refusal was the forgery.
    honest = mask(peer_c_signer="site-c")
    assert honest.status is ResultStatus.OK, honest.message
    assert all(isinstance(v, str) for v in honest.payload[sr.SECURE].values())
