"""Name → analysis. New analyses register here."""

from __future__ import annotations

from federated_ml.analyses.base import Analysis
from federated_ml.analyses.count import CountAnalysis
from federated_ml.analyses.describe import DescribeAnalysis
from federated_ml.analyses.regression import CoxAnalysis, LogisticAnalysis
from federated_ml.analyses.survival import KaplanMeierAnalysis, LogrankAnalysis
from federated_ml.analyses.tables import CrosstabAnalysis, TTestAnalysis
from federated_ml.flower.study import FlowerAnalysis
from shared_cdm.errors import InvalidInput

_ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        CountAnalysis(),
        DescribeAnalysis(),
        CoxAnalysis(),
        LogisticAnalysis(),
        KaplanMeierAnalysis(),
        LogrankAnalysis(),
        CrosstabAnalysis(),
        TTestAnalysis(),
        FlowerAnalysis(),
    )
}


def known_analyses() -> list[str]:
    return sorted(_ANALYSES)


def analysis_for(name: str) -> Analysis:
    try:
        return _ANALYSES[name]
    except KeyError:
        raise InvalidInput(
            f"unknown analysis {name!r}; known: {', '.join(known_analyses())}"
        ) from None
