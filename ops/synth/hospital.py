"""Write one synthetic hospital: `emr.db`, `lis/`, `pacs/`, `lab_sheets/` and `truth/`.

Patients are simulated and written in batches, so memory depends on the batch
size and not on the number of patients. Each patient draws from its own random
generator, seeded by (seed, variant, patient index), so the same seed and
variant always give byte-identical files; the identifiers planted in free text
draw from a second one per patient (`ops.synth.phi`), so they change no
clinical content.

truth/: patients.jsonl (clinical truth), labs.csv, problems.jsonl (injected
data problems), phi.jsonl (one line per identifier planted in a free-text
field, with its offsets), identities.jsonl (every patient's structured
identifiers), staff.jsonl (the clinicians who sign), lab_sheets.jsonl and
generation.json.
"""

from __future__ import annotations

import csv
import gc
import json
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from ops.synth.cohort import SURVIVAL_MODEL, simulate_patient
from ops.synth.mappings import mapping_text
from ops.synth.phi import PHI_TYPES, Staff, name_forms
from ops.synth.records import PROBLEM_RATES, IdCounter, PatientRecords, RecordBuilder, Row
from ops.synth.sheets import SHEETS_PER_HOSPITAL, LabSheet, sheet_for, write_sheets
from ops.synth.variants import EMR_TABLES, HospitalVariant
from shared_cdm.errors import Conflict, InvalidInput
from shared_cdm.vocab import Vocabulary, load_default

BATCH_SIZE = 1000
TRUTH_LAB_COLUMNS = (
    "lab_id",
    "patient_id",
    "admission_id",
    "analyte",
    "standard_value",
    "written_value",
    "written_unit",
    "problem",
)
_REAL_FIELDS = {"dose"}


@dataclass
class HospitalSummary:
    variant: str
    patients: int
    cancer_patients: int = 0
    emr_rows: Counter[str] = field(default_factory=Counter)
    lis_rows: int = 0
    pacs_rows: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    files: dict[str, int] = field(default_factory=dict)  # relative path -> bytes
    seconds: float = 0.0


def _patient_rng(seed: int, variant: str, index: int) -> random.Random:
    return random.Random(f"oncofed-synth/{seed}/{variant}/{index}")


class _EmrWriter:
    def __init__(self, path: Path, variant: HospitalVariant) -> None:
        self.variant = variant
        self.db = sqlite3.connect(path)
        for logical in EMR_TABLES:
            table = variant.emr[logical]
            cols = ", ".join(
                f'"{table.columns[f]}" {"REAL" if f in _REAL_FIELDS else "TEXT"}'
                for f in EMR_TABLES[logical]
            )
            self.db.execute(f'CREATE TABLE "{table.name}" ({cols})')

    def write(self, rows: dict[str, list[Row]]) -> None:
        for logical, fields in EMR_TABLES.items():
            batch = rows.get(logical)
            if not batch:
                continue
            table = self.variant.emr[logical]
            names = ", ".join(f'"{table.columns[f]}"' for f in fields)
            marks = ", ".join("?" for _ in fields)
            self.db.executemany(
                f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})',
                map(itemgetter(*fields), batch),  # every row has every field
            )
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def _csv(stack: ExitStack, path: Path, encoding: str, header: tuple[str, ...]) -> Any:
    handle: IO[str] = stack.enter_context(path.open("w", encoding=encoding, newline=""))
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(header)
    return writer


def _jsonl(stack: ExitStack, path: Path) -> IO[str]:
    handle: IO[str] = stack.enter_context(path.open("w", encoding="utf-8", newline="\n"))
    return handle


def _analyte_names(vocab: Vocabulary) -> dict[str, tuple[str, str]]:
    names: dict[str, tuple[str, str]] = {}
    for analyte in vocab.analytes:
        names[analyte.code] = (analyte.name_zh, analyte.name_en)
    return names


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise Conflict(f"{out} is not empty; give a new or empty folder", code="out_not_empty")
    for sub in ("lis", "pacs", "truth"):
        (out / sub).mkdir(parents=True, exist_ok=True)


