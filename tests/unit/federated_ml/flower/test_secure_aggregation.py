"""Secure aggregation of model updates (secagg.py): the masked sum equals FedAvg, one
masked reply says nothing, a lost site makes the round run again without it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MessageType, RecordDict
from flwr.serverapp.strategy import FedAvg

from federated_ml.flower import secagg
from federated_ml.flower.client_app import (
    ROUND_KEY,
    SPEC_KEY,
    handle_evaluate,
    handle_keys,
    handle_train,
)
from federated_ml.flower.features import FeatureSource, SqliteFeatureSource
from federated_ml.flower.metrics import MemorySink, RunResult
from federated_ml.flower.models import build_model
from federated_ml.flower.server_app import run_training
from federated_ml.flower.spec import MLStudySpec
from federated_ml.secure_agg import FRACTION_BITS
from shared_cdm.errors import InvalidInput
from tests.unit.federated_ml.flower.fake_grid import FakeGrid
from tests.unit.federated_ml.flower.synthetic import (
    SHIFTS,
    binary_spec,
    shifted_sites,
)


def spec(**over: Any) -> MLStudySpec:
    return binary_spec("secagg test", {"kind": "mlp", "hidden": [16]}, **over)


@pytest.fixture
def sites(tmp_path: Path) -> dict[str, Path]:
    return shifted_sites(tmp_path)


class SecureGrid(FakeGrid):
    """The fake grid plus what a SuperNode keeps per run: each node's `context.state`."""

    def __init__(self, sources: Mapping[str, FeatureSource]) -> None:
        super().__init__(sources)
        self.state = {n.name: RecordDict() for n in self.nodes}
        self.silent: set[tuple[str, int, int]] = set()  # (site, round, attempt) unanswered
        self.sent: list[tuple[str, str, int, int]] = []  # (site, type, round, attempt)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = msg.object_id
            node = next(n for n in self.nodes if n.node_id == msg.metadata.dst_node_id)
            config = msg.content.config_records["config"]
            server_round = int(str(config[ROUND_KEY]))
            attempt = int(str(config.get(secagg.ATTEMPT_KEY, 0)))
            kind = msg.metadata.message_type
            self.sent.append((node.name, kind, server_round, attempt))
            ids.append(msg.metadata.message_id)
            if (node.name, server_round, attempt) in self.silent or server_round >= (
                self.silent_from.get(node.name, 10**9)
            ):
                continue
            source = self.sources[node.name]
            try:
                if kind == secagg.KEYS_MESSAGE:
                    reply = handle_keys(msg, self.state[node.name])
                elif kind == MessageType.TRAIN:
                    reply = handle_train(msg, source, None, self.state[node.name])
                else:
                    reply = handle_evaluate(msg, source)
            except Exception as exc:  # as Flower's ClientApp runner answers an exception
                reply = Message(Error(code=1, reason=f"{type(exc)}:<'{exc}'>"), reply_to=msg)
            reply.metadata.__dict__["_src_node_id"] = node.node_id
            self.replies[msg.metadata.message_id] = reply
        return ids


def grid_for(sites: dict[str, Path], secure: bool) -> FakeGrid:
    sources = {name: SqliteFeatureSource(db) for name, db in sites.items()}
    return SecureGrid(sources) if secure else FakeGrid(sources)


def weights(result: RunResult) -> dict[str, np.ndarray]:
    assert result.model_path is not None
    saved = torch.load(result.model_path, weights_only=False)
    return {k: v.numpy() for k, v in saved["state_dict"].items()}


def assert_same_model(a: RunResult, b: RunResult) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], atol=1e-5, rtol=0)


# --- one round by hand: three simulated clients -------------------------------------------


def _train_message(s: MLStudySpec, node: int, extra: Mapping[str, Any]) -> Message:
    model = build_model(s, seed=s.training.seed)
    config = ConfigRecord({SPEC_KEY: s.to_json(), ROUND_KEY: 1, **extra})
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "config": config})
    return Message(content, dst_node_id=node, message_type=MessageType.TRAIN, group_id="1")


def one_round(sites: dict[str, Path]) -> tuple[list[Message], list[Message], ArrayRecord]:
    """The same round's replies, plain and masked, from the three sites (node ids 1..3)."""
    FakeGrid({})  # sets the task identity Message() needs
    plain_spec, secure_spec = spec(), spec(secure_aggregation=True)
    nodes = {name: i + 1 for i, name in enumerate(sites)}
    states = {name: RecordDict() for name in sites}
    keys = {}
    for name, node in nodes.items():
        ask = Message(
            RecordDict({"config": ConfigRecord({ROUND_KEY: 1})}),
            dst_node_id=node,
            message_type=secagg.KEYS_MESSAGE,
        )
        reply = handle_keys(ask, states[name])
        keys[node] = reply.content.config_records[secagg.KEY_RECORD][secagg.PUBLIC_KEY]
    peers = {
        secagg.NODES_KEY: list(keys),
        secagg.KEYS_KEY: list(keys.values()),
        secagg.ATTEMPT_KEY: 1,
    }
    plain, masked = [], []
    for name, node in nodes.items():
        source = SqliteFeatureSource(sites[name])
        plain.append(handle_train(_train_message(plain_spec, node, {}), source))
        masked.append(
            handle_train(_train_message(secure_spec, node, peers), source, None, states[name])
        )
    template = _train_message(plain_spec, 1, {}).content.array_records["arrays"]
    return plain, masked, template


