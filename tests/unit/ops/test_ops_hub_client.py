from typing import Any

import httpx
import pytest

from ops.hub_client import HubClient, HubTimeout
from shared_cdm.errors import InvalidInput, NotFound, Unauthenticated


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _client(handler: Any, clock: FakeClock | None = None) -> HubClient:
    clock = clock or FakeClock()
    return HubClient(
        "http://hub.test",
        "tok",
        clock=clock,
        sleep=clock.sleep,
        transport=httpx.MockTransport(handler),
    )


def test_submit_sends_spec_sites_and_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "s1", "status": "running"})

    with _client(handler) as hub:
        assert hub.submit_study({"analysis": "count"}, sites=["A", "B"])["id"] == "s1"
    assert seen[0].headers["Authorization"] == "Bearer tok"
    assert seen[0].read() == b'{"spec":{"analysis":"count"},"sites":["A","B"]}'


def test_wait_for_study_polls_until_final_and_survives_a_restarting_hub() -> None:
    answers = iter(["down", "running", "running", "completed"])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        if status == "down":
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"id": "s1", "status": status, "result": None})

    with _client(handler) as hub:
        assert hub.wait_for_study("s1", timeout=60)["status"] == "completed"


def test_wait_for_study_times_out_on_the_clock() -> None:
    clock = FakeClock()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "s1", "status": "running"})

    with _client(handler, clock) as hub, pytest.raises(HubTimeout, match="s1"):
        hub.wait_for_study("s1", timeout=5, interval=1)
    assert 5 <= clock.now <= 6


def test_wait_for_nodes_needs_every_site_online() -> None:
    answers = iter(
        [
            [{"name": "A", "status": "online"}],
            [{"name": "A", "status": "online"}, {"name": "B", "status": "offline"}],
            [{"name": "A", "status": "online"}, {"name": "B", "status": "online"}],
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(answers))

    with _client(handler) as hub:
        assert len(hub.wait_for_nodes(["A", "B"], timeout=60)) == 2


@pytest.mark.parametrize(
    ("status", "error"), [(401, Unauthenticated), (404, NotFound), (422, InvalidInput)]
)
def test_http_errors_are_typed_and_carry_the_detail(status: int, error: type) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"detail": "spec.where: unknown field 'agee'"})

    with _client(handler) as hub, pytest.raises(error, match="unknown field 'agee'"):
        hub.study("s1")


def test_a_watch_that_raises_ends_the_wait_at_once() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"id": "s1", "status": "running"})

    def watch() -> None:
        if len(calls) >= 2:
            raise RuntimeError("edge A exited with 1")

    with _client(handler) as hub, pytest.raises(RuntimeError, match="edge A"):
        hub.wait_for_study("s1", timeout=600, watch=watch)
    assert len(calls) == 2
