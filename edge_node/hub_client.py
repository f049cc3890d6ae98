"""The hub's four RPCs as the edge calls them: mutual TLS, a deadline on every call,
bounded exponential backoff with jitter on UNAVAILABLE / DEADLINE_EXCEEDED, and
`protocol.serde` on both sides of every message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from edge_node.errors import error_from_rpc, is_transient
from edge_node.settings import EdgeSettings
from protocol import serde
from protocol.capture import capture_channel
from protocol.generated import oncofed_federation_pb2_grpc as pb_grpc
from protocol.messages import (
    Registration,
    RegistrationAck,
    ResultStatus,
    SubmitAck,
    TaskAssignment,
    TaskResult,
)
from protocol.tls import channel_credentials
from shared_cdm.errors import InvalidInput

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pulled:
    """Tasks from one pull, and FAILED answers for those whose spec could not be read."""

    tasks: tuple[TaskAssignment, ...]
    unreadable: tuple[TaskResult, ...] = ()


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying a transient failure before giving up on this call."""

    attempts: int = 6
    initial_s: float = 0.2
    max_s: float = 5.0
    jitter_s: float = 0.2

    @classmethod
    def from_settings(cls, settings: EdgeSettings) -> RetryPolicy:
        return cls(settings.retry_attempts, settings.retry_initial_s, settings.retry_max_s)


def open_channel(settings: EdgeSettings) -> grpc.Channel:
    """A mutual-TLS channel to the hub; the hub's certificate is checked against
    `hub_server_name` whatever address it is reached by."""
    channel = grpc.secure_channel(
        settings.hub_address,
        channel_credentials(settings.tls_files),
        options=[("grpc.ssl_target_name_override", settings.hub_server_name)],
    )
    # Only with ONCOFED_WIRE_CAPTURE set (protocol.capture): every message to a file.
    return capture_channel(channel, f"edge {settings.site_name}")


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    _LOG.warning(
        "hub call failed (%s); attempt %d, retrying in %.2fs", exc, state.attempt_number, wait
    )


class HubClient:
    def __init__(
        self,
        stub: Any,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._stub = stub
        self._timeout_s = timeout_s
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    @classmethod
    def for_channel(cls, channel: grpc.Channel, settings: EdgeSettings) -> HubClient:
        return cls(
            pb_grpc.EdgeHubStub(channel),
            timeout_s=settings.rpc_timeout_s,
            retry=RetryPolicy.from_settings(settings),
        )

    def _call(self, what: str, method: Callable[..., Any], request: Any) -> Any:
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential_jitter(
                multiplier=self._retry.initial_s,
                max=self._retry.max_s,
                jitter=self._retry.jitter_s,
            ),
            stop=stop_after_attempt(self._retry.attempts),
            sleep=self._sleep,
            before_sleep=_log_retry,
            reraise=True,
        )
        try:
            return retrying(method, request, timeout=self._timeout_s)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, what) from exc

    def register(self, registration: Registration) -> RegistrationAck:
        reply = self._call(
            "register", self._stub.Register, serde.registration_to_proto(registration)
        )
        return serde.registration_ack_from_proto(reply)

    def heartbeat(self, pending_tasks: int) -> None:
        self._call(
            "heartbeat", self._stub.Heartbeat, serde.heartbeat_request_to_proto(pending_tasks)
        )

    def pull_tasks(self, max_tasks: int) -> Pulled:
        reply = self._call(
            "pull tasks", self._stub.PullTasks, serde.pull_request_to_proto(max_tasks)
        )
        tasks: list[TaskAssignment] = []
        unreadable: list[TaskResult] = []
        for message in reply.tasks:
            try:
                tasks.append(serde.task_from_proto(message))
            except InvalidInput as exc:
                if message.task_id:
                    unreadable.append(
                        TaskResult(message.task_id, ResultStatus.FAILED, {}, exc.message)
                    )
                _LOG.warning("hub sent a task the edge cannot read: %s", exc.message)
        return Pulled(tuple(tasks), tuple(unreadable))

    def submit(self, result: TaskResult) -> SubmitAck:
        reply = self._call("submit result", self._stub.SubmitResult, serde.result_to_proto(result))
        return serde.submit_ack_from_proto(reply)
