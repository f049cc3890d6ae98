"""Free text as clinicians write it: discharge summaries, pathology reports,
CT and PET-CT reports, in Chinese or English."""

from __future__ import annotations

import random

from ops.synth.cohort import Admission, Patient
from ops.synth.regimens import OPERATIONS, REGIMENS

_SITE_ZH = {"lung": "肺", "breast": "乳腺", "colorectal": "结肠", "liver": "肝", "stomach": "胃"}
_SITE_EN = {
    "lung": "lung",
    "breast": "breast",
    "colorectal": "colon",
    "liver": "liver",
    "stomach": "stomach",
}
_COMPLAINT_ZH = ("咳嗽咳痰", "痰中带血", "胸闷气促", "体检发现肺部阴影", "腹痛腹胀", "乏力纳差")
_COMPLAINT_EN = (
    "cough with sputum",
    "blood-streaked sputum",
    "chest tightness",
    "an incidental lung shadow on a check-up",
    "abdominal pain",
    "fatigue",
)
_IHC = (
    "TTF-1(+)，NapsinA(+)，CK7(+)",
    "P40(+)，CK5/6(+)，TTF-1(-)",
    "Syn(+)，CgA(+)，CD56(+)，Ki-67约80%",
)


def diagnosis_text(p: Patient, language: str) -> str:
    """The diagnosis as a clinician names it: `右肺上叶腺癌`, `Adenocarcinoma of ...`."""
    if not p.has_cancer:
        dx = p.non_cancer_dx or ("", "", "")
        return dx[1] if language == "zh" else dx[2]
    if p.site == "lung" and p.lobe is not None:
        if language == "zh":
            side = "右" if p.right_side else "左"
            return f"{side}肺{p.lobe[1]}{p.histology_zh}"
        side = "right" if p.right_side else "left"
        return f"{(p.histology_en or '').capitalize()} of {side} {p.lobe[2]}"
    site = p.site or "lung"
    return f"{_SITE_ZH[site]}恶性肿瘤" if language == "zh" else f"Malignant neoplasm of {site}"


def _tnm(p: Patient) -> str:
    if p.t is None:
        return f"{p.stage}期" if p.stage else ""
    return f"c{p.t}{p.n}{p.m} {p.stage_group}期"


def discharge_summary(rng: random.Random, p: Patient, stay: Admission, language: str) -> str:
    age = (stay.admit - p.birth_date).days // 365
    dx = diagnosis_text(p, language)
    treat = [t for t in p.treatments if stay.admit <= t.start <= stay.discharge]
    if language == "zh":
        sex = "男" if p.male else "女"
        lines = [f"患者{sex}，{age}岁，因“{rng.choice(_COMPLAINT_ZH)}{rng.randint(1, 6)}月”入院。"]
        for t in treat:
            if t.kind == "surgery":
                lines.append(f"入院后完善检查，于全麻下行{OPERATIONS[t.name][0]}，术后恢复可。")
            else:
                drugs = "+".join(d.name_zh for d in REGIMENS[t.name].drugs)
                lines.append(f"予{drugs}方案治疗，过程顺利。")
        lines.append(f"出院诊断：{dx} {_tnm(p) if p.has_cancer else ''}".rstrip())
        return "".join(lines)
    sex = "male" if p.male else "female"
    lines = [
        f"A {age}-year-old {sex} admitted with {rng.choice(_COMPLAINT_EN)} "
        f"for {rng.randint(1, 6)} months."
    ]
    for t in treat:
        if t.kind == "surgery":
            lines.append(f"Underwent {OPERATIONS[t.name][1]} under general anaesthesia.")
        else:
            drugs = " + ".join(d.name_en for d in REGIMENS[t.name].drugs)
            lines.append(f"Received {drugs}, well tolerated.")
    stage = f" ({_tnm(p).replace('期', '').strip()})" if p.has_cancer else ""
    lines.append(f"Discharge diagnosis: {dx}{stage}.")
    return " ".join(lines)


