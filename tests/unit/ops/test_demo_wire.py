"""The demo's wire summary: counts and bytes per message type, and the patient-level check."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from rich.console import Console

from ops.wire_report import (
    TO_EDGE,
    TO_HUB,
    check_no_patient_rows,
    largest_record_list,
    load_pseudonyms,
    summarise,
    wire_table,
)
from protocol.capture import REQUEST, RESPONSE, STATUS, CapturedMessage
from protocol.generated import oncofed_federation_pb2 as pb

SERVICE = "/oncofed.v1.EdgeHub"
PSEUDONYM = "0123456789abcdef0123456789abcdef"


def _msg(side: str, method: str, direction: str, message: object) -> CapturedMessage:
    data = message if isinstance(message, bytes) else message.SerializeToString()  # type: ignore[attr-defined]
    return CapturedMessage(side, f"{SERVICE}/{method}", direction, data)


def _result(payload: object) -> pb.SubmitResultRequest:
    return pb.SubmitResultRequest(
        task_id="t1", status=pb.RESULT_STATUS_OK, payload_json=json.dumps(payload).encode()
    )


def _one_call(side_edge: str, method: str, request: object, reply: object) -> list[CapturedMessage]:
    """A call as the capture records it: at the edge and at the hub."""
    return [
        _msg(side_edge, method, REQUEST, request),
        _msg("hub", method, REQUEST, request),
        _msg("hub", method, RESPONSE, reply),
        _msg(side_edge, method, RESPONSE, reply),
    ]


def _traffic() -> list[CapturedMessage]:
    register = pb.RegisterRequest(software_version="1.0", cdm_version="5.4")
    pulled = pb.PullTasksReply(
        tasks=[pb.Task(task_id="t1", study_id="s1", analysis="count", spec_json=b'{"a":1}')]
    )
    messages = _one_call("edge A", "Register", register, pb.RegisterReply(node_name="A"))
    messages += _one_call("edge B", "Register", register, pb.RegisterReply(node_name="B"))
    messages += _one_call("edge A", "PullTasks", pb.PullTasksRequest(max_tasks=4), pulled)
    messages += _one_call(
        "edge A", "SubmitResult", _result({"n": 42}), pb.SubmitResultReply(accepted=True)
    )
    # A call the hub never saw: the edge recorded a status, the hub nothing.
    messages.append(_msg("edge B", "Heartbeat", REQUEST, pb.HeartbeatRequest()))
    messages.append(_msg("edge B", "Heartbeat", STATUS, b"StatusCode.UNAVAILABLE: down"))
    return messages


def test_summary_counts_each_message_once_from_the_hub_side() -> None:
    messages = _traffic()
    summary = _summary = summarise(messages)
    hub = [m for m in messages if m.side == "hub"]
    assert summary.vantage == "hub"
    assert summary.messages == len(hub) == 8
    assert summary.bytes == sum(len(m.data) for m in hub)
    rows = {(line.message, line.direction): (line.count, line.bytes) for line in _summary.lines}
    register = pb.RegisterRequest(software_version="1.0", cdm_version="5.4").ByteSize()
    assert rows[("RegisterRequest", TO_HUB)] == (2, 2 * register)
    assert rows[("RegisterReply", TO_EDGE)][0] == 2
    assert rows[("PullTasksReply", TO_EDGE)][0] == 1
    assert rows[("SubmitResultRequest", TO_HUB)][0] == 1
    # no row for the heartbeat that never arrived; the edges' records say it failed
    assert not any(line.method == "Heartbeat" for line in summary.lines)
    assert (summary.edge_requests, summary.edge_replies, summary.failed_calls) == (5, 4, 1)
    assert summary.sides == ("edge A", "edge B", "hub")
    # requests before replies, methods in the service's order
    assert [line.method for line in summary.lines][:2] == ["Register", "Register"]
    assert summary.lines[0].direction == TO_HUB


def test_summary_without_hub_records_counts_the_edges_calls() -> None:
    edge_only = [m for m in _traffic() if m.side != "hub"]
    summary = summarise(edge_only)
    assert summary.vantage == "edges"
    assert summary.messages == sum(m.direction in (REQUEST, RESPONSE) for m in edge_only) == 9


def test_wire_table_lists_every_line_and_the_total() -> None:
    summary = summarise(_traffic())
    console = Console(record=True, width=140)
    console.print(wire_table(summary))
    text = console.export_text()
    for line in summary.lines:
        assert line.message in text
    assert "total" in text and str(summary.messages) in text


def test_aggregates_only_is_clean() -> None:
    check = check_no_patient_rows(_traffic(), {"A": {PSEUDONYM}, "B": set()})
    assert check.clean
    assert check.messages == len(_traffic())
    assert "No patient-level content crossed" in check.statement()
    assert "1 person pseudonyms" in check.statement()


def test_a_pseudonym_in_a_payload_is_found_and_not_repeated() -> None:
    leak = _traffic()
    leak.append(_msg("hub", "SubmitResult", REQUEST, _result({"ids": [PSEUDONYM.upper()]})))
    check = check_no_patient_rows(leak, {"A": {PSEUDONYM}})
    assert not check.clean
    assert check.pseudonym_hits == (
        f"message #{len(leak) - 1} (hub, SubmitResult request): a person pseudonym of site A",
    )
    assert PSEUDONYM not in check.statement().lower()


def test_a_pseudonym_in_a_task_spec_is_found() -> None:
    spec = json.dumps({"where": {"field": "x", "op": "=", "value": PSEUDONYM}}).encode()
    reply = pb.PullTasksReply(tasks=[pb.Task(task_id="t", spec_json=spec)])
    check = check_no_patient_rows(
        [_msg("edge B", "PullTasks", RESPONSE, reply)], {"B": {PSEUDONYM}}
    )
    assert check.pseudonym_hits and "site B" in check.pseudonym_hits[0]


def test_a_table_of_records_is_found() -> None:
    rows = [{"age": 60 + k, "stage": "IV", "time": 100 * k} for k in range(6)]
    message = _msg("edge A", "SubmitResult", REQUEST, _result({"rows": rows}))
    check = check_no_patient_rows([message], {"A": set()})
    assert check.record_lists == ("message #0 (edge A, SubmitResult request): a list of 6 records",)
    assert not check.clean
    # below the threshold, or objects of different shapes, are not rows of a table
    assert largest_record_list({"rounds": rows[:4]}) == 4
    assert largest_record_list([{"a": 1}, {"b": 2}, {"a": 3}, {"a": 4}, {"a": 5}]) == 0


def test_a_message_that_does_not_parse_is_reported() -> None:
    broken = CapturedMessage("hub", f"{SERVICE}/Register", REQUEST, b"\xff\xff\xff")
    check = check_no_patient_rows([broken], {})
    assert check.undecodable and not check.clean


def test_load_pseudonyms_reads_the_person_table(tmp_path: Path) -> None:
    path = tmp_path / "analysis.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE person (person_id INTEGER, person_source_value TEXT)")
        db.executemany(
            "INSERT INTO person VALUES (?, ?)", [(1, PSEUDONYM.upper()), (2, "ab" * 16), (3, None)]
        )
    assert load_pseudonyms(f"sqlite:///{path}") == {PSEUDONYM, "ab" * 16}
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert load_pseudonyms(f"sqlite:///{empty}") == set()
