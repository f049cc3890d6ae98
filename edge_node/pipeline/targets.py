"""The record kinds a site mapping can fill, their fields, types and default aliases.

A mapping names, per source table, which target it feeds; each target field is
found by an explicit column in the mapping or, failing that, by the first of its
aliases that the table has (compared case-, width- and punctuation-folded).

Field types:
- `id`: a source identifier, kept as text (never reaches the CDM: pseudonymised);
- `phi`: a direct identifier (name, phone, address, resident ID): used for
  patient linkage inside the hospital only, dropped before the CDM;
- `text`, `date`, `datetime`, `number`, `code`, `enum`: as named; `enum` fields
  list their allowed values;
- `note`: free text; reaches the CDM only de-identified (`pipeline/notes.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

FieldType = Literal["id", "phi", "text", "date", "datetime", "number", "code", "enum", "note"]


@dataclass(frozen=True)
class TargetField:
    name: str
    type: FieldType
    required: bool = False
    aliases: tuple[str, ...] = ()
    values: tuple[str, ...] = ()  # allowed values of an enum
    description: str = ""


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    fields: tuple[TargetField, ...]
    # a record of this kind belongs to a patient through one of these fields
    links: tuple[str, ...] = ("patient_id", "admission_id")
    mergeable: bool = False  # several sources may give the same fact
    by_name: dict[str, TargetField] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})


_PID = (
    "patient_id",
    "pat_id",
    "patientno",
    "patient_no",
    "mrn",
    "brid",
    "病人id",
    "患者id",
    "病案号",
)
_ADM = ("admission_id", "adm_id", "encounterno", "visitno", "visit_id", "zyh", "住院号", "就诊号")


def _f(
    name: str, type_: FieldType, *aliases: str, required: bool = False, **kw: object
) -> TargetField:
    return TargetField(name, type_, required, (name, *aliases), **kw)  # type: ignore[arg-type]


TARGETS: MappingProxyType[str, Target] = MappingProxyType(
    {
        t.name: t
        for t in (
            Target(
                "patient",
                "the patient master: one row per hospital patient ID",
                (
                    _f("patient_id", "id", *_PID, required=True),
                    _f("name", "phi", "fullname", "patient_name", "xm", "姓名"),
                    _f("sex", "enum", "gender", "xb", "性别", values=("male", "female", "unknown")),
                    _f("birth_date", "date", "dob", "date_of_birth", "csrq", "出生日期"),
                    _f("resident_id", "phi", "id_card_no", "nationalid", "sfzh", "身份证号"),
                    _f("phone", "phi", "telephone", "mobile", "lxdh", "联系电话"),
                    _f("address", "phi", "jtdz", "home_address", "住址", "家庭住址"),
                ),
                links=("patient_id",),
            ),
            Target(
                "admission",
                "a hospital stay (or outpatient visit) of a patient",
                (
                    _f("admission_id", "id", *_ADM[1:], required=True),
                    _f("patient_id", "id", *_PID[1:], required=True),
                    _f("admit_date", "date", "admitdate", "ryrq", "入院日期", required=True),
                    _f("discharge_date", "date", "dischargedate", "cyrq", "出院日期"),
                    _f("department", "text", "dept", "ward", "ks", "科室"),
                ),
                links=("patient_id",),
            ),
            Target(
                "diagnosis",
                "a coded or written diagnosis",
                (
                    _f("diagnosis_id", "id", "diag_id", "diagnosisno", "zdid"),
                    _f("admission_id", "id", *_ADM[1:]),
                    _f("patient_id", "id", *_PID[1:]),
                    _f("icd10", "code", "icd_code", "icd10_code", "zddm", "诊断编码"),
                    _f("diagnosis_text", "text", "diag_name", "description", "zdmc", "诊断名称"),
                    _f("diagnosis_date", "date", "diag_date", "zdrq", "诊断日期"),
                    _f("diagnosis_type", "text", "diag_type", "diagtype", "zdlx"),
                ),
            ),
            Target(
                "operation",
                "a surgical or other procedure",
                (
                    _f("operation_id", "id", "op_id", "procedureno", "ssid"),
                    _f("admission_id", "id", *_ADM[1:]),
                    _f("patient_id", "id", *_PID[1:]),
                    _f(
                        "operation_date",
                        "date",
                        "op_date",
                        "proceduredate",
                        "ssrq",
                        "手术日期",
                        required=True,
                    ),
                    _f("operation_name", "text", "op_name", "procedurename", "ssmc", "手术名称"),
                    _f("procedure_code", "code", "op_code", "icd9cm3", "ssdm", "手术编码"),
                ),
            ),
            Target(
                "medication",
                "a medication order",
                (
                    _f("order_id", "id", "orderno", "yzid"),
                    _f("admission_id", "id", *_ADM[1:]),
                    _f("patient_id", "id", *_PID[1:]),
                    _f("drug_name", "text", "drug", "ypmc", "药品名称"),
                    _f("drug_code", "code", "atc", "atc_code", "ypdm"),
                    _f("dose", "number", "jl", "剂量"),
                    _f("dose_unit", "text", "doseunit", "jldw", "剂量单位"),
                    _f("start_date", "date", "startdate", "ksrq", "开始日期", required=True),
                    _f("end_date", "date", "stopdate", "enddate", "jsrq", "结束日期"),
                ),
            ),
            Target(
                "lab",
                "a laboratory result (LIS, or lab values typed into the EMR)",
                (
                    _f(
                        "lab_id",
                        "id",
                        "sample_id",
                        "specimenid",
                        "rec_id",
                        "entryno",
                        "标本号",
                        "jlid",
                    ),
                    _f("admission_id", "id", *_ADM[1:]),
                    _f("patient_id", "id", *_PID[1:]),
                    _f("item_code", "code", "testcode", "项目代码"),
                    _f("item_name", "text", "testname", "xmmc", "项目名称", required=True),
                    _f("value", "number", "result", "jg", "结果", required=True),
                    _f("unit", "text", "units", "dw", "单位"),
                    _f("reference_range", "text", "ref_range", "refrange", "参考范围"),
                    _f(
                        "result_date",
                        "datetime",
                        "report_time",
                        "report_date",
                        "resultdate",
                        "entrydate",
                        "bgrq",
                        "报告日期",
                        required=True,
                    ),
                    # 0-1, for values read by OCR (connectors/labsheets.py); none: certain
                    _f("confidence", "number", "ocr_confidence"),
                ),
                mergeable=True,
            ),
            Target(
                "imaging",
                "an imaging study and its report",
                (
                    _f("study_id", "id", "study_uid", "studyinstanceuid", "检查号"),
                    _f("admission_id", "id", *_ADM[1:]),
                    _f("patient_id", "id", *_PID[1:]),
                    _f("accession_no", "phi", "accessionnumber", "登记号"),
                    _f("modality", "text", "检查类型"),
                    _f("body_part", "text", "bodypart", "检查部位"),
                    _f("study_date", "date", "studydate", "检查日期", required=True),
                    _f("findings", "note", "检查所见"),
                    _f("conclusion", "note", "impression", "诊断意见"),
                ),
            ),
            Target(
                "note",
                "a clinical document (discharge summary, pathology report)",
                (
                    _f(
                        "note_id",
                        "id",
                        "doc_id",
                        "document_id",
                        "report_id",
                        "noteno",
                        "reportno",
                        "wsid",
                        "bgid",
                    ),
                    _f("admission_id", "id", *_ADM[1:]),
                    _f("patient_id", "id", *_PID[1:]),
                    _f("note_date", "date", "report_date", "reportdate", "bgrq"),
                    _f("text", "note", "content", "notetext", "reporttext", "nr", "内容"),
                    _f("lang", "text", "language", "note_language", "语种"),
                ),
            ),
            Target(
                "follow_up",
                "the latest follow-up of a patient: alive at a date, or died",
                (
                    _f("patient_id", "id", *_PID[1:], required=True),
                    _f("last_contact_date", "date", "lastcontact", "zhsfrq", "末次随访日期"),
                    _f(
                        "vital_status",
                        "enum",
                        "vitalstatus",
                        "zt",
                        "生存状态",
                        values=("alive", "dead"),
                    ),
                    _f("death_date", "date", "dateofdeath", "swrq", "死亡日期"),
                ),
                links=("patient_id",),
            ),
        )
    }
)


def target(name: str) -> Target:
    from shared_cdm.errors import InvalidInput

    try:
        return TARGETS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown target {name!r}; one of {', '.join(TARGETS)}", code="unknown_target"
        ) from None
