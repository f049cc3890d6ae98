"""`oncofed-ops testbed`: a hub and N hospitals as separate hosts on one machine.

Every host is a Linux network namespace. They meet on a small "internet": one
more namespace holding a bridge, with a veth pair from each host's `eth0` to a
port of that bridge (so no link ever appears in the machine's own namespace).
Underlay addresses come from 198.18.0.0/24 (RFC 2544, never routed):

    hub .1          hospital-i .(10+i)          outsider .254 (no tunnel)

Each hospital runs `wireguard-go` (the kernel module is not needed) with the
config `ops.vpn` made for it and dials the hub's tunnel endpoint; the hub's
gRPC service (and, with `flower`, its Flower SuperLink, which each hospital's
SuperNode dials for an ML study) binds to its tunnel address only, and a
policy-routing rule in the hub's namespace refuses tunnel addresses arriving on
`eth0`, so a host that merely routes to the tunnel subnet is still refused. Each edge runs in its
hospital's namespace over a CDM database built by the edge pipeline from a
synthetic hospital.

Everything made is written to `testbed.json` *before* it is made, so
`testbed down` removes it all even after a crash. Names carry the prefix
`ofb-<id>-` (namespaces) and `ofb<id>w` (tunnel interfaces).

Faults for tests (and, where cheap, the CLI): a hospital's link cut and
restored (`link`), a slow link (`slow`: a relay that holds each WireGuard
packet for a while, because this machine's kernel has no `sch_netem`), a
service killed and started again (`kill`, `start_hub`, `start_edge`), and a
hospital's TLS certificate revoked (`revoke_certificate`).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import functools
import heapq
import ipaddress
import json
import os
import re
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from ops import ca as ca_ops
from ops import vpn
from ops.federation import (
    EDGE_OPERATOR,
    HUB_NAME,
    LOCAL_USER,
    FederationLayout,
    _copy_tls,
    edge_ready,
    write_toml,
)
from ops.hub_client import HubClient
from ops.local_federation import hub_settings_for_local_run
from ops.processes import child_env, python_module, run_command
from protocol.tls import CaFolder
from shared_cdm.errors import Conflict, InvalidInput, NotFound, OncoFedError, Unavailable

T = TypeVar("T")
PREFIX = "ofb"
STATE_FILE = "testbed.json"
UNDERLAY = ipaddress.ip_network("198.18.0.0/24")
HUB_UNDERLAY = "198.18.0.1"
OUTSIDER_UNDERLAY = "198.18.0.254"
HUB_GRPC_PORT = 50051
HUB_HTTP_PORT = 8080
HUB_FLOWER_PORT = 9093  # the SuperLink (Fleet, Control and Runtime APIs), with `flower`
MAX_SITES = 200
POLL_INTERVAL_S = 0.5  # the edges' task poll; each study round waits for one
WG_SOCKETS = Path("/var/run/wireguard")
HUB_READY = re.compile(r"hub ready grpc=(?P<grpc>\S+) http=(?P<http>\S+)")
CLONE_NEWNET = 0x40000000
_NS_RUN = Path("/var/run/netns")


class TestbedError(OncoFedError):
    """The testbed could not be built or torn down."""

    code = "testbed_failed"


# --- small process helpers ---


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise TestbedError(f"`{' '.join(argv)}` failed: {detail[-1] if detail else 'no message'}")
    return done.stdout


def _ip(*args: str, check: bool = True) -> str:
    return _run(["ip", *args], check=check)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (tells a reused pid from ours); None
    when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _alive(pid: int, start: str | None) -> bool:
    return start is not None and _start_time(pid) == start


def _kill(pid: int, start: str | None, sig: int) -> None:
    if not _alive(pid, start):
        return
    try:
        os.killpg(pid, sig)  # each child leads its own session
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def check_environment() -> None:
    """Root, /dev/net/tun, and the WireGuard tools; an error naming what is missing."""
    if os.geteuid() != 0:
        raise TestbedError("the testbed makes network namespaces: run it as root")
    if not Path("/dev/net/tun").exists():
        raise TestbedError("/dev/net/tun is missing; wireguard-go needs it")
    missing = [tool for tool in ("ip", "wg", "wireguard-go") if shutil.which(tool) is None]
    if missing:
        raise TestbedError(
            f"missing {', '.join(missing)}; run ops/scripts/ensure_wireguard.sh "
            "(Debian packages wireguard-go and wireguard-tools)"
        )


# --- network namespaces from Python ---


def _enter_netns(name: str) -> None:
    """Move the calling thread (only) into namespace `name`."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(_NS_RUN / name, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def in_netns(name: str, action: Callable[[], T]) -> T:
    """Run `action` on a thread inside namespace `name`.

    Sockets belong to the namespace they were made in, so whatever `action`
    opens (an HTTP client, a probe) talks from that host.
    """
    with ThreadPoolExecutor(1, initializer=_enter_netns, initargs=(name,)) as pool:
        return pool.submit(action).result()


