"""Cox with one baseline hazard across sites (`strata: null`), WebDISCO-style.

Each Newton round every site returns, through secure aggregation, its
per-time sums of exp(xb), x·exp(xb), xx'·exp(xb) over all rows and over its
events, in fixed point. The hub rebuilds the pooled risk sets from the totals,
so the fit equals lifelines' unstratified fit on the pooled rows, while no
site's per-time values are ever readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from federated_ml import secure_agg
from federated_ml.analyses import secure_rounds as sr
from federated_ml.analyses.base import NextRound, SitePayloads
from federated_ml.stats.cox import CoxTerms, TimeSums, cox_terms_from_sums, time_sums
from federated_ml.stats.newton import NewtonOutcome, NewtonState, newton_update
from shared_cdm.errors import InvalidInput

_SCALE = float(1 << secure_agg.FRACTION_BITS)


def first_round(p: int) -> NextRound:
    params = {"phase": "horizon", **sr.keys_round("secagg-1")}
    state = {"stage": "keys", "attempt": 1, "newton": NewtonState(beta=[0.0] * p).to_json()}
    return NextRound(params=params, state=state)


def local(
    time: np.ndarray, event: np.ndarray, x: np.ndarray, params: Mapping[str, Any], res: float
) -> dict[str, Any]:
    if params.get("phase") == "horizon":
        step = 100 * res
        top = float(time.max()) if time.size else 0.0
        return {"n": len(time), "horizon": max(np.ceil(top / step) * step, step)}
    grid = np.arange(int(params["length"]), dtype=float) * res
    if time.size and not np.allclose(grid[np.searchsorted(grid, time)], time):
        raise InvalidInput("pooled Cox needs times on the `time_resolution` grid")
    beta = np.asarray(params["beta"], dtype=float)
    s = time_sums(time, event, x, beta, grid)
    tag = f"it{int(params['iteration'])}"

    def fixed(a: np.ndarray) -> np.ndarray:
        return secure_agg.encode_fixed_array(a)

    secure = {
        f"{tag}|a0": fixed(s.a0),
        f"{tag}|a1": fixed(s.a1),
        f"{tag}|a2": fixed(s.a2),
        f"{tag}|e0": fixed(s.e0),
        f"{tag}|e1": fixed(s.e1),
        f"{tag}|e2": fixed(s.e2),
        f"{tag}|xe": fixed(s.x_events),
        f"{tag}|d": secure_agg.int_lanes(s.d),
    }
    return {"n": len(time), sr.SECURE: secure}


def _pooled_sums(payloads: SitePayloads, tag: str, length: int, p: int) -> TimeSums:
    raw = sr.unmask(payloads)

    def real(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return np.asarray(raw[f"{tag}|{name}"], dtype=float).reshape(shape) / _SCALE

    return TimeSums(
        a0=real("a0", (length,)),
        a1=real("a1", (length, p)),
        a2=real("a2", (length, p, p)),
        d=np.asarray(raw[f"{tag}|d"], dtype=np.int64),
        e0=real("e0", (length,)),
        e1=real("e1", (length, p)),
        e2=real("e2", (length, p, p)),
        x_events=real("xe", (p,)),
    )


def _sums_round(state: dict[str, Any]) -> NextRound:
    newton = state["newton"]
    params: dict[str, Any] = {
        "phase": "sums",
        "length": state["length"],
        "beta": newton["beta"],
        "iteration": state["iteration"],
        sr.SECAGG: state["secagg"],
    }
    return NextRound(params=params, state=state)


def step(
    state: Mapping[str, Any], payloads: SitePayloads, p: int, res: float, ties: str
) -> NextRound | tuple[CoxTerms, NewtonState]:
    """A next round, or (terms at the solution, final Newton state)."""
    if state["stage"] == "keys":
        attempt = int(state["attempt"])
        horizon = max(float(pl["horizon"]) for pl in payloads.values())
        new = {
            "stage": "sums",
            "attempt": attempt,
            "peers": sorted(payloads),
            "length": round(horizon / res) + 1,
            "iteration": 0,
            "newton": state["newton"],
            "secagg": sr.mask_round(f"secagg-{attempt}", payloads)[sr.SECAGG],
        }
        return _sums_round(new)
    if not sr.same_sites(state, payloads):  # a site dropped: new keys among the rest
        attempt = int(state["attempt"]) + 1
        if attempt > 3:
            raise InvalidInput("secure aggregation failed three times: sites dropped out")
        fresh = NewtonState(beta=list(state["newton"]["beta"])).to_json()
        params = {"phase": "horizon", **sr.keys_round(f"secagg-{attempt}")}
        return NextRound(
            params=params, state={"stage": "keys", "attempt": attempt, "newton": fresh}
        )
    tag = f"it{int(state['iteration'])}"
    sums = _pooled_sums(payloads, tag, int(state["length"]), p)
    newton = NewtonState.from_json(dict(state["newton"]))
    beta = np.asarray(newton.beta)
    n = sum(int(pl["n"]) for pl in payloads.values())
    terms = cox_terms_from_sums(sums, beta, "breslow" if ties == "breslow" else "efron", n)
    outcome: NewtonOutcome = newton_update(newton, terms.loglik, terms.gradient, terms.information)
    if outcome.converged:
        return terms, outcome.state
    nxt = {**state, "iteration": int(state["iteration"]) + 1, "newton": newton.to_json()}
    return _sums_round(nxt)
