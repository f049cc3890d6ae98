"""One patient's rows in every source system, with the problems injected into
them and the truth about both.

`PatientRecords` is what the writers consume; all ids are drawn from `IdCounter`
so they are unique across batches.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ops.synth import labs, people, phi, texts
from ops.synth.cohort import Patient
from ops.synth.regimens import OPERATIONS, REGIMENS
from ops.synth.variants import HospitalVariant

Row = dict[str, Any]
PROBLEM_RATES = {
    "duplicate_patient": 0.01,
    "dates_out_of_order": 0.01,
    "missing_value": 0.02,
    "impossible_value": 0.005,
    "same_value_two_units": 0.03,
    "duplicate_across_systems": 0.10,
}
_MISSING = PROBLEM_RATES["missing_value"]
_IMPOSSIBLE = PROBLEM_RATES["impossible_value"]
# the other unit a second analyser of the same hospital writes
_SECOND_UNIT = {
    ("HGB", "g/L"): "g/dL",
    ("HGB", "g/dL"): "g/L",
    ("CREA", "μmol/L"): "mg/dL",
    ("CREA", "mg/dL"): "μmol/L",
}


@dataclass
class IdCounter:
    values: dict[str, int] = field(default_factory=dict)

    def next(self, kind: str) -> int:
        self.values[kind] = self.values.get(kind, 0) + 1
        return self.values[kind]


@dataclass
class PatientRecords:
    emr: dict[str, list[Row]] = field(default_factory=dict)
    lis: list[Row] = field(default_factory=list)
    pacs: list[Row] = field(default_factory=list)
    truth_labs: list[Row] = field(default_factory=list)
    problems: list[Row] = field(default_factory=list)
    truth: Row = field(default_factory=dict)
    phi: list[str] = field(default_factory=list)  # truth/phi.jsonl lines
    identity: Row = field(default_factory=dict)  # its truth/identities.jsonl object
    name: str = ""  # as the patient master index writes it
    attending: str = ""  # the attending physician's name
    visits: dict[str, texts.Visit] = field(default_factory=dict)  # by admission id

    def add(self, table: str, row: Row) -> None:
        self.emr.setdefault(table, []).append(row)


def patient_id(variant: HospitalVariant, index: int) -> str:
    return {"A": f"P{index + 1:08d}", "B": f"MRN{index + 1:07d}"}.get(
        variant.code, f"{index + 3100001}"
    )


def _icd_as_written(rng: random.Random, code: str, variant: HospitalVariant) -> str | None:
    if variant.icd_style == "extended":
        return f"{code}00x001" if "." in code else f"{code}.x00"
    if variant.icd_style == "mixed_text" and rng.random() < 0.25:
        return None  # only the Chinese diagnosis text
    return code


class RecordBuilder:
    """Turns a `Patient` into rows for one hospital variant."""

    def __init__(
        self,
        variant: HospitalVariant,
        ids: IdCounter,
        names: dict[str, tuple[str, str]],
        *,
        seed: int = 0,
    ) -> None:
        self.v = variant
        self.ids = ids
        self.names = names
        self.seed = seed
        self._items: dict[str, tuple[str, str]] = {}  # analyte -> (item code, name)
        self.staff = phi.Staff.for_hospital(seed, variant.code, variant.language)

    def _problem(self, out: PatientRecords, kind: str, pid: str, **where: Any) -> None:
        out.problems.append({"kind": kind, "patient_id": pid, **where})

    def build(self, rng: random.Random, p: Patient) -> PatientRecords:
        v, out = self.v, PatientRecords()
        pid = patient_id(v, p.index)
        fmt = v.format_date
        # The first name generator's draws stay in the clinical stream, so that
        # a seed's clinical content is what it was before identities were richer.
        people.person_name(rng, v.language)
        phone = people.phone(rng)
        street = people.address(rng, p.area, v.language)
        irng = phi.identity_rng(self.seed, v.code, p.index)
        who = phi.make_identity(
            irng,
            patient_id=pid,
            index=p.index,
            variant=v.code,
            language=v.language,
            male=p.male,
            birth=p.birth_date,
            resident_id=p.resident_id,
            phone=phone,
            street_address=street,
            staff=self.staff,
        )
        master: Row = {
            "patient_id": pid,
            "name": who.name.full,
            "sex": v.sex(p.male),
            "birth_date": fmt(p.birth_date),
            "resident_id": p.resident_id,
            "phone": phone,
            "address": who.address,
        }
        out.add("patient", master)
        duplicates = []
        if rng.random() < PROBLEM_RATES["duplicate_patient"]:
            dup_id = f"{pid}D"
            out.add("patient", {**master, "patient_id": dup_id, "phone": None})
            duplicates.append(dup_id)
            self._problem(
                out,
                "duplicate_patient",
                pid,
                system="emr",
                table="patient",
                record_ids=[pid, dup_id],
            )
        admission_ids = [
            self._admission(rng, p, pid, stay, out, (irng, who)) for stay in p.admissions
        ]
        last = p.last_contact
        out.add(
            "follow_up",
            {
                "patient_id": pid,
                "last_contact_date": fmt(last),
                "vital_status": _vital(v, p.death),
                "death_date": fmt(last) if p.death else None,
            },
        )
        out.truth = _truth_row(p, pid, admission_ids, duplicates)
        who.admission_ids = admission_ids
        out.name = who.name.full
        out.attending = who.attending.name.full
        out.identity = who.truth(duplicates)
        return out

    def _admission(
        self,
        rng: random.Random,
        p: Patient,
        pid: str,
        stay: Any,
        out: PatientRecords,
        identity: tuple[random.Random, phi.Identity],
    ) -> str:
        v, fmt = self.v, self.v.format_date
        irng, who = identity
        adm_id = f"{v.code}{self.ids.next('admission'):09d}"
        discharge = stay.discharge
        if rng.random() < PROBLEM_RATES["dates_out_of_order"]:
            discharge = stay.admit - timedelta(days=rng.randint(1, 30))
            self._problem(
                out,
                "dates_out_of_order",
                pid,
                system="emr",
                table="admission",
                record_ids=[adm_id],
                field="discharge_date",
            )
        dept = (
            ("肿瘤科" if p.has_cancer else "呼吸内科")
            if v.language == "zh"
            else ("Oncology" if p.has_cancer else "Respiratory")
        )
        out.add(
            "admission",
            {
                "admission_id": adm_id,
                "patient_id": pid,
                "admit_date": fmt(stay.admit),
                "discharge_date": fmt(discharge),
                "department": dept,
            },
        )
        code = p.icd10 if p.has_cancer else (p.non_cancer_dx or ("",))[0]
        out.add(
            "diagnosis",
            {
                "diagnosis_id": self.ids.next("diagnosis"),
                "admission_id": adm_id,
                "patient_id": pid,
                "icd_code": _icd_as_written(rng, code or "", v),
                "diagnosis_text": texts.diagnosis_text(p, v.language),
                "diagnosis_type": "1",
            },
        )
        for t in p.treatments:
            if not stay.admit <= t.start <= stay.discharge:
                continue
            if t.kind == "surgery":
                out.add(
                    "operation",
                    {
                        "operation_id": self.ids.next("operation"),
                        "admission_id": adm_id,
                        "operation_date": fmt(t.start),
                        "operation_name": OPERATIONS[t.name][0 if v.language == "zh" else 1],
                    },
                )
        for t in p.treatments:
            if t.kind != "surgery" and stay.purpose == t.name:
                for drug in REGIMENS[t.name].drugs:
                    out.add(
                        "medication",
                        {
                            "order_id": self.ids.next("order"),
                            "admission_id": adm_id,
                            "drug_name": drug.name_zh if v.language == "zh" else drug.name_en,
                            "dose": drug.dose,
                            "dose_unit": drug.unit,
                            "start_date": fmt(stay.admit + timedelta(days=1)),
                            "end_date": fmt(stay.admit + timedelta(days=1)),
                        },
                    )
        visit = texts.Visit(
            v.hospital_name,
            v.code,
            v.language,
            adm_id,
            dept,
            irng.randint(1, 60),
            stay.admit,
            stay.discharge,
        )
        out.visits[adm_id] = visit
        document_id = self.ids.next("document")
        body = texts.discharge_summary(rng, p, stay, v.language)
        age = (stay.admit - p.birth_date).days // 365
        doc = texts.discharge_document(irng, who, visit, body, age)
        text = doc.text()
        out.add(
            "discharge_summary", {"document_id": document_id, "admission_id": adm_id, "text": text}
        )
        out.phi += phi.truth_lines(
            text,
            doc.spans,
            system="emr",
            table="discharge_summary",
            record_id=str(document_id),
            field_name="text",
            patient_id=pid,
        )
        if p.has_cancer and stay.number == 1:
            self._pathology(rng, p, pid, visit, out, (irng, who))
        self._labs(rng, p, pid, adm_id, stay, out)
        self._imaging(rng, p, pid, stay, out, (irng, who, visit))
        return adm_id

    def _pathology(
        self,
        rng: random.Random,
        p: Patient,
        pid: str,
        visit: texts.Visit,
        out: PatientRecords,
        identity: tuple[random.Random, phi.Identity],
    ) -> None:
        irng, who = identity
        report_id = self.ids.next("pathology")
        reported = visit.admit + timedelta(days=5)
        body = texts.pathology_report(rng, p, self.v.language)
        number = texts.pathology_number(self.v.code, reported.year, report_id)
        pathologists = irng.sample(self.staff.pathologists, 2)
        doc = texts.pathology_document(
            irng,
            who,
            visit,
            body,
            number=number,
            received=visit.admit + timedelta(days=irng.randint(2, 4)),
            reported=reported,
            pathologists=(pathologists[0], pathologists[1]),
        )
        text = doc.text()
        out.add(
            "pathology_report",
            {
                "report_id": report_id,
                "admission_id": visit.admission_id,
                "patient_id": pid,
                "report_date": self.v.format_date(reported),
                "text": text,
            },
        )
        who.pathology_nos.append(number)
        out.phi += phi.truth_lines(
            text,
            doc.spans,
            system="emr",
            table="pathology_report",
            record_id=str(report_id),
            field_name="text",
            patient_id=pid,
        )

    def _labs(
        self, rng: random.Random, p: Patient, pid: str, adm_id: str, stay: Any, out: PatientRecords
    ) -> None:
        codes = list(labs.ROUTINE)
        if p.site == "lung" or (p.non_cancer_dx and p.non_cancer_dx[0] == "R91"):
            codes += list(labs.TUMOUR_MARKERS) if stay.purpose != "review" or p.has_cancer else []
        elif p.has_cancer:
            codes.append("CEA")
        day = self.v.format_date(stay.admit + timedelta(days=1))
        units, raised, chance = self.v.units, labs.raised_codes(p), rng.random
        for code in codes:
            result = labs.draw_for(rng, code, units[code], code in raised)
            row = self._lis_row(pid, adm_id, code, result.text, result.unit, result.reference, day)
            problem = None
            if chance() < _MISSING:
                row["result"], problem = None, "missing_value"
            elif chance() < _IMPOSSIBLE:
                row["result"], problem = ("9999" if code != "CEA" else "-5.00"), "impossible_value"
            if problem:
                self._problem(
                    out,
                    problem,
                    pid,
                    system="lis",
                    table="lab_results",
                    record_ids=[row["lab_id"]],
                    field="result",
                )
            out.lis.append(row)
            out.truth_labs.append(
                {
                    "lab_id": row["lab_id"],
                    "patient_id": pid,
                    "admission_id": adm_id,
                    "analyte": code,
                    "standard_value": result.standard_value,
                    "written_value": row["result"],
                    "written_unit": result.unit,
                    "problem": problem,
                }
            )
            second = _SECOND_UNIT.get((code, result.unit))
            if second and not problem and rng.random() < PROBLEM_RATES["same_value_two_units"]:
                again = labs.to_vendor(code, result.standard_value, second)
                twin = self._lis_row(pid, adm_id, code, labs.fmt(again, 2), second, "", day)
                out.lis.append(twin)
                self._problem(
                    out,
                    "same_value_two_units",
                    pid,
                    system="lis",
                    table="lab_results",
                    record_ids=[row["lab_id"], twin["lab_id"]],
                )
            if (
                code in labs.TUMOUR_MARKERS
                and p.has_cancer
                and not problem
                and rng.random() < PROBLEM_RATES["duplicate_across_systems"]
            ):
                emr_id = self.ids.next("exam")
                out.add(
                    "exam_result",
                    {
                        "record_id": emr_id,
                        "admission_id": adm_id,
                        "item_name": row["item_name"],
                        "result": row["result"],
                        "unit": result.unit if rng.random() < 0.5 else None,
                        "report_date": day,
                    },
                )
                self._problem(
                    out,
                    "duplicate_across_systems",
                    pid,
                    system="emr+lis",
                    table="exam_result+lab_results",
                    record_ids=[str(emr_id), row["lab_id"]],
                )

    def _lis_row(
        self,
        pid: str,
        adm_id: str,
        code: str,
        text: str | None,
        unit: str,
        reference: str,
        day: str | None,
    ) -> Row:
        item = self._items.get(code)
        if item is None:
            item = self._items[code] = (
                labs.item_code(self.v.code, code),
                labs.item_name(code, self.v.language, self.names),
            )
        return {
            "lab_id": f"S{self.v.code}{self.ids.next('lab'):010d}",
            "patient_id": pid,
            "admission_id": adm_id,
            "item_code": item[0],
            "item_name": item[1],
            "result": text,
            "unit": unit,
            "reference_range": reference,
            "report_date": day,
        }

    def _imaging(
        self,
        rng: random.Random,
        p: Patient,
        pid: str,
        stay: Any,
        out: PatientRecords,
        identity: tuple[random.Random, phi.Identity, texts.Visit],
    ) -> None:
        irng, who, visit = identity
        chest = p.site == "lung" or (
            p.non_cancer_dx is not None and p.non_cancer_dx[0] in ("R91", "J18.9", "J44.9")
        )
        if not chest or stay.purpose not in ("diagnosis", "surgery", "review"):
            return
        modalities = ["CT"]
        if p.site == "lung" and stay.number == 1 and rng.random() < 0.6:
            modalities.append("PET-CT")
        for modality in modalities:
            findings, conclusion = texts.imaging_report(rng, p, modality, self.v.language)
            number = self.ids.next("study")
            study_id = f"1.2.840.{self.v.code.encode()[0]}.{number}"
            accession = f"{self.v.code}X{number:09d}"
            day = stay.admit + timedelta(days=1)
            radiologists = irng.sample(self.staff.radiologists, 2)
            head, tail = texts.imaging_documents(
                irng,
                who,
                visit,
                findings,
                conclusion,
                modality=modality,
                accession=accession,
                study_date=day,
                radiologists=(radiologists[0], radiologists[1]),
            )
            texts_of = {"findings": head.text(), "conclusion": tail.text()}
            row = {
                "study_id": study_id,
                "patient_id": pid,
                "accession_no": accession,
                "modality": modality,
                "body_part": "胸部" if self.v.language == "zh" else "CHEST",
                "study_date": self.v.format_date(day),
                **texts_of,
            }
            out.pacs.append(row)
            who.accession_nos.append(accession)
            for name, doc in (("findings", head), ("conclusion", tail)):
                out.phi += phi.truth_lines(
                    texts_of[name],
                    doc.spans,
                    system="pacs",
                    table="studies",
                    record_id=study_id,
                    field_name=name,
                    patient_id=pid,
                )


def _vital(v: HospitalVariant, dead: bool) -> str:
    return {"A": ("死亡", "存活"), "B": ("Dead", "Alive"), "C": ("1", "0")}[v.code][
        0 if dead else 1
    ]


def _truth_row(p: Patient, pid: str, admission_ids: list[str], duplicates: list[str]) -> Row:
    return {
        "patient_id": pid,
        "duplicate_patient_ids": duplicates,
        "has_cancer": p.has_cancer,
        "site": p.site,
        "icd10": p.icd10,
        "non_cancer_icd10": p.non_cancer_dx[0] if p.non_cancer_dx else None,
        "morphology": p.morphology,
        "histology": p.histology_en,
        "t": p.t,
        "n": p.n,
        "m": p.m,
        "stage_group": p.stage_group,
        "stage": p.stage,
        "egfr": p.egfr,
        "alk": p.alk,
        "pdl1_tps": p.pdl1_tps,
        "male": p.male,
        "birth_date": p.birth_date.isoformat(),
        "age_at_diagnosis": p.age_at_diagnosis,
        "first_visit": p.first_visit.isoformat(),
        "treatments": [
            {"kind": t.kind, "name": t.name, "start": t.start.isoformat(), "line": t.line}
            for t in p.treatments
        ],
        "survival_days": p.survival_days,
        "event": int(p.death),
        "last_contact": p.last_contact.isoformat(),
        "linear_predictor": p.linear_predictor,
        "admission_ids": admission_ids,
    }