@contextmanager
def _no_cycle_collector() -> Iterator[None]:
    """Generation makes no reference cycles, so reference counting frees all
    it makes; the cycle collector would only walk each batch's millions of
    live objects again and again (a fifth of the run time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_hospital(
    out: Path,
    *,
    patients: int,
    seed: int,
    variant: HospitalVariant,
    vocab: Vocabulary | None = None,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
    scans: bool = False,
) -> HospitalSummary:
    """Generate `patients` patients of `variant` into `out` (new or empty); with
    `scans`, mapping.yaml reads the scanned lab sheets too (by OCR)."""
    if patients < 1:
        raise InvalidInput("--patients must be at least 1", code="invalid_patient_count")
    started = time.perf_counter()
    _prepare(out)
    vocab = vocab or load_default()
    names = _analyte_names(vocab)
    builder = RecordBuilder(variant, IdCounter(), names, seed=seed)
    sheets: list[LabSheet] = []
    summary = HospitalSummary(variant.code, patients)
    emr = _EmrWriter(out / "emr.db", variant)
    with ExitStack() as stack:
        stack.callback(emr.close)
        stack.enter_context(_no_cycle_collector())
        lis = _csv(
            stack, out / "lis" / "lab_results.csv", variant.lis_encoding, variant.lis_columns
        )
        pacs = _csv(stack, out / "pacs" / "studies.csv", "utf-8", variant.pacs_columns)
        truth_labs = _csv(stack, out / "truth" / "labs.csv", "utf-8", TRUTH_LAB_COLUMNS)
        truth = _jsonl(stack, out / "truth" / "patients.jsonl")
        problems = _jsonl(stack, out / "truth" / "problems.jsonl")
        phi_spans = _jsonl(stack, out / "truth" / "phi.jsonl")
        identities = _jsonl(stack, out / "truth" / "identities.jsonl")
        for start in range(0, patients, batch_size):
            batch: list[PatientRecords] = []
            for index in range(start, min(start + batch_size, patients)):
                rng = _patient_rng(seed, variant.code, index)
                batch.append(builder.build(rng, simulate_patient(rng, index, vocab)))
            emr.write(_merge_emr(batch))
            for rec in batch:
                lis.writerows(map(_LIS_ROW, rec.lis))
                pacs.writerows(map(_PACS_ROW, rec.pacs))
                truth_labs.writerows(map(_TRUTH_LAB_ROW, rec.truth_labs))
                truth.write(json.dumps(rec.truth, ensure_ascii=False) + "\n")
                problems.writelines(
                    json.dumps(pr, ensure_ascii=False) + "\n" for pr in rec.problems
                )
                phi_spans.writelines(rec.phi)
                identities.write(json.dumps(rec.identity, ensure_ascii=False) + "\n")
                _count(summary, rec)
                if len(sheets) < SHEETS_PER_HOSPITAL and rec.truth["site"] == "lung":
                    sheet = sheet_for(
                        rec,
                        names,
                        len(sheets) + 1,
                        variant=variant,
                        staff=builder.staff,
                        seed=seed,
                    )
                    sheets += [sheet] if sheet else []
            if on_batch is not None:
                on_batch(len(batch))
    write_sheets(out, sheets, variant.code, seed)
    _write_staff(out, builder.staff)
    _write_model(out, seed, variant, patients)
    # the site mapping an operator of this hospital would write (docs/edge-pipeline.md)
    (out / "mapping.yaml").write_text(mapping_text(variant.code, scans=scans), encoding="utf-8")
    summary.files = {
        str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()
    }
    summary.seconds = time.perf_counter() - started
    return summary


_LIS_ORDER = (
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
_PACS_ORDER = (
    "study_id",
    "patient_id",
    "accession_no",
    "modality",
    "body_part",
    "study_date",
    "findings",
    "conclusion",
)


_LIS_ROW = itemgetter(*_LIS_ORDER)
_PACS_ROW = itemgetter(*_PACS_ORDER)
_TRUTH_LAB_ROW = itemgetter(*TRUTH_LAB_COLUMNS)


def _merge_emr(batch: list[PatientRecords]) -> dict[str, list[Row]]:
    merged: dict[str, list[Row]] = {}
    for rec in batch:
        for table, rows in rec.emr.items():
            merged.setdefault(table, []).extend(rows)
    return merged


def _count(summary: HospitalSummary, rec: PatientRecords) -> None:
    summary.cancer_patients += int(rec.truth["has_cancer"])
    for table, rows in rec.emr.items():
        summary.emr_rows[table] += len(rows)
    summary.lis_rows += len(rec.lis)
    summary.pacs_rows += len(rec.pacs)
    summary.problems.update(pr["kind"] for pr in rec.problems)


def _write_staff(out: Path, staff: Staff) -> None:
    """The hospital's clinicians: every name a document may sign with."""
    lines = [
        json.dumps(
            {"name": c.name.full, "title": c.title, "name_forms": name_forms(c.name)},
            ensure_ascii=False,
        )
        + "\n"
        for c in staff.everyone()
    ]
    (out / "truth" / "staff.jsonl").write_text("".join(lines), encoding="utf-8")


def _write_model(out: Path, seed: int, variant: HospitalVariant, patients: int) -> None:
    """What a reader of the truth needs to know about how it was made."""
    model = {
        "seed": seed,
        "variant": variant.code,
        "hospital_name": variant.hospital_name,
        "patients": patients,
        "survival_model": {
            "form": "Weibull proportional hazards, t in years",
            "coefficients": SURVIVAL_MODEL,
        },
        "problem_rates": PROBLEM_RATES,
        "emr_tables": {k: {"table": t.name, "columns": t.columns} for k, t in variant.emr.items()},
        "lis": {
            "file": "lis/lab_results.csv",
            "encoding": variant.lis_encoding,
            "columns": dict(zip(_LIS_ORDER, variant.lis_columns, strict=True)),
            "units": variant.units,
        },
        "pacs": {
            "file": "pacs/studies.csv",
            "columns": dict(zip(_PACS_ORDER, variant.pacs_columns, strict=True)),
        },
        "date_style": variant.date_style,
        "sex_codes": list(variant.sex_codes),
        "icd_style": variant.icd_style,
        "language": variant.language,
        "phi": {
            "file": "truth/phi.jsonl",
            "fields": {
                "emr.discharge_summary": "text",
                "emr.pathology_report": "text",
                "pacs.studies": "findings, conclusion",
            },
            "offsets": "Python string (Unicode code point) indices into the field, end exclusive",
            "types": list(PHI_TYPES),
            "identities": "truth/identities.jsonl",
            "staff": "truth/staff.jsonl",
        },
    }
    text = json.dumps(model, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    (out / "truth" / "generation.json").write_text(text, encoding="utf-8")
