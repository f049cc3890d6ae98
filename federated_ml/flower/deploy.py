"""Run a Flower Deployment Engine federation as real processes.

The SuperLink binds one address (127.0.0.1 by default; the hub's tunnel address
on a real network, whose certificate must name it); SuperNodes dial it.

One `flower-superlink` (TLS on, SuperNode authentication on, runtime
dependency installation off) and one `flower-supernode` per site, each a
separate process in its own session with its own FLWR_HOME. SuperNodes
authenticate with an EC P-384 key whose public half the operator registered
beforehand (`flwr supernode register`); an unregistered key is refused when the
SuperNode activates. Runs are submitted with `flwr run` against a generated
Flower App directory. Every Flower process gets telemetry and the update check
switched off, so nothing leaves the machine.

`stop()` ends every process this object started, with the children they
spawned (SuperExec, ServerApp and ClientApp processes), and is called from
`__exit__`, so a failing test leaves no orphans.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared_cdm.errors import InvalidInput, OncoFedError

CONNECTION = "oncofed"  # the name of the SuperLink connection in the operator's config


class DeploymentError(OncoFedError):
    code = "flower_deployment_error"


@dataclass(frozen=True)
class TlsFiles:
    """The consortium CA certificate and the SuperLink's certificate and key (PEM)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True)
class NodeKeys:
    private_key: Path  # OpenSSH format, read by flower-supernode
    public_key: Path  # OpenSSH format, registered with the SuperLink


def make_node_keys(directory: Path, name: str) -> NodeKeys:
    """A fresh P-384 key pair for one SuperNode; the private half is written 0600."""
    key = ec.generate_private_key(ec.SECP384R1())
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / f"{name}.key"
    public = directory / f"{name}.pub"
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
        )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    )
    return NodeKeys(private, public)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin_dir() -> Path:
    return Path(sys.executable).parent


def flower_env(home: Path, *, poll_interval: float = 0.2) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "FLWR_HOME": str(home),
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            # SuperExec looks for new ClientApp/ServerApp tasks every second by default.
            "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": str(poll_interval),
            "PATH": f"{_bin_dir()}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def stop_process_tree(popen: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM a process started in its own session, then SIGKILL it and the Flower
    processes it spawned (some detach into sessions of their own)."""
    known = set(descendants(popen.pid)) if popen.poll() is None else set()
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=grace)
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=5)
    for pid in known:
        signal_flower_pid(pid, signal.SIGKILL)


@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    known_pids: set[int] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def remember_children(self) -> None:
        if self.alive():
            self.known_pids.update(descendants(self.pid))

    def log_text(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def signal_flower_pid(pid: int, sig: int) -> None:
    """Signal a remembered child only if that pid still runs a Flower program."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"flwr" not in cmdline and b"flower" not in cmdline:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def stale_flower_processes(workdir: Path) -> list[int]:
    """Flower processes an earlier owner of `workdir` left running (a hub killed
    without stopping its SuperLink, whose processes sit in sessions of their own):
    those whose working directory lies inside it."""
    root = workdir.resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if (b"flwr" in cmdline or b"flower" in cmdline) and cwd.is_relative_to(root):
            found.append(int(entry.name))
    return sorted(found)


