"""`mapping suggest`: propose mapping entries for tables nobody has mapped yet.

Each table's columns are profiled on a sample of rows (do the values parse as
dates, look like ICD-10 codes, name analytes, drugs or operations, hold sex or
vital-status codes, units, reference ranges, resident IDs, long text; is a
column unique?) and matched by name against every target field's aliases. The
target that explains the table best is proposed, each field with its column, a
confidence and the evidence in a YAML comment; columns nothing claimed are
listed for the operator to review. The output is YAML for the `tables:` list.
"""

from __future__ import annotations

import contextlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from edge_node.pipeline.records import SourceRow
from edge_node.pipeline.targets import TARGETS, Target, TargetField
from edge_node.pipeline.units import is_known_unit
from edge_node.pipeline.values import (
    SEX_VALUES,
    VITAL_STATUS_VALUES,
    ParseError,
    parse_datetime,
    parse_number,
    parse_range,
)
from shared_cdm.vocab import Vocabulary, alias_key, fold

SAMPLE_ROWS = 500
MAX_DISTINCT = 200  # distinct values looked up in the vocabulary per column
MIN_CONFIDENCE = 0.35
# the field whose column is a row's identity, per target
OWN_ID = {
    "patient": "patient_id",
    "admission": "admission_id",
    "diagnosis": "diagnosis_id",
    "operation": "operation_id",
    "medication": "order_id",
    "lab": "lab_id",
    "imaging": "study_id",
    "note": "note_id",
    "follow_up": "patient_id",
}
# table-name words (English, pinyin initials, Chinese) that hint at a target
TABLE_HINTS: dict[str, tuple[str, ...]] = {
    "patient": ("patient", "person", "demograph", "brxx", "hzxx", "病人", "患者"),
    "admission": ("admission", "encounter", "visit", "stay", "zyjl", "zy", "住院", "就诊"),
    "diagnosis": ("diag", "zdxx", "zd", "诊断"),
    "operation": ("operation", "oper", "surg", "procedure", "ssjl", "ss", "手术"),
    "medication": ("medication", "med", "drug", "order", "presc", "yzxx", "yz", "医嘱", "药"),
    "lab": ("lab", "lis", "exam", "test", "result", "jyjg", "jy", "检验", "化验"),
    "imaging": ("pacs", "study", "studies", "imag", "radiol", "ris", "影像", "检查"),
    "note": ("note", "summary", "report", "patholog", "document", "cyxj", "blbg", "病理", "小结"),
    "follow_up": ("follow", "survival", "death", "swsf", "sf", "随访", "死亡"),
}
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%Y%m%d",
    "%Y年%m月%d日",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y%m%d%H%M",
    "%Y%m%d%H%M%S",
    "%Y-%m-%dT%H:%M:%S",
)
_ICD10_LIKE = re.compile(r"[A-Z]\d{2}(?:\.[0-9A-Z]{1,8}|\d{0,2})")
_RESIDENT_ID = re.compile(r"\d{17}[\dX]|\d{15}")
_PHONE = re.compile(r"(?:\+?86[- ]?)?1[3-9]\d{9}|0\d{2,3}-?\d{7,8}")
_UNIT_LIKE = re.compile(r".*[A-Za-zµμ%].*")
_MODALITIES = {"CT", "MR", "MRI", "PET", "PET-CT", "PET/CT", "DX", "CR", "US", "NM", "XA", "MG"}
_MODALITIES |= {"RF", "DR", "超声", "磁共振", "X线"}


class SampleSource(Protocol):
    """What `suggest_mapping` needs of a connector."""

    def tables(self) -> list[str]: ...

    def columns(self, table: str) -> list[str]: ...

    def sample(self, table: str, n: int = ...) -> list[SourceRow]: ...


