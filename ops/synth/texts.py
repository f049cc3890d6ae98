"""Free text as clinicians write it: discharge summaries, pathology reports,
CT and PET-CT reports, in Chinese or English."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from ops.synth import phi
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


# ---------------------------------------------------------------------------
# Documents: the clinical text above, inside the header, the family and the
# signature lines the hospital's system and its clinicians add. The clinical
# text is kept verbatim and whole; every identifier is a span of the `Doc`.


@dataclass(frozen=True)
class Visit:
    """What a document's header says about the stay it belongs to."""

    hospital: str
    variant: str  # "A", "B" or "C"
    language: str
    admission_id: str
    department: str
    bed: int
    admit: date
    discharge: date


_RELATION_ZH = {"son": ("儿子", "儿子", "长子"), "daughter": ("女儿", "女儿", "长女")}
_DISCHARGE_ADVICE_ZH = (
    "出院医嘱：注意休息，定期复查，不适随诊。",
    "出院医嘱：按时服药，2周后门诊复查血常规及肝肾功能。",
    "出院医嘱：避免劳累，预防感冒，如有发热、咯血及时就诊。",
)
_DISCHARGE_ADVICE_EN = (
    "Follow-up in the oncology clinic in two weeks.",
    "Advised to return if fever, haemoptysis or breathlessness.",
    "Repeat full blood count in one week.",
)


def _zh_marks(variant: str) -> tuple[str, str]:
    """(colon, field separator): the tertiary hospital's system writes `：` and
    two spaces, the county hospital's older one `:` and one space."""
    return ("：", "  ") if variant == "A" else (":", " ")


def _relation_zh(rng: random.Random, relation: str, patient_male: bool) -> str:
    if relation == "spouse":
        return rng.choice(("妻子", "爱人", "配偶") if patient_male else ("丈夫", "爱人", "配偶"))
    return rng.choice(_RELATION_ZH[relation])


def _relation_en(relation: str, patient_male: bool) -> str:
    if relation == "spouse":
        return "wife" if patient_male else "husband"
    return relation


def _age(doc: phi.Doc, label: str, age: int) -> None:
    """`年龄：65`; an age over 89 identifies, and is marked."""
    if age > 89:
        doc.field(label, phi.AGE_OVER_89, "age", str(age))
    else:
        doc.add(f"{label}{age}")


def _clinician_zh(doc: phi.Doc, label: str, colon: str, person: phi.Clinician) -> None:
    doc.field(f"{label}{colon}", phi.NAME, "clinician", person.name.full)


def _dr(doc: phi.Doc, rng: random.Random, person: phi.Clinician) -> None:
    """`Dr Robert Chen`, `Dr. Chen` or `R. Chen, MD`."""
    roll = rng.random()
    if roll < 0.5:
        doc.field("Dr ", phi.NAME, "clinician", person.name.full)
    elif roll < 0.8 and person.name.style != "malay":
        doc.field("Dr. ", phi.NAME, "clinician", person.name.family)
    else:
        doc.phi(phi.NAME, "clinician", person.name.initial_form).add(", MD")


def _body(doc: phi.Doc, body: str, age: int, age_text: str) -> None:
    start = doc.size
    doc.add(body)
    at = body.find(age_text) if age > 89 else -1
    if at >= 0:
        doc.mark(phi.AGE_OVER_89, "age", start + at, start + at + len(str(age)))


