"""The `EdgeHub` gRPC service: what edge nodes call, identified by their certificate.

Every RPC ends in a reply or a status code, never an unhandled exception:
typed errors map through `hub.errors`, anything else becomes INTERNAL and is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc

from hub.errors import grpc_status_for
from hub.nodes import NodeRegistry
from hub.settings import HubSettings
from hub.studies.service import Clock, StudyService
from protocol import serde
from protocol.capture import server_interceptors
from protocol.generated import oncofed_federation_pb2_grpc as pb_grpc
from protocol.messages import PROTOCOL_VERSION
from protocol.tls import peer_identity, server_credentials, validate_party_name
from shared_cdm.errors import (
    Conflict,
    Forbidden,
    NotFound,
    OncoFedError,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)
Reply = TypeVar("Reply")


def node_identity(context: grpc.ServicerContext) -> str:
    """The calling node's name from its verified client certificate; edges only."""
    identity = peer_identity(context)
    if identity is None:
        raise Unauthenticated("no verified client certificate", code="no_client_cert")
    if identity.role != "edge":
        raise Forbidden(
            f"certificate {identity.common_name!r} has role {identity.role or 'none'!r}; "
            "only edge certificates may act as a node",
            code="not_an_edge",
        )
    return validate_party_name(identity.common_name)


def check_protocol(request: Any) -> None:
    """Refuse another major version; a request without a version is taken as ours."""
    if not request.HasField("protocol"):
        return
    theirs = serde.version_from_proto(request.protocol)
    if not theirs.compatible_with(PROTOCOL_VERSION):
        raise Conflict(
            f"protocol {theirs} is not compatible with the hub's {PROTOCOL_VERSION}; "
            "upgrade the edge node",
            code="protocol_mismatch",
        )


class EdgeHubService(pb_grpc.EdgeHubServicer):
    def __init__(self, studies: StudyService, nodes: NodeRegistry, clock: Clock) -> None:
        self._studies = studies
        self._nodes = nodes
        self._clock = clock

    def _handle(
        self, request: Any, context: grpc.ServicerContext, rpc: str, body: Callable[[str], Reply]
    ) -> Reply:
        node = "?"
        try:
            node = node_identity(context)
            check_protocol(request)
            return body(node)
        except OncoFedError as exc:
            code, message = grpc_status_for(exc), f"{exc.code}: {exc.message}"
            log.info("%s from %s refused: %s", rpc, node, message)
        except Exception:
            log.exception("%s from %s failed", rpc, node)
            code, message = grpc.StatusCode.INTERNAL, "internal error in the hub"
        context.abort(code, message)  # raises; returns nothing
        raise RuntimeError("context.abort did not raise")  # pragma: no cover

    def Register(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def body(node: str) -> Any:
            ack = self._nodes.register(node, serde.registration_from_proto(request))
            return serde.registration_ack_to_proto(ack)

        return self._handle(request, context, "Register", body)

    def Heartbeat(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def body(node: str) -> Any:
            if not self._nodes.touch(node):
                raise NotFound(
                    f"node {node} has not registered; call Register", code="unregistered"
                )
            return serde.heartbeat_reply_to_proto(self._clock())

        return self._handle(request, context, "Heartbeat", body)

    def PullTasks(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def body(node: str) -> Any:
            self._nodes.touch(node)
            tasks = self._studies.pull(node, serde.pull_request_from_proto(request))
            return serde.pull_reply_to_proto(tasks)

        return self._handle(request, context, "PullTasks", body)

    def SubmitResult(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def body(node: str) -> Any:
            result = serde.result_from_proto(request)
            serde.json_to_bytes(result.payload)  # refuses NaN/Infinity before storage
            return serde.submit_ack_to_proto(self._studies.submit_result(node, result))

        return self._handle(request, context, "SubmitResult", body)


def grpc_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


def create_grpc_server(
    settings: HubSettings,
    studies: StudyService,
    nodes: NodeRegistry,
    clock: Clock,
    *,
    max_workers: int = 16,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
) -> tuple[grpc.Server, int]:
    """A started-not-yet gRPC server on the settings' address; returns it and its real port.
    `interceptors` run first (the hub's revocation check)."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="hub-grpc"),
        options=grpc_options(settings.max_message_bytes),
        # the capture's only with ONCOFED_WIRE_CAPTURE (protocol.capture)
        interceptors=[*interceptors, *server_interceptors()],
    )
    pb_grpc.add_EdgeHubServicer_to_server(EdgeHubService(studies, nodes, clock), server)
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    port = server.add_secure_port(address, server_credentials(settings.tls_files))
    if port == 0:
        raise Unavailable(f"cannot listen for gRPC on {address}", code="grpc_bind_failed")
    return server, port
