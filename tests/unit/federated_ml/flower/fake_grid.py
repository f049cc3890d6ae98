"""An in-process Grid: messages go straight to the ClientApp handlers.

It lets the ServerApp's loop run in a unit test without any Flower process;
a site can be made silent (dies) from a given round on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flwr.app import Error, Message, MessageType
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from federated_ml.flower.client_app import handle_evaluate, handle_train
from federated_ml.flower.features import FeatureSource
from federated_ml.flower.privacy import Noise


@dataclass
class FakeNode:
    node_id: int
    name: str
    status: str = "online"


class FakeGrid(Grid):
    def __init__(
        self,
        sources: Mapping[str, FeatureSource],
        *,
        first_id: int = 1,
        noise: Mapping[str, Noise] | None = None,
    ) -> None:
        # A real ServerApp process learns these from the SuperLink; Message() reads them.
        TaskIdentity.run_id = 1
        TaskIdentity.node_id = 0
        TaskIdentity.task_id = 1
        self.sources = sources
        self.noise = dict(noise or {})  # what each site's node config says about DP
        self.nodes = [FakeNode(first_id + i, name) for i, name in enumerate(sources)]
        self.silent_from: dict[str, int] = {}  # site -> first round it stops answering
        self.replies: dict[str, Message] = {}
        self.rounds_seen: list[tuple[str, int, str]] = []

    def set_run(self, run: Any) -> None:
        raise NotImplementedError

    @property
    def run(self) -> Any:
        raise NotImplementedError

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return [n.node_id for n in self.nodes]

    def get_nodes(self) -> Iterable[Any]:
        return list(self.nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = msg.object_id
            node = next(n for n in self.nodes if n.node_id == msg.metadata.dst_node_id)
            server_round = int(msg.content["config"]["server-round"])  # type: ignore[arg-type]
            self.rounds_seen.append((node.name, server_round, msg.metadata.message_type))
            ids.append(msg.metadata.message_id)
            if server_round >= self.silent_from.get(node.name, 10**9):
                continue
            try:
                if msg.metadata.message_type == MessageType.TRAIN:
                    reply = handle_train(msg, self.sources[node.name], self.noise.get(node.name))
                else:
                    reply = handle_evaluate(msg, self.sources[node.name])
            except Exception as exc:  # what Flower's ClientApp runner does with an exception
                reply = Message(Error(code=1, reason=f"{type(exc)}:<'{exc}'>"), reply_to=msg)
            reply.metadata.__dict__["_src_node_id"] = node.node_id
            self.replies[msg.metadata.message_id] = reply
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self.replies.pop(m) for m in list(message_ids) if m in self.replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        raise NotImplementedError
