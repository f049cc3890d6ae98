"""Wire capture (`protocol.capture`): with ONCOFED_WIRE_CAPTURE set, each EdgeHub
message lands in the file as the bytes that went on the wire; unset, nothing changes."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from protocol import serde
from protocol.capture import (
    REQUEST,
    RESPONSE,
    STATUS,
    WIRE_CAPTURE_ENV,
    capture_channel,
    read_capture,
    server_interceptors,
)
from protocol.generated import oncofed_federation_pb2_grpc as pb_grpc

HEARTBEAT = "/oncofed.v1.EdgeHub/Heartbeat"
PULL = "/oncofed.v1.EdgeHub/PullTasks"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class _Hub(pb_grpc.EdgeHubServicer):
    """Answers Heartbeat; refuses PullTasks with a status text."""

    def Heartbeat(self, request: Any, context: grpc.ServicerContext) -> Any:
        return serde.heartbeat_reply_to_proto(NOW)

    def PullTasks(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.NOT_FOUND, "unregistered: call Register")


@pytest.fixture
def hub_and_edge() -> Iterator[tuple[grpc.Server, pb_grpc.EdgeHubStub]]:
    """An in-process hub and an edge stub, both built the way the real ones are: the
    interceptors and the channel wrapper are whatever the environment asks for."""
    server = grpc.server(ThreadPoolExecutor(max_workers=2), interceptors=server_interceptors())
    pb_grpc.add_EdgeHubServicer_to_server(_Hub(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = capture_channel(grpc.insecure_channel(f"127.0.0.1:{port}"), "edge site-a")
    try:
        yield server, pb_grpc.EdgeHubStub(channel)
    finally:
        channel.close()
        server.stop(None)


@pytest.fixture
def capture_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WIRE_CAPTURE_ENV, raising=False)


@pytest.fixture
def capture_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "wire.jsonl"
    monkeypatch.setenv(WIRE_CAPTURE_ENV, str(path))
    return path


def test_a_call_lands_in_the_file_as_its_bytes_on_both_sides(
    capture_file: Path, hub_and_edge: tuple[grpc.Server, pb_grpc.EdgeHubStub]
) -> None:
    _, stub = hub_and_edge
    request = serde.heartbeat_request_to_proto(7)
    reply = stub.Heartbeat(request, timeout=10)

    messages = read_capture(capture_file)
    got = {(m.side, m.direction): m for m in messages}
    assert len(messages) == 4
    assert {m.method for m in messages} == {HEARTBEAT}
    assert got["edge site-a", REQUEST].data == request.SerializeToString()
    assert got["hub", REQUEST].data == request.SerializeToString()
    assert got["hub", RESPONSE].data == reply.SerializeToString()
    assert got["edge site-a", RESPONSE].data == reply.SerializeToString()
    assert serde.heartbeat_reply_from_proto(reply) == NOW


def test_a_refused_call_leaves_its_request_and_status_text(
    capture_file: Path, hub_and_edge: tuple[grpc.Server, pb_grpc.EdgeHubStub]
) -> None:
    _, stub = hub_and_edge
    with pytest.raises(grpc.RpcError):
        stub.PullTasks(serde.pull_request_to_proto(3), timeout=10)

    messages = read_capture(capture_file)
    assert {(m.side, m.direction) for m in messages} == {
        ("edge site-a", REQUEST),
        ("hub", REQUEST),
        ("edge site-a", STATUS),
    }
    status = next(m for m in messages if m.direction == STATUS)
    assert status.method == PULL
    assert b"unregistered: call Register" in status.data


def test_off_unless_the_variable_is_set(
    tmp_path: Path,
    capture_off: None,
    hub_and_edge: tuple[grpc.Server, pb_grpc.EdgeHubStub],
) -> None:
    assert server_interceptors() == []
    assert server_interceptors({WIRE_CAPTURE_ENV: ""}) == []
    channel = grpc.insecure_channel("127.0.0.1:1")
    try:
        assert capture_channel(channel, "edge site-a") is channel
    finally:
        channel.close()
    _, stub = hub_and_edge
    stub.Heartbeat(serde.heartbeat_request_to_proto(0), timeout=10)
    assert list(tmp_path.iterdir()) == []
