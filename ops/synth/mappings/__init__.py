"""Site mappings (`mapping.yaml`) for the three synthetic hospitals, as a site
operator would write them; copy one next to a generated hospital's `emr.db`."""

from __future__ import annotations

from importlib.resources import files

from shared_cdm.errors import InvalidInput

VARIANT_CODES = ("A", "B", "C")


# -- scanned lab sheets (opt-in: OCR costs ~2 s a sheet) ----------------------
# (patient, admission, report date columns of lab_sheets/index.csv, date format)
_SCAN_INDEX = {
    "A": ("pat_id", "adm_id", "report_date", "%Y-%m-%d"),
    "B": ("MRN", "VisitNo", "ReportDate", "%d/%m/%Y"),
    "C": ("病人ID", "住院号", "报告日期", "%Y年%m月%d日"),
}


def _with_scans(text: str, code: str) -> str:
    """`text` with the scanned sheets as a source (`kind: lab_sheets`) and a table."""
    patient, admission, reported, date_format = _SCAN_INDEX[code]
    source = "  scans: {kind: lab_sheets, index: lab_sheets/index.csv, folder: lab_sheets}\n"
    head, sep, tables = text.partition("tables:\n")
    table = (
        "  - source: scans\n"
        "    table: lab_sheets\n"
        "    target: lab\n"
        "    key: sheet_file  # rows are keyed <file>#<line> whatever this names\n"
        "    fields:\n"
        f"      patient_id: {patient}\n"
        f"      admission_id: {admission}\n"
        f'      result_date: {{column: {reported}, date_format: "{date_format}"}}\n'
    )
    return head + source + sep + tables.rstrip("\n") + "\n" + table


def mapping_text(variant_code: str, *, scans: bool = False) -> str:
    """The mapping YAML for hospital variant A, B or C; with `scans`, the scanned
    lab sheets (`lab_sheets/`, read by OCR) are a lab source too."""
    code = variant_code.strip().upper()
    if code not in VARIANT_CODES:
        raise InvalidInput(
            f"unknown hospital variant {variant_code!r}; choose one of A, B, C",
            code="invalid_variant",
        )
    text = (files(__name__) / f"{code}.yaml").read_text(encoding="utf-8")
    return _with_scans(text, code) if scans else text