def test_masked_replies_sum_to_plain_fedavg(sites: dict[str, Path]) -> None:
    plain, masked, template = one_round(sites)
    fedavg, _ = FedAvg().aggregate_train(1, plain)
    assert fedavg is not None
    length = secagg.vector_length(template)
    blobs = [r.content.config_records[secagg.UPDATE_RECORD][secagg.MASKED_KEY] for r in masked]
    total = secagg.sum_masked([b for b in blobs if isinstance(b, bytes)], length)
    arrays, rows, loss, clipped = secagg.decode_total(total, template)
    assert arrays.keys() == fedavg.keys()
    for k in fedavg:
        np.testing.assert_allclose(arrays[k].numpy(), fedavg[k].numpy(), atol=1e-6, rtol=0)
        assert arrays[k].numpy().dtype == fedavg[k].numpy().dtype
    metrics = [r.content.metric_records["metrics"] for r in plain]
    n = [float(m["num-examples"]) for m in metrics]  # type: ignore[arg-type]
    assert rows == sum(n) > 600  # about 75 % of 400 + 300 + 200 rows are trained on
    site_loss = [float(m["train-loss"]) for m in metrics]  # type: ignore[arg-type]
    assert loss == pytest.approx(np.dot(site_loss, n) / sum(n), abs=1e-8)
    assert clipped == 0
    # The masked reply carries neither weights nor per-site training metrics.
    assert all(not r.content.array_records and not r.content.metric_records for r in masked)


def test_one_masked_reply_is_unrelated_to_the_sites_weights(sites: dict[str, Path]) -> None:
    plain, masked, template = one_round(sites)
    length = secagg.vector_length(template)
    blobs = [r.content.config_records[secagg.UPDATE_RECORD][secagg.MASKED_KEY] for r in masked]
    assert all(isinstance(b, bytes) for b in blobs)
    arrays = plain[0].content.array_records["arrays"]
    rows = float(plain[0].content.metric_records["metrics"]["num-examples"])  # type: ignore[arg-type]
    truth = np.concatenate([a.numpy().ravel() * rows for a in arrays.values()])
    assert len(truth) == length - secagg.EXTRA == 81
    lanes = np.frombuffer(blobs[0], dtype="<u8").reshape(-1, 2)  # type: ignore[arg-type]
    # Read as the server would read an unmasked value: fixed point in the low word.
    seen = lanes[:, 0].view(np.int64).astype(float)[: len(truth)] / (1 << FRACTION_BITS)
    assert abs(np.corrcoef(seen, truth)[0, 1]) < 0.5
    assert np.median(np.abs(seen - truth)) > 1e6  # the weights are below 100 in size
    # Neither one reply nor two of the three add up to a readable total.
    for part in ([blobs[0]], blobs[:2], blobs[1:]):
        with pytest.raises(InvalidInput, match="readable"):
            secagg.sum_masked(part, length)  # type: ignore[arg-type]


def test_client_refuses_to_send_an_update_it_cannot_mask(sites: dict[str, Path]) -> None:
    FakeGrid({})
    source = SqliteFeatureSource(sites["site-a"])
    state = RecordDict()
    ask = Message(RecordDict(), dst_node_id=1, message_type=secagg.KEYS_MESSAGE)
    own = handle_keys(ask, state).content.config_records[secagg.KEY_RECORD][secagg.PUBLIC_KEY]
    other = secagg.new_key_pair()[1]
    s = spec(secure_aggregation=True)
    cases: list[tuple[RecordDict | None, dict[str, Any], str]] = [
        (state, {}, "does not list the round's sites"),
        (RecordDict(), {secagg.NODES_KEY: [1, 2], secagg.KEYS_KEY: [own, other]}, "no key"),
        (state, {secagg.NODES_KEY: [1], secagg.KEYS_KEY: [own]}, "at least two sites"),
        (state, {secagg.NODES_KEY: [1, 2], secagg.KEYS_KEY: [other, own]}, "own key"),
        (state, {secagg.NODES_KEY: [1, 2], secagg.KEYS_KEY: [own, own]}, "share a public key"),
    ]
    for node_state, extra, why in cases:
        with pytest.raises(InvalidInput, match=why):
            handle_train(_train_message(s, 1, extra), source, None, node_state)
    # A site that insists on secure aggregation refuses a plain study.
    with pytest.raises(InvalidInput, match="only with secure aggregation"):
        handle_train(_train_message(spec(), 1, {}), source, require_secure=True)


# --- the round loop ------------------------------------------------------------------------