def tcp_reachable(namespace: str, host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a TCP connection from `namespace` to host:port completes."""

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    return in_netns(namespace, probe)


def listen_in(namespace: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket in `namespace` (the kernel completes handshakes)."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(16)
        return sock

    return in_netns(namespace, make)


# --- the state file ---


@dataclass
class Host:
    name: str
    namespace: str
    underlay: str
    tunnel_if: str | None = None
    tunnel_address: str | None = None


@dataclass
class ProcessRecord:
    name: str
    namespace: str
    pid: int
    start: str | None
    log: str


@dataclass
class TestbedState:
    root: Path
    id: str
    namespaces: list[str] = field(default_factory=list)
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[ProcessRecord] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    services: bool = False
    hub_token: str | None = None

    @property
    def prefix(self) -> str:
        return f"{PREFIX}-{self.id}-"

    def save(self) -> None:
        data = {
            "id": self.id,
            "namespaces": self.namespaces,
            "hosts": {k: vars(v) for k, v in self.hosts.items()},
            "processes": [vars(p) for p in self.processes],
            "sites": self.sites,
            "services": self.services,
        }
        tmp = self.root / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.root / STATE_FILE)

    @classmethod
    def load(cls, root: Path) -> TestbedState:
        path = root / STATE_FILE
        if not path.is_file():
            raise NotFound(f"no testbed in {root} ({STATE_FILE} is missing)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state = cls(root=root, id=str(data["id"]))
            state.namespaces = [str(n) for n in data["namespaces"]]
            state.hosts = {k: Host(**v) for k, v in data["hosts"].items()}
            state.processes = [ProcessRecord(**p) for p in data["processes"]]
            state.sites = [str(s) for s in data["sites"]]
            state.services = bool(data["services"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"{path} is damaged: {exc}") from None
        if not re.fullmatch(r"[0-9a-f]{4}", state.id):
            raise InvalidInput(f"{path} names testbed id {state.id!r}, not 4 hex digits")
        return state


def _existing_namespaces() -> set[str]:
    out = _ip("netns", "list", check=False)
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _new_id() -> str:
    taken = _existing_namespaces()
    for _ in range(100):
        candidate = secrets.token_hex(2)
        if not any(ns.startswith(f"{PREFIX}-{candidate}-") for ns in taken):
            return candidate
    raise TestbedError("could not pick an unused testbed id")


def site_names(count: int) -> list[str]:
    return [f"hospital-{i}" for i in range(1, count + 1)]


# --- the testbed ---


@dataclass(frozen=True)
class TestbedOptions:
    sites: int
    services: bool = True
    patients: int = 40
    seed: int = 11
    subnet: str = vpn.DEFAULT_SUBNET
    ready_timeout: float = 120.0
    # hub.toml entries over the testbed's own (e.g. task_deadline_s, min_sites)
    hub_settings: Mapping[str, Any] = field(default_factory=dict)
    # A Flower SuperLink beside the hub, on its tunnel address (ML studies).
    flower: bool = False
    # Every edge's policy.toml (default: the edge's own default policy).
    policy: str | None = None


class Testbed:
    """A built (or partly built) testbed; `down()` removes all of it."""

    def __init__(self, state: TestbedState) -> None:
        self.state = state
        self.root = state.root
        self.layout = FederationLayout(state.root / "federation")
        self.vpn_dir = state.root / "vpn"
        self._popen: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()  # set-up threads share the state file
        self._delays: dict[str, UdpDelay] = {}

    # --- names ---

    def namespace(self, host: str) -> str:
        return self.state.hosts[host].namespace

    @property
    def hub_host(self) -> Host:
        return self.state.hosts[HUB_NAME]

    @property
    def hub_tunnel_address(self) -> str:
        address = self.hub_host.tunnel_address
        if address is None:
            raise Conflict("the hub has no tunnel yet")
        return address

    @property
    def hub_grpc(self) -> str:
        return f"{self.hub_tunnel_address}:{HUB_GRPC_PORT}"

    @property
    def hub_flower(self) -> str:
        """The SuperLink's address (when the testbed was made with `flower`)."""
        return f"{self.hub_tunnel_address}:{HUB_FLOWER_PORT}"

    # --- building ---

    @classmethod
    def up(cls, root: Path, options: TestbedOptions, say: Callable[[str], None]) -> Testbed:
        """Build the testbed in `root` (new or empty); on failure, remove what was made."""
        if not 1 <= options.sites <= MAX_SITES:
            raise InvalidInput(f"--sites must be 1-{MAX_SITES}")
        check_environment()
        if root.exists() and any(root.iterdir()):
            raise InvalidInput(f"{root} is not empty; give a new or empty folder")
        root.mkdir(parents=True, exist_ok=True)
        state = TestbedState(root=root.resolve(), id=_new_id())
        state.save()
        bed = cls(state)
        try:
            bed._build_network(site_names(options.sites), options, say)
            if options.services:
                bed._start_services(options, say)
        except BaseException:
            say("set-up failed; removing what was made")
            bed.down(keep_files=True)
            raise
        return bed

    def _add_namespace(self, host: str, underlay: str) -> Host:
        name = f"{self.state.prefix}{host}"
        # Recorded first: a crash right after `netns add` still gets it removed.
        self.state.namespaces.append(name)
        entry = Host(host, name, underlay)
        self.state.hosts[host] = entry
        self.state.save()
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")
        return entry

    def _build_network(
        self, sites: list[str], options: TestbedOptions, say: Callable[[str], None]
    ) -> None:
        say(f"testbed {self.state.id}: making the network (hub, {len(sites)} hospitals, outsider)")
        net = f"{self.state.prefix}net"
        self.state.namespaces.append(net)
        self.state.save()
        _ip("netns", "add", net)
        _ip("-n", net, "link", "add", "br0", "type", "bridge")
        _ip("-n", net, "link", "set", "br0", "up")
        plan = [(HUB_NAME, HUB_UNDERLAY)]
        plan += [(s, str(UNDERLAY[10 + i])) for i, s in enumerate(sites, start=1)]
        plan.append(("outsider", OUTSIDER_UNDERLAY))
        for port, (host, address) in enumerate(plan):
            entry = self._add_namespace(host, address)
            # Both ends are made inside namespaces: the machine's own stays untouched.
            _ip("-n", net, "link", "add", f"p{port}", "type", "veth", "peer", "name", "eth0",
                "netns", entry.namespace)  # fmt: skip
            _ip("-n", net, "link", "set", f"p{port}", "master", "br0", "up")
            _ip("-n", entry.namespace, "addr", "add", f"{address}/{UNDERLAY.prefixlen}",
                "dev", "eth0")  # fmt: skip
            _ip("-n", entry.namespace, "link", "set", "eth0", "up")
        self.state.sites = sites
        self.state.save()
        vpn.init(self.vpn_dir, subnet=options.subnet, endpoint=f"{HUB_UNDERLAY}:{vpn.DEFAULT_PORT}")
        for site in sites:
            vpn.add_site(self.vpn_dir, site)
        say("starting wireguard-go on every host")
        for index, host in enumerate([HUB_NAME, *sites]):
            self._start_tunnel(host, index)
        self._guard_hub_tunnel(options.subnet)
        self._wait_for_tunnels(sites, timeout=30.0)

    def _start_tunnel(self, host: str, index: int) -> None:
        entry = self.state.hosts[host]
        iface = f"{PREFIX}{self.state.id}w{index}"
        entry.tunnel_if = iface
        self.state.save()
        folder = vpn.VpnFolder(self.vpn_dir)
        config = folder.hub_config if host == HUB_NAME else folder.site_config(host)
        text = config.read_text(encoding="utf-8")
        self.spawn(f"wg-{host}", entry.namespace, ["wireguard-go", "-f", iface])
        _wait_until((WG_SOCKETS / f"{iface}.sock").exists, 10.0, f"{iface}'s socket")
        self._setconf(entry, text)
        [address] = vpn.config_addresses(text)
        entry.tunnel_address = address.split("/")[0]
        self.state.save()
        _ip("-n", entry.namespace, "addr", "add", address, "dev", iface)
        _ip("-n", entry.namespace, "link", "set", iface, "up")
        if host != HUB_NAME:  # what wg-quick does for AllowedIPs
            _ip(
                "-n", entry.namespace, "route", "add", f"{self.hub_tunnel_address}/32", "dev", iface
            )

    def _setconf(self, entry: Host, text: str, *, sync: bool = False) -> None:
        if entry.tunnel_if is None:
            raise Conflict(f"{entry.name} has no tunnel")
        path = self.root / "wg" / f"{entry.name}.conf"
        path.parent.mkdir(exist_ok=True)
        vpn.write_private(path, vpn.strip_config(text).encode("utf-8"))
        verb = "syncconf" if sync else "setconf"
        _run(["ip", "netns", "exec", entry.namespace, "wg", verb, entry.tunnel_if, str(path)])

    def _guard_hub_tunnel(self, subnet: str) -> None:
        """Tunnel addresses are only reachable through the tunnel.

        Linux accepts a packet for any local address on any interface, so a host
        routing 10.77.0.1 via the hub's underlay address would get in. Move the
        `local` table after a rule that refuses the tunnel subnet arriving on eth0.
        """
        ns = self.hub_host.namespace
        _ip("-n", ns, "rule", "add", "pref", "100", "lookup", "local")
        _ip("-n", ns, "rule", "del", "pref", "0")
        _ip("-n", ns, "rule", "add", "pref", "10", "iif", "eth0", "to", subnet, "prohibit")

    def _wait_for_tunnels(self, sites: Sequence[str], timeout: float) -> None:
        """Each site completes a WireGuard handshake (a TCP probe starts it)."""
        hub = self.hub_tunnel_address
        probe_port = 9  # nothing listens: a refusal still proves the path works
        for site in sites:
            _wait_until(
                functools.partial(_refused_or_open, self.namespace(site), hub, probe_port),
                timeout,
                f"the tunnel from {site} to the hub",
            )

    # --- services ---

    def _start_services(self, options: TestbedOptions, say: Callable[[str], None]) -> None:
        env = child_env()
        ca = CaFolder(self.layout.ca_dir)
        ca.init()
        # Names the tunnel address: edges' gRPC and SuperNodes (and the SuperLink's own
        # SuperExec, which dials the address the SuperLink binds) verify it.
        ca.issue(HUB_NAME, "hub", ip_addresses=("127.0.0.1", self.hub_tunnel_address))
        home = self.layout.hub_home
        home.mkdir(parents=True, exist_ok=True)
        _copy_tls(ca, HUB_NAME, home / "tls")
        # The SuperLink binds grpc_host (the tunnel address) with the hub's certificate;
        # with flower_public_host left unset, that is also the address edges are sent.
        flower = {"flower_enabled": True, "flower_port": HUB_FLOWER_PORT} if options.flower else {}
        write_toml(
            home / "hub.toml",
            {
                "auto_approve": True,
                "grpc_host": self.hub_tunnel_address,
                "grpc_port": HUB_GRPC_PORT,
                "http_host": "127.0.0.1",  # the hub namespace's own loopback
                "http_port": HUB_HTTP_PORT,
                **hub_settings_for_local_run(),
                **flower,
                **options.hub_settings,
            },
        )
        listens = f"gRPC on {self.hub_grpc}" + (
            f", Flower on {self.hub_flower}" if options.flower else ""
        )
        say(
            f"starting the hub in {self.hub_host.namespace} ({listens} only) while "
            f"{len(self.state.sites)} synthetic hospitals are generated and loaded"
        )
        # The hub's start-up and the edges' pipelines do not depend on each other.
        with ThreadPoolExecutor(max_workers=3) as pool:
            hub = pool.submit(self._start_hub, home, options, env)
            edges = [
                pool.submit(self._set_up_edge, site, index, ca, options, env)
                for index, site in enumerate(self.state.sites)
            ]
            hub.result()
            for edge in edges:
                edge.result()
        for site in self.state.sites:
            self.start_edge(site, wait=False)
        for site in self.state.sites:
            self.wait_for_log(f"edge-{site}", edge_ready(site), options.ready_timeout)
        self.wait_for_sites(self.state.sites, timeout=options.ready_timeout)
        say("every edge is registered with the hub over its tunnel")

    def _start_hub(self, home: Path, options: TestbedOptions, env: Mapping[str, str]) -> None:
        hub_cli = python_module("hub.cli")
        run_command(
            "oncofed-hub db upgrade", [*hub_cli, "db", "upgrade", "--home", str(home)], env=env
        )
        token = run_command(
            "oncofed-hub users add",
            [*hub_cli, "users", "add", LOCAL_USER, "--role", "coordinator", "--home", str(home)],
            env=env,
        ).strip()
        vpn.write_private(self.root / "hub.token", (token + "\n").encode("ascii"))
        self.start_hub(timeout=options.ready_timeout, env=env)
        with self._lock:
            self.state.services = True
            self.state.save()

    def start_hub(
        self, *, timeout: float = 120.0, env: Mapping[str, str] | None = None
    ) -> ProcessRecord:
        """Run the hub in its namespace (again, after `stop` or `kill`); returns once it
        listens."""
        home = self.layout.hub_home
        argv = [*python_module("hub.cli"), "serve", "--home", str(home)]
        log = self.root / "logs" / f"{HUB_NAME}.log"
        offset = log.stat().st_size if log.exists() else 0
        record = self.spawn(HUB_NAME, self.hub_host.namespace, argv, env or child_env())
        self.wait_for_log(HUB_NAME, HUB_READY, timeout, offset=offset)
        return record

    def configure_hub(self, **settings: Any) -> None:
        """Change hub.toml entries; they apply from the hub's next start."""
        path = self.layout.hub_home / "hub.toml"
        current = tomllib.loads(path.read_text(encoding="utf-8"))
        write_toml(path, {**current, **settings})

    def start_edge(self, site: str, *, wait: bool = True, timeout: float = 120.0) -> ProcessRecord:
        """Run SITE's edge in its namespace (again, after `stop`)."""
        home = self.layout.edge_home(site)
        argv = python_module("edge_node.cli", "run", "--home", str(home))
        name = f"edge-{site}"
        log = self.root / "logs" / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        record = self.spawn(name, self.namespace(site), argv, self._edge_env(site, child_env()))
        if wait:
            self.wait_for_log(name, edge_ready(site), timeout, offset=offset)
        return record

    def stop(self, name: str, *, grace: float = 10.0) -> None:
        """SIGTERM the named process, SIGKILL after `grace` seconds."""
        record = self.process(name)
        _kill(record.pid, record.start, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(record.pid, record.start) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.1)
        _kill(record.pid, record.start, signal.SIGKILL)
        self._reap()

    def kill(self, name: str, *, timeout: float = 10.0) -> None:
        """SIGKILL the named process (no chance to clean up), and wait until it is gone."""
        record = self.process(name)
        _kill(record.pid, record.start, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while _alive(record.pid, record.start):
            if time.monotonic() > deadline:
                raise TestbedError(f"{name} (pid {record.pid}) survived SIGKILL for {timeout} s")
            self._reap()
            time.sleep(0.05)

    def running(self, name: str) -> bool:
        record = self.process(name)
        self._reap()
        return _alive(record.pid, record.start)

    def _reap(self) -> None:
        for popen in self._popen:
            popen.poll()  # our own children linger as zombies until reaped

    def _edge_env(self, site: str, env: Mapping[str, str]) -> dict[str, str]:
        return {**env, "ONCOFED_EDGE_TOKEN_FILE": str(self.layout.edge_token_file(site))}

    def _set_up_edge(
        self, site: str, index: int, ca: CaFolder, options: TestbedOptions, env: Mapping[str, str]
    ) -> None:
        from ops.synth.hospital import write_hospital
        from ops.synth.variants import get_variant

        hospital = self.root / "hospitals" / site
        variant = "ABC"[index % 3]
        write_hospital(
            hospital,
            patients=options.patients,
            seed=options.seed + index,
            variant=get_variant(variant),
        )
        ca.issue(site, "edge")
        home = self.layout.edge_home(site)
        home.mkdir(parents=True, exist_ok=True)
        _copy_tls(ca, site, home / "tls")
        if options.policy is not None:  # `oncofed-edge init` keeps a policy already there
            (home / "policy.toml").write_text(options.policy, encoding="utf-8")
        write_toml(
            home / "edge.toml",
            {"site_name": site, "hub_address": self.hub_grpc, "poll_interval_s": POLL_INTERVAL_S},
        )
        edge_env = self._edge_env(site, env)
        edge = python_module("edge_node.cli")
        run_command(
            f"oncofed-edge init ({site})",
            [
                *edge,
                "init",
                "--site",
                site,
                "--hub",
                self.hub_grpc,
                "--operator",
                EDGE_OPERATOR,
                "--home",
                str(home),
            ],
            env=edge_env,
        )
        run_command(
            f"oncofed-edge sync ({site})",
            [
                *edge,
                "sync",
                "--mapping",
                str(hospital / "mapping.yaml"),
                "--quiet",
                "--home",
                str(home),
            ],
            env=edge_env,
            timeout=600.0,
        )

    def spawn(
        self, name: str, namespace: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ProcessRecord:
        """Start a long-running process inside `namespace`, detached from us."""
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                ["ip", "netns", "exec", namespace, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        record = ProcessRecord(name, namespace, popen.pid, _start_time(popen.pid), str(log))
        with self._lock:
            self._popen.append(popen)
            self.state.processes.append(record)
            self.state.save()
        return record

    def process(self, name: str) -> ProcessRecord:
        for record in reversed(self.state.processes):
            if record.name == name:
                return record
        raise NotFound(f"no process {name!r} in the testbed")

    def wait_for_log(
        self, name: str, pattern: re.Pattern[str], timeout: float, *, offset: int = 0
    ) -> re.Match[str]:
        """The first line matching `pattern` in the process's log after byte `offset`."""
        record = self.process(name)
        log = Path(record.log)
        deadline = time.monotonic() + timeout
        while True:
            raw = log.read_bytes()[offset:] if log.exists() else b""
            text = raw.decode("utf-8", errors="replace")
            found = next((m for m in map(pattern.search, text.splitlines()) if m), None)
            if found:
                return found
            if not _alive(record.pid, record.start):
                tail = " | ".join(text.strip().splitlines()[-5:])
                raise Unavailable(f"{name} exited before it was ready (log {log}): {tail}")
            if time.monotonic() > deadline:
                raise Unavailable(f"{name} not ready after {timeout:.0f} s (log {log})")
            time.sleep(0.2)

    # --- using it ---

    def hub_client(self, timeout: float = 15.0) -> HubClient:
        token = (self.root / "hub.token").read_text(encoding="ascii").strip()
        return HubClient(f"http://127.0.0.1:{HUB_HTTP_PORT}", token, timeout=timeout)

    def on_hub(self, action: Callable[[HubClient], T]) -> T:
        """Call the hub's REST API from inside the hub's namespace."""

        def call() -> T:
            with self.hub_client() as client:
                return action(client)

        return in_netns(self.hub_host.namespace, call)

    def wait_for_sites(self, sites: Sequence[str], timeout: float = 120.0) -> None:
        self.on_hub(lambda hub: hub.wait_for_nodes(list(sites), timeout=timeout))

    def wait_for_contact(
        self, sites: Sequence[str], since: dt.datetime, timeout: float = 60.0
    ) -> None:
        """Until every site has called the hub after `since` (after a hub restart, the
        edges' reconnect back-off decides when)."""
        since = since if since.tzinfo else since.replace(tzinfo=dt.UTC)

        def fresh(node: Mapping[str, Any]) -> bool:
            seen = dt.datetime.fromisoformat(str(node["last_seen"]))
            return (seen if seen.tzinfo else seen.replace(tzinfo=dt.UTC)) > since

        deadline = time.monotonic() + timeout
        while True:
            nodes = {str(n["name"]): n for n in self.on_hub(lambda hub: hub.nodes())}
            waiting = [s for s in sites if s not in nodes or not fresh(nodes[s])]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise Unavailable(f"no call from {', '.join(waiting)} after {timeout:.0f} s")
            time.sleep(0.2)

    def run_study(
        self, spec: Mapping[str, Any], sites: Sequence[str], timeout: float = 300.0
    ) -> dict[str, Any]:
        def go(hub: HubClient) -> dict[str, Any]:
            study_id = str(hub.submit_study(spec, sites=list(sites))["id"])
            return hub.wait_for_study(study_id, timeout=timeout)

        return self.on_hub(go)

    def submit_study(self, spec: Mapping[str, Any], sites: Sequence[str]) -> str:
        return self.on_hub(lambda hub: str(hub.submit_study(spec, sites=list(sites))["id"]))

    def study(self, study_id: str) -> dict[str, Any]:
        return self.on_hub(lambda hub: hub.study(study_id))

    def wait_for_study(self, study_id: str, timeout: float = 300.0) -> dict[str, Any]:
        return self.on_hub(lambda hub: hub.wait_for_study(study_id, timeout=timeout))

    def study_tasks(self, study_id: str) -> list[dict[str, Any]]:
        """Each task of the study: site, round, status, times (the hub's REST API)."""
        token = (self.root / "hub.token").read_text(encoding="ascii").strip()
        url = f"http://127.0.0.1:{HUB_HTTP_PORT}/api/v1/studies/{study_id}/tasks"

        def call() -> list[dict[str, Any]]:
            reply = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=15.0)
            reply.raise_for_status()
            return list(reply.json())

        return in_netns(self.hub_host.namespace, call)

    def wait_for_round(self, study_id: str, round_no: int, timeout: float = 60.0) -> dict[str, Any]:
        """The study once it has reached round `round_no` (or ended before it)."""
        deadline = time.monotonic() + timeout
        while True:
            study = self.study(study_id)
            if study["status"] != "running" or int(study["round"]) >= round_no:
                return study
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"study {study_id} still in round {study['round']} after {timeout:.0f} s"
                )
            time.sleep(0.05)

    def tunnel_transfer(self, host: str) -> dict[str, tuple[int, int]]:
        """Bytes received and sent per peer public key on HOST's tunnel (`wg show transfer`)."""
        entry = self.state.hosts[host]
        if entry.tunnel_if is None:
            raise Conflict(f"{host} has no tunnel")
        out = _run(
            ["ip", "netns", "exec", entry.namespace, "wg", "show", entry.tunnel_if, "transfer"]
        )
        peers = {}
        for line in out.splitlines():
            key, received, sent = line.split("\t")
            peers[key] = (int(received), int(sent))
        return peers

    # --- faults ---

    def link(self, host: str, up: bool) -> None:
        """Cut (or restore) HOST's only wire: its `eth0` goes down (or up)."""
        _ip("-n", self.namespace(host), "link", "set", "eth0", "up" if up else "down")

    def link_is_up(self, host: str) -> bool:
        out = _ip("-n", self.namespace(host), "-o", "link", "show", "eth0")
        return ",UP" in out or "<UP" in out

    def slow(self, site: str, delay_s: float) -> UdpDelay:
        """Hold each of SITE's WireGuard packets `delay_s` seconds, both ways.

        The site's peer endpoint for the hub becomes a relay on its own loopback,
        which forwards to the hub's real endpoint from the site's address; so the
        hub sees the same host, one round trip 2 x `delay_s` slower. The site's
        WireGuard port changes too: WireGuard follows a peer to wherever its last
        packet came from, and the hub's packets to the old port would otherwise
        pull the site back onto the direct path.
        """
        if site in self._delays:
            raise Conflict(f"{site} is already slowed; call fast() first")
        entry = self.state.hosts[site]
        relay = UdpDelay(entry.namespace, entry.underlay, (HUB_UNDERLAY, vpn.DEFAULT_PORT), delay_s)
        self._delays[site] = relay
        try:
            self._set_hub_endpoint(site, f"127.0.0.1:{relay.port}", new_port=True)
        except BaseException:
            self._delays.pop(site).close()
            raise
        return relay

    def fast(self, site: str) -> None:
        """Undo `slow`: SITE talks to the hub's endpoint directly again."""
        relay = self._delays.pop(site, None)
        if relay is None:
            return
        try:
            self._set_hub_endpoint(site, f"{HUB_UNDERLAY}:{vpn.DEFAULT_PORT}")
            self._point_hub_at(site)
        finally:
            relay.close()

    def _point_hub_at(self, site: str) -> None:
        """The hub's endpoint for SITE straight back to the site's own port: left on
        the closed relay, it would wait for the site's next packet to roam."""
        entry, hub = self.state.hosts[site], self.hub_host
        peer = vpn.load_plan(self.vpn_dir).site(site)
        if entry.tunnel_if is None or hub.tunnel_if is None or peer is None:
            raise Conflict(f"no tunnel between the hub and {site}")
        show = ["ip", "netns", "exec", entry.namespace, "wg", "show", entry.tunnel_if]
        port = _run([*show, "listen-port"]).strip()
        hub_wg = ["ip", "netns", "exec", hub.namespace, "wg", "set", hub.tunnel_if]
        _run([*hub_wg, "peer", peer.public_key, "endpoint", f"{entry.underlay}:{port}"])

    def _set_hub_endpoint(self, site: str, endpoint: str, *, new_port: bool = False) -> None:
        entry = self.state.hosts[site]
        if entry.tunnel_if is None:
            raise Conflict(f"{site} has no tunnel")
        wg = ["ip", "netns", "exec", entry.namespace, "wg"]
        [hub_key] = _run([*wg, "show", entry.tunnel_if, "peers"]).split()
        port = ["listen-port", "0"] if new_port else []  # 0: a fresh random port
        _run([*wg, "set", entry.tunnel_if, *port, "peer", hub_key, "endpoint", endpoint])

    def hub_endpoint_of(self, site: str) -> str:
        """Where the hub currently sends SITE's WireGuard packets (`wg show endpoints`)."""
        hub = self.hub_host
        peer = vpn.load_plan(self.vpn_dir).site(site)
        if hub.tunnel_if is None or peer is None:
            raise Conflict(f"no tunnel between the hub and {site}")
        out = _run(["ip", "netns", "exec", hub.namespace, "wg", "show", hub.tunnel_if, "endpoints"])
        endpoints = dict(line.split("\t") for line in out.splitlines() if "\t" in line)
        return endpoints.get(peer.public_key, "(none)")

    def revoke_certificate(self, site: str) -> ca_ops.Revoked:
        """Revoke SITE's TLS certificate at the CA and hand the new CRL to the hub,
        which refuses the certificate from its next call on (no restart)."""
        record = ca_ops.revoke(self.layout.ca_dir, site)
        tls = self.layout.hub_home / "tls"
        tmp = tls / f".{ca_ops.CRL_FILE}.tmp"
        shutil.copyfile(record.crl, tmp)
        tmp.replace(tls / ca_ops.CRL_FILE)
        return record

    def revoke(self, site: str) -> vpn.Revocation:
        """Revoke SITE's WireGuard key and apply the hub's new config live."""
        record = vpn.revoke(self.vpn_dir, site)
        text = vpn.VpnFolder(self.vpn_dir).hub_config.read_text(encoding="utf-8")
        self._setconf(self.hub_host, text, sync=True)
        return record

    # --- tearing down ---

    def down(self, *, keep_files: bool = False, grace: float = 5.0) -> list[str]:
        """Stop every process, delete every namespace (and with them every link).

        Returns what was left behind (an empty list when all went); safe to call
        again, and on a half-built testbed.
        """
        for site in list(self._delays):
            self._delays.pop(site).close()
        records = list(self.state.processes)
        for record in records:
            _kill(record.pid, record.start, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(_alive(r.pid, r.start) for r in records) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.1)
        for record in records:
            _kill(record.pid, record.start, signal.SIGKILL)
        deadline = time.monotonic() + grace  # SIGKILL is not instant either
        while any(_alive(r.pid, r.start) for r in records) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        ours = [ns for ns in _existing_namespaces() if ns.startswith(self.state.prefix)]
        for ns in dict.fromkeys([*self.state.namespaces, *ours]):
            # Anything else that runs in our hosts (a shell an operator opened) goes too.
            for pid in _ip("netns", "pids", ns, check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", ns, check=False)
        self._reap()
        for host in self.state.hosts.values():
            if host.tunnel_if:
                (WG_SOCKETS / f"{host.tunnel_if}.sock").unlink(missing_ok=True)
        left = leftovers(self.state.id)
        left += [f"process {r.pid} ({r.name})" for r in records if _alive(r.pid, r.start)]
        if not keep_files and not left:
            shutil.rmtree(self.root, ignore_errors=True)
        return left


class UdpDelay:
    """A UDP relay in `namespace`: what arrives on its loopback port goes to `target`
    from `source`, and the answers come back, each packet `delay_s` later.

    Its sockets live in the namespace; its thread lives in this process, so it
    ends with it (and with `close`).
    """

    def __init__(
        self, namespace: str, source: str, target: tuple[str, int], delay_s: float
    ) -> None:
        if not 0 < delay_s <= 10:
            raise InvalidInput("a delay must be more than 0 and at most 10 s")
        self.delay_s = delay_s

        def sockets() -> tuple[socket.socket, socket.socket]:
            front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            front.bind(("127.0.0.1", 0))
            back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            back.bind((source, 0))
            back.connect(target)
            return front, back

        self._front, self._back = in_netns(namespace, sockets)
        self.port = int(self._front.getsockname()[1])
        self.source = f"{source}:{self._back.getsockname()[1]}"  # what the hub sees
        self._client: Any = None  # wireguard-go's own address, from its first packet
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._relay, name=f"delay-{namespace}", daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._front, selectors.EVENT_READ)
        selector.register(self._back, selectors.EVENT_READ)
        held: list[tuple[float, int, bool, bytes]] = []  # (due, order, to the hub, packet)
        order = 0
        while not self._stop.is_set():
            wait = 0.2 if not held else min(0.2, max(0.0, held[0][0] - time.monotonic()))
            for key, _ in selector.select(wait):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    packet, sender = sock.recvfrom(65535)
                except OSError:
                    continue
                to_hub = sock is self._front
                if to_hub:
                    self._client = sender
                heapq.heappush(held, (time.monotonic() + self.delay_s, order, to_hub, packet))
                order += 1
            while held and held[0][0] <= time.monotonic():
                _, _, to_hub, packet = heapq.heappop(held)
                with contextlib.suppress(OSError):  # a cut link drops it, as a wire would
                    if to_hub:
                        self._back.send(packet)
                    elif self._client is not None:
                        self._front.sendto(packet, self._client)
        selector.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._front.close()
        self._back.close()


def _wait_until(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TestbedError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _refused_or_open(namespace: str, host: str, port: int) -> bool:
    """True when host answers at all (connection accepted or refused)."""

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except ConnectionRefusedError:
            return True
        except OSError:
            return False

    return in_netns(namespace, probe)


def leftovers(testbed_id: str) -> list[str]:
    """Namespaces, tunnel sockets and processes of testbed `testbed_id` that still exist."""
    prefix = f"{PREFIX}-{testbed_id}-"
    found = [f"namespace {ns}" for ns in _existing_namespaces() if ns.startswith(prefix)]
    wg_prefix = f"{PREFIX}{testbed_id}w"
    if WG_SOCKETS.is_dir():
        found += [f"socket {p}" for p in WG_SOCKETS.iterdir() if p.name.startswith(wg_prefix)]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in cmdline]
        if any(a.startswith((prefix, wg_prefix)) for a in args):
            found.append(f"process {proc.name} ({' '.join(args).strip()})")
    return found


def up(root: Path, options: TestbedOptions, say: Callable[[str], None]) -> Testbed:
    return Testbed.up(root, options, say)


def open_testbed(root: Path) -> Testbed:
    """The running testbed described by ROOT/testbed.json (for `link`, `kill`, `start`)."""
    if os.geteuid() != 0:
        raise TestbedError("changing the testbed's hosts needs root")
    return Testbed(TestbedState.load(root.resolve()))


def start_service(bed: Testbed, name: str) -> ProcessRecord:
    """Start `hub` or `edge-SITE` again (after `kill`); returns once it is ready."""
    if name == HUB_NAME:
        return bed.start_hub()
    site = name.removeprefix("edge-")
    if name.startswith("edge-") and site in bed.state.sites:
        return bed.start_edge(site)
    services = ", ".join([HUB_NAME, *(f"edge-{s}" for s in bed.state.sites)])
    raise InvalidInput(f"no service {name!r}; the testbed runs {services}")


def down(root: Path, *, keep_files: bool = False) -> list[str]:
    """Tear down the testbed described by ROOT/testbed.json."""
    if os.geteuid() != 0:
        raise TestbedError("removing network namespaces needs root")
    return Testbed(TestbedState.load(root.resolve())).down(keep_files=keep_files)
