"""How the three invented hospitals write the same facts differently.

Every generator speaks of logical tables and fields (`patient.patient_id`);
a `HospitalVariant` names the physical table and columns, the date format, the
sex codes, the ICD-10 spelling, the language of free text and the LIS export's
encoding and units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from shared_cdm.errors import InvalidInput

# Logical EMR tables and their fields, in column order.
EMR_TABLES: dict[str, tuple[str, ...]] = {
    "patient": ("patient_id", "name", "sex", "birth_date", "resident_id", "phone", "address"),
    "admission": ("admission_id", "patient_id", "admit_date", "discharge_date", "department"),
    "diagnosis": (
        "diagnosis_id",
        "admission_id",
        "patient_id",
        "icd_code",
        "diagnosis_text",
        "diagnosis_type",
    ),
    "operation": ("operation_id", "admission_id", "operation_date", "operation_name"),
    "medication": (
        "order_id",
        "admission_id",
        "drug_name",
        "dose",
        "dose_unit",
        "start_date",
        "end_date",
    ),
    "discharge_summary": ("document_id", "admission_id", "text"),
    "pathology_report": ("report_id", "admission_id", "patient_id", "report_date", "text"),
    "exam_result": ("record_id", "admission_id", "item_name", "result", "unit", "report_date"),
    "follow_up": ("patient_id", "last_contact_date", "vital_status", "death_date"),
}
LIS_FIELDS = (
    "lab_id",
    "patient_id",
    "admission_id",
    "item_code",
    "item_name",
    "result",
    "unit",
    "reference_range",
    "report_date",
)
PACS_FIELDS = (
    "study_id",
    "patient_id",
    "accession_no",
    "modality",
    "body_part",
    "study_date",
    "findings",
    "conclusion",
)


@dataclass(frozen=True)
class PhysicalTable:
    name: str
    columns: dict[str, str]  # logical field -> column name

    def column_names(self, logical_table: str) -> list[str]:
        return [self.columns[f] for f in EMR_TABLES[logical_table]]


@dataclass(frozen=True)
class HospitalVariant:
    code: str  # "A", "B" or "C"
    hospital_name: str
    language: str  # "zh" or "en"
    date_style: str  # "iso", "dmy" or "zh"
    sex_codes: tuple[str, str]  # (male, female)
    icd_style: str  # "extended", "plain" or "mixed_text"
    lis_encoding: str
    units: dict[str, str]  # analyte code -> the unit this vendor writes
    emr: dict[str, PhysicalTable] = field(default_factory=dict)
    lis_columns: tuple[str, ...] = LIS_FIELDS
    pacs_columns: tuple[str, ...] = PACS_FIELDS

    def format_date(self, day: date | None) -> str | None:
        if day is None:
            return None
        if self.date_style == "iso":
            return day.isoformat()
        if self.date_style == "dmy":
            return f"{day.day:02d}/{day.month:02d}/{day.year}"
        return f"{day.year}年{day.month}月{day.day}日"

    def sex(self, male: bool) -> str:
        return self.sex_codes[0] if male else self.sex_codes[1]


def _table(name: str, logical: str, columns: tuple[str, ...]) -> PhysicalTable:
    return PhysicalTable(name, dict(zip(EMR_TABLES[logical], columns, strict=True)))


_VARIANT_A = HospitalVariant(
    code="A",
    hospital_name="东江市第一人民医院",
    language="zh",
    date_style="iso",
    sex_codes=("男", "女"),
    icd_style="extended",
    lis_encoding="utf-8",
    units={
        "HGB": "g/L",
        "ALB": "g/L",
        "CREA": "μmol/L",
        "TBIL": "μmol/L",
        "GLU": "mmol/L",
        "CEA": "ng/mL",
        "CYFRA21-1": "ng/mL",
        "NSE": "ng/mL",
        "SCC": "ng/mL",
        "ProGRP": "pg/mL",
        "ALT": "U/L",
        "WBC": "10^9/L",
        "PLT": "10^9/L",
    },
    emr={
        "patient": _table(
            "patient_master",
            "patient",
            ("pat_id", "name", "sex", "birth_date", "id_card_no", "phone", "address"),
        ),
        "admission": _table(
            "admission", "admission", ("adm_id", "pat_id", "admit_date", "discharge_date", "dept")
        ),
        "diagnosis": _table(
            "diagnosis",
            "diagnosis",
            ("diag_id", "adm_id", "pat_id", "icd_code", "diag_name", "diag_type"),
        ),
        "operation": _table(
            "operation_record", "operation", ("op_id", "adm_id", "op_date", "op_name")
        ),
        "medication": _table(
            "medication_order",
            "medication",
            ("order_id", "adm_id", "drug_name", "dose", "dose_unit", "start_date", "end_date"),
        ),
        "discharge_summary": _table(
            "discharge_summary", "discharge_summary", ("doc_id", "adm_id", "content")
        ),
        "pathology_report": _table(
            "pathology_report",
            "pathology_report",
            ("report_id", "adm_id", "pat_id", "report_date", "content"),
        ),
        "exam_result": _table(
            "exam_result",
            "exam_result",
            ("rec_id", "adm_id", "item_name", "result", "unit", "report_date"),
        ),
        "follow_up": _table(
            "follow_up", "follow_up", ("pat_id", "last_contact_date", "vital_status", "death_date")
        ),
    },
    lis_columns=(
        "sample_id",
        "pat_id",
        "adm_id",
        "item_code",
        "item_name",
        "result",
        "unit",
        "ref_range",
        "report_time",
    ),
    pacs_columns=(
        "study_uid",
        "pat_id",
        "accession_no",
        "modality",
        "body_part",
        "study_date",
        "findings",
        "impression",
    ),
)

_VARIANT_B = HospitalVariant(
    code="B",
    hospital_name="Harbourview International Hospital",
    language="en",
    date_style="dmy",
    sex_codes=("M", "F"),
    icd_style="plain",
    lis_encoding="utf-8",
    units={
        "HGB": "g/dL",
        "ALB": "g/dL",
        "CREA": "mg/dL",
        "TBIL": "mg/dL",
        "GLU": "mg/dL",
        "CEA": "ng/mL",
        "CYFRA21-1": "ng/mL",
        "NSE": "ng/mL",
        "SCC": "ng/mL",
        "ProGRP": "pg/mL",
        "ALT": "U/L",
        "WBC": "x10^9/L",
        "PLT": "x10^9/L",
    },
    emr={
        "patient": _table(
            "PATIENTS",
            "patient",
            ("PatientNo", "FullName", "Gender", "DOB", "NationalID", "Phone", "Address"),
        ),
        "admission": _table(
            "ENCOUNTERS",
            "admission",
            ("EncounterNo", "PatientNo", "AdmitDate", "DischargeDate", "Ward"),
        ),
        "diagnosis": _table(
            "DIAGNOSES",
            "diagnosis",
            ("DiagnosisNo", "EncounterNo", "PatientNo", "ICD10", "Description", "DiagType"),
        ),
        "operation": _table(
            "PROCEDURES",
            "operation",
            ("ProcedureNo", "EncounterNo", "ProcedureDate", "ProcedureName"),
        ),
        "medication": _table(
            "MED_ORDERS",
            "medication",
            ("OrderNo", "EncounterNo", "Drug", "Dose", "DoseUnit", "StartDate", "StopDate"),
        ),
        "discharge_summary": _table(
            "DISCHARGE_NOTES", "discharge_summary", ("NoteNo", "EncounterNo", "NoteText")
        ),
        "pathology_report": _table(
            "PATHOLOGY",
            "pathology_report",
            ("ReportNo", "EncounterNo", "PatientNo", "ReportDate", "ReportText"),
        ),
        "exam_result": _table(
            "WARD_LAB_ENTRIES",
            "exam_result",
            ("EntryNo", "EncounterNo", "TestName", "Value", "Units", "EntryDate"),
        ),
        "follow_up": _table(
            "FOLLOWUP", "follow_up", ("PatientNo", "LastContact", "VitalStatus", "DateOfDeath")
        ),
    },
    lis_columns=(
        "SpecimenID",
        "MRN",
        "VisitNo",
        "TestCode",
        "TestName",
        "Value",
        "Units",
        "RefRange",
        "ResultDate",
    ),
    pacs_columns=(
        "StudyInstanceUID",
        "MRN",
        "AccessionNumber",
        "Modality",
        "BodyPart",
        "StudyDate",
        "Findings",
        "Impression",
    ),
)

_VARIANT_C = HospitalVariant(
    code="C",
    hospital_name="西山县中心医院",
    language="zh",
    date_style="zh",
    sex_codes=("1", "2"),
    icd_style="mixed_text",
    lis_encoding="gbk",
    units={
        "HGB": "g/L",
        "ALB": "g/L",
        "CREA": "μmol/L",
        "TBIL": "μmol/L",
        "GLU": "mmol/L",
        "CEA": "μg/L",
        "CYFRA21-1": "μg/L",
        "NSE": "μg/L",
        "SCC": "μg/L",
        "ProGRP": "pg/mL",
        "ALT": "U/L",
        "WBC": "×10^9/L",
        "PLT": "×10^9/L",
    },
    emr={
        "patient": _table(
            "tb_brxx", "patient", ("brid", "xm", "xb", "csrq", "sfzh", "lxdh", "jtdz")
        ),
        "admission": _table("tb_zyjl", "admission", ("zyh", "brid", "ryrq", "cyrq", "ks")),
        "diagnosis": _table(
            "tb_zdxx", "diagnosis", ("zdid", "zyh", "brid", "zddm", "zdmc", "zdlx")
        ),
        "operation": _table("tb_ssjl", "operation", ("ssid", "zyh", "ssrq", "ssmc")),
        "medication": _table(
            "tb_yzxx", "medication", ("yzid", "zyh", "ypmc", "jl", "jldw", "ksrq", "jsrq")
        ),
        "discharge_summary": _table("tb_cyxj", "discharge_summary", ("wsid", "zyh", "nr")),
        "pathology_report": _table(
            "tb_blbg", "pathology_report", ("bgid", "zyh", "brid", "bgrq", "nr")
        ),
        "exam_result": _table(
            "tb_jyjg", "exam_result", ("jlid", "zyh", "xmmc", "jg", "dw", "bgrq")
        ),
        "follow_up": _table("tb_swsf", "follow_up", ("brid", "zhsfrq", "zt", "swrq")),
    },
    lis_columns=(
        "标本号",
        "病人ID",
        "住院号",
        "项目代码",
        "项目名称",
        "结果",
        "单位",
        "参考范围",
        "报告日期",
    ),
    pacs_columns=(
        "检查号",
        "病人ID",
        "登记号",
        "检查类型",
        "检查部位",
        "检查日期",
        "检查所见",
        "诊断意见",
    ),
)

VARIANTS: dict[str, HospitalVariant] = {v.code: v for v in (_VARIANT_A, _VARIANT_B, _VARIANT_C)}


def get_variant(code: str) -> HospitalVariant:
    try:
        return VARIANTS[code.upper()]
    except KeyError:
        raise InvalidInput(
            f"unknown hospital variant {code!r}; choose one of A, B, C", code="invalid_variant"
        ) from None
