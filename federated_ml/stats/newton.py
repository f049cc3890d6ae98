"""Newton–Raphson over summed site contributions, driven one round at a time.

The hub holds this state between rounds (it survives a restart as JSON). Each
round the sites evaluate (loglik, score, information) at `beta`; a step that
lowers the log-likelihood is halved instead of taken.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from shared_cdm.errors import InvalidInput

MAX_ITERATIONS = 50
MAX_HALVINGS = 30
STEP_TOL = 1e-10
LOGLIK_TOL = 1e-12


@dataclass
class NewtonState:
    beta: list[float]
    prev_beta: list[float] | None = None
    prev_loglik: float | None = None
    step: list[float] = field(default_factory=list)
    iterations: int = 0
    halvings: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> NewtonState:
        return cls(**raw)


@dataclass(frozen=True)
class NewtonOutcome:
    converged: bool
    next_beta: list[float] | None  # None when converged
    state: NewtonState


def newton_update(
    state: NewtonState, loglik: float, gradient: np.ndarray, information: np.ndarray
) -> NewtonOutcome:
    """Decide the next beta from the sums evaluated at `state.beta`."""
    beta = np.asarray(state.beta, dtype=float)
    if state.prev_loglik is not None and loglik < state.prev_loglik - LOGLIK_TOL:
        if state.halvings >= MAX_HALVINGS:
            raise InvalidInput("Newton-Raphson could not improve the likelihood (step halving)")
        half = np.asarray(state.step) / 2.0
        new = np.asarray(state.prev_beta) + half
        state.step, state.halvings = half.tolist(), state.halvings + 1
        state.beta = new.tolist()
        return NewtonOutcome(False, state.beta, state)
    try:
        step = np.linalg.solve(information, gradient)
    except np.linalg.LinAlgError:
        raise InvalidInput(
            "the information matrix is singular: covariates are collinear or constant"
        ) from None
    if not np.all(np.isfinite(step)):
        raise InvalidInput("Newton-Raphson diverged (non-finite step); check the covariates")
    if np.max(np.abs(step), initial=0.0) < STEP_TOL:
        return NewtonOutcome(True, None, state)
    if state.iterations >= MAX_ITERATIONS:
        raise InvalidInput(f"Newton-Raphson did not converge in {MAX_ITERATIONS} iterations")
    state.prev_beta, state.prev_loglik = beta.tolist(), loglik
    state.step, state.halvings = step.tolist(), 0
    state.iterations += 1
    state.beta = (beta + step).tolist()
    return NewtonOutcome(False, state.beta, state)