def _lung_pathology_zh(rng: random.Random, p: Patient) -> str:
    side = "右" if p.right_side else "左"
    lobe = p.lobe[1] if p.lobe else ""
    nodes = rng.randint(8, 20)
    positive = 0 if p.n == "N0" else rng.randint(1, min(6, nodes))
    ihc = _IHC[0] if p.morphology == "8140/3" else _IHC[2 if p.morphology == "8041/3" else 1]
    text = (
        f"（{side}肺{lobe}）{p.histology_zh}，肿瘤大小{p.tumour_size_cm}×"
        f"{round(p.tumour_size_cm * 0.8, 1)}cm，支气管切缘未见癌。"
        f"淋巴结转移情况：({positive}/{nodes})。免疫组化：{ihc}。"
    )
    if p.egfr is not None:
        egfr = "19外显子缺失突变（阳性）" if p.egfr == "positive" else "未检测到突变（阴性）"
        alk = "（+）" if p.alk == "positive" else "（-）"
        text += f"基因检测：EGFR {egfr}；ALK(D5F3){alk}。"
    return text + f"PD-L1(22C3) TPS约{p.pdl1_tps}%。pTNM：p{p.t}{p.n}{p.m}。"


def _lung_pathology_en(rng: random.Random, p: Patient) -> str:
    side = "right" if p.right_side else "left"
    lobe = p.lobe[2] if p.lobe else ""
    nodes = rng.randint(8, 20)
    positive = 0 if p.n == "N0" else rng.randint(1, min(6, nodes))
    text = (
        f"Specimen: {side} {lobe}. Diagnosis: {p.histology_en}, "
        f"{p.tumour_size_cm} cm in greatest dimension; bronchial margin free. "
        f"Lymph nodes: {positive}/{nodes} positive. "
    )
    if p.egfr is not None:
        egfr = "exon 19 deletion detected" if p.egfr == "positive" else "no mutation detected"
        text += f"EGFR: {egfr}. ALK (D5F3): {p.alk}. "
    return text + f"PD-L1 (22C3) TPS {p.pdl1_tps}%. pTNM: p{p.t} {p.n} {p.m}."


def pathology_report(rng: random.Random, p: Patient, language: str) -> str:
    if p.site == "lung":
        return (_lung_pathology_zh if language == "zh" else _lung_pathology_en)(rng, p)
    site = p.site or ""
    if language == "zh":
        return f"（{_SITE_ZH[site]}）恶性肿瘤，形态学编码M{p.morphology}，病理分期{p.stage}期。"
    return (
        f"Specimen: {_SITE_EN[site]}. Malignant neoplasm, ICD-O-3 {p.morphology}, stage {p.stage}."
    )


def imaging_report(rng: random.Random, p: Patient, modality: str, language: str) -> tuple[str, str]:
    """(findings, conclusion) of a chest CT or PET-CT."""
    suv = round(rng.uniform(4.0, 18.0), 1)
    size = p.tumour_size_cm or round(rng.uniform(0.4, 0.9), 1)
    lobe = p.lobe or ("C34.1", "上叶", "upper lobe")
    right = p.right_side
    nodes = p.n not in (None, "N0")
    if language == "zh":
        side = "右" if right else "左"
        findings = f"{side}肺{lobe[1]}见一软组织结节，大小约{size}cm×{round(size * 0.8, 1)}cm"
        if modality == "PET-CT":
            findings += f"，FDG摄取增高，SUVmax {suv}"
            if nodes:
                findings += f"；纵隔淋巴结肿大，SUVmax {round(suv * 0.6, 1)}"
        conclusion = (
            f"{side}肺{lobe[1]}结节，考虑肺癌"
            if p.site == "lung"
            else f"{side}肺{lobe[1]}小结节，考虑良性，建议随访"
        )
        return findings + "。", conclusion + "。"
    side = "right" if right else "left"
    findings = f"A soft-tissue nodule in the {side} {lobe[2]}, about {size} cm"
    if modality == "PET-CT":
        findings += f", FDG-avid with SUVmax {suv}"
        if nodes:
            findings += f"; enlarged mediastinal nodes, SUVmax {round(suv * 0.6, 1)}"
    conclusion = (
        f"{side} {lobe[2]} mass, suspicious for lung cancer"
        if p.site == "lung"
        else f"small {side} {lobe[2]} nodule, likely benign; follow-up advised"
    )
    return findings + ".", conclusion.capitalize() + "."
