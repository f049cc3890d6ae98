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

from ops.synth import labs, people, texts
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
        self, variant: HospitalVariant, ids: IdCounter, names: dict[str, tuple[str, str]]
    ) -> None:
        self.v = variant
        self.ids = ids
        self.names = names

    def _problem(self, out: PatientRecords, kind: str, pid: str, **where: Any) -> None:
        out.problems.append({"kind": kind, "patient_id": pid, **where})

    def build(self, rng: random.Random, p: Patient) -> PatientRecords:
        v, out = self.v, PatientRecords()
        pid = patient_id(v, p.index)
        fmt = v.format_date
        name = people.person_name(rng, v.language)
        master: Row = {
            "patient_id": pid,
            "name": name,
            "sex": v.sex(p.male),
            "birth_date": fmt(p.birth_date),
            "resident_id": p.resident_id,
            "phone": people.phone(rng),
            "address": people.address(rng, p.area, v.language),
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
        admission_ids = [self._admission(rng, p, pid, stay, out) for stay in p.admissions]
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
        return out

    def _admission(
        self, rng: random.Random, p: Patient, pid: str, stay: Any, out: PatientRecords
    ) -> str:
        v, fmt = self.v, self.v.format_date
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
        out.add(
            "discharge_summary",
            {
                "document_id": self.ids.next("document"),
                "admission_id": adm_id,
                "text": texts.discharge_summary(rng, p, stay, v.language),
            },
        )
        if p.has_cancer and stay.number == 1:
            out.add(
                "pathology_report",
                {
                    "report_id": self.ids.next("pathology"),
                    "admission_id": adm_id,
                    "patient_id": pid,
                    "report_date": fmt(stay.admit + timedelta(days=5)),
                    "text": texts.pathology_report(rng, p, v.language),
                },
            )
        self._labs(rng, p, pid, adm_id, stay, out)
        self._imaging(rng, p, pid, stay, out)
        return adm_id

    def _labs(
        self, rng: random.Random, p: Patient, pid: str, adm_id: str, stay: Any, out: PatientRecords
    ) -> None:
        codes = list(labs.ROUTINE)
        if p.site == "lung" or (p.non_cancer_dx and p.non_cancer_dx[0] == "R91"):
            codes += list(labs.TUMOUR_MARKERS) if stay.purpose != "review" or p.has_cancer else []
        elif p.has_cancer:
            codes.append("CEA")
        day = self.v.format_date(stay.admit + timedelta(days=1))
        for code in codes:
            result = labs.draw(rng, p, code, self.v.units[code])
            row = self._lis_row(pid, adm_id, code, result.text, result.unit, result.reference, day)
            problem = None
            if rng.random() < PROBLEM_RATES["missing_value"]:
                row["result"], problem = None, "missing_value"
            elif rng.random() < PROBLEM_RATES["impossible_value"]:
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
        return {
            "lab_id": f"S{self.v.code}{self.ids.next('lab'):010d}",
            "patient_id": pid,
            "admission_id": adm_id,
            "item_code": labs.item_code(self.v.code, code),
            "item_name": labs.item_name(code, self.v.language, self.names),
            "result": text,
            "unit": unit,
            "reference_range": reference,
            "report_date": day,
        }

    def _imaging(
        self, rng: random.Random, p: Patient, pid: str, stay: Any, out: PatientRecords
    ) -> None:
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
            out.pacs.append(
                {
                    "study_id": f"1.2.840.{self.v.code.encode()[0]}.{number}",
                    "patient_id": pid,
                    "accession_no": f"{self.v.code}X{number:09d}",
                    "modality": modality,
                    "body_part": "胸部" if self.v.language == "zh" else "CHEST",
                    "study_date": self.v.format_date(stay.admit + timedelta(days=1)),
                    "findings": findings,
                    "conclusion": conclusion,
                }
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
