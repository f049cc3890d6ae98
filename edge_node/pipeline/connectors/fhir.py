"""FHIR R4 resources from Bundle JSON files and NDJSON files, flattened to target-named rows.

One table per resource type present. Each resource is validated on its own
(fhir.resources R4B models: the R4 resources read here are unchanged in R4B) so
one bad resource is rejected and the rest loads. Rows are flattened from the
JSON as written (dates and numbers keep their text). A reference resolves to
the patient ID (or admission ID) of the Patient (Encounter) it points to when
that resource is in the same folder, else to the reference's id.

What cannot be tied to a resource type (a file or NDJSON line that is not JSON,
an unknown resourceType) is rejected in the read of every table, unless an
NDJSON file is named after its type (`Observation.ndjson`, `Observation-2.ndjson`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from edge_node.pipeline.connectors._files import (
    FileStamp,
    Item,
    Unit,
    list_files,
    read_files,
    read_files_where,
)
from edge_node.pipeline.connectors.base import SourceMissing, first_rows
from edge_node.pipeline.records import RawReject, SourceBatch, SourceRow

SUFFIXES = (".json", ".ndjson")
_RAW_LIMIT = 1 << 20  # characters of a broken file kept in the quarantine
_ANY = "*"  # a problem no resource type can be given

Json = dict[str, Any]

COLUMNS: dict[str, tuple[str, ...]] = {
    "Patient": (
        "patient_id",
        "name",
        "sex",
        "birth_date",
        "phone",
        "address",
        "resident_id",
        "deceased",
        "death_date",
        "resource_id",
    ),
    "Encounter": (
        "admission_id",
        "patient_id",
        "admit_date",
        "discharge_date",
        "department",
        "encounter_class",
        "resource_id",
    ),
    "Condition": (
        "diagnosis_id",
        "patient_id",
        "admission_id",
        "icd10",
        "diagnosis_text",
        "diagnosis_date",
        "diagnosis_type",
        "resource_id",
    ),
    "Procedure": (
        "operation_id",
        "patient_id",
        "admission_id",
        "operation_date",
        "operation_name",
        "procedure_code",
        "resource_id",
    ),
    "MedicationRequest": (
        "order_id",
        "patient_id",
        "admission_id",
        "drug_name",
        "drug_code",
        "dose",
        "dose_unit",
        "start_date",
        "end_date",
        "resource_id",
    ),
    "Observation": (
        "lab_id",
        "patient_id",
        "admission_id",
        "item_code",
        "item_name",
        "value",
        "unit",
        "reference_range",
        "result_date",
        "abnormal_flag",
        "resource_id",
    ),
}

_MRN_TYPES = {"MR", "MRN", "PI", "PT"}
_MRN_SYSTEMS = ("mrn", "medical-record", "medicalrecord", "patient-id", "patientid")
_NATIONAL_TYPES = {"NI", "SS", "SB", "CZ", "NH", "NIIP"}
_NATIONAL_SYSTEMS = (
    "national",
    "resident",
    "idcard",
    "id-card",
    "citizen",
    "sfz",
    "shenfen",
    "2.16.156.10011.1.3",  # China: resident identity card number
)
_VISIT_TYPES = {"VN", "AN", "VISIT"}
_VISIT_SYSTEMS = ("visit", "encounter", "admission", "inpatient", "zyh")
_ICD10 = ("icd-10", "icd10", "2.16.840.1.113883.6.3", "2.16.840.1.113883.6.90")
_ICD9 = ("icd-9", "icd9", "2.16.840.1.113883.6.104")
_ATC = ("atc", "2.16.840.1.113883.6.73")
_LOINC = ("loinc", "2.16.840.1.113883.6.1")
_CJK = re.compile("[\u3400-\u9fff\uf900-\ufaff]")


@lru_cache(maxsize=512)
def _model(resource_type: str) -> Any:
    """The R4B model class of a resource type, or None if there is no such type."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (ValueError, AttributeError, ImportError):
        return None


def _is_type(name: object) -> bool:
    return isinstance(name, str) and name[:1].isupper() and _model(name) is not None


# -- reading JSON as written ---------------------------------------------------


