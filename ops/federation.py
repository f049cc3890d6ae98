"""A hub and its edges as real processes on loopback, with mutual TLS.

This is the machinery behind `oncofed-ops local-federation`, the demo and the
integration tests. Everything lives under one work folder:

    ca/           the consortium CA and every party's certificate
    hub/          the hub's home (hub.toml, tls/, hub.db)
    edges/SITE/   one edge home per site (edge.toml, policy.toml, tls/, *.db)
    logs/         one log per process (stdout and stderr)

The hub is only ever given certificates and settings; CSV files go to edges.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from ops.hub_client import HubClient
from ops.processes import (
    ManagedProcess,
    ProcessGroup,
    child_env,
    python_module,
    run_command,
)
from protocol.tls import CaFolder, write_private
from shared_cdm.errors import Conflict, InvalidInput, NotFound

HUB_NAME = "hub"
EDGE_OPERATOR = "local-operator"
HUB_READY = re.compile(r"hub ready grpc=(?P<grpc_host>\S+):(?P<grpc_port>\d+) http=(?P<http>\S+)")
LOCAL_USER = "local"


def edge_ready(site: str) -> re.Pattern[str]:
    return re.compile(rf"^edge {re.escape(site)} ready\b")


@dataclass(frozen=True)
class HubEndpoint:
    grpc_host: str
    grpc_port: int
    http_url: str
    token: str

    @property
    def grpc_address(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    @property
    def http_port(self) -> int:
        return int(self.http_url.rsplit(":", 1)[1].split("/", 1)[0])


@dataclass(frozen=True)
class FederationLayout:
    root: Path

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def hub_home(self) -> Path:
        return self.root / "hub"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def edge_home(self, site: str) -> Path:
        return self.root / "edges" / site

    def edge_token_file(self, site: str) -> Path:
        """The site operator's token (mode 0600), written by `init --operator`."""
        return self.edge_home(site) / "operator.token"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    # JSON string escapes are a subset of TOML basic-string escapes.
    return json.dumps(str(value))


