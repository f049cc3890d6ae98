"""An ML study as a study: `analysis: flower`, driven through the hub's ordinary rounds.

The study spec is an ordinary one (dataset, `where`, `derived`, `cdm_dataset`) with
an `ml` block that `spec.parse_ml_spec` validates. It runs in three rounds, each a
task every approving site answers, so site approval and policy apply as to any
study:

1. `join`: the site checks its policy, builds its training rows (failing early when
   the spec does not fit its data) and answers with the public key of a SuperNode
   key pair made for this study, and, for the spec's `standardise` features, n, sum
   and sum of squares over its training rows. The hub pools those into each
   feature's mean and SD, registers the keys with its SuperLink and submits the
   Flower run.
2. `train`: the site standardises its rows with the pooled constants (sent with the
   round) and starts its SuperNode, which takes part in the run. The hub
   holds the study in this round until the ServerApp's result is in, then adds it
   to the study's state (`RESULT_STATE`).
3. `release`: the site stops its SuperNode and keeps the released model (its hash
   checked) for `oncofed-edge predict`, with the pooled constants in its spec.

This module is pure (no torch, no Flower): the hub's rounds call `step()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from federated_ml.analyses.base import Finished, NextRound, SitePayloads, StudySpec
from federated_ml.flower.features import Standardisation, pool_moments
from federated_ml.flower.spec import MLStudySpec, parse_ml_spec
from shared_cdm.errors import InvalidInput

FLOWER = "flower"
PHASE = "phase"
JOIN, TRAIN, RELEASE = "join", "train", "release"
PUBLIC_KEY = "supernode_public_key"  # a join answer
SUPERLINK = "superlink"  # train params: the address SuperNodes dial
RUN_ID = "flower_run_id"
RESULT_STATE = "flower"  # what the hub adds to the state once the run ended
MODEL = "model"  # release params: {"version", "weights"} or absent when no model
MOMENTS = "standardisation_sums"  # a join answer: feature -> {n, sum, sum_sq}
SCALING = "scaling"  # train and release params: feature -> [mean, sd], pooled
STANDARDISATION = "standardisation"  # state and result: feature -> {n, mean, sd}


def ml_spec_of(spec: StudySpec) -> MLStudySpec:
    raw = (spec.model_extra or {}).get("ml")
    if raw is None:
        raise InvalidInput("an ML study needs an `ml` block (model, features, outcome, ...)")
    try:
        return parse_ml_spec(raw)
    except InvalidInput as exc:
        raise InvalidInput(f"ml: {exc.message}") from None


def pooled_standardisation(
    ml: MLStudySpec, payloads: Mapping[str, Mapping[str, Any]]
) -> dict[str, Standardisation]:
    """The `standardise` features' mean and SD over every joined site's training rows."""
    if not ml.standardise:
        return {}
    return pool_moments(ml, {site: p.get(MOMENTS) for site, p in payloads.items()})


def scaling_params(pooled: Mapping[str, Standardisation]) -> dict[str, list[float]]:
    return {name: [s.mean, s.sd] for name, s in pooled.items()}


class FlowerAnalysis:
    """Federated training with Flower; the arithmetic happens in the Flower run."""

    name = FLOWER

    def columns(self, spec: StudySpec) -> list[str]:
        return []

    def validate(self, spec: StudySpec) -> None:
        ml = ml_spec_of(spec)
        if spec.group or spec.variables or spec.covariates:
            raise InvalidInput("an ML study names its inputs in ml.features, not variables")
        if ml.min_nodes < 1:
            raise InvalidInput("ml.min_nodes must be at least 1")

    def first_round(self, spec: StudySpec) -> NextRound:
        return NextRound(params={PHASE: JOIN}, state={PHASE: JOIN})

    def local(
        self, frame: pd.DataFrame, spec: StudySpec, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        raise InvalidInput("an ML study runs in the site's Flower SuperNode, not as a query")

    def step(
        self, spec: StudySpec, state: Mapping[str, Any], payloads: SitePayloads
    ) -> NextRound | Finished:
        phase = state.get(PHASE)
        ml = ml_spec_of(spec)
        if phase == JOIN:
            keys = {site: str(p.get(PUBLIC_KEY, "")) for site, p in payloads.items()}
            empty = sorted(site for site, key in keys.items() if not key.startswith("ecdsa-"))
            if empty:
                raise InvalidInput(f"site(s) {', '.join(empty)} sent no SuperNode public key")
            if len(keys) < ml.min_nodes:
                raise InvalidInput(
                    f"{len(keys)} site(s) joined, the study needs ml.min_nodes = {ml.min_nodes}"
                )
            pooled = pooled_standardisation(ml, payloads)
            run = state.get(RESULT_STATE) or {}
            if run.get("error"):
                raise InvalidInput(str(run["error"]))
            if not run.get(SUPERLINK):
                raise InvalidInput("the hub has no Flower SuperLink for this study")
            train = {PHASE: TRAIN, SUPERLINK: run[SUPERLINK], RUN_ID: run.get(RUN_ID)}
            next_state = {**state, PHASE: TRAIN, "keys": keys}
            if pooled:
                train[SCALING] = scaling_params(pooled)
                next_state[STANDARDISATION] = {n: s.as_dict() for n, s in pooled.items()}
            return NextRound(params=train, state=next_state)
        if phase == TRAIN:
            run = state.get(RESULT_STATE) or {}
            result = run.get("result")
            if not isinstance(result, Mapping):
                raise InvalidInput("the Flower run has no result yet")
            params: dict[str, Any] = {PHASE: RELEASE}
            if run.get("weights") and result.get("model_version"):
                params[MODEL] = {"version": result["model_version"], "weights": run["weights"]}
                # The constants are part of the model: predict applies them too.
                if state.get(STANDARDISATION):
                    params[SCALING] = {
                        n: [s["mean"], s["sd"]] for n, s in state[STANDARDISATION].items()
                    }
            return NextRound(params=params, state={**state, PHASE: RELEASE})
        if phase == RELEASE:
            run = state.get(RESULT_STATE) or {}
            result = dict(run.get("result") or {})
            stored = sorted(s for s, p in payloads.items() if p.get("model_stored"))
            summary = {
                "status": result.get("status"),
                "detail": result.get("detail", ""),
                "flower_run_id": run.get(RUN_ID),
                "model_version": result.get("model_version"),
                "rounds_completed": result.get("rounds_completed"),
                "sites_participated": result.get("sites_participated", []),
                "sites_dropped": result.get("sites_dropped", {}),
                "sites_holding_model": stored,
                "final_auc_pooled": result.get("final_auc_pooled"),
                "final_auc_weighted": result.get("final_auc_weighted"),
                "seconds_per_round": result.get("seconds_per_round", []),
                "standardisation": dict(state.get(STANDARDISATION) or {}),
                "rounds": run.get("rounds", []),
                "figures": run.get("figures", {}),
            }
            return Finished(result=summary, n=None, n_excluded_missing=None)
        raise InvalidInput(f"unknown ML study phase {phase!r}")