@dataclass
class Profile:
    """What a column's sampled values look like; rates are over non-empty values."""

    column: str
    rows: int
    values: list[str]
    distinct: list[str]
    filled: float = 0.0
    unique: bool = False
    date_rate: float = 0.0
    date_format: str | None = None
    date_note: str = ""
    number_rate: float = 0.0
    icd10_rate: float = 0.0
    dx_text_rate: float = 0.0
    analyte_rate: float = 0.0
    unit_rate: float = 0.0
    drug_rate: float = 0.0
    procedure_rate: float = 0.0
    range_rate: float = 0.0
    resident_id_rate: float = 0.0
    phone_rate: float = 0.0
    modality_rate: float = 0.0
    mean_length: float = 0.0
    sex_map: dict[str, str] | None = None
    sex_note: str = ""
    vital_map: dict[str, str] | None = None
    vital_note: str = ""


def _rate(values: Sequence[str], test: Callable[[str], object]) -> float:
    if not values:
        return 0.0
    hits = 0
    for value in values:
        with contextlib.suppress(ParseError, ValueError):
            hits += bool(test(value))
    return hits / len(values)


def _date_profile(profile: Profile) -> None:
    values = profile.values
    orders: set[str] = set()

    def is_date(text: str) -> bool:
        try:
            parse_datetime(text, order="dmy")
        except ParseError:
            return False
        if m := re.fullmatch(r"\s*(\d{1,2})[-/.](\d{1,2})[-/.]\d{4}.*", text):
            first, second = int(m.group(1)), int(m.group(2))
            orders.add("dmy" if first > 12 else "mdy" if second > 12 else "either")
        return True

    profile.date_rate = _rate(values, is_date)
    if profile.date_rate < 0.8:
        return
    for fmt in _DATE_FORMATS:
        if all(_strptime_ok(v, fmt) for v in values):
            profile.date_format = fmt
            break
    if orders:
        decided = orders - {"either"}
        if decided == {"dmy"}:
            profile.date_format, profile.date_note = "%d/%m/%Y", "day first (a day > 12 seen)"
        elif decided == {"mdy"}:
            profile.date_format, profile.date_note = "%m/%d/%Y", "month first (a day > 12 seen)"
        else:
            profile.date_format = "%d/%m/%Y"
            profile.date_note = "day/month order undecided in the sample: check"


def _strptime_ok(text: str, fmt: str) -> bool:
    try:
        datetime.strptime(unicodedata.normalize("NFKC", text).strip(), fmt)
    except ValueError:
        return False
    return True


def _sex_profile(profile: Profile) -> None:
    folded = {fold(v) for v in profile.distinct}
    if folded and folded <= set(SEX_VALUES) and len(folded) >= 2:
        profile.sex_map = {v: SEX_VALUES[fold(v)] for v in sorted(profile.distinct)}
        profile.sex_note = f"values {'/'.join(sorted(profile.distinct))}"
    elif {"1", "2"} <= folded <= {"0", "1", "2", "9"}:
        gb = {"1": "male", "2": "female", "0": "unknown", "9": "unknown"}
        profile.sex_map = {v: gb[v] for v in sorted(folded)}
        profile.sex_note = "codes 1/2 read as GB/T 2261.1 (1 male, 2 female): check"


def _vital_profile(profile: Profile) -> None:
    folded = {fold(v) for v in profile.distinct}
    if folded and folded <= set(VITAL_STATUS_VALUES):
        profile.vital_map = {v: VITAL_STATUS_VALUES[fold(v)] for v in sorted(profile.distinct)}
        profile.vital_note = f"values {'/'.join(sorted(profile.distinct))}"
    elif folded == {"0", "1"}:
        profile.vital_map = {"0": "alive", "1": "dead"}
        profile.vital_note = "codes 0/1 read as 0 alive, 1 dead: check"


