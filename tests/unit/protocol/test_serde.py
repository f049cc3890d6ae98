from datetime import UTC, datetime

import pytest

from protocol import serde
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


def test_registration_round_trip() -> None:
    reg = Registration(
        software_version="0.1.0",
        cdm_version="5.4",
        datasets=(DatasetInfo("default", "flat", "abc123", ("age", "ph.ecog")),),
    )
    wire = serde.registration_to_proto(reg).SerializeToString()
    back = serde.registration_from_proto(pb.RegisterRequest.FromString(wire))
    assert back == reg
    assert back.datasets[0].columns == ("age", "ph.ecog")


def test_registration_ack_round_trip() -> None:
    ack = RegistrationAck(node_name="site-a", heartbeat_interval_s=7)
    assert serde.registration_ack_from_proto(serde.registration_ack_to_proto(ack)) == ack


def test_task_round_trip_keeps_spec_and_times() -> None:
    created = datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=UTC)
    task = TaskAssignment(
        task_id="t1",
        study_id="s1",
        round=2,
        analysis="count",
        dataset="default",
        spec={"analysis": "count", "where": {"all": [{"field": "age", "op": ">", "value": 60}]}},
        requester="alice",
        created_at=created,
        deadline=None,
    )
    back = serde.task_from_proto(pb.Task.FromString(serde.task_to_proto(task).SerializeToString()))
    assert back == task


def test_result_round_trip_and_status_mapping() -> None:
    for status in ResultStatus:
        res = TaskResult("t9", status, {"n": 12, "x": [1.5, None]}, "msg", ("note",))
        back = serde.result_from_proto(serde.result_to_proto(res))
        assert back == res
    proto = serde.result_to_proto(TaskResult("t9", ResultStatus.OK))
    assert proto.protocol.major == PROTOCOL_VERSION.major


def test_payload_bytes_are_canonical() -> None:
    a = serde.json_to_bytes({"b": 1, "a": [1, 2]})
    b = serde.json_to_bytes({"a": [1, 2], "b": 1})
    assert a == b == b'{"a":[1,2],"b":1}'


def test_nan_payload_is_refused() -> None:
    with pytest.raises(InvalidInput, match="JSON"):
        serde.json_to_bytes({"x": float("nan")})


@pytest.mark.parametrize(
    ("data", "match"),
    [(b"\xff\xfe", "UTF-8 JSON"), (b"{not json", "UTF-8 JSON"), (b"[1, 2]", "JSON object")],
)
def test_bad_payload_bytes_raise_invalid_input(data: bytes, match: str) -> None:
    msg = pb.SubmitResultRequest(task_id="t1", status=pb.RESULT_STATUS_OK, payload_json=data)
    with pytest.raises(InvalidInput, match=match):
        serde.result_from_proto(msg)


def test_result_without_status_or_task_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="status"):
        serde.result_from_proto(pb.SubmitResultRequest(task_id="t1"))
    with pytest.raises(InvalidInput, match="task_id"):
        serde.result_from_proto(pb.SubmitResultRequest(status=pb.RESULT_STATUS_OK))


def test_submit_ack_round_trip() -> None:
    ack = SubmitAck(accepted=True, duplicate=True)
    assert serde.submit_ack_from_proto(serde.submit_ack_to_proto(ack)) == ack


def test_protocol_compatibility_is_by_major_version() -> None:
    assert ProtocolVersion(1, 3).compatible_with(ProtocolVersion(1, 0))
    assert not ProtocolVersion(2, 0).compatible_with(ProtocolVersion(1, 9))


def test_heartbeat_and_pull_round_trips() -> None:
    assert serde.heartbeat_request_from_proto(serde.heartbeat_request_to_proto(3)) == 3
    assert serde.heartbeat_request_from_proto(serde.heartbeat_request_to_proto(-1)) == 0
    now = datetime(2026, 11, 28, 18, 0, tzinfo=UTC)
    assert serde.heartbeat_reply_from_proto(serde.heartbeat_reply_to_proto(now)) == now
    assert serde.pull_request_from_proto(serde.pull_request_to_proto(16)) == 16


def test_pull_reply_keeps_readable_tasks_and_names_unreadable_ones() -> None:
    good = TaskAssignment(
        "t1",
        "s1",
        0,
        "count",
        "default",
        {"analysis": "count"},
        "r",
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    reply = serde.pull_reply_to_proto([good])
    reply.tasks.append(pb.Task(task_id="t2", spec_json=b"{broken"))
    tasks, unreadable = serde.pull_reply_from_proto(
        pb.PullTasksReply.FromString(reply.SerializeToString())
    )
    assert tasks == [good]
    assert unreadable == ["t2"]
