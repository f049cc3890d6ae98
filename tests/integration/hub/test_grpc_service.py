"""The hub's gRPC service on a real server with real mutual TLS.

Certificates come from `protocol.tls` in a temporary folder; clients are the
generated stub over `protocol.tls.channel_credentials`, as an edge node's are.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hub.auth import UserView, add_user
from hub.bootstrap import Hub, build_hub
from hub.db.models import Role, StudyStatus
from hub.db.session import upgrade_database
from hub.grpc_service import create_grpc_server
from hub.settings import load_settings
from hub.studies.service import utc_now
from protocol import serde
from protocol.generated import oncofed_federation_pb2_grpc as pb_grpc
from protocol.messages import (
    DatasetInfo,
    ProtocolVersion,
    Registration,
    ResultStatus,
    TaskResult,
)
from protocol.tls import (
    CaFolder,
    KeyPair,
    TlsFiles,
    channel_credentials,
    create_ca,
    issue_certificate,
)

MAX_MESSAGE_BYTES = 64 * 1024
REGISTRATION = Registration(
    software_version="0.1.0",
    cdm_version="5.4",
    datasets=(DatasetInfo("default", "flat", "v1", ("age", "stage")),),
)


def _write(folder: Path, name: str, pair: KeyPair) -> None:
    (folder / f"{name}.key").write_bytes(pair.key_pem)
    (folder / f"{name}.crt").write_bytes(pair.cert_pem)


def _roleless_certificate(ca: KeyPair, common_name: str) -> KeyPair:
    """Signed by the consortium CA but with no organisational unit (no role)."""
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return KeyPair(key_pem, cert.public_bytes(serialization.Encoding.PEM))


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    """hub, edges A and B, a hub-role client, a role-less client, and A from a rogue CA."""
    ca = CaFolder(tmp_path / "tls")
    ca.init()
    ca.issue("hub", "hub")
    ca.issue("A", "edge")
    ca.issue("B", "edge")
    ca.issue("otherhub", "hub")
    _write(ca.path, "roleless", _roleless_certificate(ca.load_ca(), "roleless"))
    rogue = create_ca("Rogue CA")
    (ca.path / "rogue-ca.crt").write_bytes(rogue.cert_pem)
    _write(ca.path, "rogue-A", issue_certificate(rogue, "A", "edge"))
    return ca.path


@dataclass
class RunningHub:
    hub: Hub
    port: int
    tls_dir: Path

    def stub(self, name: str, *, ca_cert: str = "ca.crt") -> pb_grpc.EdgeHubStub:
        files = TlsFiles(
            self.tls_dir / ca_cert, self.tls_dir / f"{name}.crt", self.tls_dir / f"{name}.key"
        )
        channel = grpc.secure_channel(
            f"localhost:{self.port}",
            channel_credentials(files),
            options=[("grpc.max_send_message_length", 16 * MAX_MESSAGE_BYTES)],
        )
        return pb_grpc.EdgeHubStub(channel)

    def node_names(self) -> list[str]:
        return [n.name for n in self.hub.nodes.list_nodes()]

    def count_study(self, sites: list[str]) -> str:
        with self.hub.db.transaction() as session:
            researcher, _ = add_user(
                session, f"r{len(sites)}{os.getpid()}", Role.RESEARCHER, now=utc_now()
            )
            coordinator, _ = add_user(
                session, f"c{len(sites)}{os.getpid()}", Role.COORDINATOR, now=utc_now()
            )
        study = self.hub.studies.submit(researcher, {"analysis": "count"}, sites=sites)
        self.hub.studies.approve(coordinator, study.id)
        return study.id


@pytest.fixture
def running(tmp_path: Path, tls_dir: Path, db_url: str) -> Iterator[RunningHub]:
    settings = load_settings(
        tmp_path / "home",
        db_url=db_url,
        grpc_port=0,
        max_message_bytes=MAX_MESSAGE_BYTES,
        tls_ca_cert=tls_dir / "ca.crt",
        tls_cert=tls_dir / "hub.crt",
        tls_key=tls_dir / "hub.key",
        # These cases run count on one or two sites; the default minimum is three.
        min_sites={"count": 1},
    )
    upgrade_database(db_url)
    hub = build_hub(settings)
    server, port = create_grpc_server(settings, hub.studies, hub.nodes, utc_now, max_workers=4)
    server.start()
    try:
        yield RunningHub(hub, port, tls_dir)
    finally:
        server.stop(None).wait()
        hub.db.dispose()


def _code(call: Any, *args: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=10)
    code: grpc.StatusCode = caught.value.code()
    return code


def _register(stub: pb_grpc.EdgeHubStub) -> Any:
    return stub.Register(serde.registration_to_proto(REGISTRATION), timeout=10)


def _pull(stub: pb_grpc.EdgeHubStub) -> list[Any]:
    tasks, unreadable = serde.pull_reply_from_proto(
        stub.PullTasks(serde.pull_request_to_proto(0), timeout=10)
    )
    assert unreadable == []
    return tasks


def _submit(stub: pb_grpc.EdgeHubStub, result: TaskResult) -> Any:
    return serde.submit_ack_from_proto(stub.SubmitResult(serde.result_to_proto(result), timeout=10))


def test_register_names_the_node_by_its_certificate(running: RunningHub) -> None:
    ack = serde.registration_ack_from_proto(_register(running.stub("A")))
    assert ack.node_name == "A"
    assert ack.heartbeat_interval_s == running.hub.settings.heartbeat_interval_s
    (node,) = running.hub.nodes.list_nodes()
    assert (node.name, node.online, node.software_version) == ("A", True, "0.1.0")
    assert node.datasets == (
        {"name": "default", "kind": "flat", "version": "v1", "columns": ["age", "stage"]},
    )
    beat = running.stub("A").Heartbeat(serde.heartbeat_request_to_proto(0), timeout=10)
    assert abs(beat.server_time_unix_ms / 1000 - utc_now().timestamp()) < 60


def test_heartbeat_before_registering_is_not_found(running: RunningHub) -> None:
    assert (
        _code(running.stub("B").Heartbeat, serde.heartbeat_request_to_proto(0))
        is grpc.StatusCode.NOT_FOUND
    )


def test_pull_and_submit_are_idempotent(running: RunningHub) -> None:
    for name in ("A", "B"):
        _register(running.stub(name))
    study_id = running.count_study(["A", "B"])
    a = running.stub("A")
    (task,) = _pull(a)
    assert [t.task_id for t in _pull(a)] == [task.task_id]  # delivered again until answered
    assert (task.study_id, task.analysis, task.round) == (study_id, "count", 0)
    assert task.spec["round_params"] == {"n_sites": 2}

    first = _submit(a, TaskResult(task.task_id, ResultStatus.OK, {"n": 21}))
    assert (first.accepted, first.duplicate) == (True, False)
    again = _submit(a, TaskResult(task.task_id, ResultStatus.OK, {"n": 99}))
    assert (again.accepted, again.duplicate) == (True, True)
    assert _pull(a) == []

    b = running.stub("B")
    (task_b,) = _pull(b)
    _submit(b, TaskResult(task_b.task_id, ResultStatus.OK, {"n": 9}))
    study = running.hub.studies.get(_coordinator(running), study_id)
    assert study.status is StudyStatus.COMPLETED
    assert study.result is not None and study.result["n"] == 30


@pytest.mark.parametrize("sites", [["A"], ["A", "B"]])
def test_pulled_tasks_say_how_many_sites_receive_the_round(
    running: RunningHub, sites: list[str]
) -> None:
    for name in sites:
        _register(running.stub(name))
    study_id = running.count_study(sites)
    for name in sites:
        (task,) = _pull(running.stub(name))
        assert task.study_id == study_id
        assert task.spec["round_params"]["n_sites"] == len(sites)


def _coordinator(running: RunningHub) -> UserView:
    return UserView("any-coordinator", Role.COORDINATOR, utc_now())


def test_a_node_submitting_anothers_task_is_denied(running: RunningHub) -> None:
    for name in ("A", "B"):
        _register(running.stub(name))
    running.count_study(["A", "B"])
    (task_a,) = _pull(running.stub("A"))
    result = serde.result_to_proto(TaskResult(task_a.task_id, ResultStatus.OK, {"n": 1}))
    assert _code(running.stub("B").SubmitResult, result) is grpc.StatusCode.PERMISSION_DENIED
    # A's own answer is still taken afterwards.
    assert _submit(
        running.stub("A"), TaskResult(task_a.task_id, ResultStatus.OK, {"n": 7})
    ).accepted


def test_unknown_task_is_not_found(running: RunningHub) -> None:
    _register(running.stub("A"))
    request = serde.result_to_proto(TaskResult("no-such-task", ResultStatus.OK, {"n": 1}))
    assert _code(running.stub("A").SubmitResult, request) is grpc.StatusCode.NOT_FOUND


def test_a_certificate_from_another_ca_cannot_connect(running: RunningHub) -> None:
    rogue = running.stub("rogue-A")
    assert (
        _code(rogue.Register, serde.registration_to_proto(REGISTRATION))
        is grpc.StatusCode.UNAVAILABLE
    )
    assert running.node_names() == []


@pytest.mark.parametrize("name", ["otherhub", "roleless"])
def test_a_hub_or_roleless_certificate_cannot_act_as_a_node(running: RunningHub, name: str) -> None:
    stub = running.stub(name)
    assert (
        _code(stub.Register, serde.registration_to_proto(REGISTRATION))
        is grpc.StatusCode.PERMISSION_DENIED
    )
    assert (
        _code(stub.PullTasks, serde.pull_request_to_proto(0)) is grpc.StatusCode.PERMISSION_DENIED
    )
    assert running.node_names() == []


def test_oversized_message_is_refused_and_the_server_keeps_serving(running: RunningHub) -> None:
    _register(running.stub("A"))
    running.count_study(["A"])
    stub = running.stub("A")
    (task,) = _pull(stub)
    huge = TaskResult(task.task_id, ResultStatus.OK, {"n": 1, "pad": "x" * (2 * MAX_MESSAGE_BYTES)})
    assert (
        _code(stub.SubmitResult, serde.result_to_proto(huge)) is grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    ack = _submit(stub, TaskResult(task.task_id, ResultStatus.OK, {"n": 5}))
    assert (ack.accepted, ack.duplicate) == (True, False)


def test_invalid_json_payload_is_invalid_argument(running: RunningHub) -> None:
    _register(running.stub("A"))
    running.count_study(["A"])
    stub = running.stub("A")
    (task,) = _pull(stub)
    for bad in (b"{not json", b"\xff\xfe", b"[1, 2]", b'{"n": NaN}'):
        request = serde.result_to_proto(TaskResult(task.task_id, ResultStatus.OK, {"n": 1}))
        request.payload_json = bad
        assert _code(stub.SubmitResult, request) is grpc.StatusCode.INVALID_ARGUMENT
    # Nothing was stored: a good result is still the first.
    ack = _submit(stub, TaskResult(task.task_id, ResultStatus.OK, {"n": 5}))
    assert (ack.accepted, ack.duplicate) == (True, False)


def test_another_protocol_major_is_failed_precondition(running: RunningHub) -> None:
    request = serde.registration_to_proto(
        Registration("0.1.0", "5.4", (), protocol=ProtocolVersion(2, 0))
    )
    assert _code(running.stub("A").Register, request) is grpc.StatusCode.FAILED_PRECONDITION
    assert running.node_names() == []


# --- the whole process: `oncofed-hub serve` ---


def test_serve_prints_ready_line_serves_both_and_stops_on_sigterm(
    tmp_path: Path, tls_dir: Path, db_url: str
) -> None:
    home = tmp_path / "hub-home"
    home.mkdir()
    (home / "hub.toml").write_text(
        "\n".join(
            [
                f'db_url = "{db_url}"',
                "grpc_port = 0",
                "http_port = 0",
                f'tls_ca_cert = "{tls_dir / "ca.crt"}"',
                f'tls_cert = "{tls_dir / "hub.crt"}"',
                f'tls_key = "{tls_dir / "hub.key"}"',
            ]
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = re.fullmatch(
            r"hub ready grpc=127\.0\.0\.1:(\d+) http=(http://127\.0\.0\.1:\d+)", line
        )
        assert match, line
        grpc_port, base_url = int(match.group(1)), match.group(2)
        assert httpx.get(f"{base_url}/healthz", timeout=10).json() == {"status": "ok"}
        assert httpx.get(f"{base_url}/api/v1/studies", timeout=10).status_code == 401
        files = TlsFiles(tls_dir / "ca.crt", tls_dir / "A.crt", tls_dir / "A.key")
        with grpc.secure_channel(f"localhost:{grpc_port}", channel_credentials(files)) as channel:
            reply = pb_grpc.EdgeHubStub(channel).Register(
                serde.registration_to_proto(REGISTRATION), timeout=10
            )
        assert serde.registration_ack_from_proto(reply).node_name == "A"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