def test_secure_run_equals_the_plain_run(sites: dict[str, Path], tmp_path: Path) -> None:
    plain_sink, secure_sink = MemorySink(), MemorySink()
    plain = run_training(grid_for(sites, False), spec(), "p", plain_sink, tmp_path / "p")
    grid = grid_for(sites, True)
    assert isinstance(grid, SecureGrid)
    secure = run_training(grid, spec(secure_aggregation=True), "s", secure_sink, tmp_path / "s")
    assert plain.status == secure.status == "completed"
    assert secure.rounds_completed == 3
    assert secure.sites_participated == sorted(SHIFTS)
    assert_same_model(plain, secure)
    # One key round at the start, then one message per site and round.
    kinds = [(kind, r) for _, kind, r, _ in grid.sent]
    assert kinds.count((secagg.KEYS_MESSAGE, 1)) == 3
    assert sum(1 for k, _ in kinds if k == secagg.KEYS_MESSAGE) == 3
    assert sum(1 for k, _ in kinds if k == MessageType.TRAIN) == 9
    for (_, p), (_, s) in zip(plain_sink.rounds, secure_sink.rounds, strict=True):
        if p.train_loss is None:
            assert s.train_loss is None
        else:
            assert s.train_loss == pytest.approx(p.train_loss, abs=1e-6)
        assert s.eval_auc_pooled == pytest.approx(p.eval_auc_pooled)  # per-site metrics stay
        assert not [m for m in s.site_metrics if m.phase == "train"]  # no per-site rows or loss
    assert plain.final_auc_pooled == pytest.approx(secure.final_auc_pooled, abs=1e-6)


def test_a_lost_site_makes_the_round_run_again_without_it(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    plain_grid = grid_for(sites, False)
    plain_grid.silent_from["site-c"] = 2
    plain = run_training(plain_grid, spec(), "p", MemorySink(), tmp_path / "p")
    grid = grid_for(sites, True)
    assert isinstance(grid, SecureGrid)
    grid.silent_from["site-c"] = 2
    sink = MemorySink()
    secure = run_training(grid, spec(secure_aggregation=True), "s", sink, tmp_path / "s")
    assert secure.status == "completed" and secure.rounds_completed == 3
    assert secure.sites_participated == sorted(SHIFTS)  # site-c's round-1 update is in the sum
    assert set(secure.sites_dropped) == {"site-c"}
    # Round 2 went out twice: to all three, then again to site-a and site-b only.
    round_two = sorted((site, a) for site, kind, r, a in grid.sent if r == 2 and kind == "train")
    assert round_two == [("site-a", 1), ("site-a", 2), ("site-b", 1), ("site-b", 2), ("site-c", 1)]
    record = next(r for _, r in sink.rounds if r.server_round == 2)
    assert record.sites_replied == ["site-a", "site-b"]
    assert set(record.sites_failed) == {"site-c"}
    # ... and its result is FedAvg over the two remaining sites.
    assert_same_model(plain, secure)


def test_a_site_that_lost_its_key_is_dropped_and_the_round_redone(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    grid = grid_for(sites, True)
    assert isinstance(grid, SecureGrid)
    original = grid.push_messages

    def restart_b(messages: Iterable[Message]) -> Iterable[str]:
        batch = list(messages)
        if batch and int(str(batch[0].content.config_records["config"][ROUND_KEY])) == 2:
            grid.state["site-b"] = RecordDict()  # its SuperNode restarted: the key is gone
        return original(batch)

    grid.push_messages = restart_b  # type: ignore[method-assign]
    result = run_training(grid, spec(secure_aggregation=True), "k", MemorySink(), tmp_path / "k")
    assert result.status == "completed"
    assert "no key for the run" in result.sites_dropped["site-b"]
    assert ("site-a", "train", 2, 2) in grid.sent and ("site-b", "train", 2, 2) not in grid.sent


def test_losing_sites_in_both_attempts_stops_the_run(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    grid = grid_for(sites, True)
    assert isinstance(grid, SecureGrid)
    grid.silent |= {("site-c", 2, 1), ("site-b", 2, 2)}
    sink = MemorySink()
    result = run_training(grid, spec(secure_aggregation=True), "x", sink, tmp_path / "x")
    assert result.status == "aborted"
    assert result.rounds_completed == 1  # round 1's aggregate is kept
    assert result.model_version is not None
    assert "round 2" in result.detail
    assert set(result.sites_dropped) == {"site-b", "site-c"}


# --- the spec ------------------------------------------------------------------------------


def test_spec_field() -> None:
    assert spec().secure_aggregation is False
    assert spec(secure_aggregation=True).secure_aggregation is True
    with pytest.raises(InvalidInput, match="secure_aggregation needs min_nodes >= 2"):
        spec(secure_aggregation=True, min_nodes=1)
    with pytest.raises(InvalidInput, match="secure_aggregation: Input should be a valid boolean"):
        spec(secure_aggregation="yes")
    assert spec(min_nodes=1).min_nodes == 1  # without it one site is allowed
    assert "secure_aggregation" in spec(secure_aggregation=True).to_json()
