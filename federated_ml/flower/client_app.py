"""The ClientApp: runs inside each hospital's SuperNode.

A "train" message carries the global model. The site first evaluates that
model on its held-out rows, then trains it on its training rows, and answers
with the new weights, the training loss and the evaluation: one ClientApp
process per round instead of two (Flower starts a process per message). An
"evaluate" message, sent once after the last round, only evaluates.

What leaves the site: model weights, row counts, losses, AUC, and binned score
and calibration counts (100 and 10 bins), never a row. With secure aggregation
(secagg.py) the weights, row count and training loss leave only masked; a
"query.secagg_keys" message first makes the site's key pair for the run.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from federated_ml.flower import secagg
from federated_ml.flower.features import (
    FeatureSource,
    SiteData,
    needed_columns,
    source_from_node_config,
    split_site_rows,
)
from federated_ml.flower.models import build_model
from federated_ml.flower.privacy import Noise, privatise
from federated_ml.flower.spec import MLStudySpec, spec_from_json
from federated_ml.flower.training import Evaluation, evaluate, make_batchable, train_local
from shared_cdm.errors import InvalidInput

# Keys of the messages between ServerApp and ClientApp.
SPEC_KEY = "spec-json"
ROUND_KEY = "server-round"
MU_KEY = "proximal-mu"
EVAL_RECORD = "evaluation"


def evaluation_record(ev: Evaluation, skipped: int) -> ConfigRecord:
    rec = ConfigRecord(
        {
            "n": ev.n,
            "n-labelled": ev.n_labelled,
            "hist-pos": ev.hist_pos,
            "hist-neg": ev.hist_neg,
            "cal-count": ev.calibration.count,
            "cal-sum-predicted": ev.calibration.sum_predicted,
            "cal-sum-observed": ev.calibration.sum_observed,
            "skipped-rows": skipped,
        }
    )
    # Undefined values (no rows, one class only) are left out rather than sent as NaN.
    if math.isfinite(ev.loss):
        rec["loss"] = ev.loss
    if math.isfinite(ev.auc):
        rec["auc"] = ev.auc
    return rec


@dataclass(frozen=True)
class SiteTask:
    spec: MLStudySpec
    data: SiteData
    site_seed: int


def load_task(msg: Message, source: FeatureSource) -> SiteTask:
    config = msg.content.config_records["config"]
    spec = spec_from_json(str(config[SPEC_KEY]))
    rows = source.load(needed_columns(spec))
    return SiteTask(spec, split_site_rows(spec, rows), site_seed(rows.keys))


def _model_from(msg: Message, spec: MLStudySpec) -> torch.nn.Module:
    model = build_model(spec)
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    return model


def site_seed(keys: list[str]) -> int:
    """A seed from the site's own row keys: stable across runs, different per site."""
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).digest()
    return int.from_bytes(digest[:3], "big")


def handle_keys(msg: Message, state: RecordDict) -> Message:
    """Key round of secure aggregation: the private half stays in the node's state."""
    public = secagg.store_key(state, msg.metadata.run_id)
    return Message(
        RecordDict({secagg.KEY_RECORD: ConfigRecord({secagg.PUBLIC_KEY: public})}),
        reply_to=msg,
    )


def _round_peers(config: ConfigRecord) -> tuple[dict[int, bytes], int]:
    nodes, keys = config.get(secagg.NODES_KEY), config.get(secagg.KEYS_KEY)
    if not isinstance(nodes, list) or not isinstance(keys, list) or len(nodes) != len(keys):
        raise InvalidInput("secure aggregation: the message does not list the round's sites")
    peers: dict[int, bytes] = {}
    for node, key in zip(nodes, keys, strict=True):
        if isinstance(node, bool) or not isinstance(node, int) or not isinstance(key, bytes):
            raise InvalidInput("secure aggregation: the round's sites are not node ids with keys")
        peers[node] = key
    attempt = config.get(secagg.ATTEMPT_KEY, 1)
    if isinstance(attempt, bool) or not isinstance(attempt, int):
        raise InvalidInput("secure aggregation: the attempt is not a number")
    return peers, attempt


