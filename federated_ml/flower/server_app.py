"""The ServerApp: runs one ML study beside the SuperLink.

Each round sends the global model to every online site not yet dropped, waits
at most the spec's round timeout, aggregates the replies that came with
Flower's FedAvg / FedProx strategy, and records the round. A site that does not
answer in time (it died, or its ClientApp failed) is dropped for the rest of
the run and named in the result; the run stops early when fewer than
`min_nodes` sites remain. Replies are polled every quarter second, not every
3 s as `Grid.send_and_receive` does.

With `secure_aggregation` the sites send masked updates (secagg.py) and the
server reads only their sum; a site lost mid-round makes that sum unreadable,
so the round is sent once more to the sites that answered.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, FedProx

from federated_ml.flower import secagg
from federated_ml.flower.client_app import EVAL_RECORD, MU_KEY, ROUND_KEY, SPEC_KEY
from federated_ml.flower.metrics import (
    MetricsSink,
    RoundRecord,
    RunResult,
    SiteMetrics,
    SqliteMetricsSink,
)
from federated_ml.flower.models import build_model, model_version
from federated_ml.flower.spec import MLStudySpec, spec_from_json
from federated_ml.flower.training import (
    N_CALIBRATION_BINS,
    N_SCORE_BINS,
    auc_from_histograms,
)
from shared_cdm.errors import InvalidInput

POLL_SECONDS = 0.25
ONLINE = "online"


@dataclass
class _Federation:
    """Which sites the run knows, by node id, and which it has dropped."""

    names: dict[int, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    participated: set[str] = field(default_factory=set)

    def refresh(self, grid: Grid) -> list[int]:
        active = []
        for node in grid.get_nodes():
            if getattr(node, "status", ONLINE) != ONLINE:
                continue
            name = getattr(node, "name", "") or f"node-{node.node_id}"
            self.names[node.node_id] = name
            if name not in self.dropped:
                active.append(node.node_id)
        return sorted(active)


def exchange(
    grid: Grid,
    messages: list[Message],
    timeout: float,
    *,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[int, Message], set[int]]:
    """Send, then collect replies until all arrived or the timeout passed.

    Returns the replies by sending node and the nodes that did not answer.
    """
    ids = list(grid.push_messages(messages))
    waiting = {mid: m.metadata.dst_node_id for mid, m in zip(ids, messages, strict=True) if mid}
    unsent = {m.metadata.dst_node_id for mid, m in zip(ids, messages, strict=True) if not mid}
    replies: dict[int, Message] = {}
    deadline = clock() + timeout
    while waiting:
        for reply in grid.pull_messages(list(waiting)):
            node = waiting.pop(reply.metadata.reply_to_message_id, None)
            if node is not None:
                replies[node] = reply
        if not waiting or clock() >= deadline:
            break
        time.sleep(poll)
    return replies, set(waiting.values()) | unsent


def _number(record: Mapping[str, object], key: str) -> float:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{key} is not a number")
    return float(value)


def _numbers(record: Mapping[str, object], key: str, length: int) -> list[float]:
    value = record[key]
    if not isinstance(value, list) or len(value) != length:
        raise TypeError(f"{key} is not a list of {length} numbers")
    return [float(v) for v in value]


def malformed(reply: Message, *, train: bool, secure_length: int = 0) -> str:
    """Why a site's reply cannot be used, or "" when it can.

    `secure_length`: a secure round's masked vector length (0: a plain round)."""
    try:
        ev = reply.content.config_records[EVAL_RECORD]
        _number(ev, "n")
        _number(ev, "n-labelled")
        _number(ev, "skipped-rows")
        for key in ("hist-pos", "hist-neg"):
            _numbers(ev, key, N_SCORE_BINS)
        for key in ("cal-count", "cal-sum-predicted", "cal-sum-observed"):
            _numbers(ev, key, N_CALIBRATION_BINS)
        if train and secure_length:
            masked = reply.content.config_records[secagg.UPDATE_RECORD][secagg.MASKED_KEY]
            if not isinstance(masked, bytes) or len(masked) != secagg.LANE_BYTES * secure_length:
                raise TypeError("the masked update has the wrong size")
            if reply.content.array_records:
                raise TypeError("plain model weights in a secure-aggregation round")
        elif train:
            m = reply.content.metric_records["metrics"]
            _number(m, "num-examples")
            _number(m, "train-loss")
            if len(reply.content.array_records) != 1:
                raise TypeError("expected one set of model weights")
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed reply: {exc}"
    return ""