def profile_column(column: str, rows: Sequence[SourceRow], vocab: Vocabulary) -> Profile:
    """Profile one column over the sampled rows."""
    texts = [row.values.get(column) for row in rows]
    values = [t.strip() for t in texts if t is not None and t.strip()]
    distinct = list(dict.fromkeys(values))
    profile = Profile(column, len(rows), values, distinct)
    if not rows:
        return profile
    profile.filled = len(values) / len(rows)
    profile.unique = bool(values) and len(distinct) == len(values) == len(rows)
    if not values:
        return profile
    sample = distinct[:MAX_DISTINCT]
    profile.mean_length = sum(len(v) for v in values) / len(values)
    _date_profile(profile)
    profile.number_rate = _rate(values, parse_number)
    profile.icd10_rate = _rate(values, lambda v: _ICD10_LIKE.fullmatch(fold(v)))
    profile.resident_id_rate = _rate(values, lambda v: _RESIDENT_ID.fullmatch(fold(v)))
    profile.phone_rate = _rate(values, _PHONE.fullmatch)
    profile.range_rate = _rate(values, lambda v: None not in parse_range(v))
    profile.modality_rate = _rate(values, lambda v: fold(v) in _MODALITIES)
    if profile.number_rate < 0.5 and profile.date_rate < 0.5:
        profile.dx_text_rate = _rate(sample, vocab.icd10_from_text)
        profile.analyte_rate = _rate(sample, vocab.analyte_by_alias)
        profile.unit_rate = _rate(sample, lambda v: _UNIT_LIKE.fullmatch(v) and is_known_unit(v))
        if profile.mean_length < 60:
            profile.drug_rate = _rate(sample, vocab.drug_by_name)
            profile.procedure_rate = _rate(sample, vocab.procedure_by_name)
    if len(distinct) <= 6:
        _sex_profile(profile)
        _vital_profile(profile)
    return profile


# --- scoring ----------------------------------------------------------------


@dataclass
class Evidence:
    """Why a column is proposed for a field, and how sure that is (0-1)."""

    confidence: float
    why: str


def _name_score(f: TargetField, column: str) -> tuple[float, str]:
    key = alias_key(column)
    aliases = [alias_key(a) for a in f.aliases]
    if key in aliases:
        return 0.9, f"name is {'the field' if key == aliases[0] else 'an alias'}"
    for alias in aliases:
        if len(alias) >= 4 and (alias in key or (len(key) >= 4 and key in alias)):
            return 0.45, f"name resembles {alias!r}"
    return 0.0, ""


def _pct(rate: float) -> str:
    return f"{rate:.0%}"


def _value_score(target: str, f: TargetField, p: Profile) -> tuple[float, str]:
    """How well the values fit the field, whatever the column is called.
    Value evidence alone stays below name evidence (0.9) except where the
    values are unmistakable (resident IDs, analyte names)."""
    name, kind, pct = f.name, f.type, _pct
    if kind in ("date", "datetime"):
        if p.date_rate >= 0.8:
            return 0.55 * p.date_rate, f"{pct(p.date_rate)} parse as dates"
        return 0.0, ""
    if name == "icd10" and p.icd10_rate >= 0.5:
        return 0.8 * p.icd10_rate, f"{pct(p.icd10_rate)} look like ICD-10"
    if name == "diagnosis_text" and p.dx_text_rate >= 0.2 and p.mean_length <= 40:
        return 0.5 + 0.3 * p.dx_text_rate, f"{pct(p.dx_text_rate)} read as diagnoses"
    if name == "sex" and p.sex_map:
        return 0.8, p.sex_note
    if name == "vital_status" and p.vital_map:
        return 0.7, p.vital_note
    if name == "item_name" and p.analyte_rate >= 0.3:
        return 0.5 + 0.4 * p.analyte_rate, f"{pct(p.analyte_rate)} of item names are analytes"
    if target == "lab" and name == "unit" and p.unit_rate >= 0.6:
        return 0.7 * p.unit_rate, f"{pct(p.unit_rate)} are units"
    if target == "medication" and name == "dose_unit" and p.unit_rate >= 0.6:
        return 0.4 * p.unit_rate, f"{pct(p.unit_rate)} are units"
    if name == "reference_range" and p.range_rate >= 0.6:
        return 0.7 * p.range_rate, f"{pct(p.range_rate)} are ranges"
    if name in ("value", "dose") and p.number_rate >= 0.8 and p.date_rate < 0.5:
        return 0.45 * p.number_rate, f"{pct(p.number_rate)} are numbers"
    if name == "drug_name" and p.drug_rate >= 0.3:
        return 0.5 + 0.4 * p.drug_rate, f"{pct(p.drug_rate)} name known drugs"
    if name == "operation_name" and p.procedure_rate >= 0.3:
        return 0.5 + 0.4 * p.procedure_rate, f"{pct(p.procedure_rate)} name known operations"
    if name == "resident_id" and p.resident_id_rate >= 0.8:
        return 0.85, "resident ID numbers"
    if name == "phone" and p.phone_rate >= 0.8:
        return 0.8, "phone numbers"
    if name == "modality" and p.modality_rate >= 0.8:
        return 0.8, "modality codes"
    if kind == "note" and p.mean_length >= 40:
        return 0.4, f"free text, {p.mean_length:.0f} characters on average"
    return 0.0, ""