def handle_train(
    msg: Message,
    source: FeatureSource,
    noise: Noise | None = None,
    node_state: RecordDict | None = None,
    *,
    require_secure: bool = False,
) -> Message:
    task = load_task(msg, source)
    spec, data = task.spec, task.data
    if spec.privacy is not None and noise is None:
        # The site noises its own update; without its settings nothing is sent.
        raise InvalidInput("the study asks for differential privacy; this site set no DP noise")
    if require_secure and not spec.secure_aggregation:
        raise InvalidInput("this site sends model updates only with secure aggregation")
    config = msg.content.config_records["config"]
    secure = None
    if spec.secure_aggregation:
        # Checked before training, so a message without peers never yields a plain update.
        if node_state is None:
            raise InvalidInput("secure aggregation needs the node's state")
        secure = (*secagg.load_key(node_state, msg.metadata.run_id), *_round_peers(config))
    server_round = int(str(config[ROUND_KEY]))
    model = _model_from(msg, spec)
    received = {k: v.detach().clone().numpy() for k, v in model.state_dict().items()}
    held_out = make_batchable(spec, data.x_held_out, data.outcome_held_out)
    before = evaluate(model, held_out)
    train = make_batchable(spec, data.x_train, data.outcome_train)
    loss = train_local(
        model,
        train,
        spec.training,
        proximal_mu=float(str(config.get(MU_KEY, 0.0))),
        seed=spec.training.seed * 1_000_003 + server_round * 7919 + task.site_seed,
    )
    state = model.state_dict()
    metrics: dict[str, int | float | list[int] | list[float]] = {
        "num-examples": len(train),
        "train-loss": loss if math.isfinite(loss) else -1.0,
    }
    clipped = 0
    if spec.privacy is not None and noise is not None:
        trained = {k: v.detach().numpy() for k, v in state.items()}
        noisy, norm = privatise(received, trained, noise)
        state = {k: torch.as_tensor(v) for k, v in noisy.items()}
        clipped = int(norm > noise.clip)
        metrics["update-clipped"] = clipped
    evaluation = evaluation_record(before, data.skipped)
    if secure is not None:
        private, public, peers, attempt = secure
        # DP noise (above) goes in before the mask.
        vector = secagg.update_vector(
            {k: v.detach().numpy() for k, v in state.items()},
            len(train),
            loss,
            clipped,
        )
        node = msg.metadata.dst_node_id
        masked = secagg.mask_update(
            vector,
            node_id=node,
            private=private,
            public=public,
            peers=peers,
            context=secagg.mask_context(msg.metadata.run_id, server_round, attempt, list(peers)),
        )
        content = RecordDict(
            {
                secagg.UPDATE_RECORD: ConfigRecord({secagg.MASKED_KEY: masked}),
                EVAL_RECORD: evaluation,
            }
        )
        return Message(content, reply_to=msg)
    content = RecordDict(
        {
            "arrays": ArrayRecord(state),
            "metrics": MetricRecord(metrics),
            EVAL_RECORD: evaluation,
        }
    )
    return Message(content, reply_to=msg)


def handle_evaluate(msg: Message, source: FeatureSource) -> Message:
    task = load_task(msg, source)
    model = _model_from(msg, task.spec)
    held_out = make_batchable(task.spec, task.data.x_held_out, task.data.outcome_held_out)
    ev = evaluate(model, held_out)
    return Message(
        RecordDict({EVAL_RECORD: evaluation_record(ev, task.data.skipped)}), reply_to=msg
    )


app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)  # sites share cores with the rest of the edge node
    config = context.node_config
    return handle_train(
        msg,
        source_from_node_config(config),
        Noise.from_node_config(config),
        context.state,
        require_secure=str(config.get(secagg.NODE_CONFIG_KEY, "")).lower() == "true",
    )


@app.query("secagg_keys")
def secagg_keys(msg: Message, context: Context) -> Message:
    return handle_keys(msg, context.state)


@app.evaluate()
def evaluate_global(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    return handle_evaluate(msg, source_from_node_config(context.node_config))
