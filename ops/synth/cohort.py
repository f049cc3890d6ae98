"""The clinical truth of one invented patient: diagnosis, stage, markers,
treatments, admissions and survival.

Survival follows a Weibull proportional-hazards model whose coefficients are
`SURVIVAL_MODEL` (written to the truth folder), so an analysis of the generated
data can recover real effects of stage, age and treatment.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from ops.synth import people
from ops.synth.regimens import (
    NON_CANCER_DIAGNOSES,
    REGIMENS,
    SITE_ICD10,
    SITE_MORPHOLOGY,
    SITE_REGIMEN,
)
from shared_cdm.vocab import Vocabulary

CANCER_SHARE = 0.70
SITE_WEIGHTS = {"lung": 0.60, "breast": 0.10, "colorectal": 0.12, "liver": 0.09, "stomach": 0.09}
FIRST_DIAGNOSIS = date(2015, 1, 1)
LAST_DIAGNOSIS = date(2024, 6, 30)
STUDY_END = date(2025, 12, 31)

# log hazard ratios; baseline Weibull h0(t) = scale * shape * t**(shape-1), t in years
SURVIVAL_MODEL: dict[str, float] = {
    "baseline_scale_per_year": 0.06,
    "weibull_shape": 1.1,
    "stage_II": 0.6,
    "stage_III": 1.3,
    "stage_IV": 2.2,
    "age_per_10_years_over_60": 0.25,
    "male": 0.15,
    "surgery": -0.4,
    "targeted_therapy": -0.5,
    "immunotherapy": -0.3,
    "site_liver": 0.5,
    "site_stomach": 0.2,
    "site_breast": -0.5,
    "loss_to_follow_up_per_year": 0.03,
}
LUNG_HISTOLOGY = (  # morphology, weight, name_zh, name_en
    ("8140/3", 0.55, "腺癌", "adenocarcinoma"),
    ("8070/3", 0.25, "鳞状细胞癌", "squamous cell carcinoma"),
    ("8041/3", 0.13, "小细胞癌", "small cell carcinoma"),
    ("8012/3", 0.07, "大细胞癌", "large cell carcinoma"),
)
LOBES = (
    ("C34.1", "上叶", "upper lobe"),
    ("C34.2", "中叶", "middle lobe"),
    ("C34.3", "下叶", "lower lobe"),
)
_T = (
    ("T1a", 0.08),
    ("T1b", 0.14),
    ("T1c", 0.14),
    ("T2a", 0.16),
    ("T2b", 0.10),
    ("T3", 0.18),
    ("T4", 0.20),
)
_N = (("N0", 0.45), ("N1", 0.15), ("N2", 0.25), ("N3", 0.15))
_M = (("M0", 0.62), ("M1a", 0.12), ("M1b", 0.10), ("M1c", 0.16))


@dataclass(frozen=True)
class Treatment:
    kind: str  # "surgery" or a regimen kind
    name: str  # operation text key (site) or regimen key
    start: date
    line: int


@dataclass(frozen=True)
class Admission:
    number: int  # 1.. within the patient
    admit: date
    discharge: date
    purpose: str  # "diagnosis", "surgery", a regimen key, "review"


@dataclass
class Patient:
    index: int
    male: bool
    birth_date: date
    area: tuple[str, str, str]
    resident_id: str
    has_cancer: bool
    first_visit: date
    site: str | None = None
    icd10: str | None = None
    lobe: tuple[str, str, str] | None = None
    right_side: bool = True
    morphology: str | None = None
    histology_zh: str | None = None
    histology_en: str | None = None
    t: str | None = None
    n: str | None = None
    m: str | None = None
    stage_group: str | None = None
    stage: str | None = None  # I-IV
    egfr: str | None = None  # "positive"/"negative"/None (not tested)
    alk: str | None = None
    pdl1_tps: int | None = None
    tumour_size_cm: float = 0.0
    treatments: list[Treatment] = field(default_factory=list)
    admissions: list[Admission] = field(default_factory=list)
    non_cancer_dx: tuple[str, str, str] | None = None
    survival_days: int = 0
    death: bool = False
    age_at_diagnosis: int = 0
    linear_predictor: float = 0.0  # of SURVIVAL_MODEL, from the treatments planned

    @property
    def last_contact(self) -> date:
        return self.first_visit + timedelta(days=self.survival_days)


def _weighted(rng: random.Random, pairs: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def coarse_stage(group: str) -> str:
    """`IIIA` -> `III`, `IA1` -> `I`."""
    return "IV" if group.startswith("IV") else group.rstrip("ABC123")


def _lung(rng: random.Random, p: Patient, vocab: Vocabulary) -> None:
    row = rng.choices(LUNG_HISTOLOGY, weights=[h[1] for h in LUNG_HISTOLOGY])[0]
    p.morphology, p.histology_zh, p.histology_en = row[0], row[2], row[3]
    p.right_side = rng.random() < 0.55
    p.lobe = rng.choice(LOBES if p.right_side else (LOBES[0], LOBES[2]))
    p.icd10 = p.lobe[0]
    p.t, p.n, p.m = _weighted(rng, _T), _weighted(rng, _N), _weighted(rng, _M)
    p.stage_group = vocab.lung_stage_group(p.t, p.n, p.m)
    p.stage = coarse_stage(p.stage_group or "IV")
    size_by_t = {
        "T1a": (0.5, 1.0),
        "T1b": (1.1, 2.0),
        "T1c": (2.1, 3.0),
        "T2a": (3.1, 4.0),
        "T2b": (4.1, 5.0),
        "T3": (5.1, 7.0),
        "T4": (7.1, 9.5),
    }
    low, high = size_by_t[p.t]
    p.tumour_size_cm = round(rng.uniform(low, high), 1)
    if p.morphology != "8041/3":
        egfr_rate = 0.45 if p.morphology == "8140/3" else 0.05
        p.egfr = "positive" if rng.random() < egfr_rate else "negative"
        p.alk = "positive" if p.egfr == "negative" and rng.random() < 0.06 else "negative"
    p.pdl1_tps = rng.choice((0, 0, 1, 5, 10, 20, 40, 50, 60, 80, 90))


def _lung_treatments(rng: random.Random, p: Patient, start: date) -> list[Treatment]:
    plan: list[Treatment] = []
    group = p.stage_group or "IV"
    resectable = group in ("IA1", "IA2", "IA3", "IB", "IIA", "IIB", "IIIA")
    small_cell = p.morphology == "8041/3"
    if resectable and not small_cell and rng.random() < (0.5 if group == "IIIA" else 0.85):
        plan.append(Treatment("surgery", "lung", start + timedelta(days=rng.randint(3, 6)), 0))
        if p.stage in ("II", "III") and rng.random() < 0.6:
            key = "pemetrexed_cisplatin" if p.morphology == "8140/3" else "gemcitabine_cisplatin"
            plan.append(Treatment("chemotherapy", key, start + timedelta(days=35), 1))
        if p.egfr == "positive" and rng.random() < 0.3:
            plan.append(Treatment("targeted", "osimertinib", start + timedelta(days=120), 1))
        return plan
    first = start + timedelta(days=rng.randint(14, 24))
    if small_cell:
        key = "etoposide_cisplatin"
    elif p.egfr == "positive":
        key = "osimertinib"
    elif p.alk == "positive":
        key = "alectinib"
    elif (p.pdl1_tps or 0) >= 50 and rng.random() < 0.6:
        key = "pembrolizumab"
    elif p.morphology == "8140/3":
        key = "pemetrexed_cisplatin"
    else:
        key = rng.choice(("gemcitabine_cisplatin", "paclitaxel_carboplatin"))
    plan.append(Treatment(REGIMENS[key].kind, key, first, 1))
    if rng.random() < 0.35:
        plan.append(Treatment("chemotherapy", "docetaxel", first + timedelta(days=240), 2))
    return plan


def _other_site(rng: random.Random, p: Patient, site: str, start: date) -> None:
    p.icd10 = rng.choice(SITE_ICD10[site])
    p.morphology = SITE_MORPHOLOGY[site]
    p.stage = rng.choices(("I", "II", "III", "IV"), weights=(0.25, 0.30, 0.28, 0.17))[0]
    if p.stage != "IV" and rng.random() < 0.8:
        p.treatments.append(Treatment("surgery", site, start + timedelta(days=4), 0))
    if p.stage != "I" and rng.random() < 0.7:
        key = SITE_REGIMEN[site]
        p.treatments.append(Treatment(REGIMENS[key].kind, key, start + timedelta(days=40), 1))


_TREATMENT_TERMS = {
    "surgery": "surgery",
    "targeted": "targeted_therapy",
    "immunotherapy": "immunotherapy",
}


def log_hazard_ratio(p: Patient) -> float:
    """The linear predictor of `SURVIVAL_MODEL` for this patient."""
    model = SURVIVAL_MODEL
    value = model.get(f"stage_{p.stage}", 0.0)
    value += model["age_per_10_years_over_60"] * (p.age_at_diagnosis - 60) / 10
    value += model["male"] if p.male else 0.0
    kinds = {t.kind for t in p.treatments}
    value += sum(model[term] for kind, term in _TREATMENT_TERMS.items() if kind in kinds)
    return value + model.get(f"site_{p.site}", 0.0)


def _survival(rng: random.Random, p: Patient) -> None:
    model = SURVIVAL_MODEL
    p.linear_predictor = round(log_hazard_ratio(p), 6)
    rate = model["baseline_scale_per_year"] * math.exp(p.linear_predictor)
    years = (-math.log(1.0 - rng.random()) / rate) ** (1.0 / model["weibull_shape"])
    lost = -math.log(1.0 - rng.random()) / model["loss_to_follow_up_per_year"]
    administrative = (STUDY_END - p.first_visit).days / 365.25
    censor = min(lost, administrative)
    p.death = years <= censor
    p.survival_days = max(1, round(min(years, censor) * 365.25))


def _admissions(rng: random.Random, p: Patient) -> None:
    end = p.last_contact
    stays: list[tuple[date, int, str]] = [(p.first_visit, rng.randint(5, 12), "diagnosis")]
    for t in p.treatments:
        if t.kind == "surgery":
            continue  # operated during the diagnostic stay or its extension
        cycles = REGIMENS[t.name].cycles
        stays += [
            (t.start + timedelta(days=21 * c), rng.randint(2, 5), t.name) for c in range(cycles)
        ]
    review = p.first_visit + timedelta(days=rng.randint(150, 400))
    if p.has_cancer and rng.random() < 0.5:
        stays.append((review, rng.randint(2, 4), "review"))
    if any(t.kind == "surgery" for t in p.treatments):
        admit, length, purpose = stays[0]
        stays[0] = (admit, length + 7, "surgery")
    for admit, length, purpose in sorted(stays):
        discharge = admit + timedelta(days=length)
        if p.admissions and discharge >= end:
            break
        if p.admissions and admit <= p.admissions[-1].discharge:
            continue  # never two stays at once
        p.admissions.append(Admission(len(p.admissions) + 1, admit, discharge, purpose))
    if p.admissions[0].discharge >= end:  # died or lost during the first stay
        p.survival_days = (p.admissions[0].discharge - p.first_visit).days + 1


def simulate_patient(rng: random.Random, index: int, vocab: Vocabulary) -> Patient:
    """One patient's clinical truth, drawn from `rng` alone."""
    male_share = 0.62
    male = rng.random() < male_share
    first_visit = FIRST_DIAGNOSIS + timedelta(
        days=rng.randrange((LAST_DIAGNOSIS - FIRST_DIAGNOSIS).days)
    )
    age = min(90, max(25, round(rng.gauss(62, 10))))
    birth = first_visit - timedelta(days=age * 365 + rng.randrange(365))
    chosen_area = people.area(rng)
    p = Patient(
        index=index,
        male=male,
        birth_date=birth,
        area=chosen_area,
        resident_id=people.resident_id(rng, chosen_area[0], birth, male),
        has_cancer=rng.random() < CANCER_SHARE,
        first_visit=first_visit,
    )
    p.age_at_diagnosis = (first_visit - birth).days // 365
    if p.has_cancer:
        sites = list(SITE_WEIGHTS)
        site = rng.choices(sites, weights=[SITE_WEIGHTS[s] for s in sites])[0]
        if site == "breast" and male:
            site = "lung"
        p.site = site
        if site == "lung":
            _lung(rng, p, vocab)
            p.treatments = _lung_treatments(rng, p, first_visit)
        else:
            _other_site(rng, p, site, first_visit)
    else:
        p.non_cancer_dx = rng.choice(NON_CANCER_DIAGNOSES)
    _survival(rng, p)
    _admissions(rng, p)
    p.treatments = [t for t in p.treatments if t.start < p.last_contact]
    return p