def _s(value: Any) -> str | None:
    """A JSON primitive as text ('' is None)."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value) or None


def _d(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _first(value: Any) -> Json:
    return _d(value[0]) if isinstance(value, list) and value else _d(value)


def _list(value: Any) -> list[Json]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _has(text: Any, markers: tuple[str, ...]) -> bool:
    low = str(text or "").lower()
    return any(m in low for m in markers)


def _coding(cc: Any, systems: tuple[str, ...] = ()) -> Json:
    """The first coding of a CodeableConcept whose system names one of
    `systems` (any coding when none is given)."""
    codings = _list(_d(cc).get("coding"))
    if systems:
        return next((c for c in codings if _has(c.get("system"), systems)), {})
    return codings[0] if codings else {}


def _cc_text(cc: Any, preferred: Json | None = None) -> str | None:
    """A CodeableConcept's text, else the display of `preferred`, else any display."""
    cc = _d(cc)
    if text := _s(cc.get("text")):
        return text
    for c in [preferred or {}, *_list(cc.get("coding"))]:
        if display := _s(c.get("display")):
            return display
    return None


def _type_codes(ident: Json) -> set[str]:
    codes = {str(c.get("code", "")).upper() for c in _list(_d(ident.get("type")).get("coding"))}
    return codes | {str(_d(ident.get("type")).get("text", "")).upper()}


def _is_national(ident: Json) -> bool:
    codes = _type_codes(ident)
    return (
        bool(codes & _NATIONAL_TYPES)
        or any(c.startswith("NN") for c in codes)
        or (_has(ident.get("system"), _NATIONAL_SYSTEMS))
    )


def _identifier(res: Json, types: set[str], systems: tuple[str, ...]) -> str | None:
    """The value of the identifier of the given kind, else of the first one
    that is not a national ID, else the resource id."""
    idents = [i for i in _list(res.get("identifier")) if _s(i.get("value"))]
    own = [i for i in idents if not _is_national(i)]
    for i in own:
        if _type_codes(i) & types or _has(i.get("system"), systems):
            return _s(i.get("value"))
    if own:
        return _s(own[0].get("value"))
    return _s(res.get("id"))


def _date(res: Json, *names: str) -> str | None:
    """The first of `names` present; `x.start` / `x.end` reach into a Period."""
    for name in names:
        head, _, part = name.partition(".")
        value = res.get(head)
        if part:
            value = _d(value).get(part)
        if text := _s(value):
            return text
    return None


def _quantity(q: Any) -> tuple[str | None, str | None]:
    q = _d(q)
    value = _s(q.get("value"))
    if value is not None and (comparator := _s(q.get("comparator"))):
        value = comparator + value
    return value, _s(q.get("unit")) or _s(q.get("code"))


def _name(res: Json) -> str | None:
    names = _list(res.get("name"))
    n = next((x for x in names if x.get("use") == "official"), names[0] if names else {})
    if text := _s(n.get("text")):
        return text
    family = _s(n.get("family")) or ""
    given = [g for g in (_s(x) for x in n.get("given") or []) if g]
    if _CJK.search(family + "".join(given)):
        return family + "".join(given) or None
    return " ".join([*given, family]).strip() or None


def _phone(res: Json) -> str | None:
    phones = [t for t in _list(res.get("telecom")) if t.get("system") == "phone"]
    best = next((t for t in phones if t.get("use") == "mobile"), phones[0] if phones else {})
    return _s(best.get("value"))


def _address(res: Json) -> str | None:
    addrs = _list(res.get("address"))
    a = next((x for x in addrs if x.get("use") == "home"), addrs[0] if addrs else {})
    if text := _s(a.get("text")):
        return text
    lines = [x for x in (_s(v) for v in a.get("line") or []) if x]
    parts = [_s(a.get(k)) for k in ("state", "city", "district")]
    if _CJK.search("".join([*lines, *(p or "" for p in parts)])):
        cjk = [p for p in parts if p]
        # a municipality is both province and city: 北京市北京市
        cjk = [p for i, p in enumerate(cjk) if not i or p != cjk[i - 1]]
        return "".join([*cjk, *lines]) or None
    tail = [_s(a.get(k)) for k in ("city", "district", "state", "postalCode", "country")]
    return ", ".join(x for x in [*lines, *tail] if x) or None


def _range(res: Json) -> str | None:
    r = _first(res.get("referenceRange"))
    if text := _s(r.get("text")):
        return text
    low, high = _s(_d(r.get("low")).get("value")), _s(_d(r.get("high")).get("value"))
    if low and high:
        return f"{low}-{high}"
    if low:
        return f">={low}"
    return f"<={high}" if high else None


# -- flattening ----------------------------------------------------------------

Resolve = Callable[[Any, str], str | None]


def _patient(res: Json, resolve: Resolve) -> dict[str, str | None]:
    national = next((i for i in _list(res.get("identifier")) if _is_national(i)), {})
    return {
        "patient_id": _identifier(res, _MRN_TYPES, _MRN_SYSTEMS),
        "name": _name(res),
        "sex": _s(res.get("gender")),
        "birth_date": _s(res.get("birthDate")),
        "phone": _phone(res),
        "address": _address(res),
        "resident_id": _s(national.get("value")),
        "deceased": _s(res.get("deceasedBoolean"))
        or ("true" if "deceasedDateTime" in res else None),
        "death_date": _s(res.get("deceasedDateTime")),
    }