def discharge_document(
    rng: random.Random, who: phi.Identity, visit: Visit, body: str, age: int
) -> phi.Doc:
    """`body` is `discharge_summary(...)`, written whole inside the document."""
    if visit.language == "en":
        return _discharge_en(rng, who, visit, body, age)
    c, sep = _zh_marks(visit.variant)
    style = phi.date_style(rng, visit.variant)
    title = "出院记录" if visit.variant == "A" else "出院小结"
    doc = phi.Doc().field(f"{visit.hospital}{title}\n姓名{c}", phi.NAME, "patient", who.name.full)
    _age(doc, f"{sep}性别{c}{'男' if who.male else '女'}{sep}年龄{c}", age)
    if visit.variant == "A":
        label = f"岁{sep}科室{c}{visit.department}{sep}床号{c}{visit.bed}{sep}住院号{c}"
        doc.field(label, phi.RECORD_NUMBER, "admission_id", visit.admission_id)
    else:
        label = f"岁{sep}科别{c}{visit.department}{sep}住院号{c}"
        doc.field(label, phi.RECORD_NUMBER, "admission_id", visit.admission_id)
        doc.add(f"{sep}床号{c}{visit.bed}")
    doc.field(f"\n入院日期{c}", phi.DATE, "admission", phi.format_date(visit.admit, style))
    doc.field(f"{sep}出院日期{c}", phi.DATE, "discharge", phi.format_date(visit.discharge, style))
    if rng.random() < 0.5:
        doc.field(f"{sep}病案号{c}", phi.RECORD_NUMBER, "patient_id", who.patient_id)
    doc.add("\n")
    if rng.random() < 0.3:
        doc.field(f"出生日期{c}", phi.DATE, "birth", phi.format_date(who.birth, style))
        doc.field(f"{sep}身份证号{c}", phi.ID_NUMBER, "resident_id", who.resident_id)
        doc.add("\n")
    if rng.random() < 0.3:
        doc.field(f"联系电话{c}", phi.PHONE, "patient", phi.format_phone(rng, who.phone, "zh"))
        address = who.address if rng.random() < 0.6 else who.address_short
        doc.field(f"{sep}现住址{c}", phi.ADDRESS, "patient", address).add("\n")
    _body(doc, body, age, f"{age}岁")
    if rng.random() < 0.45:
        _family_zh(rng, doc, who, c)
    if rng.random() < 0.3:
        doc.field("\n经", phi.NAME, "clinician", who.chief.name.full)
        doc.add(f"{phi.TITLES[who.chief.title][0]}查房，同意今日出院。")
    advice = rng.choice(_DISCHARGE_ADVICE_ZH)
    signed = phi.format_date(visit.discharge, style)
    roll = rng.random()
    if roll < 0.5:
        _clinician_zh(doc, f"\n{advice}\n主治医师", c, who.attending)
        _clinician_zh(doc, sep + "住院医师", c, who.resident)
        doc.field(f"\n记录日期{c}", phi.DATE, "signature", signed)
    elif roll < 0.8:
        _clinician_zh(doc, f"\n{advice}\n上级医师", c, who.chief)
        _clinician_zh(doc, sep + "经治医师", c, who.resident)
        doc.field(sep, phi.DATE, "signature", signed)
    else:
        _clinician_zh(doc, f"\n{advice}\n医师签名", c, who.attending)
        doc.field(sep, phi.DATE, "signature", signed)
    return doc


def _family_zh(rng: random.Random, doc: phi.Doc, who: phi.Identity, c: str) -> None:
    relative = rng.choice(who.relatives)
    relation = _relation_zh(rng, relative.relation, who.male)
    phone = phi.format_phone(rng, relative.phone, "zh")
    roll = rng.random()
    if roll < 0.45:
        doc.field(f"\n患者家属（{relation} ", phi.NAME, "relative", relative.name.full)
        doc.field("，电话 ", phi.PHONE, "relative", phone).add("）已知情并签字。")
    elif roll < 0.75:
        doc.field(f"\n联系人{c}", phi.NAME, "relative", relative.name.full)
        doc.field(f"（{relation}），联系电话{c}", phi.PHONE, "relative", phone)
    else:
        doc.field(f"\n由{relation}", phi.NAME, "relative", relative.name.full)
        doc.field("陪同出院，电话", phi.PHONE, "relative", phone).add("。")


def _patient_en(doc: phi.Doc, rng: random.Random, who: phi.Identity, style: str) -> None:
    """`Patient: John Smith, MRN0000012, DOB 03/04/1951` or a labelled line."""
    if rng.random() < 0.5:
        doc.field("Patient: ", phi.NAME, "patient", who.name.full)
        doc.field(", ", phi.RECORD_NUMBER, "patient_id", who.patient_id)
        doc.field(", DOB ", phi.DATE, "birth", phi.format_date(who.birth, style))
    else:
        doc.field("Name: ", phi.NAME, "patient", who.name.surname_first)
        doc.field("    MRN: ", phi.RECORD_NUMBER, "patient_id", who.patient_id)
        doc.field("    DOB: ", phi.DATE, "birth", phi.format_date(who.birth, style))


