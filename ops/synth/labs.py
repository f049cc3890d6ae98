"""Lab results as each vendor's LIS writes them.

Values are drawn in the CDM's standard unit (from `shared_cdm.vocab`) and then
written in the vendor's unit; the truth keeps the standard value.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

from ops.synth.cohort import Patient

TUMOUR_MARKERS = ("CEA", "CYFRA21-1", "NSE", "SCC", "ProGRP")
ROUTINE = ("HGB", "ALB", "CREA", "TBIL", "ALT", "WBC", "PLT", "GLU")

# standard unit -> vendor unit: multiply the standard value by the factor
UNIT_FACTORS: dict[tuple[str, str], float] = {
    ("HGB", "g/dL"): 0.1,
    ("ALB", "g/dL"): 0.1,
    ("CREA", "mg/dL"): 1 / 88.42,
    ("TBIL", "mg/dL"): 1 / 17.1,
    ("GLU", "mg/dL"): 18.016,
}


@dataclass(frozen=True)
class LabSpec:
    code: str
    normal: tuple[float, float]  # mean, sd in the standard unit
    raised: tuple[float, float]  # in patients whose cancer raises it
    reference: tuple[float, float]
    decimals: int
    detection_limit: float | None = None  # written as "<limit" below it


LAB_SPECS: dict[str, LabSpec] = {
    s.code: s
    for s in (
        LabSpec("CEA", (2.0, 1.0), (25.0, 20.0), (0.0, 5.0), 2, 0.5),
        LabSpec("CYFRA21-1", (2.0, 0.8), (9.0, 6.0), (0.0, 3.3), 2, 0.5),
        LabSpec("NSE", (11.0, 3.0), (45.0, 25.0), (0.0, 16.3), 2),
        LabSpec("SCC", (0.9, 0.4), (6.0, 4.0), (0.0, 1.5), 2, 0.5),
        LabSpec("ProGRP", (40.0, 12.0), (400.0, 250.0), (0.0, 65.7), 1),
        LabSpec("HGB", (135.0, 15.0), (112.0, 15.0), (115.0, 175.0), 0),
        LabSpec("ALB", (42.0, 4.0), (36.0, 4.0), (40.0, 55.0), 1),
        LabSpec("CREA", (75.0, 15.0), (80.0, 20.0), (57.0, 111.0), 0),
        LabSpec("TBIL", (12.0, 4.0), (14.0, 6.0), (0.0, 21.0), 1),
        LabSpec("ALT", (25.0, 10.0), (30.0, 15.0), (7.0, 40.0), 0),
        LabSpec("WBC", (6.5, 1.5), (7.5, 2.5), (3.5, 9.5), 2),
        LabSpec("PLT", (230.0, 50.0), (260.0, 80.0), (125.0, 350.0), 0),
        LabSpec("GLU", (5.3, 0.6), (5.6, 1.0), (3.9, 6.1), 2),
    )
}
# which markers a cancer raises (histology-specific for lung)
_RAISED = {
    "8140/3": {"CEA"},
    "8070/3": {"CYFRA21-1", "SCC"},
    "8041/3": {"NSE", "ProGRP"},
    "8012/3": {"CYFRA21-1"},
}
_NONE: frozenset[str] = frozenset()
_VENDOR_CODES = {"A": "TM", "B": "L", "C": "0"}


class LabResult(NamedTuple):  # a tuple: made ~200 times per patient
    code: str
    standard_value: float
    vendor_value: float
    unit: str
    text: str  # as written: "12.3", "<0.5"
    reference: str


def to_vendor(code: str, standard_value: float, unit: str) -> float:
    return standard_value * UNIT_FACTORS.get((code, unit), 1.0)


def fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


@cache
def item_code(variant_code: str, code: str) -> str:
    number = list(LAB_SPECS).index(code) + 1
    return f"{_VENDOR_CODES[variant_code]}{number:03d}"


def item_name(code: str, language: str, vocab_names: dict[str, tuple[str, str]]) -> str:
    zh, en = vocab_names[code]
    return zh if language == "zh" else en


def _decimals(spec: LabSpec, unit: str) -> int:
    return (
        spec.decimals
        + (1 if (spec.code, unit) in UNIT_FACTORS else 0)
        + (1 if unit.endswith("/dL") and spec.code in ("CREA", "TBIL") else 0)
    )


@cache
def _written(code: str, unit: str) -> tuple[int, str, float]:
    """(decimals, reference range, factor from the standard unit) of this unit's analyser."""
    spec = LAB_SPECS[code]
    decimals = _decimals(spec, unit)
    low, high = (to_vendor(code, v, unit) for v in spec.reference)
    return (
        decimals,
        f"{fmt(low, decimals)}-{fmt(high, decimals)}",
        UNIT_FACTORS.get((code, unit), 1.0),
    )


def raised_codes(p: Patient) -> frozenset[str]:
    """The analytes this patient's cancer raises."""
    if not p.has_cancer:
        return _NONE
    if p.site == "lung":
        return frozenset(_RAISED.get(p.morphology or "", _NONE))
    return frozenset((*ROUTINE, "CEA") if p.site in ("colorectal", "stomach") else ROUTINE)


def draw(rng: random.Random, p: Patient, code: str, unit: str) -> LabResult:
    return draw_for(rng, code, unit, code in raised_codes(p))


def draw_for(rng: random.Random, code: str, unit: str, raised: bool) -> LabResult:
    """One result of `code`, raised by the patient's cancer or not."""
    spec = LAB_SPECS[code]
    mean, sd = spec.raised if raised else spec.normal
    standard = max(spec.normal[0] * 0.05, rng.gauss(mean, sd))
    standard = round(standard, spec.decimals)
    decimals, reference, factor = _written(code, unit)
    vendor_value = standard * factor
    limit = spec.detection_limit
    below = limit is not None and standard < limit
    text = f"<{limit}" if below else f"{vendor_value:.{decimals}f}"
    return LabResult(code, standard, vendor_value, unit, text, reference)