def _encounter(res: Json, resolve: Resolve) -> dict[str, str | None]:
    department = (
        _cc_text(res.get("serviceType"))
        or _s(_d(_first(res.get("location")).get("location")).get("display"))
        or _s(_d(res.get("serviceProvider")).get("display"))
    )
    return {
        "admission_id": _identifier(res, _VISIT_TYPES, _VISIT_SYSTEMS),
        "patient_id": resolve(res.get("subject"), "Patient"),
        "admit_date": _date(res, "period.start"),
        "discharge_date": _date(res, "period.end"),
        "department": department,
        "encounter_class": _s(_d(res.get("class")).get("code")),
    }


def _condition(res: Json, resolve: Resolve) -> dict[str, str | None]:
    icd = _coding(res.get("code"), _ICD10)
    category = _first(res.get("category"))
    return {
        "diagnosis_id": _identifier(res, set(), ()),
        "patient_id": resolve(res.get("subject"), "Patient"),
        "admission_id": resolve(res.get("encounter"), "Encounter"),
        "icd10": _s(icd.get("code")),
        "diagnosis_text": _cc_text(res.get("code"), icd),
        "diagnosis_date": _date(res, "onsetDateTime", "onsetPeriod.start", "recordedDate"),
        "diagnosis_type": _cc_text(category) or _s(_coding(category).get("code")),
    }


def _procedure(res: Json, resolve: Resolve) -> dict[str, str | None]:
    code = _coding(res.get("code"), _ICD9) or _coding(res.get("code"))
    return {
        "operation_id": _identifier(res, set(), ()),
        "patient_id": resolve(res.get("subject"), "Patient"),
        "admission_id": resolve(res.get("encounter"), "Encounter"),
        "operation_date": _date(res, "performedDateTime", "performedPeriod.start"),
        "operation_name": _cc_text(res.get("code"), code),
        "procedure_code": _s(code.get("code")),
    }


def _medication(res: Json, resolve: Resolve) -> dict[str, str | None]:
    drug = _d(res.get("medicationCodeableConcept"))
    ref = _d(res.get("medicationReference"))
    name = None
    if not drug and str(ref.get("reference", "")).startswith("#"):  # a contained Medication
        med = next(
            (c for c in _list(res.get("contained")) if f"#{c.get('id')}" == ref["reference"]), {}
        )
        drug = _d(med.get("code"))
    atc = _coding(drug, _ATC)
    name = _cc_text(drug, atc) or _s(ref.get("display"))
    dosage = _first(res.get("dosageInstruction"))
    dose, dose_unit = _quantity(_first(dosage.get("doseAndRate")).get("doseQuantity"))
    bounds = _d(_d(_d(dosage.get("timing")).get("repeat")).get("boundsPeriod"))
    validity = _d(_d(res.get("dispenseRequest")).get("validityPeriod"))
    return {
        "order_id": _identifier(res, set(), ()),
        "patient_id": resolve(res.get("subject"), "Patient"),
        "admission_id": resolve(res.get("encounter"), "Encounter"),
        "drug_name": name,
        "drug_code": _s(atc.get("code")),
        "dose": dose,
        "dose_unit": dose_unit,
        "start_date": _s(bounds.get("start")) or _s(res.get("authoredOn")),
        "end_date": _s(bounds.get("end")) or _s(validity.get("end")),
    }


def _observation(res: Json, resolve: Resolve) -> dict[str, str | None]:
    code = _coding(res.get("code"), _LOINC) or _coding(res.get("code"))
    value, unit = _quantity(res.get("valueQuantity"))
    if value is None:
        value = (
            _s(res.get("valueString"))
            or _s(res.get("valueInteger"))
            or _cc_text(res.get("valueCodeableConcept"))
            or _s(res.get("valueBoolean"))
        )
    return {
        "lab_id": _identifier(res, set(), ()),
        "patient_id": resolve(res.get("subject"), "Patient"),
        "admission_id": resolve(res.get("encounter"), "Encounter"),
        "item_code": _s(code.get("code")),
        "item_name": _cc_text(res.get("code"), code),
        "value": value,
        "unit": unit,
        "reference_range": _range(res),
        "result_date": _date(
            res, "effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued"
        ),
        "abnormal_flag": _s(_coding(_first(res.get("interpretation"))).get("code")),
    }