def _discharge_en(
    rng: random.Random, who: phi.Identity, visit: Visit, body: str, age: int
) -> phi.Doc:
    style = phi.date_style(rng, visit.variant)
    doc = phi.Doc().add(f"{visit.hospital}\nDISCHARGE SUMMARY\n")
    _patient_en(doc, rng, who, style)
    _age(doc, f"    Sex: {'M' if who.male else 'F'}    Age: ", age)
    doc.field("\nEncounter No: ", phi.RECORD_NUMBER, "admission_id", visit.admission_id)
    label = f"    Ward: {visit.department}, Bed {visit.bed}\nAdmitted: "
    doc.field(label, phi.DATE, "admission", phi.format_date(visit.admit, style))
    doc.field("    Discharged: ", phi.DATE, "discharge", phi.format_date(visit.discharge, style))
    doc.add("\n")
    if rng.random() < 0.25:
        address = who.address if rng.random() < 0.6 else who.address_short
        doc.field("Address: ", phi.ADDRESS, "patient", address)
        doc.field("    Tel: ", phi.PHONE, "patient", phi.format_phone(rng, who.phone, "en"))
        doc.field("    National ID: ", phi.ID_NUMBER, "resident_id", who.resident_id).add("\n")
    _body(doc, body, age, f"{age}-year-old")
    if rng.random() < 0.45:
        relative = rng.choice(who.relatives)
        relation = _relation_en(relative.relation, who.male)
        phone = phi.format_phone(rng, relative.phone, "en")
        if rng.random() < 0.5:
            doc.field(f"\nNext of kin: {relation} ", phi.NAME, "relative", relative.name.full)
            doc.field(", tel. ", phi.PHONE, "relative", phone).add(".")
        else:
            doc.field("\n", phi.NAME, "relative", relative.name.full)
            label = f" ({relation}) was present and can be reached on "
            doc.field(label, phi.PHONE, "relative", phone).add(".")
    if rng.random() < 0.35:
        label = f"\n{phi.honorific(who.name)} "
        doc.field(label, phi.NAME, "patient", who.name.address_form)
        doc.add(" was reviewed by ")
        _dr(doc, rng, who.chief)
        doc.add(" and discharged home in a stable condition.")
    doc.add("\n" + rng.choice(_DISCHARGE_ADVICE_EN) + "\nAttending: ")
    _dr(doc, rng, who.attending)
    doc.add(f" ({phi.TITLES[who.attending.title][1]})    Resident: ")
    _dr(doc, rng, who.resident)
    signed = phi.format_date(visit.discharge, style)
    return doc.field("\nElectronically signed ", phi.DATE, "signature", signed)


def pathology_number(variant: str, year: int, number: int) -> str:
    """`P2021-03345` (A), `S21-03345` (B), `B2021 03345` (C)."""
    if variant == "A":
        return f"P{year}-{number:05d}"
    if variant == "B":
        return f"S{year % 100:02d}-{number:05d}"
    return f"B{year} {number:05d}"


