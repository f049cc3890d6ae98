"""What the WireGuard tunnel costs a study: the same count study over the testbed's
tunnel and over plain loopback, in the same run, on the same edges and databases.

Run with `make bench` (root: the testbed makes network namespaces). First the
study runs REPEATS times with the hub in its namespace and each edge in its own,
every byte through wireguard-go; then the tunnel edges are stopped, a hub is
started on 127.0.0.1 (same CA, same coordinator rules) and the same edge homes
run against it. Each study's latency is submission to completion as the
coordinator sees it; both sides include the edges' poll interval (0.5 s), which
is the same on both. Prints median, min and max per side and the ratio of medians;
and, beneath the study, the round trip of a TCP handshake from hospital-1 to
the hub through the tunnel against one on loopback.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ops import testbed as tb
from ops.federation import LocalFederation, edge_ready
from ops.hub_client import HubClient
from ops.local_federation import hub_settings_for_local_run
from ops.processes import ProcessGroup, child_env, python_module

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(900)]

# A site's policy answers the same question at most 10 times per researcher: 5 a side.
REPEATS = 5
HANDSHAKES = 300
PROBE_PORT = 7777
STUDY_TIMEOUT = 120.0
CDM_DATASET = {"index": {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C"}}
# `no_cache`: every repeat asks the sites again.
COUNT: dict[str, Any] = {
    "analysis": "count",
    "dataset": "cdm",
    "cdm_dataset": CDM_DATASET,
    "no_cache": True,
}


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[tb.Testbed]:
    if os.geteuid() != 0:
        pytest.fail("the tunnel benchmark makes network namespaces and must run as root")
    testbed = tb.Testbed.up(tmp_path / "bed", tb.TestbedOptions(sites=2, patients=20), print)
    try:
        yield testbed
    finally:
        left = testbed.down(keep_files=True)
        assert left == [], f"testbed {testbed.state.id} left behind: {left}"


def timed_studies(client: HubClient, sites: list[str]) -> tuple[list[float], list[Any]]:
    seconds, results = [], []
    for _ in range(REPEATS):
        started = time.perf_counter()
        study_id = str(client.submit_study(COUNT, sites=sites)["id"])
        study = client.wait_for_study(study_id, timeout=STUDY_TIMEOUT, interval=0.02)
        seconds.append(time.perf_counter() - started)
        assert study["status"] == "completed", study.get("error")
        results.append(study["result"]["result"])
    return seconds, results


def on_tunnel(bed: tb.Testbed) -> tuple[list[float], list[Any]]:
    def run(client: HubClient) -> tuple[list[float], list[Any]]:
        return timed_studies(client, bed.state.sites)

    return bed.on_hub(run)


def on_loopback(bed: tb.Testbed, root: Path) -> tuple[list[float], list[Any]]:
    sites = bed.state.sites
    shutil.copytree(bed.layout.ca_dir, root / "ca")  # the edges trust this CA's hub
    for site in sites:
        bed.stop(f"edge-{site}")
    with LocalFederation(root) as fed, ProcessGroup(root / "logs") as edges:
        hub = fed.start_hub(auto_approve=True, settings=hub_settings_for_local_run())
        for site in sites:
            env = child_env(
                {
                    "ONCOFED_EDGE_HUB_ADDRESS": hub.grpc_address,
                    "ONCOFED_EDGE_TOKEN_FILE": str(bed.layout.edge_token_file(site)),
                }
            )
            argv = python_module("edge_node.cli", "run", "--home", str(bed.layout.edge_home(site)))
            edges.start(f"edge-{site}", argv, env=env, ready=edge_ready(site))
        with fed.client(timeout=60) as client:
            client.wait_for_nodes(sites, timeout=60)
            return timed_studies(client, sites)


def handshake_seconds(bed: tb.Testbed, host: str, address: str) -> list[float]:
    """HANDSHAKES TCP connects from HOST to a listener at the hub's ADDRESS, each timed."""
    listener = tb.listen_in(bed.namespace("hub"), address, PROBE_PORT)
    listener.settimeout(5)  # each connection is taken off the queue before the next

    def probe() -> list[float]:
        seconds = []
        for _ in range(HANDSHAKES):
            started = time.perf_counter()
            with socket.create_connection((address, PROBE_PORT), timeout=5):
                seconds.append(time.perf_counter() - started)
            listener.accept()[0].close()
        return seconds

    try:
        return tb.in_netns(bed.namespace(host), probe)
    finally:
        listener.close()


def summary(name: str, seconds: list[float]) -> str:
    return (
        f"{name:9s} median {statistics.median(seconds) * 1000:7.1f} ms  "
        f"min {min(seconds) * 1000:7.1f} ms  max {max(seconds) * 1000:7.1f} ms"
    )


def test_count_study_latency_tunnel_against_loopback(bed: tb.Testbed, tmp_path: Path) -> None:
    measure: list[tuple[str, Callable[[], tuple[list[float], list[Any]]]]] = [
        ("tunnel", lambda: on_tunnel(bed)),
        ("loopback", lambda: on_loopback(bed, tmp_path / "loopback")),
    ]
    tunnel_rtt = handshake_seconds(bed, "hospital-1", bed.hub_tunnel_address)
    loopback_rtt = handshake_seconds(bed, "hub", "127.0.0.1")
    timings, answers = {}, {}
    for name, run in measure:
        timings[name], answers[name] = run()
    # The same answer every time, on both paths: only the path differs.
    first = answers["tunnel"][0]
    assert all(a == first for a in answers["tunnel"] + answers["loopback"])
    ratio = statistics.median(timings["tunnel"]) / statistics.median(timings["loopback"])
    print(f"\ncount study over 2 sites, {REPEATS} runs each (edges poll every 0.5 s)")
    print(summary("tunnel", timings["tunnel"]))
    print(summary("loopback", timings["loopback"]))
    print(f"tunnel / loopback (medians): {ratio:.2f}")
    rtt = {"tunnel": statistics.median(tunnel_rtt), "loopback": statistics.median(loopback_rtt)}
    print(
        f"TCP handshake, median of {HANDSHAKES}: tunnel {rtt['tunnel'] * 1e6:.0f} us, "
        f"loopback {rtt['loopback'] * 1e6:.0f} us, ratio {rtt['tunnel'] / rtt['loopback']:.1f}"
    )
