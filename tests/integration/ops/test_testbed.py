"""The testbed: real network namespaces, veth links and wireguard-go tunnels.

Needs root (namespaces) and the WireGuard tools, which the module's set-up
installs through ops/scripts/ensure_wireguard.sh. Every testbed is made through
the `make_testbed` fixture, whose finalizer tears it down even when a test fails.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from edge_node.policy import DEFAULT_POLICY_TOML
from federated_ml.flower.deploy import flower_env, free_port, make_node_keys
from ops import testbed as tb
from ops.demo_data.study import FLOWER_STUDY
from ops.federation import LocalFederation, edge_ready
from ops.local_federation import hub_settings_for_local_run
from ops.processes import ProcessGroup, child_env, python_module
from ops.vpn import load_plan
from shared_cdm.errors import EXIT_CODES, ErrorKind

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
ENSURE = REPO / "ops" / "scripts" / "ensure_wireguard.sh"
PROBE_PORT = 7777
STUDY_TIMEOUT = 90.0
CDM_DATASET = {"index": {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C"}}
COUNT_STUDY: dict[str, Any] = {"analysis": "count", "dataset": "cdm", "cdm_dataset": CDM_DATASET}
# The default policy, with ML studies joined without the operator (as in the demo).
ML_POLICY = DEFAULT_POLICY_TOML.replace('flower = "manual"\n', 'flower = "auto"\n')
# The demo's 200 patients a hospital: about 100 rows each in the ML study's lung
# cohort, 24 of them held out with a known outcome, so the AUC says something (with
# 60 patients each site held out 4-6 rows and the AUC ranged 0.46-0.63 run to run).
SERVICES_PATIENTS = 200
ML_ROUNDS = 2
ML_TIMEOUT = 420.0

MakeTestbed = Callable[..., tb.Testbed]


@pytest.fixture(scope="module", autouse=True)
def _wireguard_installed() -> None:
    if os.geteuid() != 0:
        pytest.fail("the testbed tests make network namespaces and must run as root")
    done = subprocess.run(["bash", str(ENSURE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"ensure_wireguard.sh failed: {done.stderr}"


def _make(tmp: Path, request: pytest.FixtureRequest) -> MakeTestbed:
    def make(
        sites: int,
        *,
        services: bool = False,
        patients: int = 20,
        flower: bool = False,
        policy: str | None = None,
    ) -> tb.Testbed:
        root = tmp / f"bed-{len(list(tmp.iterdir()))}"
        options = tb.TestbedOptions(
            sites=sites, services=services, patients=patients, flower=flower, policy=policy
        )
        bed = tb.Testbed.up(root, options, lambda message: None)
        # Registered once `up` returns; `up` itself removes a half-built testbed.
        request.addfinalizer(lambda: _down_leaves_nothing(bed))
        return bed

    return make


def _down_leaves_nothing(bed: tb.Testbed) -> None:
    """Tear down (files kept for a failure's logs); anything left is an error."""
    left = bed.down(keep_files=True)
    assert left == [], f"testbed {bed.state.id} left behind: {left}"


@pytest.fixture
def make_testbed(tmp_path: Path, request: pytest.FixtureRequest) -> MakeTestbed:
    return _make(tmp_path, request)


@pytest.fixture(scope="module")
def services_bed(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> tb.Testbed:
    """Hub (with its Flower SuperLink) and two hospitals with every service running,
    shared by the module."""
    make = _make(tmp_path_factory.mktemp("services"), request)
    return make(2, services=True, patients=SERVICES_PATIENTS, flower=True, policy=ML_POLICY)


def _reachable(bed: tb.Testbed, host: str, address: str, port: int) -> bool:
    return tb.tcp_reachable(bed.namespace(host), address, port, timeout=1.5)


# --- the network alone ---


def test_tunnels_carry_sites_and_refuse_outsiders_and_revoked_keys(
    make_testbed: MakeTestbed,
) -> None:
    bed = make_testbed(2)
    hub = bed.hub_tunnel_address
    listener = tb.listen_in(bed.namespace("hub"), hub, PROBE_PORT)
    underlay_listener = tb.listen_in(bed.namespace("hub"), tb.HUB_UNDERLAY, PROBE_PORT + 1)
    try:
        for site in bed.state.sites:
            assert _reachable(bed, site, hub, PROBE_PORT), f"{site} cannot reach the hub"
        # The outsider is on the same wire (the hub's underlay answers it) ...
        assert _reachable(bed, "outsider", tb.HUB_UNDERLAY, PROBE_PORT + 1)
        # ... but not on the tunnel, not even when it routes the tunnel subnet via the hub.
        assert not _reachable(bed, "outsider", hub, PROBE_PORT)
        tb._ip(
            "-n", bed.namespace("outsider"), "route", "add", "10.77.0.0/24", "via", tb.HUB_UNDERLAY
        )
        assert not _reachable(bed, "outsider", hub, PROBE_PORT)
        # Sites do not reach each other through the hub.
        other = bed.state.hosts["hospital-2"].tunnel_address
        assert other is not None
        assert not _reachable(bed, "hospital-1", other, PROBE_PORT)

        bed.revoke("hospital-2")
        assert not _reachable(bed, "hospital-2", hub, PROBE_PORT)
        assert _reachable(bed, "hospital-1", hub, PROBE_PORT)
    finally:
        listener.close()
        underlay_listener.close()


def test_down_after_the_owner_is_gone_removes_everything(tmp_path: Path) -> None:
    """`up` and `down` as separate commands: `down` works from the state file alone,
    as it must after a crash of whatever ran `up`."""
    root = tmp_path / "bed"
    cli = [sys.executable, "-m", "ops.cli", "testbed"]
    up = subprocess.run(
        [*cli, "up", "--sites", "2", "--dir", str(root), "--network-only"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    state = tb.TestbedState.load(root) if (root / tb.STATE_FILE).exists() else None
    try:
        assert up.returncode == 0, up.stderr
        assert state is not None
        assert len(state.processes) == 3  # wireguard-go: hub and two hospitals
        kinds = [entry.split()[0] for entry in tb.leftovers(state.id)]
        # net, hub, two hospitals, outsider; a socket and a process per tunnel
        assert (kinds.count("namespace"), kinds.count("socket"), kinds.count("process")) == (
            5,
            3,
            3,
        )
        # A fault from the command line: hospital-1's link cut, then restored.
        site = state.hosts["hospital-1"]
        hub = state.hosts["hub"].tunnel_address
        assert hub is not None
        for link in ("down", "up"):
            done = subprocess.run(
                [*cli, "link", "hospital-1", link, "--dir", str(root)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            if link == "down":
                assert not tb._refused_or_open(site.namespace, hub, 9)
        tb._wait_until(
            lambda: tb._refused_or_open(site.namespace, hub, 9), 20.0, "the restored link"
        )
        down = subprocess.run(
            [*cli, "down", "--dir", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert down.returncode == 0, down.stdout + down.stderr
        assert tb.leftovers(state.id) == []
        assert not root.exists()
        # By pid and start time: on a busy machine a pid may already be someone else's.
        assert not any(tb._alive(p.pid, p.start) for p in state.processes)
    finally:
        if state is not None and root.exists():
            tb.down(root)


def test_down_cleans_up_a_half_built_testbed(tmp_path: Path) -> None:
    """A crash between making namespaces and starting tunnels: the state file knows."""
    root = tmp_path / "bed"
    root.mkdir()
    state = tb.TestbedState(root=root, id=tb._new_id())
    bed = tb.Testbed(state)
    try:
        entry = bed._add_namespace("hub", tb.HUB_UNDERLAY)
        record = bed.spawn("sleeper", entry.namespace, ["sleep", "300"])
        assert tb.leftovers(state.id)
    finally:
        left = tb.down(root)
    assert left == []
    assert not tb._alive(record.pid, record.start)


# --- with the hub and edges running ---


def test_sites_reach_the_hub_grpc_only_through_the_tunnel(services_bed: tb.Testbed) -> None:
    bed = services_bed
    hub = bed.hub_tunnel_address
    for site in bed.state.sites:
        assert _reachable(bed, site, hub, tb.HUB_GRPC_PORT)
        # The hub's gRPC is bound to its tunnel address: its underlay address is closed.
        assert not _reachable(bed, site, tb.HUB_UNDERLAY, tb.HUB_GRPC_PORT)
    assert not _reachable(bed, "outsider", tb.HUB_UNDERLAY, tb.HUB_GRPC_PORT)
    assert not _reachable(bed, "outsider", hub, tb.HUB_GRPC_PORT)


def test_edges_enrolled_over_the_tunnel(services_bed: tb.Testbed) -> None:
    nodes = services_bed.on_hub(lambda hub: hub.nodes())
    names = {str(n.get("name")) for n in nodes}
    assert set(services_bed.state.sites) <= names
    plan = load_plan(services_bed.vpn_dir)
    transfer = services_bed.tunnel_transfer("hub")
    for site in services_bed.state.sites:
        record = services_bed.process(f"edge-{site}")
        assert tb._start_time(record.pid) is not None, f"edge {site} is not running"
        peer = plan.site(site)
        assert peer is not None
        received, sent = transfer[peer.public_key]
        # Registration and heartbeats (TLS handshakes included) came through this peer.
        assert received > 2000 and sent > 2000, (site, received, sent)


def test_count_study_through_the_tunnel_equals_loopback_and_the_databases(
    services_bed: tb.Testbed, tmp_path: Path
) -> None:
    bed = services_bed
    study = bed.run_study(COUNT_STUDY, bed.state.sites, timeout=STUDY_TIMEOUT)
    assert study["status"] == "completed", study
    tunnel = study["result"]["result"]
    expected = {site: _cohort_size(bed, site) for site in bed.state.sites}
    assert all(n > 0 for n in expected.values())
    assert tunnel["by_site"] == expected
    assert tunnel["count"] == sum(expected.values())
    loopback = _count_on_loopback(bed, tmp_path / "loopback")
    assert loopback["status"] == "completed", loopback
    assert loopback["result"]["result"] == tunnel


def _cohort_size(bed: tb.Testbed, site: str) -> int:
    """The study's cohort counted directly in the site's analysis database."""
    from shared_cdm.analysis_dataset import count_dataset, parse_dataset_spec

    engine = sa.create_engine(f"sqlite:///{bed.layout.edge_home(site) / 'analysis.db'}")
    try:
        with engine.connect() as conn:
            return count_dataset(conn, parse_dataset_spec(CDM_DATASET)).n_cohort
    finally:
        engine.dispose()


def _count_on_loopback(bed: tb.Testbed, root: Path) -> dict[str, Any]:
    """The same study, same edge homes and databases, with a hub on 127.0.0.1 and the
    edges in this namespace; the tunnel edges are stopped meanwhile and restarted."""
    sites = bed.state.sites
    shutil.copytree(bed.layout.ca_dir, root / "ca")  # the edges trust this CA's hub
    for site in sites:
        bed.stop(f"edge-{site}")
    try:
        with LocalFederation(root) as fed, ProcessGroup(root / "logs") as edges:
            hub = fed.start_hub(auto_approve=True, settings=hub_settings_for_local_run())
            for site in sites:
                home = bed.layout.edge_home(site)
                env = child_env(
                    {
                        "ONCOFED_EDGE_HUB_ADDRESS": hub.grpc_address,
                        "ONCOFED_EDGE_TOKEN_FILE": str(bed.layout.edge_token_file(site)),
                    }
                )
                argv = python_module("edge_node.cli", "run", "--home", str(home))
                edges.start(f"edge-{site}", argv, env=env, ready=edge_ready(site))
            with fed.client() as client:
                client.wait_for_nodes(sites, timeout=60)
                study_id = str(client.submit_study(COUNT_STUDY, sites=sites)["id"])
                return client.wait_for_study(study_id, timeout=STUDY_TIMEOUT)
    finally:
        for site in sites:
            bed.start_edge(site)


# --- an ML study (Flower) through the tunnels ---


def _listeners(bed: tb.Testbed, host: str) -> set[str]:
    """HOST's listening TCP sockets as "address:port" (`ss` in its namespace)."""
    out = tb._run(["ip", "netns", "exec", bed.namespace(host), "ss", "-Hltn"])
    found = set()
    for line in out.splitlines():
        address = line.split()[3]  # State Recv-Q Send-Q Local Peer
        found.add(address.removeprefix("[::ffff:").replace("]:", ":"))
    return found


def _flower_processes(bed: tb.Testbed, host: str) -> list[str]:
    """Command lines of the Flower processes running in HOST's namespace."""
    found = []
    for pid in tb._ip("netns", "pids", bed.namespace(host), check=False).split():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "flower-" in argv or "flwr-" in argv:
            found.append(argv.strip())
    return found


# About 1-2 minutes: the study's ClientApp processes (torch imports) dominate.
@pytest.mark.timeout(600)
def test_ml_study_trains_over_the_tunnels(services_bed: tb.Testbed, tmp_path: Path) -> None:
    """The demo's Flower study (two rounds) with every hospital: SuperLink on the hub's
    tunnel address, each hospital's SuperNode dialling it through its tunnel, TLS with
    the consortium CA, node authentication on."""
    bed = services_bed
    sites = sorted(bed.state.sites)
    superlink = bed.hub_flower
    # The address the hub gives the edges (its ready line) is the tunnel address.
    ready = bed.wait_for_log(tb.HUB_NAME, re.compile(r"hub ready .* flower=(\S+)"), 5.0)
    assert ready.group(1) == superlink
    # The SuperLink listens on the tunnel address only: no wildcard, no underlay.
    listening = _listeners(bed, "hub")
    assert superlink in listening, listening
    port = f":{tb.HUB_FLOWER_PORT}"
    assert [a for a in listening if a.endswith(port)] == [superlink], listening
    hub = bed.hub_tunnel_address
    for site in sites:
        assert _reachable(bed, site, hub, tb.HUB_FLOWER_PORT)
        assert not _reachable(bed, site, tb.HUB_UNDERLAY, tb.HUB_FLOWER_PORT)
    assert not _reachable(bed, "outsider", tb.HUB_UNDERLAY, tb.HUB_FLOWER_PORT)
    assert not _reachable(bed, "outsider", hub, tb.HUB_FLOWER_PORT)

    spec = copy.deepcopy(FLOWER_STUDY.spec)
    spec["ml"]["rounds"] = ML_ROUNDS
    started = time.monotonic()
    study = bed.run_study(spec, sites, timeout=ML_TIMEOUT)
    seconds = time.monotonic() - started
    assert study["status"] == "completed", study.get("error")
    result = study["result"]["result"]
    assert result["status"] == "completed", result.get("detail")
    assert {s["name"]: s["status"] for s in study["result"]["sites"]} == dict.fromkeys(sites, "ok")
    assert result["sites_participated"] == sites
    assert result["sites_holding_model"] == sites
    assert result["sites_dropped"] == {}
    assert result["rounds_completed"] == ML_ROUNDS
    rounds = result["rounds"]
    assert [r["server_round"] for r in rounds] == list(range(1, ML_ROUNDS + 2))
    assert all(r["sites_replied"] == sites for r in rounds), rounds
    # Training moves the model: the held-out loss falls from the initial weights.
    assert rounds[-1]["eval_loss"] < rounds[0]["eval_loss"], rounds
    auc = result["final_auc_pooled"]
    # Measured 0.80-0.91 (pooled over 48 held-out rows; the split follows the sites'
    # random pseudonyms, so it changes from run to run).
    assert isinstance(auc, float) and math.isfinite(auc) and 0.6 < auc <= 1.0, auc
    assert result["model_version"].startswith("sha256:")
    per_round = ", ".join(f"{r:.1f}" for r in result["seconds_per_round"])
    print(f"ML study over the tunnels: {seconds:.0f} s (rounds {per_round} s), AUC {auc:.3f}")
    # The release stopped every site's SuperNode.
    for site in sites:
        assert _flower_processes(bed, site) == [], site

    # Node authentication stays on: a hospital's SuperNode with a key the hub never
    # registered gets through the tunnel and TLS, and is refused at activation.
    site = sites[0]
    keys = make_node_keys(tmp_path / "stranger", "stranger")
    home = tmp_path / "stranger-home"
    home.mkdir()
    superlink_log = bed.layout.hub_home / "ml" / "flower" / "superlink.log"
    offset = superlink_log.stat().st_size
    argv = [
        "ip", "netns", "exec", bed.namespace(site),
        str(Path(sys.executable).parent / "flower-supernode"),
        "--superlink", superlink,
        "--root-certificates", str(bed.layout.edge_home(site) / "tls" / "ca.crt"),
        "--auth-supernode-private-key", str(keys.private_key),
        "--port", str(free_port()),
    ]  # fmt: skip
    with (tmp_path / "stranger.log").open("wb") as out:
        # Its own session: the helpers it starts are killed with it below.
        stranger = subprocess.Popen(
            argv,
            cwd=home,
            env=flower_env(home),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        code = stranger.wait(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stranger.pid, signal.SIGKILL)
        stranger.wait(timeout=10)
    assert code != 0, "a SuperNode with an unregistered key kept running"
    refusal = superlink_log.read_bytes()[offset:].decode(errors="replace")
    assert "No SuperNode found with the given public key" in refusal
    # Refused at activation, having come from the hospital's tunnel address.
    site_address = re.escape(str(bed.state.hosts[site].tunnel_address))
    assert re.search(rf'{site_address}:\d+ - "POST /v1/fleet/activate-node \S+" 412', refusal)


# --- a service killed and started from the command line ---
# Last in the module: the edge it restarts is one the tests above share.


def _cli(bed: tb.Testbed, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ops.cli", "testbed", *args, "--dir", str(bed.root)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _last_seen(bed: tb.Testbed) -> dict[str, dt.datetime]:
    return {
        str(n["name"]): dt.datetime.fromisoformat(str(n["last_seen"]))
        for n in bed.on_hub(lambda hub: hub.nodes())
    }


def test_cli_kills_an_edge_and_starts_it_again(services_bed: tb.Testbed) -> None:
    bed = services_bed
    site, other = sorted(bed.state.sites)
    name = f"edge-{site}"
    before = bed.process(name)
    assert bed.running(name)

    # Bad input: one clear line and an exit code; nothing is touched.
    unknown = _cli(bed, "kill", "nosuchservice")
    assert unknown.returncode == EXIT_CODES[ErrorKind.INVALID], unknown.stderr
    assert unknown.stderr.strip() == (
        "oncofed-ops: error: no service 'nosuchservice'; the testbed runs hub, "
        "edge-hospital-1, edge-hospital-2"
    )

    try:
        killed = _cli(bed, "kill", name)
        assert killed.returncode == 0, killed.stderr
        assert killed.stdout.strip() == f"{name} killed"
        assert not bed.running(name)
        # The hub hears no more from the site (a running edge's task poll, every
        # POLL_INTERVAL_S, refreshes its last_seen) while the other site goes on calling.
        # (Its "offline" status would take node_offline_after_s, a minute.)
        seen = _last_seen(bed)
        time.sleep(5 * tb.POLL_INTERVAL_S)
        later = _last_seen(bed)
        assert later[site] == seen[site]
        assert later[other] > seen[other]

        started_at = dt.datetime.now(dt.UTC)
        started = _cli(bed, "start", name)
        assert started.returncode == 0, started.stderr
    finally:
        # The CLI recorded its process in testbed.json; this process's copy learns it, and
        # the shared testbed gets its edge back whatever failed above.
        bed.state.processes = tb.TestbedState.load(bed.root).processes
        if not bed.running(name):
            bed.start_edge(site)
    record = bed.process(name)
    assert record.pid != before.pid
    assert started.stdout.strip() == f"{name} running (pid {record.pid})"
    assert bed.running(name)
    bed.wait_for_contact([site], since=started_at, timeout=60.0)
    nodes = {str(n["name"]): n for n in bed.on_hub(lambda hub: hub.nodes())}
    assert nodes[site]["status"] == "online"
    # The restarted edge serves studies again, over its tunnel.
    study = bed.run_study(COUNT_STUDY, [site, other], timeout=STUDY_TIMEOUT)
    assert study["status"] == "completed", study
    assert study["result"]["result"]["by_site"][site] == _cohort_size(bed, site)
