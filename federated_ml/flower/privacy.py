"""Differential privacy on a site's model update, calibrated and sampled with OpenDP.

Each training round a site sends `global + noisy(clip(update))`: the update (new
weights minus the global weights it received) is clipped to L2 norm C and
Gaussian noise is added to every coordinate by OpenDP's Gaussian mechanism. One
round is then rho-zCDP with rho = C^2 / (2 scale^2) for adding or removing the
site's whole update, which covers every patient of the site at once. Rounds add
up in rho; the run's (epsilon, delta) is converted to a total rho with the
standard bound epsilon = rho + 2 sqrt(rho ln(1/delta)), split evenly over the
rounds, and OpenDP's binary search finds the noise scale that meets the per-round
rho. What DP does not cover: the evaluation metrics (loss, AUC, binned score and
calibration counts) and the row counts that ride along; docs/federated-ml.md says so.

The site computes the scale (edge_node/ml) and hands it to its ClientApp through
the SuperNode's node config, so the noise is the site's decision, not the server's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from federated_ml.flower.spec import PrivacySpec
from shared_cdm.errors import InvalidInput

SCALE_KEY = "dp-scale"  # node-config keys the site sets
CLIP_KEY = "dp-clip"


def rho_for(epsilon: float, delta: float) -> float:
    """The largest total rho whose (epsilon, delta) bound stays within the budget."""
    log_term = math.log(1.0 / delta)
    root = -math.sqrt(log_term) + math.sqrt(log_term + epsilon)
    return root * root


def _space() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float)


def calibrate(privacy: PrivacySpec, rounds: int) -> float:
    """The Gaussian noise scale for one round so that `rounds` rounds spend the budget."""
    import opendp.prelude as dp

    space = _space()
    per_round = rho_for(privacy.epsilon, privacy.delta) / rounds
    scale = dp.binary_search_param(
        lambda s: space >> dp.m.then_gaussian(scale=s), d_in=privacy.clip_norm, d_out=per_round
    )
    return float(scale)


def spent_rho(clip: float, scale: float) -> float:
    """rho of one round, by OpenDP's own privacy map of the mechanism used."""
    import opendp.prelude as dp

    mechanism = _space() >> dp.m.then_gaussian(scale=scale)
    return float(mechanism.map(clip))


@dataclass(frozen=True)
class Noise:
    clip: float
    scale: float

    @classmethod
    def from_node_config(cls, config: Mapping[str, object]) -> Noise | None:
        if SCALE_KEY not in config and CLIP_KEY not in config:
            return None
        try:
            clip, scale = float(str(config[CLIP_KEY])), float(str(config[SCALE_KEY]))
        except (KeyError, ValueError):
            raise InvalidInput("node config needs both dp-clip and dp-scale as numbers") from None
        if not (clip > 0 and scale > 0):
            raise InvalidInput("dp-clip and dp-scale must be positive")
        return cls(clip, scale)


def privatise(
    before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray], noise: Noise
) -> tuple[dict[str, np.ndarray], float]:
    """`before + noisy(clip(after - before))` per tensor; also the update's norm before clipping."""
    import opendp.prelude as dp

    names = list(after)  # the model's own order: the reply keeps it
    flat = np.concatenate([(after[n] - before[n]).astype(np.float64).ravel() for n in names])
    norm = float(np.linalg.norm(flat))
    if norm > noise.clip:
        flat *= noise.clip / norm
    mechanism = _space() >> dp.m.then_gaussian(scale=noise.scale)
    noisy = np.asarray(mechanism(flat.tolist()), dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    offset = 0
    for n in names:
        size = after[n].size
        delta = noisy[offset : offset + size].reshape(after[n].shape)
        out[n] = (before[n] + delta).astype(after[n].dtype)
        offset += size
    return out, norm