def _generic(res: Json, resolve: Resolve) -> dict[str, str | None]:
    """Other resource types: their top-level primitives, and the patient and
    encounter they refer to."""
    row = {k: _s(v) for k, v in res.items() if k != "resourceType" and _s(v) is not None}
    row["patient_id"] = resolve(res.get("subject") or res.get("patient"), "Patient")
    row["admission_id"] = resolve(res.get("encounter"), "Encounter")
    return row


_FLATTEN: dict[str, Callable[[Json, Resolve], dict[str, str | None]]] = {
    "Patient": _patient,
    "Encounter": _encounter,
    "Condition": _condition,
    "Procedure": _procedure,
    "MedicationRequest": _medication,
    "Observation": _observation,
}


# -- files ---------------------------------------------------------------------


@dataclass
class _Entry:
    """One resource of a file, or what could not be read as one."""

    where: str  # file and position, for messages
    resource: Json | None = None
    full_url: str | None = None
    problem: str | None = None  # why it is not a resource
    raw: str = ""
    table: str = _ANY  # the table a problem belongs to


@dataclass
class _Scan:
    """What a file holds, for `tables()` and reference resolution."""

    types: set[str] = field(default_factory=set)
    refs: dict[str, str] = field(default_factory=dict)


def _type_of_file(path: Path) -> str:
    """`Observation` for Observation.ndjson or Observation-2.ndjson (bulk export)."""
    stem = re.split(r"[-_.]", path.stem, maxsplit=1)[0]
    return stem if _is_type(stem) else _ANY


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def _entries(stamp: FileStamp) -> Iterator[_Entry]:
    path = stamp.path
    try:
        if path.suffix.lower() == ".ndjson":
            yield from _ndjson(stamp)
            return
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return  # removed since listing
    except UnicodeDecodeError as exc:
        raw = path.read_bytes()[:_RAW_LIMIT].decode("utf-8", "backslashreplace")
        yield _Entry(stamp.name, problem=f"not UTF-8 text: {exc}", raw=raw)
        return
    try:
        data = _loads(text)
    except ValueError as exc:
        yield _Entry(stamp.name, problem=f"not JSON: {exc}", raw=text[:_RAW_LIMIT])
        return
    yield from _resources(data, stamp.name, stamp.name)


def _ndjson(stamp: FileStamp) -> Iterator[_Entry]:
    table = _type_of_file(stamp.path)
    with stamp.path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            where = f"{stamp.name} line {n}"
            if not raw.strip():
                continue
            try:
                data = _loads(raw.decode("utf-8-sig"))
            except (ValueError, UnicodeDecodeError) as exc:
                text = raw.decode("utf-8", "backslashreplace").rstrip("\r\n")
                yield _Entry(where, problem=f"not JSON: {exc}", raw=text, table=table)
                continue
            yield from _resources(data, where, f"{stamp.name}#{n}")


def _resources(data: Any, where: str, pos: str) -> Iterator[_Entry]:
    """The resources of a parsed JSON document (a resource, a Bundle, a list)."""
    if isinstance(data, list):
        for i, item in enumerate(data, start=1):
            yield from _resources(item, f"{where} item {i}", f"{pos}.{i}")
        return
    if isinstance(data, dict) and data.get("resourceType") == "Bundle":
        for i, entry in enumerate(_list(data.get("entry")), start=1):
            res = entry.get("resource")
            if isinstance(res, dict) and _is_type(res.get("resourceType")):
                full_url = _s(entry.get("fullUrl"))
                yield _Entry(f"{where} entry {i}", res, full_url)
            else:
                yield _Entry(
                    f"{where} entry {i}",
                    problem="an entry without a known resourceType",
                    raw=json.dumps(entry, ensure_ascii=False, default=str),
                )
        return
    if isinstance(data, dict) and _is_type(data.get("resourceType")):
        yield _Entry(where, data)
        return
    yield _Entry(
        where,
        problem="not a FHIR resource or Bundle (no known resourceType)",
        raw=json.dumps(data, ensure_ascii=False, default=str)[:_RAW_LIMIT],
    )


