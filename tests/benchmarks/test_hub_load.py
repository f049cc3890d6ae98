"""The hub under load: 50 edges heartbeating and polling, 20 count studies at once.

Run with `make bench`, once on SQLite and once on PostgreSQL (the hub's
database). A real hub process (mutual TLS on loopback); the edges are simulated
in this process, one thread and one certificate each, speaking the edge's own
gRPC client at the edge's default pace (poll every `poll_interval_s`, heartbeat
at the interval the hub gives at registration): register, heartbeat, pull,
answer each count task with the site's known size. Prints p50/p95/max study
latency (submission to completion); any RPC error, any study not completed or
any wrong total fails.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from edge_node.hub_client import HubClient as EdgeClient
from edge_node.settings import EdgeSettings
from ops.federation import LocalFederation
from ops.local_federation import hub_settings_for_local_run
from protocol.generated import oncofed_federation_pb2_grpc as pb_grpc
from protocol.messages import DatasetInfo, Registration, ResultStatus, TaskResult
from protocol.tls import TlsFiles, channel_credentials
from shared_cdm import CDM_VERSION

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(900)]

EDGES = 50
STUDIES = 20
POLL_S = float(EdgeSettings.model_fields["poll_interval_s"].default)
STUDY_TIMEOUT = 300.0
COUNT: dict[str, Any] = {"analysis": "count", "dataset": "default", "no_cache": True}


def site_size(index: int) -> int:
    return 100 + index  # each site's count, known, so every total can be checked


@dataclass
class SimulatedEdge:
    name: str
    index: int
    tls: TlsFiles
    address: str
    answered: int = 0
    errors: list[str] = field(default_factory=list)
    rpcs: int = 0
    heartbeat_s: float = 0.0

    def run(self, stop: threading.Event, registered: threading.Barrier) -> None:
        channel = grpc.secure_channel(
            self.address,
            channel_credentials(self.tls),
            options=[("grpc.ssl_target_name_override", "localhost")],
        )
        client = EdgeClient(pb_grpc.EdgeHubStub(channel), timeout_s=30.0)
        try:
            ack = self._call(
                client.register,
                Registration(
                    "oncofed-edge load-sim",
                    CDM_VERSION,
                    (DatasetInfo("default", "flat", "v1", ("age",)),),
                ),
            )
            registered.wait()
            if ack is None:
                return
            self.heartbeat_s = float(ack.heartbeat_interval_s)
            next_beat = 0.0
            while not stop.is_set():
                if time.monotonic() >= next_beat:
                    self._call(client.heartbeat, 0)
                    next_beat = time.monotonic() + self.heartbeat_s
                pulled = self._call(client.pull_tasks, 16)
                for task in pulled.tasks if pulled else ():
                    result = TaskResult(task.task_id, ResultStatus.OK, {"n": site_size(self.index)})
                    if self._call(client.submit, result) is not None:
                        self.answered += 1
                stop.wait(POLL_S)
        finally:
            channel.close()

    def _call(self, method: Any, *args: Any) -> Any:
        self.rpcs += 1
        try:
            return method(*args)
        except Exception as exc:  # every failure is counted and reported
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return None


@pytest.fixture
def federation(tmp_path: Path, db_url: str) -> Iterator[LocalFederation]:
    with LocalFederation(tmp_path / "fed", ready_timeout=180) as fed:
        fed.init_ca()
        fed.start_hub(auto_approve=True, db_url=db_url, settings=hub_settings_for_local_run())
        yield fed


def test_hub_with_50_edges_and_20_concurrent_count_studies(
    federation: LocalFederation, db_url: str
) -> None:
    fed = federation
    assert fed.hub is not None
    edges = []
    for index in range(EDGES):
        name = f"sim-{index:02d}"
        fed.ca.issue(name, "edge")
        tls = TlsFiles(fed.ca.ca_cert, fed.ca.party_cert(name), fed.ca.party_key(name))
        edges.append(SimulatedEdge(name, index, tls, fed.hub.grpc_address))
    names = [e.name for e in edges]
    stop = threading.Event()
    registered = threading.Barrier(EDGES + 1, timeout=120)
    threads = [
        threading.Thread(target=e.run, args=(stop, registered), name=e.name, daemon=True)
        for e in edges
    ]
    for thread in threads:
        thread.start()
    try:
        registered.wait()
        with fed.client() as client:
            client.wait_for_nodes(names, timeout=60)

        def one_study(k: int) -> tuple[float, dict[str, Any]]:
            with fed.client(timeout=60) as hub:
                started = time.perf_counter()
                study_id = str(hub.submit_study(COUNT, sites=names, title=f"load {k}")["id"])
                study = hub.wait_for_study(study_id, timeout=STUDY_TIMEOUT, interval=0.1)
                return time.perf_counter() - started, study

        wall = time.perf_counter()
        with ThreadPoolExecutor(STUDIES) as pool:
            runs = list(pool.map(one_study, range(STUDIES)))
        wall = time.perf_counter() - wall
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    latencies = sorted(seconds for seconds, _ in runs)
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20, method="inclusive")[18]
    errors = [f"{e.name}: {msg}" for e in edges for msg in e.errors]
    rpcs = sum(e.rpcs for e in edges)
    backend = db_url.split(":", 1)[0].split("+", 1)[0]
    print(
        f"\nhub load ({backend}): {EDGES} edges (heartbeat {edges[0].heartbeat_s:.0f} s, "
        f"poll {POLL_S} s), {STUDIES} concurrent count studies over all {EDGES} sites"
    )
    print(
        f"  study latency p50 {p50:.2f} s, p95 {p95:.2f} s, max {latencies[-1]:.2f} s; "
        f"all {STUDIES} in {wall:.2f} s"
    )
    print(f"  {rpcs} edge RPCs, {len(errors)} errors; {sum(e.answered for e in edges)} answers")
    assert errors == [], errors[:10]
    expected = sum(site_size(i) for i in range(EDGES))
    for _, study in runs:
        assert study["status"] == "completed", study.get("error")
        assert study["result"]["result"]["count"] == expected
    assert all(e.answered == STUDIES for e in edges)