def pathology_document(
    rng: random.Random,
    who: phi.Identity,
    visit: Visit,
    body: str,
    *,
    number: str,
    received: date,
    reported: date,
    pathologists: tuple[phi.Clinician, phi.Clinician],
) -> phi.Doc:
    """`body` is `pathology_report(...)`, written whole inside the document."""
    style = phi.date_style(rng, visit.variant)
    age = (visit.admit - who.birth).days // 365
    doc = phi.Doc()
    if visit.language == "en":
        label = f"SURGICAL PATHOLOGY REPORT\n{visit.hospital}\nAccession No: "
        doc.field(label, phi.RECORD_NUMBER, "pathology_no", number).add("\n")
        _patient_en(doc, rng, who, style)
        _age(doc, "    Age: ", age)
        doc.field("\nEncounter: ", phi.RECORD_NUMBER, "admission_id", visit.admission_id)
        doc.add("    Requesting clinician: ")
        _dr(doc, rng, who.attending)
        doc.field("\nReceived: ", phi.DATE, "received", phi.format_date(received, style))
        doc.add("\n" + body + "\nElectronically signed out by ")
        _dr(doc, rng, pathologists[0])
        doc.field(", ", phi.DATE, "report", phi.format_date(reported, style)).add(".")
        return doc
    c, sep = _zh_marks(visit.variant)
    doc.field(
        f"{visit.hospital}病理诊断报告单\n病理号{c}", phi.RECORD_NUMBER, "pathology_no", number
    )
    doc.field(f"{sep}姓名{c}", phi.NAME, "patient", who.name.full)
    _age(doc, f"{sep}性别{c}{'男' if who.male else '女'}{sep}年龄{c}", age)
    label = f"岁\n送检科室{c}{visit.department}{sep}床号{c}{visit.bed}{sep}住院号{c}"
    doc.field(label, phi.RECORD_NUMBER, "admission_id", visit.admission_id)
    _clinician_zh(doc, "\n送检医师", c, who.attending)
    doc.field(f"{sep}送检日期{c}", phi.DATE, "received", phi.format_date(received, style))
    doc.add(f"\n病理诊断{c}{body}\n")
    _clinician_zh(doc, "诊断医师", c, pathologists[0])
    _clinician_zh(doc, sep + "复核医师", c, pathologists[1])
    doc.field(f"{sep}报告日期{c}", phi.DATE, "report", phi.format_date(reported, style))
    return doc


def imaging_documents(
    rng: random.Random,
    who: phi.Identity,
    visit: Visit,
    findings: str,
    conclusion: str,
    *,
    modality: str,
    accession: str,
    study_date: date,
    radiologists: tuple[phi.Clinician, phi.Clinician],
) -> tuple[phi.Doc, phi.Doc]:
    """(findings, conclusion) with the report's header and signature."""
    style = phi.date_style(rng, visit.variant)
    age = (study_date - who.birth).days // 365
    head, tail = phi.Doc(), phi.Doc()
    when = phi.format_date(study_date, style)
    if visit.language == "en":
        if rng.random() < 0.85:
            head.field("Name: ", phi.NAME, "patient", who.name.full)
            head.field("  MRN: ", phi.RECORD_NUMBER, "patient_id", who.patient_id)
            head.field("  Acc#: ", phi.RECORD_NUMBER, "accession_no", accession)
            head.field("  DOB: ", phi.DATE, "birth", phi.format_date(who.birth, style))
            head.add("\n")
        head.add(findings)
        tail.add(conclusion + "\nReported by ")
        _dr(tail, rng, radiologists[0])
        tail.field(", ", phi.DATE, "report", when)
        tail.add(f" {phi.time_of_day(rng)}. Verified by ")
        _dr(tail, rng, radiologists[1])
        tail.add(".")
        return head, tail
    c, sep = _zh_marks(visit.variant)
    if rng.random() < 0.85:
        head.field(f"检查号{c}", phi.RECORD_NUMBER, "accession_no", accession)
        head.field(f"{sep}姓名{c}", phi.NAME, "patient", who.name.full)
        _age(head, f"{sep}性别{c}{'男' if who.male else '女'}{sep}年龄{c}", age)
        if modality == "PET-CT":
            head.field(f"岁{sep}门诊号{c}", phi.RECORD_NUMBER, "outpatient_no", who.outpatient_no)
        else:
            head.field(f"岁{sep}住院号{c}", phi.RECORD_NUMBER, "admission_id", visit.admission_id)
        if rng.random() < 0.5:
            head.field(f"{sep}检查日期{c}", phi.DATE, "exam", when)
        head.add("\n")
    head.add(findings)
    tail.add(conclusion + "\n")
    _clinician_zh(tail, "报告医师", c, radiologists[0])
    _clinician_zh(tail, sep + "审核医师", c, radiologists[1])
    tail.field(f"{sep}报告时间{c}", phi.DATE, "report", when)
    tail.add(f" {phi.time_of_day(rng)}")
    return head, tail