def _scan(stamp: FileStamp) -> _Scan:
    scan = _Scan()
    for entry in _entries(stamp):
        if entry.resource is None:
            scan.types.add(entry.table)
            continue
        res = entry.resource
        rt = str(res["resourceType"])
        scan.types.add(rt)
        if rt in ("Patient", "Encounter"):
            ident = (
                _identifier(res, _MRN_TYPES, _MRN_SYSTEMS)
                if rt == "Patient"
                else _identifier(res, _VISIT_TYPES, _VISIT_SYSTEMS)
            )
            if ident is None:
                continue
            if res_id := _s(res.get("id")):
                scan.refs[f"{rt}/{res_id}"] = ident
            if entry.full_url:
                scan.refs[entry.full_url] = ident
    return scan


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            parts = [
                f"{'.'.join(str(x) for x in e.get('loc', ())) or '(resource)'}: {e.get('msg')}"
                for e in errors()[:3]
            ]
            return "; ".join(parts)
        except (TypeError, AttributeError):
            pass
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class FhirConnector:
    """A Bundle/NDJSON file, a folder of them, or a glob."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._scans: dict[tuple[str, int, int], _Scan] = {}

    def _files(self) -> list[FileStamp]:
        return list_files(self.name, self.path, SUFFIXES)

    def _scan(self, stamp: FileStamp) -> _Scan:
        k = (str(stamp.path), stamp.size, stamp.mtime_ns)
        if k not in self._scans:
            self._scans[k] = _scan(stamp)
        return self._scans[k]

    def tables(self) -> list[str]:
        types: set[str] = set()
        for stamp in self._files():
            types |= self._scan(stamp).types
        return sorted(types - {_ANY})

    def _check(self, table: str, files: list[FileStamp]) -> None:
        if not any(table in self._scan(s).types for s in files):
            raise SourceMissing(self.name, table, f"{table} resources in {self.path}")

    def columns(self, table: str) -> list[str]:
        files = self._files()
        self._check(table, files)
        if table in COLUMNS:
            return list(COLUMNS[table])
        names: dict[str, None] = {}
        for row in self.sample(table, 200):
            names.update(dict.fromkeys(row.values))
        return list(names)

    def _resolver(self, files: list[FileStamp]) -> Resolve:
        refs: dict[str, str] = {}
        for stamp in files:
            refs.update(self._scan(stamp).refs)

        def resolve(ref: Any, kind: str) -> str | None:
            ref = _d(ref)
            target = _s(ref.get("reference"))
            if target is None:
                return _s(_d(ref.get("identifier")).get("value"))
            if target in refs:
                return refs[target]
            parts = target.split("/_history/")[0].rstrip("/").split("/")
            if len(parts) >= 2 and f"{parts[-2]}/{parts[-1]}" in refs:
                return refs[f"{parts[-2]}/{parts[-1]}"]
            return parts[-1].rsplit(":", 1)[-1] or None

        return resolve

    def _units(
        self, table: str, key: str | None, resolve: Resolve, stamp: FileStamp
    ) -> Iterator[Unit]:
        scan = self._scan(stamp)
        if table not in scan.types and _ANY not in scan.types:
            return  # nothing for this table in this file
        for entry in _entries(stamp):
            yield partial(self._items, table, key, resolve, entry)

    def _items(self, table: str, key: str | None, resolve: Resolve, entry: _Entry) -> list[Item]:
        res = entry.resource
        if res is None:
            if entry.table not in (table, _ANY):
                return []
            return [
                RawReject(entry.where, "invalid_json", f"{entry.where}: {entry.problem}", entry.raw)
            ]
        rt = res["resourceType"]
        if rt != table:
            return []
        res_id = _s(res.get("id"))
        row_key = f"{rt}/{res_id}" if res_id else entry.full_url or entry.where
        try:
            _model(rt).model_validate(res)
        except Exception as exc:  # pydantic's errors and the models' own
            raw = json.dumps(res, ensure_ascii=False, default=str)
            return [RawReject(row_key, "invalid_fhir", f"{entry.where}: {_reason(exc)}", raw)]
        values = _FLATTEN.get(rt, _generic)(res, resolve)
        values["resource_id"] = res_id
        if key is not None and values.get(key):
            row_key = str(values[key])
        return [SourceRow(row_key, values)]

    def read(
        self,
        table: str,
        *,
        key: str | None,
        watermark: str | None,
        batch_size: int = 5000,
    ) -> Iterator[SourceBatch]:
        files = self._files()
        self._check(table, files)
        units = partial(self._units, table, key, self._resolver(files))
        return read_files(files, watermark, units, batch_size)

    def read_where(
        self,
        table: str,
        column: str,
        values: Collection[str],
        *,
        batch_size: int = 5000,
        key: str | None = None,
    ) -> Iterator[SourceBatch]:
        files = self._files()
        self._check(table, files)
        units = partial(self._units, table, key, self._resolver(files))
        return read_files_where(files, units, column, {str(v) for v in values}, batch_size)

    def sample(self, table: str, n: int = 1000) -> list[SourceRow]:
        return first_rows(self.read(table, key=None, watermark=None, batch_size=n), n)

    def close(self) -> None:
        self._scans.clear()