def _weighted(values: Iterable[tuple[float, float]]) -> float | None:
    pairs = [(v, w) for v, w in values if w > 0]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None


def summarise_evaluations(
    evals: Mapping[str, ConfigRecord],
) -> tuple[float | None, float | None, float | None, list[tuple[int, float | None, float | None]]]:
    """Weighted loss, weighted AUC, pooled AUC and pooled calibration of site evaluations."""
    loss = _weighted((_number(e, "loss"), _number(e, "n")) for e in evals.values() if "loss" in e)
    auc_w = _weighted(
        (_number(e, "auc"), _number(e, "n-labelled")) for e in evals.values() if "auc" in e
    )
    if not evals:
        return loss, auc_w, None, []
    pos = np.sum([np.asarray(e["hist-pos"], dtype=float) for e in evals.values()], axis=0)
    neg = np.sum([np.asarray(e["hist-neg"], dtype=float) for e in evals.values()], axis=0)
    pooled = auc_from_histograms(pos, neg)
    count = np.sum([np.asarray(e["cal-count"], dtype=float) for e in evals.values()], axis=0)
    sp = np.sum([np.asarray(e["cal-sum-predicted"], dtype=float) for e in evals.values()], axis=0)
    so = np.sum([np.asarray(e["cal-sum-observed"], dtype=float) for e in evals.values()], axis=0)
    calibration = [
        (int(n), float(p / n) if n else None, float(o / n) if n else None)
        for n, p, o in zip(count, sp, so, strict=True)
    ]
    return loss, auc_w, (pooled if math.isfinite(pooled) else None), calibration


def _site_eval_metrics(evals: Mapping[str, ConfigRecord], model_round: int) -> list[SiteMetrics]:
    return [
        SiteMetrics(
            site=site,
            phase="eval",
            model_round=model_round,
            n=int(_number(e, "n")),
            loss=_number(e, "loss") if "loss" in e else None,
            auc=_number(e, "auc") if "auc" in e else None,
            skipped_rows=int(_number(e, "skipped-rows")),
        )
        for site, e in sorted(evals.items())
    ]


def _wait_for_sites(grid: Grid, fed: _Federation, spec: MLStudySpec) -> list[int]:
    deadline = time.monotonic() + spec.start_timeout_s
    while len(active := fed.refresh(grid)) < spec.min_nodes and time.monotonic() < deadline:
        time.sleep(0.5)
    return active


def save_model(
    model_dir: Path, spec: MLStudySpec, state: dict[str, torch.Tensor]
) -> tuple[str, Path]:
    version = model_version(state)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", spec.name).strip("-") or "model"
    path = model_dir / f"{slug}-{version.split(':')[1][:16]}.pt"
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"version": version, "spec": spec.to_json(), "state_dict": state}, path)
    return version, path


def _strategy(spec: MLStudySpec) -> FedAvg:
    if spec.strategy == "fedprox":
        return FedProx(min_train_nodes=spec.min_nodes, proximal_mu=spec.training.proximal_mu)
    return FedAvg(min_train_nodes=spec.min_nodes)


def _messages(
    nodes: list[int],
    content: RecordDict,
    kind: str,
    server_round: int,
    ttl: float | None = None,
) -> list[Message]:
    return [
        Message(content, dst_node_id=n, message_type=kind, group_id=str(server_round), ttl=ttl)
        for n in nodes
    ]


