"""The torch models an ML study can train.

Every model maps a feature matrix (N, F) to logits: (N,) for a binary outcome,
(N, K) per-interval hazard logits for the discrete-time survival model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from federated_ml.flower.spec import MLStudySpec, SurvivalOutcome, input_columns
from shared_cdm.errors import InvalidInput


def _body(n_features: int, hidden: tuple[int, ...], dropout: float) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    width = n_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    return nn.Sequential(*layers), width


class LogisticModel(nn.Module):
    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)


class MLPModel(nn.Module):
    def __init__(self, n_features: int, hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        self.body, width = _body(n_features, hidden, dropout)
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(-1)


class DiscreteSurvivalModel(nn.Module):
    """Hazard logit of interval k = risk score(x) + baseline_k (proportional odds).

    With no hidden layers the risk score is linear, the discrete-time analogue
    of a Cox model; hidden layers make it non-linear.
    """

    def __init__(
        self, n_features: int, n_intervals: int, hidden: tuple[int, ...], dropout: float
    ) -> None:
        super().__init__()
        self.body, width = _body(n_features, hidden, dropout)
        self.risk = nn.Linear(width, 1, bias=False)
        self.baseline = nn.Parameter(torch.full((n_intervals,), -2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.risk(self.body(x)) + self.baseline


def build_model(spec: MLStudySpec, *, seed: int | None = None) -> nn.Module:
    """The spec's model with seeded initial weights (the same on every site)."""
    if seed is not None:
        torch.manual_seed(seed)
    n = len(input_columns(spec))
    m = spec.model
    if m.kind == "logistic":
        return LogisticModel(n)
    if m.kind == "mlp":
        return MLPModel(n, m.hidden, m.dropout)
    if not isinstance(spec.outcome, SurvivalOutcome):  # ruled out by the spec's validator
        raise TypeError("a survival model needs a survival outcome")
    return DiscreteSurvivalModel(n, spec.outcome.intervals, m.hidden, m.dropout)


def model_version(state: dict[str, torch.Tensor]) -> str:
    """A content hash of the weights: the same weights give the same version."""
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.numpy().tobytes())
    return "sha256:" + h.hexdigest()


def state_to_json(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Weights as JSON (per tensor its shape and values): released without pickle."""
    out: dict[str, Any] = {}
    for name, tensor in state.items():
        array = tensor.detach().cpu().numpy()
        out[name] = {"shape": list(array.shape), "values": array.astype(float).ravel().tolist()}
    return out


def state_from_json(raw: Any) -> dict[str, torch.Tensor]:
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidInput("model weights must be a non-empty object of name -> tensor")
    state = {}
    for name, item in raw.items():
        try:
            shape = [int(s) for s in item["shape"]]
            values = np.asarray(item["values"], dtype=np.float32)
            state[str(name)] = torch.as_tensor(values.reshape(shape))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"model weights: tensor {name!r} is malformed ({exc})") from None
    return state
