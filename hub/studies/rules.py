"""The coordinating center's rules a study runs under: task deadline, minimum sites.

Pure values, built from `HubSettings` by the composition root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from federated_ml import secure_agg
from federated_ml.analyses import NextRound
from federated_ml.analyses import secure_rounds as sr

# Counts and descriptive tables are the easiest to difference one site out of.
DEFAULT_MIN_SITES: Mapping[str, int] = MappingProxyType({"count": 3, "describe": 3})


@dataclass(frozen=True)
class StudyRules:
    task_deadline: timedelta = timedelta(hours=1)
    # Per analysis; an analysis not listed needs one site.
    min_sites: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MIN_SITES))

    def min_sites_for(self, analysis: str) -> int:
        return int(self.min_sites.get(analysis, 1))


@dataclass(frozen=True)
class SiteMinimum:
    """How many sites a study needs, and why (for the message a researcher reads)."""

    sites: int
    reason: str


def site_minimum(rules: StudyRules, analysis: str, first: NextRound) -> SiteMinimum:
    """The larger of the hub's setting and what the analysis' mathematics needs."""
    configured = SiteMinimum(
        rules.min_sites_for(analysis), f"the hub's minimum sites per {analysis} result"
    )
    if sr.SECAGG not in first.params:
        return configured
    secure = SiteMinimum(
        secure_agg.MIN_SITES, "secure aggregation, which this analysis uses, needs that many"
    )
    return secure if secure.sites > configured.sites else configured