class FlowerDeployment:
    """A SuperLink and its SuperNodes, started and stopped as one unit."""

    def __init__(
        self, workdir: Path, tls: TlsFiles, *, port: int | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.workdir = workdir
        self.tls = tls
        self.port = port or free_port()
        # The SuperLink binds here only (the hub's tunnel address on a real network).
        self.host = host
        self._probe_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self.address = f"{self._probe_host}:{self.port}"
        self.processes: dict[str, ManagedProcess] = {}
        self.operator_home = workdir / "operator-home"
        workdir.mkdir(parents=True, exist_ok=True)
        self._write_operator_config()

    # --- lifecycle ---------------------------------------------------------

    def __enter__(self) -> FlowerDeployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, name: str, argv: list[str], home: Path) -> ManagedProcess:
        if name in self.processes and self.processes[name].alive():
            raise InvalidInput(f"a process named {name!r} is already running")
        home.mkdir(parents=True, exist_ok=True)
        log_path = self.workdir / f"{name}.log"
        log_file = log_path.open("ab")
        popen = subprocess.Popen(
            argv,
            cwd=home,
            env=flower_env(home),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: signals reach its children too
        )
        proc = ManagedProcess(name, popen, log_path, log_file)
        self.processes[name] = proc
        return proc

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM every process group we started, then SIGKILL what is left."""
        for proc in self.processes.values():
            proc.remember_children()
        for proc in self.processes.values():
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.processes.values():
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait(timeout=5)
            # Children in other sessions (SuperLink's SuperExec detaches itself).
            for pid in proc.known_pids:
                signal_flower_pid(pid, signal.SIGKILL)
            proc.log_file.close()

    def kill(self, name: str) -> None:
        """SIGKILL one process group at once, as a crash or power cut would."""
        proc = self.processes[name]
        proc.remember_children()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.popen.wait(timeout=10)
        for pid in proc.known_pids:
            signal_flower_pid(pid, signal.SIGKILL)

    # --- SuperLink -----------------------------------------------------------

    def _take_over_port(self, timeout: float = 10.0) -> None:
        """End what an earlier owner of this folder left, then make sure the port is
        free: a port check answered by someone else's listener would hide that our
        SuperLink failed to bind."""
        for pid in stale_flower_processes(self.workdir):
            signal_flower_pid(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex((self._probe_host, self.port)) != 0:
                    return
            if time.monotonic() >= deadline:
                raise DeploymentError(
                    f"{self.address} is already in use by another program; "
                    "the SuperLink cannot listen there (choose another flower_port)"
                )
            time.sleep(0.2)

    def start_superlink(self, timeout: float = 60.0) -> ManagedProcess:
        self._take_over_port()
        argv = [
            str(_bin_dir() / "flower-superlink"),
            "--ssl-ca-certfile", str(self.tls.ca_cert),
            "--ssl-certfile", str(self.tls.server_cert),
            "--ssl-keyfile", str(self.tls.server_key),
            "--enable-supernode-auth",
            "--disable-runtime-dependency-installation",
            "--host", self.host,
            "--port", str(self.port),
            "--database", str(self.workdir / "superlink-state.db"),
        ]  # fmt: skip
        proc = self._spawn("superlink", argv, self.workdir / "superlink-home")
        self._wait_for_port(proc, timeout)
        return proc

    def _wait_for_port(self, proc: ManagedProcess, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise DeploymentError(f"{proc.name} exited early:\n{proc.log_text()[-2000:]}")
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex((self._probe_host, self.port)) == 0:
                    return
            time.sleep(0.2)
        raise DeploymentError(f"{proc.name} did not listen on {self.address} in {timeout:.0f} s")

    # --- operator commands (the `flwr` CLI) ------------------------------------

    def _write_operator_config(self) -> None:
        self.operator_home.mkdir(parents=True, exist_ok=True)
        text = (
            "[superlink]\n"
            f'default = "{CONNECTION}"\n\n'
            f"[superlink.{CONNECTION}]\n"
            f'address = "{self.address}"\n'
            f"root-certificates = {json.dumps(str(self.tls.ca_cert.resolve()))}\n"
        )
        (self.operator_home / "config.toml").write_text(text, encoding="utf-8")

    def flwr(self, *args: str, timeout: float = 60.0) -> Any:
        """Run one `flwr ... --format json` command as the operator; returns its JSON."""
        argv = [str(_bin_dir() / "flwr"), *args, "--format", "json"]
        done = subprocess.run(
            argv,
            env=flower_env(self.operator_home),
            cwd=self.operator_home,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        out = done.stdout.decode(errors="replace")
        start = out.find("{")
        try:
            payload = json.loads(out[start:]) if start >= 0 else None
        except json.JSONDecodeError:
            payload = None
        if done.returncode != 0 or not isinstance(payload, dict) or not payload.get("success"):
            err = done.stderr.decode(errors="replace")
            raise DeploymentError(f"flwr {' '.join(args)} failed: {out.strip()} {err.strip()}")
        return payload

    def register_supernode(self, name: str, keys: NodeKeys) -> int:
        return self.register_public_key(name, keys.public_key)

    def register_public_key(self, name: str, public_key: Path) -> int:
        """Register a SuperNode's public key (OpenSSH format) under `name`; its node id."""
        payload = self.flwr("supernode", "register", str(public_key), CONNECTION, "--name", name)
        return int(payload["node-id"])

    def unregister_supernode(self, node_id: int) -> None:
        self.flwr("supernode", "unregister", str(node_id), CONNECTION)

    def list_supernodes(self) -> list[dict[str, Any]]:
        nodes = self.flwr("supernode", "ls", CONNECTION)["nodes"]
        return list(nodes)

    def submit(self, app_dir: Path) -> int:
        payload = self.flwr("run", str(app_dir), CONNECTION)
        return int(payload["run-id"])

    def run_status(self, run_id: int) -> str:
        runs = self.flwr("ls", CONNECTION, "--run-id", str(run_id))["runs"]
        return str(runs[0]["status"]) if runs else "unknown"

    # --- SuperNodes ------------------------------------------------------------

    def start_supernode(
        self, name: str, keys: NodeKeys, node_config: Mapping[str, str | int | float]
    ) -> ManagedProcess:
        argv = [
            str(_bin_dir() / "flower-supernode"),
            "--superlink", self.address,
            "--root-certificates", str(self.tls.ca_cert),
            "--auth-supernode-private-key", str(keys.private_key),
            "--port", str(free_port()),  # its Runtime API for its own ClientApp processes
            "--node-config", node_config_arg(node_config),
        ]  # fmt: skip
        return self._spawn(name, argv, self.workdir / f"{name}-home")

    def wait_for_result(
        self, run_id: int, results_dir: Path, timeout: float, *, status_every: float = 30.0
    ) -> dict[str, Any]:
        """The ServerApp's result file; fails fast if the run ends without one."""
        path = results_dir / f"run-{run_id}.json"
        deadline = time.monotonic() + timeout
        next_status = time.monotonic() + status_every
        while time.monotonic() < deadline:
            if path.exists():
                data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
                return data
            if not self.processes["superlink"].alive():
                raise DeploymentError("the SuperLink exited during the run")
            if time.monotonic() >= next_status:
                status = self.run_status(run_id)
                if status.startswith("finished") and not path.exists():
                    raise DeploymentError(f"run {run_id} ended as {status} without a result")
                next_status = time.monotonic() + status_every
            time.sleep(0.25)
        raise DeploymentError(f"run {run_id} gave no result in {timeout:.0f} s")


def node_config_arg(node_config: Mapping[str, str | int | float]) -> str:
    parts = []
    for key, value in node_config.items():
        if not key.replace("-", "").replace("_", "").isalnum():
            raise InvalidInput(f"node config key {key!r} is not a plain name")
        parts.append(f"{key}={json.dumps(value) if isinstance(value, str) else value}")
    return " ".join(parts)
