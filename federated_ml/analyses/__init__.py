"""Analyses a study can run; each is a local step at the site and a pure combine at the hub."""

from federated_ml.analyses.base import Analysis, Finished, NextRound, SitePayloads, StudySpec
from federated_ml.analyses.registry import analysis_for, known_analyses

__all__ = [
    "Analysis",
    "Finished",
    "NextRound",
    "SitePayloads",
    "StudySpec",
    "analysis_for",
    "known_analyses",
]