def write_toml(path: Path, settings: Mapping[str, object]) -> None:
    """Scalars first, then one `[table]` per mapping value (one level deep)."""
    lines = [
        f"{key} = {_toml_value(value)}"
        for key, value in settings.items()
        if not isinstance(value, Mapping)
    ]
    for table, values in settings.items():
        if isinstance(values, Mapping):
            lines += ["", f"[{table}]"]
            lines += [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _copy_tls(ca: CaFolder, party: str, tls_dir: Path, *, trust: CaFolder | None = None) -> None:
    """The trusted CA's certificate plus the party's own pair; never a CA's key."""
    tls_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile((trust or ca).ca_cert, tls_dir / "ca.crt")
    shutil.copyfile(ca.party_cert(party), tls_dir / f"{party}.crt")
    write_private(tls_dir / f"{party}.key", ca.party_key(party).read_bytes())


class LocalFederation:
    """Owns the processes it starts; leaving the `with` block stops them all."""

    def __init__(
        self,
        root: Path,
        *,
        console: Console | None = None,
        ready_timeout: float = 120.0,
        grace: float = 10.0,
    ) -> None:
        self.layout = FederationLayout(root)
        self.ready_timeout = ready_timeout
        self._console = console
        self._processes = ProcessGroup(self.layout.logs, grace=grace)
        self._env = child_env()
        self._hub_settings: dict[str, object] = {}
        self.hub: HubEndpoint | None = None
        self.hub_process: ManagedProcess | None = None
        self.edges: dict[str, ManagedProcess] = {}
        self._edges_lock = threading.Lock()
        self._edges_starting: set[str] = set()

    def __enter__(self) -> LocalFederation:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._say("stopping the hub and the edges")
        self._processes.stop_all()

    def _say(self, message: str) -> None:
        if self._console is not None:
            self._console.log(message)

    @property
    def ca(self) -> CaFolder:
        return CaFolder(self.layout.ca_dir)

    # --- commands ---

    def hub_command(self, *args: str, timeout: float = 120.0) -> str:
        argv = python_module("hub.cli", *args, "--home", str(self.layout.hub_home))
        return run_command(f"oncofed-hub {args[0]}", argv, env=self._env, timeout=timeout)

    def edge_command(self, site: str, *args: str, timeout: float = 120.0) -> str:
        """Run an `oncofed-edge` command as the site's operator."""
        argv = python_module("edge_node.cli", *args, "--home", str(self.layout.edge_home(site)))
        return run_command(
            f"oncofed-edge {args[0]} ({site})", argv, env=self._edge_env(site), timeout=timeout
        )

    def _edge_env(self, site: str) -> dict[str, str]:
        # `init --operator` writes the token file that every later command reads.
        return {**self._env, "ONCOFED_EDGE_TOKEN_FILE": str(self.layout.edge_token_file(site))}

    # --- the hub ---

    def init_ca(self) -> CaFolder:
        self._say(f"making a consortium CA in {self.layout.ca_dir}")
        self.ca.init()
        self.ca.issue(HUB_NAME, "hub")
        return self.ca

    def start_hub(
        self,
        *,
        auto_approve: bool = True,
        db_url: str | None = None,
        grpc_port: int = 0,
        http_port: int = 0,
        settings: Mapping[str, object] | None = None,
    ) -> HubEndpoint:
        """Set up the hub's home, its database and a coordinator, then serve."""
        home = self.layout.hub_home
        home.mkdir(parents=True, exist_ok=True)
        _copy_tls(self.ca, HUB_NAME, home / "tls")
        self._hub_settings = {
            "auto_approve": auto_approve,
            "grpc_port": grpc_port,
            "http_port": http_port,
            **({"db_url": db_url} if db_url else {}),
            **(settings or {}),
        }
        write_toml(home / "hub.toml", self._hub_settings)
        self._say("creating the hub database")
        self.hub_command("db", "upgrade")
        token = self.hub_command("users", "add", LOCAL_USER, "--role", "coordinator").strip()
        if not token or len(token.splitlines()) != 1:
            raise InvalidInput("`oncofed-hub users add` did not print exactly one token line")
        return self._serve_hub(token)

    def _serve_hub(self, token: str) -> HubEndpoint:
        self._say("starting the hub")
        argv = python_module("hub.cli", "serve", "--home", str(self.layout.hub_home))
        self.hub_process, match = self._processes.start(
            HUB_NAME, argv, env=self._env, ready=HUB_READY, timeout=self.ready_timeout
        )
        if match is None:
            raise NotFound("the hub printed no ready line")
        self.hub = HubEndpoint(
            match["grpc_host"], int(match["grpc_port"]), match["http"].rstrip("/"), token
        )
        self._say(f"hub ready: gRPC {self.hub.grpc_address}, HTTP {self.hub.http_url}")
        return self.hub

    def restart_hub(self, *, hard: bool = True) -> HubEndpoint:
        """Stop the hub (SIGKILL when `hard`) and serve again on the same home and ports."""
        hub, process = self._require_hub()
        if hard:
            process.kill()
        else:
            process.stop()
        self._hub_settings.update(grpc_port=hub.grpc_port, http_port=hub.http_port)
        write_toml(self.layout.hub_home / "hub.toml", self._hub_settings)
        return self._serve_hub(hub.token)

    def _require_hub(self) -> tuple[HubEndpoint, ManagedProcess]:
        if self.hub is None or self.hub_process is None:
            raise Conflict("the hub has not been started")
        return self.hub, self.hub_process

    def client(self, *, timeout: float = 15.0) -> HubClient:
        hub, _ = self._require_hub()
        return HubClient(hub.http_url, hub.token, timeout=timeout)

    # --- the edges ---

    def add_edge(
        self,
        site: str,
        csv: Path,
        *,
        policy: Path | None = None,
        ca: CaFolder | None = None,
        trust: CaFolder | None = None,
        wait_ready: bool = True,
    ) -> ManagedProcess:
        """Set up SITE's edge with `csv` as dataset `default`, and run it.

        `ca` issues the site's certificate and `trust` is the CA whose
        certificate the edge checks the hub's against (both default to the
        consortium CA); another CA in either is how tests play an impostor.
        """
        hub, _ = self._require_hub()
        with self._edges_lock:
            if site in self.edges or site in self._edges_starting:
                raise Conflict(f"site {site!r} already has an edge")
            self._edges_starting.add(site)
        try:
            return self._set_up_edge(
                site, csv, hub, policy=policy, ca=ca, trust=trust, wait_ready=wait_ready
            )
        finally:
            with self._edges_lock:
                self._edges_starting.discard(site)

    def _set_up_edge(
        self,
        site: str,
        csv: Path,
        hub: HubEndpoint,
        *,
        policy: Path | None,
        ca: CaFolder | None,
        trust: CaFolder | None,
        wait_ready: bool,
    ) -> ManagedProcess:
        issuer = ca or self.ca
        issuer.issue(site, "edge")
        home = self.layout.edge_home(site)
        _copy_tls(issuer, site, home / "tls", trust=trust or self.ca)
        self._say(f"setting up edge {site}")
        self.edge_command(
            site, "init", "--site", site, "--hub", hub.grpc_address, "--operator", EDGE_OPERATOR
        )
        if policy is not None:
            shutil.copyfile(policy, home / "policy.toml")
        self.edge_command(site, "dataset", "add", "default", str(csv.resolve()))
        argv = python_module("edge_node.cli", "run", "--home", str(home))
        ready = edge_ready(site) if wait_ready else None
        process, _ = self._processes.start(
            f"edge-{site}", argv, env=self._edge_env(site), ready=ready, timeout=self.ready_timeout
        )
        with self._edges_lock:
            self.edges[site] = process
        if wait_ready:
            self._say(f"edge {site} registered with the hub")
        return process

    def add_edges(
        self, tables: Mapping[str, Path], *, policy: Path | None = None
    ) -> dict[str, ManagedProcess]:
        """`add_edge` for every site at once: their start-ups overlap."""
        with ThreadPoolExecutor(max_workers=max(len(tables), 1)) as pool:
            futures = {
                site: pool.submit(self.add_edge, site, csv, policy=policy)
                for site, csv in tables.items()
            }
            try:
                return {site: future.result() for site, future in futures.items()}
            except BaseException:
                # Stop the siblings now rather than wait out their ready timeouts.
                self._processes.stop_all()
                raise

    def restart_edge(self, site: str, *, wait_ready: bool = True) -> ManagedProcess:
        process = self._require_edge(site)
        ready = edge_ready(site) if wait_ready else None
        restarted, _ = self._processes.restart(process, ready=ready, timeout=self.ready_timeout)
        self.edges[site] = restarted
        return restarted

    def _require_edge(self, site: str) -> ManagedProcess:
        if site not in self.edges:
            raise NotFound(f"no edge for site {site!r}")
        return self.edges[site]

    # --- studies ---

    def check_alive(self, sites: Iterable[str]) -> None:
        """ProcessFailed if the hub or one of these sites' edges died on its own."""
        _, hub_process = self._require_hub()
        hub_process.check_alive()
        for site in sites:
            self._require_edge(site).check_alive()

    def wait_for_sites(self, sites: Iterable[str], *, timeout: float = 120.0) -> None:
        names = list(sites)
        self._say(f"waiting for {', '.join(names)} to be online at the hub")
        with self.client() as hub:
            hub.wait_for_nodes(names, timeout=timeout, watch=lambda: self.check_alive(names))

    def run_study(
        self,
        spec: Mapping[str, Any],
        sites: Iterable[str],
        *,
        title: str | None = None,
        timeout: float = 600.0,
    ) -> dict[str, Any]:
        """Submit a study to the given sites and wait until it is final; returns the study."""
        names = list(sites)
        with self.client() as hub:
            submitted = hub.submit_study(spec, sites=names, title=title)
            study_id = str(submitted["id"])
            self._say(f"study {study_id} ({spec.get('analysis')}) is {submitted.get('status')}")
            study = hub.wait_for_study(
                study_id, timeout=timeout, watch=lambda: self.check_alive(names)
            )
        self._say(f"study {study_id} {study.get('status')}")
        return study
