"""Released models of ML studies, as this site keeps them, and applying them.

The hub releases a study's final weights as JSON (names, shapes, numbers: no
pickle crosses the wire) with their version, `sha256:` of the weights. The site
recomputes the hash before it stores them and again before every use, so a
model whose weights do not match their version is refused, never applied. A model
trained on features standardised across the sites is stored with the pooled
constants in its spec's `scaling`, so `predict` builds its inputs as training did.
Predictions go to the analysis database, one row per study, model version and
pseudonym; nothing leaves the site.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Engine

from edge_node.ml.features import MlStudy, SiteRows, parse_ml_study
from federated_ml.flower.spec import resolve_standardisation
from shared_cdm.errors import InvalidInput, NotFound

MODEL_DIR = "ml-models"
_STUDY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

_metadata = sa.MetaData()
PREDICTIONS = sa.Table(
    "ml_prediction",
    _metadata,
    sa.Column("study_id", sa.String(100), primary_key=True),
    sa.Column("model_version", sa.String(80), primary_key=True),
    sa.Column("pseudonym", sa.String(100), primary_key=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class ReleasedModel:
    study_id: str
    version: str
    study: MlStudy
    state: dict[str, Any]


def _check_study_id(study_id: str) -> str:
    if not _STUDY_ID.match(study_id):
        raise InvalidInput(f"study id {study_id!r} is not valid")
    return study_id


def _verified(study_id: str, version: str, spec: Mapping[str, Any], weights: Any) -> ReleasedModel:
    from federated_ml.flower.models import build_model, model_version, state_from_json

    study = parse_ml_study(spec)
    if study.ml.standardise:
        raise InvalidInput(
            f"model of study {study_id} has no standardisation constants for "
            f"{', '.join(study.ml.standardise)}; it cannot be applied",
            code="model_without_constants",
        )
    state = state_from_json(weights)
    actual = model_version(state)
    if actual != version:
        raise InvalidInput(
            f"model of study {study_id} does not match its version: "
            f"released as {version}, the weights hash to {actual}",
            code="model_hash_mismatch",
        )
    try:
        build_model(study.ml).load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise InvalidInput(f"model of study {study_id} does not fit its spec: {exc}") from None
    return ReleasedModel(study_id, version, study, state)


def store_model(
    home: Path,
    study_id: str,
    version: str,
    spec: Mapping[str, Any],
    weights: Any,
    *,
    scaling: Mapping[str, Any] | None = None,
) -> Path:
    """Check and keep a released model; the file is written whole, then renamed.

    `scaling`: the pooled constants (feature -> [mean, sd]) of the spec's `standardise`
    features, which the stored spec then holds in its `scaling`."""
    spec = {k: v for k, v in spec.items() if k != "round_params"}
    pooled = sorted(scaling or {})
    if scaling is not None and isinstance(spec.get("ml"), Mapping):
        spec["ml"] = resolve_standardisation(spec["ml"], scaling)
    model = _verified(_check_study_id(study_id), version, spec, weights)
    directory = home / MODEL_DIR
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "study_id": model.study_id,
        "version": version,
        "spec": spec,
        "standardised_across_sites": pooled,
        "weights": weights,
        "stored_at": datetime.now(UTC).isoformat(),
    }
    path = directory / f"{study_id}.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(document, fh)
    os.replace(tmp, path)
    return path


def load_model(home: Path, study_id: str) -> ReleasedModel:
    """The study's released model, its hash checked again."""
    path = home / MODEL_DIR / f"{_check_study_id(study_id)}.json"
    if not path.is_file():
        raise NotFound(
            f"no released model for study {study_id} at this site "
            "(it is stored when the hub releases the trained model)",
            code="model_not_found",
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return _verified(study_id, str(doc["version"]), doc["spec"], doc["weights"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidInput(f"stored model {path} is unreadable: {exc}") from None


@dataclass(frozen=True)
class PredictionSummary:
    study_id: str
    model_version: str
    scored: int
    skipped: int
    score_min: float | None
    score_mean: float | None
    score_quartiles: tuple[float, float, float] | None
    score_max: float | None
    histogram: list[int]  # 10 bins over [0, 1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "study_id": self.study_id,
            "model_version": self.model_version,
            "scored": self.scored,
            "skipped": self.skipped,
            "score_min": self.score_min,
            "score_mean": self.score_mean,
            "score_quartiles": self.score_quartiles,
            "score_max": self.score_max,
            "histogram_0_to_1_by_0.1": self.histogram,
        }


def score(model: ReleasedModel, rows: SiteRows) -> np.ndarray:
    import torch

    from federated_ml.flower.models import build_model
    from federated_ml.flower.spec import input_columns
    from federated_ml.flower.training import predict_risk

    net = build_model(model.study.ml)
    net.load_state_dict(model.state)
    x = torch.as_tensor(rows.matrix(input_columns(model.study.ml)), dtype=torch.float32)
    return predict_risk(net, x).numpy().astype(float)


def store_predictions(
    engine: Engine,
    model: ReleasedModel,
    keys: list[str],
    scores: np.ndarray,
    *,
    now: datetime | None = None,
) -> None:
    """Replace this model version's predictions with the new ones, in one transaction."""
    at = now or datetime.now(UTC)
    _metadata.create_all(engine, tables=[PREDICTIONS], checkfirst=True)
    with engine.begin() as conn:
        conn.execute(
            PREDICTIONS.delete().where(
                (PREDICTIONS.c.study_id == model.study_id)
                & (PREDICTIONS.c.model_version == model.version)
            )
        )
        if keys:
            conn.execute(
                PREDICTIONS.insert(),
                [
                    {
                        "study_id": model.study_id,
                        "model_version": model.version,
                        "pseudonym": k,
                        "score": float(s),
                        "created_at": at,
                    }
                    for k, s in zip(keys, scores, strict=True)
                ],
            )


def summarise(model: ReleasedModel, scores: np.ndarray, skipped: int) -> PredictionSummary:
    if scores.size == 0:
        return PredictionSummary(
            model.study_id, model.version, 0, skipped, None, None, None, None, [0] * 10
        )
    q = np.quantile(scores, [0.25, 0.5, 0.75])
    hist, _ = np.histogram(np.clip(scores, 0.0, 1.0), bins=10, range=(0.0, 1.0))
    return PredictionSummary(
        model.study_id,
        model.version,
        int(scores.size),
        skipped,
        float(scores.min()),
        float(scores.mean()),
        (float(q[0]), float(q[1]), float(q[2])),
        float(scores.max()),
        [int(h) for h in hist],
    )


def predict_study(
    home: Path, analysis_engine: Engine, registry: Any, study_id: str
) -> PredictionSummary:
    """Score the study's cohort as it is now with the released model; store, summarise."""
    from edge_node.ml.features import AnalysisDbFeatureSource

    model = load_model(home, study_id)
    source = AnalysisDbFeatureSource(analysis_engine, registry, model.study, with_outcome=False)
    rows = source.rows()
    scores = score(model, rows)
    store_predictions(analysis_engine, model, rows.keys, scores)
    return summarise(model, scores, rows.skipped.total)
