"""Wire capture: every EdgeHub message, as serialized, appended to a file.

Set `ONCOFED_WIRE_CAPTURE=PATH` in the environment of a hub or an edge and each
request and reply of the EdgeHub service is appended to PATH as the protobuf bytes
that go into TLS (the hub records what its serializers produce and read, the edge
what its stub sends and gets back, and the status text of a failed call). One JSON
line per message, all processes appending to the same file:

    {"side": "hub", "method": "/oncofed.v1.EdgeHub/PullTasks",
     "direction": "request" | "response" | "status", "data": "<base64>"}

It exists so that tests (the PHI canary test) can prove what crossed the channel.
Off unless the variable is set, and then the hub or edge logs that it is on: it
writes every message in clear, so never set it on a real deployment.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

WIRE_CAPTURE_ENV = "ONCOFED_WIRE_CAPTURE"
REQUEST, RESPONSE, STATUS = "request", "response", "status"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CapturedMessage:
    side: str  # "hub" or "edge SITE"
    method: str  # the full gRPC method, "/oncofed.v1.EdgeHub/Register"
    direction: str  # REQUEST, RESPONSE or STATUS
    data: bytes


class WireCapture:
    """Appends captured messages to one file; one `write` per line, so processes and
    threads sharing the file do not interleave."""

    def __init__(self, path: Path, side: str) -> None:
        self.path = path
        self.side = side
        self._lock = threading.Lock()
        self._fd: int | None = None

    def record(self, method: str | bytes, direction: str, data: bytes) -> None:
        name = method.decode() if isinstance(method, bytes) else method
        line = json.dumps(
            {
                "side": self.side,
                "method": name,
                "direction": direction,
                "data": base64.b64encode(data).decode("ascii"),
            }
        )
        payload = (line + "\n").encode("ascii")
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            written = 0
            while written < len(payload):
                written += os.write(self._fd, payload[written:])

    def server_interceptor(self) -> grpc.ServerInterceptor:
        return _ServerCapture(self)

    def client_interceptor(self) -> grpc.UnaryUnaryClientInterceptor:
        return _ClientCapture(self)


class _ServerCapture(grpc.ServerInterceptor):
    """Wraps each unary handler's (de)serializers: the bytes as they came and went."""

    def __init__(self, capture: WireCapture) -> None:
        self._capture = capture

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # EdgeHub has only unary-unary methods
        method: str = handler_call_details.method
        read: Callable[[bytes], Any] = handler.request_deserializer or (lambda b: b)
        write: Callable[[Any], bytes] = handler.response_serializer or (lambda m: m)
        capture = self._capture

        def deserialize(data: bytes) -> Any:
            capture.record(method, REQUEST, data)
            return read(data)

        def serialize(message: Any) -> bytes:
            data = write(message)
            capture.record(method, RESPONSE, data)
            return data

        return grpc.unary_unary_rpc_method_handler(
            handler.unary_unary, request_deserializer=deserialize, response_serializer=serialize
        )


class _ClientCapture(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, capture: WireCapture) -> None:
        self._capture = capture

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        self._capture.record(method, REQUEST, request.SerializeToString())
        outcome = continuation(client_call_details, request)
        error = outcome.exception()
        if error is None:
            self._capture.record(method, RESPONSE, outcome.result().SerializeToString())
        elif isinstance(error, grpc.Call):
            status = f"{error.code()}: {error.details()}"
            self._capture.record(method, STATUS, status.encode("utf-8"))
        return outcome


def capture_from_env(side: str, environ: Mapping[str, str] | None = None) -> WireCapture | None:
    """The capture `ONCOFED_WIRE_CAPTURE` asks for, or None when it is unset or empty."""
    path = (os.environ if environ is None else environ).get(WIRE_CAPTURE_ENV, "")
    if not path:
        return None
    log.warning(
        "wire capture on (%s is set): every %s message is written to %s",
        WIRE_CAPTURE_ENV,
        side,
        path,
    )
    return WireCapture(Path(path), side)


def server_interceptors(environ: Mapping[str, str] | None = None) -> list[grpc.ServerInterceptor]:
    """The hub's interceptors: the capture's when it is on, else none."""
    capture = capture_from_env("hub", environ)
    return [] if capture is None else [capture.server_interceptor()]


def capture_channel(
    channel: grpc.Channel, side: str, environ: Mapping[str, str] | None = None
) -> grpc.Channel:
    """`channel` itself, or intercepted by the capture when it is on."""
    capture = capture_from_env(side, environ)
    if capture is None:
        return channel
    return grpc.intercept_channel(channel, capture.client_interceptor())


def read_capture(path: Path) -> list[CapturedMessage]:
    """Every message in a capture file, in the order written."""
    messages = []
    for line in path.read_text(encoding="ascii").splitlines():
        if line.strip():
            row = json.loads(line)
            messages.append(
                CapturedMessage(
                    row["side"], row["method"], row["direction"], base64.b64decode(row["data"])
                )
            )
    return messages
