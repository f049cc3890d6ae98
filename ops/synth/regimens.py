"""Operations, regimens and non-cancer diagnoses, in Chinese and English."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Drug:
    name_zh: str
    name_en: str
    dose: float
    unit: str


@dataclass(frozen=True)
class Regimen:
    key: str
    kind: str  # "chemotherapy", "targeted" or "immunotherapy"
    drugs: tuple[Drug, ...]
    cycles: int  # admissions for infusion; 1 for oral drugs started once


def _regimen(key: str, kind: str, cycles: int, *drugs: tuple[str, str, float, str]) -> Regimen:
    return Regimen(key, kind, tuple(Drug(*d) for d in drugs), cycles)


REGIMENS: dict[str, Regimen] = {
    r.key: r
    for r in (
        _regimen(
            "pemetrexed_cisplatin",
            "chemotherapy",
            4,
            ("培美曲塞", "pemetrexed", 500, "mg/m2"),
            ("顺铂", "cisplatin", 75, "mg/m2"),
        ),
        _regimen(
            "gemcitabine_cisplatin",
            "chemotherapy",
            4,
            ("吉西他滨", "gemcitabine", 1250, "mg/m2"),
            ("顺铂", "cisplatin", 75, "mg/m2"),
        ),
        _regimen(
            "paclitaxel_carboplatin",
            "chemotherapy",
            4,
            ("紫杉醇", "paclitaxel", 175, "mg/m2"),
            ("卡铂", "carboplatin", 5, "AUC"),
        ),
        _regimen(
            "etoposide_cisplatin",
            "chemotherapy",
            4,
            ("依托泊苷", "etoposide", 100, "mg/m2"),
            ("顺铂", "cisplatin", 75, "mg/m2"),
        ),
        _regimen("docetaxel", "chemotherapy", 3, ("多西他赛", "docetaxel", 75, "mg/m2")),
        _regimen("osimertinib", "targeted", 1, ("奥希替尼", "osimertinib", 80, "mg")),
        _regimen("alectinib", "targeted", 1, ("阿来替尼", "alectinib", 600, "mg")),
        _regimen("pembrolizumab", "immunotherapy", 4, ("帕博利珠单抗", "pembrolizumab", 200, "mg")),
        _regimen(
            "ac_t",
            "chemotherapy",
            4,
            ("多柔比星", "doxorubicin", 60, "mg/m2"),
            ("环磷酰胺", "cyclophosphamide", 600, "mg/m2"),
        ),
        _regimen(
            "capox",
            "chemotherapy",
            4,
            ("奥沙利铂", "oxaliplatin", 130, "mg/m2"),
            ("卡培他滨", "capecitabine", 1000, "mg/m2"),
        ),
        _regimen(
            "sox",
            "chemotherapy",
            4,
            ("奥沙利铂", "oxaliplatin", 130, "mg/m2"),
            ("替吉奥", "tegafur-gimeracil-oteracil", 40, "mg"),
        ),
        _regimen("lenvatinib", "targeted", 1, ("仑伐替尼", "lenvatinib", 8, "mg")),
    )
}

# cancer site -> (ICD-10 choices, morphology choices with weights, operation zh/en, regimens)
OPERATIONS: dict[str, tuple[str, str]] = {
    "lung": ("胸腔镜下肺叶切除术+淋巴结清扫术", "VATS lobectomy with lymph node dissection"),
    "breast": ("乳腺癌改良根治术", "Modified radical mastectomy"),
    "colorectal": ("腹腔镜根治性结肠切除术", "Laparoscopic radical colectomy"),
    "liver": ("肝部分切除术", "Partial hepatectomy"),
    "stomach": ("根治性远端胃大部切除术", "Radical distal gastrectomy"),
}

SITE_ICD10: dict[str, tuple[str, ...]] = {
    "breast": ("C50.4", "C50.2", "C50.9"),
    "colorectal": ("C18.2", "C18.7", "C18.9"),
    "liver": ("C22.0",),
    "stomach": ("C16.0", "C16.3", "C16.9"),
}
SITE_MORPHOLOGY: dict[str, str] = {
    "breast": "8500/3",
    "colorectal": "8140/3",
    "liver": "8170/3",
    "stomach": "8144/3",
}
SITE_REGIMEN: dict[str, str] = {
    "breast": "ac_t",
    "colorectal": "capox",
    "liver": "lenvatinib",
    "stomach": "sox",
}

# Non-cancer reasons for admission: (ICD-10, Chinese, English); none in C00-D48.
NON_CANCER_DIAGNOSES: tuple[tuple[str, str, str], ...] = (
    ("J18.9", "肺炎", "Pneumonia, unspecified"),
    ("J44.9", "慢性阻塞性肺疾病", "Chronic obstructive pulmonary disease"),
    ("R91", "肺部结节（性质待查）", "Pulmonary nodule, nature undetermined"),
    ("I10", "原发性高血压", "Essential hypertension"),
    ("E11.9", "2型糖尿病", "Type 2 diabetes mellitus"),
    ("K29.7", "慢性胃炎", "Gastritis, unspecified"),
)
