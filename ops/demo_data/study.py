"""The demo's lung-cancer study: one CDM analysis dataset and the studies run on it.

Every study uses the same cohort (so the sites' differencing checks never refuse
one of them for being a near copy of another): patients from their first lung
cancer diagnosis (ICD-10 C34), aged 18 or over, with a pathological T, N and M
category that the edge pipeline read from their pathology report. The stage
group comes from T, N and M by the AJCC 8th edition rules, in SQL at each site
(`pstage_number`, then `stage`), because the CDM holds the categories, not the group.

Derived fields are named so that each comes after, in alphabetical order, the fields
it uses: the spec travels as JSON with sorted keys (`protocol.serde`), so a site sees
them in that order, and a derived field may use only those above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STAGES = ("I", "II", "III", "IV")
T_CATEGORIES = ("T1mi", "T1a", "T1b", "T1c", "T2a", "T2b", "T3", "T4")
N_CATEGORIES = ("N0", "N1", "N2", "N3")
M_CATEGORIES = ("M0", "M1a", "M1b", "M1c")
# The stage group (1-4) of an M0 tumour by T, for N0 and for N1 (AJCC 8th); N2 and N3
# are stage III whatever the T, and M1 is stage IV.
STAGE_IF_N0 = {"T1mi": 1, "T1a": 1, "T1b": 1, "T1c": 1, "T2a": 1, "T2b": 2, "T3": 2, "T4": 3}
STAGE_IF_N1 = {"T1mi": 2, "T1a": 2, "T1b": 2, "T1c": 2, "T2a": 2, "T2b": 2, "T3": 3, "T4": 3}
STAGE_EXPR = "m1 * 4 + (1 - m1) * (n0 * n0_stage_by_t + n1 * n1_stage_by_t + (1 - n0 - n1) * 3)"
EGFR_TKI_ATC = "L01EB"  # EGFR tyrosine kinase inhibitors (gefitinib ... osimertinib)
MIN_AGE_SMALL_COHORT = 75


def stage_number(t: str, n: str, m: str) -> int:
    """What STAGE_EXPR computes at a site, for checking it against the vocabulary."""
    m1 = int(m.startswith("M1"))
    n0, n1 = int(n == "N0"), int(n == "N1")
    return m1 * 4 + (1 - m1) * (n0 * STAGE_IF_N0[t] + n1 * STAGE_IF_N1[t] + (1 - n0 - n1) * 3)


def _measured(code: str, values: tuple[str, ...]) -> dict[str, Any]:
    where = {
        "all": [
            {"field": "code", "op": "=", "value": code},
            {"field": "value_source_value", "op": "in", "value": list(values)},
        ]
    }
    return {"event": "measurement", "where": where}


def _first_value(code: str) -> dict[str, Any]:
    return {
        "event": "measurement",
        "where": {"field": "code", "op": "=", "value": code},
        "column": "value_source_value",
        "pick": "first",
    }


LUNG_DATASET: dict[str, Any] = {
    "index": {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C34"},
    "cohort": {
        "all": [
            {"field": "age", "op": ">=", "value": 18},
            _measured("pT", T_CATEGORIES),
            _measured("pN", N_CATEGORIES),
            _measured("pM", M_CATEGORIES),
        ]
    },
    "outcome": {"event": "death", "censor": "last_contact", "max_follow_up_days": 1826},
    "covariates": {
        "age": {"field": "age"},
        "sex_recorded": {"field": "sex"},
        "p_t": _first_value("pT"),
        "p_n": _first_value("pN"),
        "p_m": _first_value("pM"),
        "egfr": _first_value("EGFR"),
        "egfr_tki": {
            "event": "drug",
            "where": {"field": "code", "op": "starts_with", "value": EGFR_TKI_ATC},
            "pick": "exists",
        },
    },
    "derived": {
        "m1": {"map": "p_m", "values": {"M1a": 1, "M1b": 1, "M1c": 1}, "default": 0},
        "n0": {"map": "p_n", "values": {"N0": 1}, "default": 0},
        "n0_stage_by_t": {"map": "p_t", "values": STAGE_IF_N0},
        "n1": {"map": "p_n", "values": {"N1": 1}, "default": 0},
        "n1_stage_by_t": {"map": "p_t", "values": STAGE_IF_N1},
        "pstage_number": {"expr": STAGE_EXPR},
        "stage": {"cut": "pstage_number", "breaks": [2, 3, 4], "labels": list(STAGES)},
        "stage_iii": {"map": "stage", "values": {"III": 1}, "default": 0},
        "stage_iv": {"map": "stage", "values": {"IV": 1}, "default": 0},
        "sex": {
            "map": "sex_recorded",
            "values": {"male": "male", "female": "female"},
            "default": "unknown",
        },
        "egfr_status": {
            "map": "egfr",
            "values": {"mutant": "mutant", "wild_type": "wild type"},
            "default": "not tested",
        },
    },
}
COX_COVARIATES = ("age", "stage_iii", "stage_iv", "egfr_tki")


@dataclass(frozen=True)
class DemoStudy:
    key: str
    title: str
    spec: Mapping[str, Any]


def _on_cdm(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {**spec, "dataset": "cdm", "cdm_dataset": LUNG_DATASET}


DEMO_STUDIES: tuple[DemoStudy, ...] = (
    DemoStudy(
        "count",
        "Lung-cancer patients (C34, aged 18+) with a pathological stage",
        _on_cdm({"analysis": "count"}),
    ),
    DemoStudy(
        "count_small",
        f"Stage IV, treated with an EGFR inhibitor, aged {MIN_AGE_SMALL_COHORT}+ (a small cohort)",
        _on_cdm(
            {
                "analysis": "count",
                "where": {
                    "all": [
                        {"field": "stage", "op": "=", "value": "IV"},
                        {"field": "egfr_tki", "op": "=", "value": 1},
                        {"field": "age", "op": ">=", "value": MIN_AGE_SMALL_COHORT},
                    ]
                },
            }
        ),
    ),
    DemoStudy(
        "describe",
        "Age, sex, stage, EGFR status and EGFR-inhibitor treatment",
        _on_cdm(
            {
                "analysis": "describe",
                "variables": ["age", "sex", "stage", "egfr_status", "egfr_tki"],
            }
        ),
    ),
    DemoStudy(
        "kaplan_meier",
        "Overall survival by stage (exact Kaplan-Meier: per-day counts summed under "
        "secure aggregation)",
        _on_cdm(
            {
                "analysis": "kaplan_meier",
                "time": "time",
                "event": "event",
                "group": "stage",
                # Exact: each site's per-day counts are masked, only their sum is read, so a
                # stage with few patients at one site still counts.
                "time_grid_days": "exact",
            }
        ),
    ),
    DemoStudy(
        "cox",
        "Cox model: age, stage III and IV (against I-II), EGFR inhibitor (stratified by site)",
        _on_cdm(
            {
                "analysis": "cox",
                "time": "time",
                "event": "event",
                "covariates": list(COX_COVARIATES),
            }
        ),
    ),
)

FLOWER_STUDY = DemoStudy(
    "flower",
    "Flower: a 3-year survival model (discrete-time, federated averaging)",
    _on_cdm(
        {
            "analysis": "flower",
            "ml": {
                # Flower app names are at most 32 characters (with the "oncofed-ml-" prefix).
                "name": "lung survival",
                "model": {"kind": "discrete_survival"},
                "features": ["age", "stage", "egfr_tki"],
                "categorical": {"stage": list(STAGES)},
                "scaling": {"age": [65, 10]},
                "outcome": {
                    "kind": "survival",
                    "time_column": "time",
                    "event_column": "event",
                    "horizon": 1095,
                    "intervals": 3,
                },
                "training": {"lr": 0.05, "local_epochs": 2, "batch_size": 32, "seed": 1},
                "strategy": "fedavg",
                "rounds": 3,
                "min_nodes": 2,
                "round_timeout_s": 120,
                "start_timeout_s": 120,
            },
        }
    ),
)