def _evidence(target: str, f: TargetField, p: Profile) -> Evidence | None:
    name_score, name_why = _name_score(f, p.column)
    value_score, value_why = _value_score(target, f, p)
    if p.filled == 0:
        return None
    # identifiers and plain text are recognised by their name only
    if f.type in ("id", "text", "phi") and not value_score and name_score < 0.45:
        return None
    confidence = 1 - (1 - name_score) * (1 - value_score)
    if (f.type == "id" and p.mean_length > 40) or (f.type in ("id", "phi") and p.date_rate >= 0.8):
        confidence *= 0.5  # dates and prose are not identifiers
    why = "; ".join(w for w in (name_why, value_why) if w)
    if p.filled < 0.5:
        why += f"; only {p.filled:.0%} filled"
    return Evidence(round(min(confidence, 0.99), 2), why) if confidence >= MIN_CONFIDENCE else None


@dataclass
class TableSuggestion:
    """The proposal for one table: its target, key, fields and what is left."""

    table: str
    target: str
    confidence: float
    fields: dict[str, tuple[str, Evidence]] = field(default_factory=dict)  # field -> column
    key: str | None = None
    key_note: str = ""
    unmatched: list[str] = field(default_factory=list)
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    analyte_codes: dict[str, str] = field(default_factory=dict)
    default_units: dict[str, tuple[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, Profile] = field(default_factory=dict)


def _assign(target: Target, profiles: dict[str, Profile]) -> dict[str, tuple[str, Evidence]]:
    """Fields to columns, the most confident pairs first, one column per field."""
    pairs = []
    for f in target.fields:
        for p in profiles.values():
            evidence = _evidence(target.name, f, p)
            if evidence is not None:
                pairs.append((evidence.confidence, f.name, p.column, evidence))
    pairs.sort(key=lambda pair: -pair[0])
    fields: dict[str, tuple[str, Evidence]] = {}
    used: set[str] = set()
    for _, name, column, evidence in pairs:
        if name not in fields and column not in used:
            fields[name] = (column, evidence)
            used.add(column)
    return fields


def _table_hint(target: str, table: str) -> bool:
    words = [w for w in re.split(r"[^0-9a-z\u4e00-\u9fff]+", table.lower()) if w]
    return any(
        any(w.startswith(h) or (len(h) > 1 and not h.isascii() and h in w) for w in words)
        for h in TABLE_HINTS[target]
    )


# fields that make a table what it is, beyond the required ones
_CORE: dict[str, tuple[str, ...]] = {"note": ("text",)}


def _score(
    target: Target, fields: dict[str, tuple[str, Evidence]], columns: int, hint: bool
) -> float:
    """How well `target` explains the table: its core fields found, the share
    of columns it claims, and whether the table's name hints at it."""
    core = [f.name for f in target.fields if f.required] + list(_CORE.get(target.name, ()))
    found = [fields[n][1].confidence if n in fields else 0.0 for n in core]
    required_score = sum(found) / len(found) if found else 0.0
    if target.name == "diagnosis":
        required_score = max(
            (fields[n][1].confidence for n in ("icd10", "diagnosis_text") if n in fields),
            default=0.0,
        )
    if not any(n in fields for n in target.links):
        required_score *= 0.5
    explained = sum(e.confidence for _, e in fields.values()) / max(columns, 1)
    score = 0.45 * required_score + 0.45 * min(explained, 1.0) + (0.1 if hint else 0.0)
    if any(c == 0.0 for c in found):
        score *= 0.5  # a required field has no column
    return round(score, 2)


def suggest_table(
    table: str, columns: Sequence[str], rows: Sequence[SourceRow], vocab: Vocabulary
) -> TableSuggestion:
    """The best target for one table and its field assignment."""
    profiles = {c: profile_column(c, rows, vocab) for c in columns}
    ranked = []
    for target in TARGETS.values():
        fields = _assign(target, profiles)
        hint = _table_hint(target.name, table)
        ranked.append((_score(target, fields, len(columns), hint), target.name, fields))
    ranked.sort(key=lambda r: -r[0])
    score, target_name, fields = ranked[0]
    result = TableSuggestion(table, target_name, score, fields, profiles=profiles)
    result.alternatives = [(name, s) for s, name, _ in ranked[1:3] if s > 0]
    used = {column for column, _ in fields.values()}
    result.unmatched = [c for c in columns if c not in used]
    _choose_key(result, profiles)
    if target_name == "lab":
        _lab_extras(result, rows, vocab)
    return result


def _choose_key(result: TableSuggestion, profiles: dict[str, Profile]) -> None:
    own = result.fields.get(OWN_ID[result.target])
    if own is not None and profiles[own[0]].unique:
        result.key, result.key_note = own[0], f"unique in {profiles[own[0]].rows} sampled rows"
        return
    unique = [p.column for p in profiles.values() if p.unique and p.date_rate < 0.5]
    idish = [c for c in unique if re.search(r"id|no|号|key|num", c, re.IGNORECASE)]
    if unique:
        result.key = (idish or unique)[0]
        result.key_note = f"unique in {profiles[result.key].rows} sampled rows"
    elif own is not None:
        result.key, result.key_note = own[0], "NOT unique in the sample: check"
    else:
        result.key_note = "no unique column in the sample: choose one"


def _lab_extras(result: TableSuggestion, rows: Sequence[SourceRow], vocab: Vocabulary) -> None:
    """analyte_codes from item codes whose names resolve, default_units from the
    units written for each analyte, and the item names nothing resolves."""
    column_of = {name: column for name, (column, _) in result.fields.items()}
    code_col, name_col = column_of.get("item_code"), column_of.get("item_name")
    unit_col = column_of.get("unit")
    codes: dict[str, Counter[str]] = {}
    units: dict[str, Counter[str]] = {}
    unitless: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    for row in rows:
        name = (row.values.get(name_col) or "").strip() if name_col else ""
        code = (row.values.get(code_col) or "").strip() if code_col else ""
        analyte = vocab.analyte_by_alias(name) if name else None
        if analyte is None:
            if name or code:
                unknown[name or code] += 1
            continue
        if code:
            codes.setdefault(code, Counter())[analyte.code] += 1
        unit = (row.values.get(unit_col) or "").strip() if unit_col else ""
        if unit:
            units.setdefault(analyte.code, Counter())[unit] += 1
        else:
            unitless[analyte.code] += 1
    for code, found in sorted(codes.items()):
        if len(found) == 1:
            result.analyte_codes[code] = next(iter(found))
    for analyte_code in sorted(unitless):
        if analyte_code in units:
            unit, count = units[analyte_code].most_common(1)[0]
            result.default_units[analyte_code] = (unit, count)
        else:
            result.notes.append(f"{analyte_code} has no unit in any sampled row: add default_units")
    if unknown:
        names = ", ".join(n for n, _ in unknown.most_common(10))
        result.notes.append(f"item names no analyte alias matches: {names}")


# --- YAML -------------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z_\u4e00-\u9fff][\w\u4e00-\u9fff.\-/ ]*")
_YAML_WORDS = {"yes", "no", "true", "false", "on", "off", "y", "n", "null", "~"}


def _scalar(text: str) -> str:
    """`text` as a YAML scalar: bare when that reads back the same, else quoted."""
    if _BARE.fullmatch(text) and text.lower() not in _YAML_WORDS and text == text.strip():
        return text
    return json.dumps(text, ensure_ascii=False)


def _field_yaml(target: str, name: str, column: str, evidence: Evidence, p: Profile) -> str:
    """One `fields:` line: the column, or a spec with a value map or a date
    format, and the evidence as a comment."""
    extras: list[tuple[str, str | dict[str, str]]] = []
    if name == "sex" and p.sex_map:
        extras.append(("values", p.sex_map))
    elif name == "vital_status" and p.vital_map:
        extras.append(("values", p.vital_map))
    if p.date_format and TARGETS[target].by_name[name].type in ("date", "datetime"):
        extras.append(("date_format", p.date_format))
    why = evidence.why + (f"; {p.date_note}" if p.date_note and extras else "")
    comment = f"  # {evidence.confidence:.2f}" + (f": {why}" if why else "")
    if not extras:
        return f"      {name}: {_scalar(column)}{comment}"
    inner = [f"column: {_scalar(column)}"]
    for key, value in extras:
        if isinstance(value, dict):
            pairs = ", ".join(f"{_scalar(k)}: {_scalar(v)}" for k, v in value.items())
            inner.append(f"{key}: {{{pairs}}}")
        else:
            inner.append(f"{key}: {_scalar(value)}")
    return f"      {name}: {{{', '.join(inner)}}}{comment}"


def _table_yaml(source_name: str, s: TableSuggestion) -> list[str]:
    others = ", ".join(f"{name} {score:.2f}" for name, score in s.alternatives)
    lines = [
        f"  # {s.table}: target {s.target}, confidence {s.confidence:.2f}"
        + (f" (next: {others})" if others else ""),
        f"  - source: {_scalar(source_name)}",
        f"    table: {_scalar(s.table)}",
        f"    target: {s.target}",
    ]
    if s.key is not None:
        lines.append(f"    key: {_scalar(s.key)}  # {s.key_note}")
    else:
        lines.append(f"    key: CHOOSE  # {s.key_note}")
    lines.append("    fields:")
    order = [f.name for f in TARGETS[s.target].fields]
    for name in order:
        if name in s.fields:
            column, evidence = s.fields[name]
            lines.append(_field_yaml(s.target, name, column, evidence, s.profiles[column]))
    missing = [f.name for f in TARGETS[s.target].fields if f.required and f.name not in s.fields]
    if missing:
        lines.append(f"    # required but not found: {', '.join(missing)}")
    links = TARGETS[s.target].links
    if not any(n in s.fields for n in links):
        lines.append(f"    # no {' or '.join(links)} column found: records cannot be linked")
    if s.analyte_codes:
        lines.append("    analyte_codes:  # item codes whose sampled names resolve")
        lines += [f"      {_scalar(k)}: {_scalar(v)}" for k, v in s.analyte_codes.items()]
    if s.default_units:
        lines.append("    default_units:  # for rows without a unit: the unit the others give")
        lines += [
            f"      {_scalar(code)}: {_scalar(unit)}  # in {count} sampled rows"
            for code, (unit, count) in s.default_units.items()
        ]
    lines += [f"    # {note}" for note in s.notes]
    if s.unmatched:
        lines.append(f"    # unmatched columns, review: {', '.join(s.unmatched)}")
    return lines


def suggest_mapping(
    connector: SampleSource,
    source_name: str,
    tables: list[str] | None,
    vocab: Vocabulary,
    *,
    sample_rows: int = SAMPLE_ROWS,
) -> str:
    """YAML text proposing `tables:` entries for `tables` of one source (all
    its tables when None), with a comment per field giving the evidence and a
    confidence, and the columns left unmatched."""
    names = tables if tables is not None else connector.tables()
    lines = [
        f"# Proposed for source {source_name!r} from up to {sample_rows} sampled rows per table.",
        "# Confidences (0-1) are heuristics: review every line, then add these entries",
        "# under `tables:` of mapping.yaml.",
        "tables:",
    ]
    for table in names:
        columns = connector.columns(table)
        rows = connector.sample(table, sample_rows)
        lines += _table_yaml(source_name, suggest_table(table, columns, rows, vocab))
    if not names:
        lines.append("  []  # the source has no tables")
    return "\n".join(lines) + "\n"
