"""Local training and evaluation, the same code for a site and for a pooled fit.

Binary outcomes use the Bernoulli likelihood. The discrete-time survival model
splits [0, horizon) into K equal intervals; a row contributes log(1 - h_k) for
each interval it is known to have survived and log(h_j) for the interval j of
its event. A row censored inside interval j counts as having survived j when it
was censored in the second half of j (the actuarial half-interval rule), so
censored rows inform the fit up to their censoring time instead of being dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from federated_ml.flower.spec import MLStudySpec, SurvivalOutcome, TrainingSpec

N_SCORE_BINS = 100  # bins of the score histogram that pooled AUC is computed from
N_CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Batchable:
    """Model-ready rows.

    `label`/`labelled` are what AUC and calibration use: the binary outcome, or
    for survival "event before the horizon", known only for rows with an event
    before it or follow-up past it. `hazard_target`/`at_risk` (N, K) exist for
    survival only.
    """

    x: torch.Tensor
    label: torch.Tensor
    labelled: torch.Tensor
    hazard_target: torch.Tensor | None = None
    at_risk: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, idx: torch.Tensor) -> Batchable:
        return Batchable(
            self.x[idx],
            self.label[idx],
            self.labelled[idx],
            None if self.hazard_target is None else self.hazard_target[idx],
            None if self.at_risk is None else self.at_risk[idx],
        )


def survival_targets(
    time: np.ndarray, event: np.ndarray, outcome: SurvivalOutcome
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-interval targets and at-risk mask, plus the horizon label and its mask."""
    k = outcome.intervals
    width = outcome.horizon / k
    n = time.shape[0]
    target = np.zeros((n, k), dtype=np.float32)
    at_risk = np.zeros((n, k), dtype=np.float32)
    for i in range(n):
        t, e = float(time[i]), bool(event[i])
        if t >= outcome.horizon:
            at_risk[i, :] = 1.0  # alive (or event) after the horizon: survived all K
            continue
        j = min(int(t // width), k - 1)
        at_risk[i, :j] = 1.0
        if e:
            at_risk[i, j] = 1.0
            target[i, j] = 1.0
        elif t >= (j + 0.5) * width:
            at_risk[i, j] = 1.0
    event_by_horizon = (event.astype(bool) & (time < outcome.horizon)).astype(np.float32)
    known = (event.astype(bool) & (time < outcome.horizon)) | (time >= outcome.horizon)
    return target, at_risk, event_by_horizon, known.astype(np.float32)


def make_batchable(
    spec: MLStudySpec, x: np.ndarray, outcome_columns: dict[str, np.ndarray]
) -> Batchable:
    xt = torch.as_tensor(x, dtype=torch.float32)
    if isinstance(spec.outcome, SurvivalOutcome):
        target, at_risk, label, known = survival_targets(
            outcome_columns[spec.outcome.time_column],
            outcome_columns[spec.outcome.event_column],
            spec.outcome,
        )
        return Batchable(
            xt,
            torch.as_tensor(label),
            torch.as_tensor(known),
            torch.as_tensor(target),
            torch.as_tensor(at_risk),
        )
    y = outcome_columns[spec.outcome.column].astype(np.float32)
    return Batchable(xt, torch.as_tensor(y), torch.ones(len(y), dtype=torch.float32))


def loss_sum(model: nn.Module, data: Batchable) -> torch.Tensor:
    """Negative log-likelihood summed over rows."""
    logits = model(data.x)
    if data.hazard_target is not None and data.at_risk is not None:
        terms = nn.functional.binary_cross_entropy_with_logits(
            logits, data.hazard_target, reduction="none"
        )
        return (terms * data.at_risk).sum()
    return nn.functional.binary_cross_entropy_with_logits(logits, data.label, reduction="sum")


def predict_risk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """P(outcome): the binary probability, or P(event before the horizon)."""
    model.eval()
    with torch.no_grad():
        logits = model(x)
        if logits.dim() == 2:
            log_survival = nn.functional.logsigmoid(-logits).sum(dim=1)
            return 1.0 - torch.exp(log_survival)
        return torch.sigmoid(logits)


def _optimizer(model: nn.Module, t: TrainingSpec) -> torch.optim.Optimizer:
    if t.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def train_local(
    model: nn.Module,
    data: Batchable,
    t: TrainingSpec,
    *,
    epochs: int | None = None,
    proximal_mu: float = 0.0,
    seed: int = 0,
) -> float:
    """Mini-batch training; returns the mean per-row loss of the last epoch.

    With proximal_mu > 0 the FedProx term mu/2 * ||w - w_global||^2 keeps the
    local weights near the global model the round started from.
    """
    if len(data) == 0:
        return float("nan")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout masks
    opt = _optimizer(model, t)
    anchor = [p.detach().clone() for p in model.parameters()] if proximal_mu > 0 else []
    last = float("nan")
    for _ in range(epochs if epochs is not None else t.local_epochs):
        model.train()
        order = torch.randperm(len(data), generator=gen)
        total = 0.0
        for start in range(0, len(data), t.batch_size):
            batch = data.subset(order[start : start + t.batch_size])
            opt.zero_grad()
            loss = loss_sum(model, batch) / len(batch)
            if anchor:
                prox = sum(
                    ((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor, strict=True)
                )
                loss = loss + proximal_mu / 2 * prox
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
        last = total / len(data)
    return last


def auc(scores: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count one half); NaN if one class."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64) > 0.5
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def score_histogram(scores: np.ndarray, labels: np.ndarray) -> tuple[list[int], list[int]]:
    """Counts of positives and negatives per score bin on [0, 1]."""
    bins = np.clip((scores * N_SCORE_BINS).astype(int), 0, N_SCORE_BINS - 1)
    pos = np.bincount(bins[labels > 0.5], minlength=N_SCORE_BINS)
    neg = np.bincount(bins[labels <= 0.5], minlength=N_SCORE_BINS)
    return [int(v) for v in pos], [int(v) for v in neg]


def auc_from_histograms(pos: Sequence[float], neg: Sequence[float]) -> float:
    """AUC of binned scores: pairs in one bin count one half (exact up to binning)."""
    p = np.asarray(pos, dtype=np.float64)
    q = np.asarray(neg, dtype=np.float64)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    neg_below = np.concatenate([[0.0], np.cumsum(q)[:-1]])
    wins = (p * neg_below).sum() + 0.5 * (p * q).sum()
    return float(wins / (p.sum() * q.sum()))


@dataclass(frozen=True)
class Calibration:
    """Per bin of predicted risk: rows, summed prediction, summed outcome."""

    count: list[int]
    sum_predicted: list[float]
    sum_observed: list[float]

    def rows(self) -> list[tuple[int, float | None, float | None]]:
        return [
            (n, (sp / n) if n else None, (so / n) if n else None)
            for n, sp, so in zip(self.count, self.sum_predicted, self.sum_observed, strict=True)
        ]


def calibration_bins(scores: np.ndarray, labels: np.ndarray) -> Calibration:
    bins = np.clip((scores * N_CALIBRATION_BINS).astype(int), 0, N_CALIBRATION_BINS - 1)
    count = np.bincount(bins, minlength=N_CALIBRATION_BINS)
    sp = np.bincount(bins, weights=scores, minlength=N_CALIBRATION_BINS)
    so = np.bincount(bins, weights=labels, minlength=N_CALIBRATION_BINS)
    return Calibration([int(v) for v in count], [float(v) for v in sp], [float(v) for v in so])


@dataclass(frozen=True)
class Evaluation:
    n: int
    loss: float  # mean negative log-likelihood per row
    auc: float
    n_labelled: int
    hist_pos: list[int]
    hist_neg: list[int]
    calibration: Calibration


def evaluate(model: nn.Module, data: Batchable) -> Evaluation:
    n = len(data)
    if n == 0:
        empty = [0] * N_SCORE_BINS
        zeros = [0.0] * N_CALIBRATION_BINS
        cal = Calibration([0] * N_CALIBRATION_BINS, zeros, zeros)
        return Evaluation(0, float("nan"), float("nan"), 0, empty, empty, cal)
    model.eval()
    with torch.no_grad():
        loss = float(loss_sum(model, data)) / n
    risk = predict_risk(model, data.x).numpy().astype(np.float64)
    keep = data.labelled.numpy() > 0.5
    scores, labels = risk[keep], data.label.numpy()[keep].astype(np.float64)
    pos, neg = score_histogram(scores, labels)
    return Evaluation(
        n=n,
        loss=loss,
        auc=auc(scores, labels),
        n_labelled=int(keep.sum()),
        hist_pos=pos,
        hist_neg=neg,
        calibration=calibration_bins(scores, labels),
    )


def finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None
