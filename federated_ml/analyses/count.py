"""`count`: how many subjects match the cohort condition at each site."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from federated_ml.analyses.base import SUPPRESSED, Finished, NextRound, SitePayloads, StudySpec


class CountAnalysis:
    name = "count"

    def columns(self, spec: StudySpec) -> list[str]:
        return []

    def validate(self, spec: StudySpec) -> None:
        return None

    def first_round(self, spec: StudySpec) -> NextRound:
        return NextRound(params={})

    def local(
        self, frame: pd.DataFrame, spec: StudySpec, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {"n": len(frame)}

    def step(self, spec: StudySpec, state: Mapping[str, Any], payloads: SitePayloads) -> Finished:
        released = {s: p["n"] for s, p in payloads.items() if isinstance(p.get("n"), int)}
        suppressed = sorted(s for s, p in payloads.items() if p.get("suppressed"))
        total = sum(released.values())
        notes = []
        if suppressed:
            notes.append(
                "count suppressed below the minimum cell size at: "
                + ", ".join(suppressed)
                + "; the total covers the other sites only"
            )
        result = {
            "count": total,
            "complete": not suppressed,
            "by_site": {s: released.get(s, SUPPRESSED) for s in sorted(payloads)},
            "suppressed_sites": suppressed,
        }
        return Finished(result=result, n=total, n_excluded_missing=0, disclosure=tuple(notes))
