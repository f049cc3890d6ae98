"""The shape every federated analysis has.

A site runs `local(frame, spec, round_params)` on its own rows and returns a
payload of aggregates; the site's disclosure control then decides what of it
may leave. The hub calls `step(spec, state, payloads)` with what the sites
released and gets either the next round's parameters or the final result.
Both steps are pure: no database, no network, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared_cdm.errors import InvalidInput

SitePayloads = Mapping[str, Mapping[str, Any]]

# Stands in for a number that disclosure control withheld.
SUPPRESSED = "suppressed"


class StudySpec(BaseModel):
    """The fields every analysis understands; analyses add their own."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    analysis: str
    dataset: str = "default"
    where: dict[str, Any] | None = None
    variables: list[str] = Field(default_factory=list)
    covariates: list[str] = Field(default_factory=list)
    group: str | None = None

    @field_validator("analysis")
    @classmethod
    def _known_analysis_name(cls, v: str) -> str:
        if not v or not v.replace("_", "").isalnum():
            raise ValueError(f"analysis name {v!r} is not valid")
        return v


def parse_spec(raw: Mapping[str, Any]) -> StudySpec:
    try:
        return StudySpec.model_validate(dict(raw))
    except ValueError as exc:
        raise InvalidInput(f"study spec is invalid: {exc}") from exc


@dataclass(frozen=True)
class NextRound:
    params: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finished:
    result: dict[str, Any]
    n: int | None
    n_excluded_missing: int | None
    disclosure: tuple[str, ...] = ()


class Analysis(Protocol):
    name: str

    def columns(self, spec: StudySpec) -> list[str]:
        """Columns the analysis reads; rows missing any of them are left out."""
        ...

    def validate(self, spec: StudySpec) -> None:
        """Raise InvalidInput when the spec cannot run."""
        ...

    def first_round(self, spec: StudySpec) -> NextRound: ...

    def local(
        self, frame: pd.DataFrame, spec: StudySpec, params: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    def step(
        self, spec: StudySpec, state: Mapping[str, Any], payloads: SitePayloads
    ) -> NextRound | Finished: ...
