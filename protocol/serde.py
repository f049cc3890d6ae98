"""`x_to_proto` / `x_from_proto` pairs between our messages and the generated ones.

JSON payloads are encoded canonically (sorted keys, no NaN) so the same result
always has the same bytes, and decoding failures become `InvalidInput`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from protocol.generated import oncofed_federation_pb2 as pb
from protocol.messages import (
    PROTOCOL_VERSION,
    DatasetInfo,
    ProtocolVersion,
    Registration,
    RegistrationAck,
    ResultStatus,
    SubmitAck,
    TaskAssignment,
    TaskResult,
)
from shared_cdm.errors import InvalidInput

_STATUS_TO_PROTO = {
    ResultStatus.OK: pb.RESULT_STATUS_OK,
    ResultStatus.REFUSED: pb.RESULT_STATUS_REFUSED,
    ResultStatus.FAILED: pb.RESULT_STATUS_FAILED,
}
_STATUS_FROM_PROTO = {v: k for k, v in _STATUS_TO_PROTO.items()}


def json_to_bytes(obj: Mapping[str, Any]) -> bytes:
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"payload is not JSON-serialisable: {exc}") from exc
    return text.encode("utf-8")


def json_from_bytes(data: bytes, what: str) -> dict[str, Any]:
    if not data:
        return {}
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{what} is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidInput(f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


def _ms(ts: datetime | None) -> int:
    return 0 if ts is None else int(ts.timestamp() * 1000)


def _from_ms(ms: int) -> datetime | None:
    return None if ms == 0 else datetime.fromtimestamp(ms / 1000, tz=UTC)


def version_to_proto(v: ProtocolVersion) -> pb.ProtocolVersion:
    return pb.ProtocolVersion(major=v.major, minor=v.minor)


def version_from_proto(msg: pb.ProtocolVersion) -> ProtocolVersion:
    return ProtocolVersion(msg.major, msg.minor)


def dataset_to_proto(d: DatasetInfo) -> pb.DatasetInfo:
    return pb.DatasetInfo(name=d.name, kind=d.kind, version=d.version, columns=list(d.columns))


def dataset_from_proto(msg: pb.DatasetInfo) -> DatasetInfo:
    return DatasetInfo(msg.name, msg.kind, msg.version, tuple(msg.columns))


def registration_to_proto(r: Registration) -> pb.RegisterRequest:
    return pb.RegisterRequest(
        protocol=version_to_proto(r.protocol),
        software_version=r.software_version,
        cdm_version=r.cdm_version,
        datasets=[dataset_to_proto(d) for d in r.datasets],
    )


def registration_from_proto(msg: pb.RegisterRequest) -> Registration:
    return Registration(
        software_version=msg.software_version,
        cdm_version=msg.cdm_version,
        datasets=tuple(dataset_from_proto(d) for d in msg.datasets),
        protocol=version_from_proto(msg.protocol),
    )


def registration_ack_to_proto(a: RegistrationAck) -> pb.RegisterReply:
    return pb.RegisterReply(
        node_name=a.node_name,
        protocol=version_to_proto(a.protocol),
        heartbeat_interval_s=a.heartbeat_interval_s,
    )


def registration_ack_from_proto(msg: pb.RegisterReply) -> RegistrationAck:
    return RegistrationAck(
        node_name=msg.node_name,
        heartbeat_interval_s=msg.heartbeat_interval_s,
        protocol=version_from_proto(msg.protocol),
    )


def task_to_proto(t: TaskAssignment) -> pb.Task:
    return pb.Task(
        task_id=t.task_id,
        study_id=t.study_id,
        round=t.round,
        analysis=t.analysis,
        dataset=t.dataset,
        spec_json=json_to_bytes(t.spec),
        requester=t.requester,
        created_unix_ms=_ms(t.created_at),
        deadline_unix_ms=_ms(t.deadline),
    )


def task_from_proto(msg: pb.Task) -> TaskAssignment:
    if not msg.task_id:
        raise InvalidInput("task has no task_id")
    created = _from_ms(msg.created_unix_ms) or datetime.now(UTC)
    return TaskAssignment(
        task_id=msg.task_id,
        study_id=msg.study_id,
        round=msg.round,
        analysis=msg.analysis,
        dataset=msg.dataset,
        spec=json_from_bytes(msg.spec_json, f"task {msg.task_id} spec"),
        requester=msg.requester,
        created_at=created,
        deadline=_from_ms(msg.deadline_unix_ms),
    )


def result_to_proto(r: TaskResult) -> pb.SubmitResultRequest:
    return pb.SubmitResultRequest(
        protocol=version_to_proto(PROTOCOL_VERSION),
        task_id=r.task_id,
        status=_STATUS_TO_PROTO[r.status],
        payload_json=json_to_bytes(r.payload),
        message=r.message,
        disclosure=list(r.disclosure),
    )


def result_from_proto(msg: pb.SubmitResultRequest) -> TaskResult:
    if not msg.task_id:
        raise InvalidInput("result has no task_id")
    status = _STATUS_FROM_PROTO.get(msg.status)
    if status is None:
        raise InvalidInput(f"result for task {msg.task_id} has no valid status")
    return TaskResult(
        task_id=msg.task_id,
        status=status,
        payload=json_from_bytes(msg.payload_json, f"result {msg.task_id} payload"),
        message=msg.message,
        disclosure=tuple(msg.disclosure),
    )


def submit_ack_to_proto(a: SubmitAck) -> pb.SubmitResultReply:
    return pb.SubmitResultReply(accepted=a.accepted, duplicate=a.duplicate)


def submit_ack_from_proto(msg: pb.SubmitResultReply) -> SubmitAck:
    return SubmitAck(accepted=msg.accepted, duplicate=msg.duplicate)


def heartbeat_request_to_proto(pending_tasks: int) -> pb.HeartbeatRequest:
    return pb.HeartbeatRequest(
        protocol=version_to_proto(PROTOCOL_VERSION), pending_tasks=max(0, pending_tasks)
    )


def heartbeat_request_from_proto(msg: pb.HeartbeatRequest) -> int:
    return int(msg.pending_tasks)


def heartbeat_reply_to_proto(server_time: datetime) -> pb.HeartbeatReply:
    return pb.HeartbeatReply(server_time_unix_ms=_ms(server_time))


def heartbeat_reply_from_proto(msg: pb.HeartbeatReply) -> datetime | None:
    return _from_ms(msg.server_time_unix_ms)


def pull_request_to_proto(max_tasks: int) -> pb.PullTasksRequest:
    return pb.PullTasksRequest(
        protocol=version_to_proto(PROTOCOL_VERSION), max_tasks=max(0, max_tasks)
    )


def pull_request_from_proto(msg: pb.PullTasksRequest) -> int:
    return int(msg.max_tasks)


def pull_reply_to_proto(tasks: Iterable[TaskAssignment]) -> pb.PullTasksReply:
    return pb.PullTasksReply(tasks=[task_to_proto(t) for t in tasks])


def pull_reply_from_proto(msg: pb.PullTasksReply) -> tuple[list[TaskAssignment], list[str]]:
    """The readable tasks, and the IDs (or positions) of tasks that could not be read."""
    tasks, unreadable = [], []
    for i, raw in enumerate(msg.tasks):
        try:
            tasks.append(task_from_proto(raw))
        except InvalidInput:
            unreadable.append(raw.task_id or f"#{i}")
    return tasks, unreadable
