"""Stable hashes of what was asked: the question (for repeats and the cache) and the
cohort's definition (for the ledger's record)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from federated_ml.analyses import secure_rounds as sr
from federated_ml.analyses.base import StudySpec
from shared_cdm.cohort import dump_tree, parse_tree

# Round parameters that do not change the answer: who else takes part, which keys.
_VOLATILE_PARAMS = frozenset({sr.SECAGG, "n_sites"})


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def question_hash(spec: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    """The same question: the same study spec and the same answer-shaping round parameters."""
    study = {k: v for k, v in spec.items() if k != "round_params"}
    shaping = {k: v for k, v in params.items() if k not in _VOLATILE_PARAMS}
    return sha256({"spec": study, "params": shaping})


def cohort_spec_hash(spec: StudySpec, columns: list[str]) -> str:
    """The cohort's definition: where (canonical tree), derived fields, CDM dataset spec,
    and the columns whose missing values leave rows out."""
    extra = spec.model_extra or {}
    where = None if spec.where is None else dump_tree(parse_tree(spec.where))
    return sha256(
        {
            "dataset": spec.dataset,
            "where": where,
            "derived": extra.get("derived"),
            "cdm_dataset": extra.get("cdm_dataset"),
            "complete_cases": sorted(set(columns)),
        }
    )


def release_summary(payload: Mapping[str, Any]) -> dict[str, Any]:
    """What a release revealed, for the ledger: masked vectors and public keys by size only."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        if key == sr.SECURE and isinstance(value, Mapping):
            out[key] = {label: "masked" for label in sorted(value)}
        elif key == sr.SECAGG_KEYS:
            out[key] = "public key for secure aggregation"
        else:
            out[key] = value
    return out