def _failure(reply: Message | None) -> str:
    if reply is None:
        return "no reply before the round timeout"
    return f"error from the site: {reply.error.reason}"


@dataclass
class _Outcome:
    """One exchange: who answered, the new global model, what to record."""

    record: RoundRecord
    arrays: ArrayRecord | None  # None: no aggregate (final evaluation, or too few updates)
    abort: str = ""


def _train_metrics(
    fed: _Federation, good: Mapping[int, Message], server_round: int
) -> list[SiteMetrics]:
    out = []
    for n, r in good.items():
        m = r.content.metric_records["metrics"]
        n_rows = int(_number(m, "num-examples"))
        out.append(
            SiteMetrics(fed.names[n], "train", server_round, n_rows, _number(m, "train-loss"))
        )
    return sorted(out, key=lambda s: s.site)


def _classify(
    fed: _Federation,
    asked: list[int],
    replies: Mapping[int, Message],
    silent: set[int],
    *,
    train: bool,
    secure_length: int = 0,
) -> tuple[dict[int, Message], dict[str, str]]:
    good: dict[int, Message] = {}
    failed: dict[str, str] = {}
    for n in asked:
        reply = None if n in silent else replies.get(n)
        if reply is None or reply.has_error():
            failed[fed.names[n]] = _failure(reply)
        elif why := malformed(reply, train=train, secure_length=secure_length):
            failed[fed.names[n]] = why
        else:
            good[n] = reply
    fed.dropped.update(failed)
    return good, failed


@dataclass
class _Aggregate:
    """A training exchange's result: the sites whose updates are in it and what they gave."""

    good: dict[int, Message]
    failed: dict[str, str]
    arrays: ArrayRecord | None = None
    train_loss: float | None = None
    train_metrics: list[SiteMetrics] = field(default_factory=list)
    abort: str = ""


def _plain_train(
    grid: Grid,
    fed: _Federation,
    spec: MLStudySpec,
    strategy: FedAvg,
    active: list[int],
    content: RecordDict,
    server_round: int,
) -> _Aggregate:
    messages = _messages(active, content, MessageType.TRAIN, server_round)
    replies, silent = exchange(grid, messages, spec.round_timeout_s)
    good, failed = _classify(fed, active, replies, silent, train=True)
    out = _Aggregate(good, failed)
    # Sorted by site so the floating-point sum does not depend on arrival order.
    fit = [
        good[n]
        for n in sorted(good, key=lambda n: fed.names[n])
        if _number(good[n].content.metric_records["metrics"], "num-examples") > 0
    ]
    if len(fit) < spec.min_nodes:
        out.abort = (
            f"{len(fit)} site(s) returned an update in round {server_round}, need {spec.min_nodes}"
        )
        return out
    out.arrays, _ = strategy.aggregate_train(server_round, fit)
    if out.arrays is None:
        out.abort = f"aggregation failed in round {server_round}"
        return out
    out.train_metrics = _train_metrics(fed, good, server_round)
    out.train_loss = _weighted((s.loss or 0.0, float(s.n)) for s in out.train_metrics)
    fed.participated.update(m.site for m in out.train_metrics if m.n > 0)
    return out


def _key_round(
    grid: Grid,
    fed: _Federation,
    spec: MLStudySpec,
    keys: dict[int, bytes],
    nodes: list[int],
    server_round: int,
) -> dict[str, str]:
    """Ask `nodes` for their secure-aggregation public keys; returns who failed, and why."""
    content = RecordDict({"config": ConfigRecord({ROUND_KEY: server_round})})
    messages = _messages(nodes, content, secagg.KEYS_MESSAGE, server_round)
    replies, silent = exchange(grid, messages, spec.round_timeout_s)
    failed: dict[str, str] = {}
    for n in nodes:
        reply = None if n in silent else replies.get(n)
        if reply is None or reply.has_error():
            failed[fed.names[n]] = f"secure-aggregation key round: {_failure(reply)}"
            continue
        record = reply.content.config_records.get(secagg.KEY_RECORD)
        key = record.get(secagg.PUBLIC_KEY) if record is not None else None
        if not isinstance(key, bytes) or len(key) != 32:
            failed[fed.names[n]] = "secure-aggregation key round: malformed public key"
        else:
            keys[n] = key
    fed.dropped.update(failed)
    return failed


