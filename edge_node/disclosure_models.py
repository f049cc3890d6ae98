"""Disclosure rules for regressions: stratified `cox`, `logistic`, pooled `cox`.

A site takes part (else REFUSED) only with at least k rows, at least k events
(Cox) or at least k in each outcome class (logistic), and no more parameters
than `max_parameters_ratio` times its rows (DataSHIELD's n/3 by default): with
fewer rows the score and information can be solved for individual values. A
Cox site with 1..k-1 censored rows still takes part but withholds its event
count, which would reveal them as n - events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edge_node.disclosure_cells import Released, excluded_missing, refuse_small_site, row_count
from edge_node.disclosure_survival import require_masked
from edge_node.policy import Policy
from federated_ml import secure_agg
from federated_ml.analyses import secure_rounds as sr
from federated_ml.analyses.base import SUPPRESSED
from shared_cdm.errors import Refused

_TERMS = ("n", "events", "loglik", "gradient", "information")


def check_parameters(p: int, n: int, policy: Policy, analysis: str) -> None:
    # A 0.1% tolerance, so that the default 0.3333 reads as one third (3 parameters, 9 rows).
    if p > policy.max_parameters_ratio * n * 1.001:
        raise Refused(
            f"{analysis}: {p} parameters is more than this site allows for its rows "
            f"(at most {policy.max_parameters_ratio:g} parameters per row); "
            "this site contributes nothing",
            code="too_many_parameters",
        )


def _events(value: object, analysis: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Refused(f"{analysis}: the local result has no event count; nothing is released")
    return value


def _check_classes(n: int, events: int, k: int, analysis: str, logistic: bool) -> None:
    others = n - events
    what = "outcome class" if logistic else "event count"
    if events < k or (logistic and others < k):
        raise Refused(
            f"{analysis}: an {what} at this site is below the minimum cell size ({k}); "
            "this site contributes nothing",
            code="below_min_cell_size",
        )


def _total(vector: object) -> int:
    """The sum of an integer vector, given as a list or as mod-2**128 lanes."""
    if isinstance(vector, np.ndarray) and vector.ndim == 2:
        return sum(secure_agg.decode_int(v) for v in secure_agg.from_lanes(vector))
    return int(np.asarray(vector, dtype=np.int64).sum())


def _excluded(out: dict[str, Any], payload: Mapping[str, Any], k: int) -> tuple[str, ...]:
    notes: list[str] = []
    if "n_excluded_missing" in payload:
        out["n_excluded_missing"] = payload["n_excluded_missing"]
        excluded_missing(out, k, notes)
    return tuple(notes)


def _terms(payload: Mapping[str, Any], policy: Policy, analysis: str, logistic: bool) -> Released:
    k = policy.min_cell_size
    n = row_count(payload, analysis)
    refuse_small_site(n, k, analysis)
    _check_classes(n, _events(payload.get("events"), analysis), k, analysis, logistic)
    check_parameters(len(payload.get("gradient", [])), n, policy, analysis)
    out = {key: payload[key] for key in _TERMS if key in payload}
    notes: tuple[str, ...] = ()
    censored = n - int(out.get("events", 0))
    if not logistic and 0 < censored < k:
        out["events"] = SUPPRESSED
        notes = (f"{analysis}: event count withheld (it would reveal fewer than {k} censored)",)
    return Released(out, notes + _excluded(out, payload, k))


def control_logistic(
    payload: Mapping[str, Any], params: Mapping[str, Any], policy: Policy
) -> Released:
    return _terms(payload, policy, "logistic", logistic=True)


def control_cox(payload: Mapping[str, Any], params: Mapping[str, Any], policy: Policy) -> Released:
    """Stratified terms, the pooled model's horizon and masked per-time sums, or the
    final round's concordance pair counts (sums over pairs, released with n >= k)."""
    if "concordance" in payload:
        n = row_count(payload, "cox")
        refuse_small_site(n, policy.min_cell_size, "cox")
        pairs = {k: int(v) for k, v in dict(payload["concordance"]).items()}
        return Released({"n": n, "concordance": pairs}, ())
    if "gradient" in payload:
        return _terms(payload, policy, "cox", logistic=False)
    k = policy.min_cell_size
    n = row_count(payload, "cox")
    refuse_small_site(n, k, "cox")
    if "horizon" in payload:
        out: dict[str, Any] = {"n": n, "horizon": float(payload["horizon"])}
        return Released(out, _excluded(out, payload, k))
    if sr.SECURE not in payload:
        raise Refused("cox: this site has no disclosure rule for this round's result")
    require_masked(params, "pooled cox")
    secure = dict(payload[sr.SECURE])
    deaths = next((v for label, v in secure.items() if label.endswith("|d")), None)
    if deaths is None:
        raise Refused("pooled cox: the local result has no event counts; nothing is released")
    _check_classes(n, _total(deaths), k, "cox", logistic=False)
    check_parameters(len(params.get("beta", [])), n, policy, "cox")
    out = {"n": n, sr.SECURE: secure}
    return Released(out, _excluded(out, payload, k))
