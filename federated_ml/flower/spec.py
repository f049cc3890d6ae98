"""The ML study spec: what a researcher writes to train a model across sites.

A spec is JSON or YAML. It names the model, the feature columns, the outcome
(a binary column, or follow-up time and event with a horizon), the local
training hyper-parameters and the federation settings. Validation collects
every problem and reports them together, each with the path of the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    model_validator,
)

from shared_cdm.errors import InvalidInput

_COLUMN = r"^[A-Za-z_][A-Za-z0-9_]*$"
Column = Annotated[str, Field(pattern=_COLUMN, max_length=63)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    kind: Literal["logistic", "mlp", "discrete_survival"]
    # Hidden layer widths; the MLP needs at least one, the survival model may use none.
    hidden: tuple[Annotated[int, Field(ge=1, le=1024)], ...] = ()
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _layers_fit_kind(self) -> ModelSpec:
        if self.kind == "mlp" and not self.hidden:
            raise ValueError("an mlp needs at least one hidden layer, e.g. hidden: [16]")
        if self.kind == "logistic" and self.hidden:
            raise ValueError("a logistic model has no hidden layers; use kind: mlp")
        return self


class BinaryOutcome(_Strict):
    kind: Literal["binary"]
    column: Column


class SurvivalOutcome(_Strict):
    kind: Literal["survival"]
    time_column: Column
    event_column: Column
    # Follow-up time and horizon share one unit (days in the CDM).
    horizon: float = Field(gt=0)
    intervals: int = Field(default=5, ge=1, le=120)


class TrainingSpec(_Strict):
    lr: float = Field(default=0.05, gt=0, le=10)
    local_epochs: int = Field(default=1, ge=1, le=1000)
    batch_size: int = Field(default=32, ge=1, le=1_000_000)
    optimizer: Literal["sgd", "adam"] = "adam"
    proximal_mu: float = Field(default=0.0, ge=0)
    weight_decay: float = Field(default=0.0, ge=0)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    held_out_fraction: float = Field(default=0.25, gt=0, lt=1)


class PrivacySpec(_Strict):
    """Differential privacy on each site's model update (see privacy.py).

    `epsilon`/`delta` are for the whole run (all training rounds together); every
    round's update is clipped to L2 norm `clip_norm` and noised by the site.
    """

    epsilon: float = Field(gt=0, le=10)
    delta: float = Field(default=1e-5, gt=0, le=1e-3)
    clip_norm: float = Field(default=1.0, gt=0, le=1000)


Level = Annotated[str, Field(min_length=1, max_length=200)]


class MLStudySpec(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=120)]
    model: ModelSpec
    features: tuple[Column, ...] = Field(min_length=1)
    # Categorical features with their levels; the first level is the reference. Levels are
    # listed in the spec because every site must one-hot encode into the same columns.
    categorical: dict[Column, tuple[Level, ...]] = Field(default_factory=dict)
    # Numeric features as (value - center) / scale; the same constants at every site.
    scaling: dict[Column, tuple[float, Annotated[float, Field(gt=0)]]] = Field(default_factory=dict)
    # Numeric features standardised with constants computed across the sites at join
    # (pooled mean and SD of their training rows); the hub then fills them into `scaling`.
    standardise: tuple[Column, ...] = ()
    outcome: Annotated[BinaryOutcome | SurvivalOutcome, Field(discriminator="kind")]
    training: TrainingSpec = TrainingSpec()
    strategy: Literal["fedavg", "fedprox"] = "fedavg"
    rounds: int = Field(default=3, ge=1, le=1000)
    min_nodes: int = Field(default=2, ge=1)
    round_timeout_s: float = Field(default=120.0, gt=0, le=86_400)
    # How long the server waits for min_nodes sites to come online before the first round.
    start_timeout_s: float = Field(default=120.0, gt=0, le=86_400)
    privacy: PrivacySpec | None = None
    # The server sees only the sum of the round's updates (see secagg.py).
    secure_aggregation: StrictBool = False

    @model_validator(mode="after")
    def _consistent(self) -> MLStudySpec:
        if len(set(self.features)) != len(self.features):
            raise ValueError("features are listed more than once")
        outcome_columns = (
            {self.outcome.column}
            if isinstance(self.outcome, BinaryOutcome)
            else {self.outcome.time_column, self.outcome.event_column}
        )
        if outcome_columns & set(self.features):
            raise ValueError("an outcome column is also listed as a feature")
        named = (
            ("categorical", self.categorical),
            ("scaling", self.scaling),
            ("standardise", self.standardise),
        )
        for what, names in named:
            stray = sorted(set(names) - set(self.features))
            if stray:
                raise ValueError(f"{what} names {', '.join(stray)}, which are not features")
        both = sorted(set(self.categorical) & set(self.scaling))
        if both:
            raise ValueError(f"{', '.join(both)} cannot be both categorical and scaled")
        if len(set(self.standardise)) != len(self.standardise):
            raise ValueError("standardise lists a feature more than once")
        categorical = sorted(set(self.categorical) & set(self.standardise))
        if categorical:
            raise ValueError(
                f"standardise names {', '.join(categorical)}, which is categorical; "
                "only numeric features are standardised"
            )
        fixed = sorted(set(self.scaling) & set(self.standardise))
        if fixed:
            raise ValueError(
                f"{', '.join(fixed)} has fixed constants in scaling and is also in "
                "standardise; name it in one of them"
            )
        for name, levels in self.categorical.items():
            if len(levels) < 2 or len(set(levels)) != len(levels):
                raise ValueError(f"categorical {name} needs at least two distinct levels")
        survival_model = self.model.kind == "discrete_survival"
        if survival_model != isinstance(self.outcome, SurvivalOutcome):
            raise ValueError(
                "model kind discrete_survival goes with outcome kind survival, "
                "and logistic/mlp with binary"
            )
        if self.strategy == "fedprox" and self.training.proximal_mu <= 0:
            raise ValueError("strategy fedprox needs training.proximal_mu > 0")
        if self.strategy == "fedavg" and self.training.proximal_mu > 0:
            raise ValueError("training.proximal_mu is used only by strategy fedprox")
        if self.secure_aggregation and self.min_nodes < 2:
            # A sum over one site is that site's update.
            raise ValueError("secure_aggregation needs min_nodes >= 2")
        return self

    def to_json(self) -> str:
        return self.model_dump_json()

    def with_standardisation(self, constants: Mapping[str, Any]) -> MLStudySpec:
        """This spec with the pooled constants (feature -> [mean, sd]) of its `standardise`
        features moved into `scaling`: what the model is trained and applied with."""
        return parse_ml_spec(resolve_standardisation(self.model_dump(mode="json"), constants))


def resolve_standardisation(raw: Mapping[str, Any], constants: Mapping[str, Any]) -> dict[str, Any]:
    """An `ml` block (as decoded JSON) with the pooled constants of its `standardise`
    features moved into `scaling`; each must be [mean, sd] with sd > 0."""
    wanted = raw.get("standardise") or []
    if not isinstance(wanted, list | tuple):
        raise InvalidInput("invalid ML study spec: standardise: must be a list of features")
    problems = []
    missing = sorted(str(n) for n in wanted if n not in constants)
    if missing:
        problems.append(f"none for {', '.join(missing)}")
    extra = sorted(str(n) for n in constants if n not in wanted)
    if extra:
        problems.append(f"{', '.join(extra)} not in standardise")
    if problems:
        raise InvalidInput(
            "the standardisation constants do not fit the spec: " + "; ".join(problems)
        )
    scaling = dict(raw.get("scaling") or {})
    for name in wanted:
        value = constants[name]
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or not all(math.isfinite(float(v)) for v in value)
            or float(value[1]) <= 0
        ):
            raise InvalidInput(
                f"the standardisation constants of {name} are not [mean, sd > 0]: {value!r}"
            )
        scaling[name] = [float(value[0]), float(value[1])]
    return {**raw, "scaling": scaling, "standardise": []}


def input_columns(spec: MLStudySpec) -> list[str]:
    """The model's input columns: numeric features as named, a categorical feature as one
    indicator per non-reference level (`stage__1`, `stage__2`: level positions, so any
    level text gives a valid column name)."""
    out: list[str] = []
    for name in spec.features:
        levels = spec.categorical.get(name)
        if levels is None:
            out.append(name)
        else:
            out += [f"{name}__{i}" for i in range(1, len(levels))]
    return out


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        lines.append(f"{where}: {err['msg']}")
    return "invalid ML study spec: " + "; ".join(lines)


def parse_ml_spec(raw: Any) -> MLStudySpec:
    """Validate a decoded spec; every problem is named in one InvalidInput."""
    if not isinstance(raw, dict):
        raise InvalidInput("invalid ML study spec: expected a mapping at the top level")
    try:
        return MLStudySpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(_describe(exc)) from None


def loads_ml_spec(text: str) -> MLStudySpec:
    """Parse JSON or YAML text (JSON is YAML, so one parser reads both)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"ML study spec is neither JSON nor YAML: {exc}") from None
    return parse_ml_spec(raw)


def load_ml_spec(path: Path) -> MLStudySpec:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read ML study spec {path}: {exc.strerror}") from None
    return loads_ml_spec(text)


def spec_from_json(text: str) -> MLStudySpec:
    """The round trip used inside the Flower apps (the spec travels as JSON)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"ML study spec is not valid JSON: {exc}") from None
    return parse_ml_spec(raw)