def _secure_train(
    grid: Grid,
    fed: _Federation,
    spec: MLStudySpec,
    keys: dict[int, bytes],
    active: list[int],
    content: RecordDict,
    server_round: int,
) -> _Aggregate:
    failed = _key_round(grid, fed, spec, keys, [n for n in active if n not in keys], server_round)
    sites = [n for n in active if n in keys and fed.names[n] not in failed]
    template = content.array_records["arrays"]
    length = secagg.vector_length(template)
    config = content.config_records["config"]
    need = max(2, spec.min_nodes)  # a sum over one site is that site's update
    good: dict[int, Message] = {}
    for attempt in (1, 2):
        if len(sites) < need:
            return _Aggregate(
                good,
                failed,
                abort=f"{len(sites)} site(s) left for secure aggregation in round "
                f"{server_round}, need {need}",
            )
        round_config = ConfigRecord(
            {
                **config,
                secagg.NODES_KEY: sites,
                secagg.KEYS_KEY: [keys[n] for n in sites],
                secagg.ATTEMPT_KEY: attempt,
            }
        )
        round_content = RecordDict({"arrays": template, "config": round_config})
        # The SuperLink refuses replies after the TTL, so a late site's masked update never
        # meets the sum of the round's second attempt (together they would reveal it).
        messages = _messages(
            sites, round_content, MessageType.TRAIN, server_round, ttl=spec.round_timeout_s
        )
        replies, silent = exchange(grid, messages, spec.round_timeout_s)
        good, lost = _classify(fed, sites, replies, silent, train=True, secure_length=length)
        failed.update(lost)
        if not lost:
            break
        sites = sorted(good)  # masks of the lost sites do not cancel: once more without them
    else:
        return _Aggregate(
            good,
            failed,
            abort=f"sites dropped out of both secure-aggregation attempts of round {server_round}",
        )
    records = [good[n].content.config_records[secagg.UPDATE_RECORD] for n in sites]
    masked = [r[secagg.MASKED_KEY] for r in records]
    try:
        # malformed() checked every one is bytes of the right length
        total = secagg.sum_masked([m for m in masked if isinstance(m, bytes)], length)
        arrays, rows, loss, _ = secagg.decode_total(total, template)
    except InvalidInput as exc:
        return _Aggregate(good, failed, abort=f"round {server_round}: {exc}")
    fed.participated.update(fed.names[n] for n in sites)
    return _Aggregate(good, failed, arrays, loss if rows else None)


def _exchange_round(
    grid: Grid,
    fed: _Federation,
    spec: MLStudySpec,
    strategy: FedAvg,
    active: list[int],
    content: RecordDict,
    server_round: int,
    keys: dict[int, bytes] | None = None,
) -> _Outcome:
    """One exchange; `keys` (secure aggregation) holds the sites' public keys by node."""
    final = server_round == spec.rounds + 1
    started = time.monotonic()
    if final:
        messages = _messages(active, content, MessageType.EVALUATE, server_round)
        replies, silent = exchange(grid, messages, spec.round_timeout_s)
        agg = _Aggregate(*_classify(fed, active, replies, silent, train=False))
    elif keys is not None:
        agg = _secure_train(grid, fed, spec, keys, active, content, server_round)
    else:
        agg = _plain_train(grid, fed, spec, strategy, active, content, server_round)
    evals = {fed.names[n]: r.content.config_records[EVAL_RECORD] for n, r in agg.good.items()}
    loss, auc_w, auc_pooled, calibration = summarise_evaluations(evals)
    record = RoundRecord(
        server_round=server_round,
        seconds=time.monotonic() - started,
        sites_asked=sorted(fed.names[n] for n in active),
        sites_replied=sorted(fed.names[n] for n in agg.good),
        sites_failed=agg.failed,
        train_loss=agg.train_loss,
        eval_model_round=server_round - 1,
        eval_loss=loss,
        eval_auc_weighted=auc_w,
        eval_auc_pooled=auc_pooled,
        calibration=calibration,
        site_metrics=agg.train_metrics + _site_eval_metrics(evals, server_round - 1),
    )
    return _Outcome(record, agg.arrays, agg.abort)


