"""`cox` (stratified by site) and `logistic`: Newton–Raphson over summed site terms.

Each round the hub sends beta; each site returns its log-likelihood, score
vector and information matrix at that beta (sums over its rows, never rows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from federated_ml.analyses import pooled_cox
from federated_ml.analyses.base import Finished, NextRound, SitePayloads, StudySpec
from federated_ml.stats.cox import CoxTerms, concordance_pairs, cox_terms
from federated_ml.stats.logistic import logistic_terms
from federated_ml.stats.newton import NewtonState, newton_update
from shared_cdm.errors import InvalidInput


def indicator(series: pd.Series, values: list[Any]) -> np.ndarray:
    """1 where the column holds one of `values` (compared as numbers when both are)."""
    numeric = pd.to_numeric(series, errors="coerce")
    wanted = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if wanted and numeric.notna().all():
        return np.asarray(numeric.isin(wanted), dtype=bool)
    return np.asarray(series.astype(str).isin([str(v) for v in values]), dtype=bool)


def design(frame: pd.DataFrame, covariates: list[str]) -> np.ndarray:
    cols = []
    for c in covariates:
        col = pd.to_numeric(frame[c], errors="coerce")
        if col.isna().any():
            raise InvalidInput(f"covariate {c!r} has values that are not numbers")
        cols.append(col.to_numpy(dtype=float))
    return np.column_stack(cols) if cols else np.zeros((len(frame), 0))


def _terms_payload(t: CoxTerms) -> dict[str, Any]:
    return {
        "n": t.n,
        "events": t.events,
        "loglik": t.loglik,
        "gradient": [float(v) for v in t.gradient],
        "information": [[float(v) for v in row] for row in t.information],
    }


def _sum_terms(payloads: SitePayloads, p: int) -> tuple[float, np.ndarray, np.ndarray, int, int]:
    """Summed terms; a site that withheld its event count adds none (see `events_note`)."""
    loglik, grad, info, n, events = 0.0, np.zeros(p), np.zeros((p, p)), 0, 0
    for part in payloads.values():
        loglik += float(part["loglik"])
        grad += np.asarray(part["gradient"], dtype=float)
        info += np.asarray(part["information"], dtype=float)
        n += int(part["n"])
        if isinstance(part.get("events"), int):
            events += int(part["events"])
    return loglik, grad, info, n, events


def events_note(payloads: SitePayloads) -> tuple[str, ...]:
    withheld = sorted(s for s, p in payloads.items() if not isinstance(p.get("events"), int))
    if not withheld:
        return ()
    return (
        "events is null: sites withheld their event count (it would reveal fewer censored "
        f"patients than their cell size): {', '.join(withheld)}; events_released sums the rest",
    )


def _summary(names: list[str], beta: np.ndarray, info: np.ndarray) -> dict[str, Any]:
    cov = np.linalg.inv(info)
    se = np.sqrt(np.diag(cov))
    z = beta / se
    pvals = 2 * stats.norm.sf(np.abs(z))
    q = stats.norm.ppf(0.975)
    return {
        "coef": dict(zip(names, beta.tolist(), strict=True)),
        "se": dict(zip(names, se.tolist(), strict=True)),
        "z": dict(zip(names, z.tolist(), strict=True)),
        "p": dict(zip(names, pvals.tolist(), strict=True)),
        "ci95": {n: [b - q * s, b + q * s] for n, b, s in zip(names, beta, se, strict=True)},
    }


class _NewtonAnalysis:
    name = ""

    def names(self, spec: StudySpec) -> list[str]:
        return list(spec.covariates)

    def first_round(self, spec: StudySpec) -> NextRound:
        state = NewtonState(beta=[0.0] * len(self.names(spec)))
        return NextRound(params={"beta": state.beta}, state={"newton": state.to_json()})

    def terms(self, frame: pd.DataFrame, spec: StudySpec, beta: np.ndarray) -> CoxTerms:
        raise NotImplementedError

    def local(
        self, frame: pd.DataFrame, spec: StudySpec, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        beta = np.asarray(params.get("beta", [0.0] * len(self.names(spec))), dtype=float)
        if beta.shape != (len(self.names(spec)),):
            raise InvalidInput("round parameter `beta` does not match the covariates")
        return _terms_payload(self.terms(frame, spec, beta))

    def finish(
        self, spec: StudySpec, state: NewtonState, loglik: float, info: np.ndarray, n: int, ev: int
    ) -> Finished:
        raise NotImplementedError

    def step(
        self, spec: StudySpec, state: Mapping[str, Any], payloads: SitePayloads
    ) -> NextRound | Finished:
        if not payloads:
            raise InvalidInput("no site returned terms")
        p = len(self.names(spec))
        loglik, grad, info, n, events = _sum_terms(payloads, p)
        newton = NewtonState.from_json(dict(state["newton"]))
        outcome = newton_update(newton, loglik, grad, info)
        if outcome.converged:
            done = self.finish(spec, outcome.state, loglik, info, n, events)
            notes = events_note(payloads)
            if not notes:
                return done
            # a partial total would read as the pooled one: say "unknown" instead
            result = {**done.result, "events": None, "events_released": events}
            return replace(done, result=result, disclosure=done.disclosure + notes)
        return NextRound(params={"beta": outcome.next_beta}, state={"newton": newton.to_json()})


class CoxAnalysis(_NewtonAnalysis):
    name = "cox"

    def columns(self, spec: StudySpec) -> list[str]:
        extra = spec.model_extra or {}
        return [str(extra.get("time")), str(extra.get("event")), *spec.covariates]

    def validate(self, spec: StudySpec) -> None:
        extra = spec.model_extra or {}
        if not extra.get("time") or not extra.get("event"):
            raise InvalidInput("cox needs `time` and `event` columns")
        if not spec.covariates:
            raise InvalidInput("cox needs at least one covariate")
        if extra.get("ties", "efron") not in ("efron", "breslow"):
            raise InvalidInput("cox `ties` must be 'efron' or 'breslow'")
        if extra.get("strata", "site") not in ("site", None):
            raise InvalidInput("cox `strata` must be 'site' (default) or null (pooled)")

    @staticmethod
    def pooled(spec: StudySpec) -> bool:
        return (spec.model_extra or {}).get("strata", "site") is None

    @staticmethod
    def resolution(spec: StudySpec) -> float:
        return float((spec.model_extra or {}).get("time_resolution", 1))

    def first_round(self, spec: StudySpec) -> NextRound:
        if self.pooled(spec):
            return pooled_cox.first_round(len(self.names(spec)))
        return super().first_round(spec)

    def local(
        self, frame: pd.DataFrame, spec: StudySpec, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        if params.get("phase") == "concordance":
            time, event, x = self.arrays(frame, spec)
            pairs = concordance_pairs(time, event, x @ np.asarray(params["beta"], dtype=float))
            return {"n": len(frame), "concordance": pairs.__dict__}
        if not self.pooled(spec):
            return super().local(frame, spec, params)
        time, event, x = self.arrays(frame, spec)
        return pooled_cox.local(time, event, x, params, self.resolution(spec))

    def step(
        self, spec: StudySpec, state: Mapping[str, Any], payloads: SitePayloads
    ) -> NextRound | Finished:
        if state.get("stage") == "concordance":
            return _with_concordance(state, payloads)
        out = self._fit_step(spec, state, payloads)
        if isinstance(out, Finished) and (spec.model_extra or {}).get("concordance", True):
            beta = [out.result["coef"][name] for name in self.names(spec)]
            done = {"result": out.result, "n": out.n, "disclosure": list(out.disclosure)}
            return NextRound(
                params={"phase": "concordance", "beta": beta},
                state={"stage": "concordance", "finished": done},
            )
        return out

    def _fit_step(
        self, spec: StudySpec, state: Mapping[str, Any], payloads: SitePayloads
    ) -> NextRound | Finished:
        if not self.pooled(spec):
            return super().step(spec, state, payloads)
        ties = str((spec.model_extra or {}).get("ties", "efron"))
        out = pooled_cox.step(state, payloads, len(self.names(spec)), self.resolution(spec), ties)
        if isinstance(out, NextRound):
            return out
        terms, newton = out
        return self.finish(spec, newton, terms.loglik, terms.information, terms.n, terms.events)

    def arrays(
        self, frame: pd.DataFrame, spec: StudySpec
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        extra = spec.model_extra or {}
        time = pd.to_numeric(frame[extra["time"]], errors="coerce")
        if time.isna().any() or (time < 0).any():
            raise InvalidInput(f"time column {extra['time']!r} must hold non-negative numbers")
        event = indicator(frame[extra["event"]], list(extra.get("event_values", [1])))
        return time.to_numpy(float), event, design(frame, list(spec.covariates))

    def terms(self, frame: pd.DataFrame, spec: StudySpec, beta: np.ndarray) -> CoxTerms:
        time, event, x = self.arrays(frame, spec)
        return cox_terms(time, event, x, beta, (spec.model_extra or {}).get("ties", "efron"))

    def finish(
        self, spec: StudySpec, state: NewtonState, loglik: float, info: np.ndarray, n: int, ev: int
    ) -> Finished:
        names = self.names(spec)
        beta = np.asarray(state.beta)
        out = _summary(names, beta, info)
        out["hr"] = {k: math.exp(v) for k, v in out["coef"].items()}
        out["hr_ci95"] = {k: [math.exp(lo), math.exp(hi)] for k, (lo, hi) in out["ci95"].items()}
        out.update(log_likelihood=loglik, iterations=state.iterations, events=ev, converged=True)
        return Finished(result=out, n=n, n_excluded_missing=None)


class LogisticAnalysis(_NewtonAnalysis):
    name = "logistic"

    def names(self, spec: StudySpec) -> list[str]:
        intercept = (spec.model_extra or {}).get("intercept", True)
        return (["intercept"] if intercept else []) + list(spec.covariates)

    def columns(self, spec: StudySpec) -> list[str]:
        return [str((spec.model_extra or {}).get("outcome")), *spec.covariates]

    def validate(self, spec: StudySpec) -> None:
        if not (spec.model_extra or {}).get("outcome"):
            raise InvalidInput("logistic needs an `outcome` column")
        if not self.names(spec):
            raise InvalidInput("logistic needs covariates or an intercept")

    def terms(self, frame: pd.DataFrame, spec: StudySpec, beta: np.ndarray) -> CoxTerms:
        extra = spec.model_extra or {}
        y = indicator(frame[extra["outcome"]], list(extra.get("outcome_values", [1])))
        x = design(frame, list(spec.covariates))
        if extra.get("intercept", True):
            x = np.column_stack([np.ones(len(frame)), x])
        return logistic_terms(y.astype(float), x, beta)

    def finish(
        self, spec: StudySpec, state: NewtonState, loglik: float, info: np.ndarray, n: int, ev: int
    ) -> Finished:
        out = _summary(self.names(spec), np.asarray(state.beta), info)
        out["odds_ratio"] = {k: math.exp(v) for k, v in out["coef"].items()}
        out.update(log_likelihood=loglik, iterations=state.iterations, events=ev, converged=True)
        return Finished(result=out, n=n, n_excluded_missing=None)


def _with_concordance(state: Mapping[str, Any], payloads: SitePayloads) -> Finished:
    """Harrell's C over pairs within each site: pairs across sites would need
    one site's times next to another's, so they are not compared."""
    done = state["finished"]
    totals = {"concordant": 0, "discordant": 0, "tied": 0}
    for part in payloads.values():
        for key in totals:
            totals[key] += int(part["concordance"][key])
    pairs = sum(totals.values())
    result = dict(done["result"])
    result["concordance"] = {
        "c_index": (totals["concordant"] + 0.5 * totals["tied"]) / pairs if pairs else None,
        "comparable_pairs": pairs,
        "scope": "pairs within each site",
    }
    notes = (*done["disclosure"], "concordance compares pairs of patients within each site only")
    return Finished(result=result, n=done["n"], n_excluded_missing=None, disclosure=notes)