def run_training(
    grid: Grid, spec: MLStudySpec, run_key: str, sink: MetricsSink, model_dir: Path
) -> RunResult:
    fed = _Federation()
    strategy = _strategy(spec)
    arrays = ArrayRecord(build_model(spec, seed=spec.training.seed).state_dict())
    config = ConfigRecord({SPEC_KEY: spec.to_json()})
    if spec.strategy == "fedprox":
        config[MU_KEY] = spec.training.proximal_mu
    keys: dict[int, bytes] | None = {} if spec.secure_aggregation else None
    seconds: list[float] = []
    detail, completed = "", 0
    final: RoundRecord | None = None

    active = _wait_for_sites(grid, fed, spec)
    for server_round in range(1, spec.rounds + 2):
        if server_round > 1:
            active = fed.refresh(grid)
        if len(active) < spec.min_nodes:
            detail = (
                f"{len(active)} site(s) available before round {server_round}, "
                f"need {spec.min_nodes}"
            )
            break
        config[ROUND_KEY] = server_round
        content = RecordDict({"arrays": arrays, "config": config})
        outcome = _exchange_round(grid, fed, spec, strategy, active, content, server_round, keys)
        seconds.append(outcome.record.seconds)
        sink.record_round(run_key, outcome.record)
        if outcome.abort:
            detail = outcome.abort
            break
        if outcome.arrays is not None:
            arrays, completed = outcome.arrays, server_round
        else:
            final = outcome.record

    state = {k: torch.as_tensor(v) for k, v in arrays.to_torch_state_dict().items()}
    version, path = save_model(model_dir, spec, state) if completed else (None, None)
    result = RunResult(
        run_key=run_key,
        study=spec.name,
        status="aborted" if detail else "completed",
        detail=detail,
        rounds_completed=completed,
        sites_participated=sorted(fed.participated),
        sites_dropped=dict(sorted(fed.dropped.items())),
        model_version=version,
        model_path=str(path) if path else None,
        final_auc_pooled=final.eval_auc_pooled if final else None,
        final_auc_weighted=final.eval_auc_weighted if final else None,
        seconds_per_round=seconds,
    )
    sink.record_result(result)
    return result


def write_result_file(results_dir: Path, result: RunResult) -> Path:
    """Written last and renamed into place, so a reader never sees half a file."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{result.run_key}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(result.to_json(), encoding="utf-8")
    os.replace(tmp, path)
    return path


# Run-config keys the Flower App bundle carries (see app_bundle.py).
RUN_SPEC = "spec-json"
RUN_RESULTS_DB = "results-db"
RUN_RESULTS_DIR = "results-dir"
RUN_MODEL_DIR = "model-dir"

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    torch.set_num_threads(1)
    cfg = context.run_config
    spec = spec_from_json(str(cfg[RUN_SPEC]))
    run_key = f"run-{context.run_id}"
    sink = SqliteMetricsSink(Path(str(cfg[RUN_RESULTS_DB])))
    result = run_training(grid, spec, run_key, sink, Path(str(cfg[RUN_MODEL_DIR])))
    write_result_file(Path(str(cfg[RUN_RESULTS_DIR])), result)
    print(json.dumps({"run_key": run_key, "status": result.status}), flush=True)
