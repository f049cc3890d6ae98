"""Scanned lab sheets as a pipeline source (`kind: lab_sheets`), end to end on a
small synthetic hospital C (GBK scan index, Chinese dates), with the real OCR.

One edge, three syncs: (1) the scans alone (the LIS table left out of the
mapping), with a corrupt sheet added to the folder and the index; (2) the same
again, which must OCR nothing; (3) the LIS added: the same facts now come from
the system of record, which outranks the scans (docs/edge-pipeline.md, *Merge*).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from edge_node.pipeline.connectors import labsheets
from edge_node.pipeline.deid import DeidPolicy, Pseudonymizer, SiteSecret
from edge_node.pipeline.sealed import open_quarantine
from edge_node.pipeline.sync import SyncReport, run_sync
from edge_node.pipeline.units import UnitConverter
from edge_node.security.vault import require_vault
from ops.synth.hospital import write_hospital
from ops.synth.mappings import mapping_text
from ops.synth.variants import get_variant
from shared_cdm.db import make_engine
from shared_cdm.vocab import Vocabulary, load_default

pytestmark = pytest.mark.slow

VARIANT, PATIENTS, SEED = "C", 60, 3
SCANS = ("scans", "lab_sheets")
CORRUPT = "sheet_999.png"
MIN_MATCHED = 0.95


@dataclass
class Line:
    """One item of a sheet as the truth says it was printed."""

    sheet: str
    admission_id: str
    report_date: str  # ISO
    analyte: str
    value: float  # in the analyte's standard unit


@dataclass
class Run:
    report: SyncReport
    ocr_calls: int
    measurements: list[dict[str, Any]]
    quarantine: dict[str, tuple[str, str]]  # row key -> (code, reason), scans only


@dataclass
class Edge:
    hospital: Path
    home: Path
    state_url: str
    analysis_url: str
    truth: list[Line]
    runs: list[Run]

    def visit_id(self, admission_id: str) -> int:
        pseudonymizer = Pseudonymizer(SiteSecret.load_or_create(SiteSecret.path_in(self.home)))
        return pseudonymizer.surrogate_id("admission", admission_id)


def _iso(text: str) -> str:
    year, rest = text.split("年")
    month, day = rest.rstrip("日").split("月")
    return f"{int(year):04d}-{int(month):02d}-{int(day):02d}"


def _truth(hospital: Path, vocab: Vocabulary) -> list[Line]:
    converter = UnitConverter(vocab)
    lines = []
    for text in (hospital / "truth" / "lab_sheets.jsonl").read_text("utf-8").splitlines():
        sheet = json.loads(text)
        for line in sheet["lines"]:
            analyte = vocab.analyte_by_alias(line["item"])
            assert analyte is not None, line
            written = float(line["result"].lstrip("<>"))
            lines.append(
                Line(
                    Path(sheet["image"]).name,
                    sheet["admission_id"],
                    _iso(sheet["report_date"]),
                    analyte.code,
                    converter.convert(analyte.code, written, line["unit"]),
                )
            )
    return lines


def _mapping(hospital: Path, *, lis: bool) -> Path:
    data = yaml.safe_load(mapping_text(VARIANT, scans=True))
    if not lis:
        data["tables"] = [t for t in data["tables"] if t["source"] != "lis"]
    path = hospital / ("mapping-lis.yaml" if lis else "mapping-scans.yaml")
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    return path


class _Counting:
    """The process's OCR reader, counting the sheets it is given."""

    def __init__(self, inner: labsheets.SheetReader) -> None:
        self.inner = inner
        self.calls = 0

    def read_file(self, path: Path) -> dict[str, Any]:
        self.calls += 1
        return self.inner.read_file(path)


def _sync(edge: Edge, mapping: Path) -> Run:
    counting = _Counting(labsheets.default_reader())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(labsheets, "default_reader", lambda: counting)
        report = run_sync(
            home=edge.home,
            state_db_url=edge.state_url,
            analysis_db_url=edge.analysis_url,
            mapping_file=mapping,
            deid_policy=DeidPolicy(dates="keep"),  # truth dates compare as they are
        )
    assert report.status == "finished"
    analysis, state = make_engine(edge.analysis_url), make_engine(edge.state_url)
    try:
        with analysis.connect() as conn:
            rows = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.text(
                        "SELECT m.*, v.person_id AS visit_person FROM measurement m "
                        "LEFT JOIN visit_occurrence v "
                        "ON v.visit_occurrence_id = m.visit_occurrence_id "
                        "WHERE m.measurement_type_concept_id <> 32858"
                    )
                )
            ]
        vault = require_vault(Path("."))  # conftest's key
        with state.connect() as conn:
            opened = [
                open_quarantine(vault, dict(r._mapping))
                for r in conn.execute(
                    sa.text("SELECT * FROM pipeline_quarantine WHERE source = :s"),
                    {"s": SCANS[0]},
                )
            ]
    finally:
        analysis.dispose()
        state.dispose()
    return Run(
        report,
        counting.calls,
        rows,
        {str(q["row_key"]): (str(q["code"]), str(q["reason"])) for q in opened},
    )


def _pg_databases(server_url: str, n: int) -> Iterator[list[str]]:
    """`n` new empty PostgreSQL databases, dropped afterwards."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    names = [f"oncofed_t_{uuid.uuid4().hex[:12]}" for _ in range(n)]
    base = sa.engine.make_url(server_url)
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield [base.set(database=name).render_as_string(hide_password=False) for name in names]
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def edge(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Edge]:
    root = tmp_path_factory.mktemp("scans")
    if request.param == "postgresql":
        databases = _pg_databases(str(request.getfixturevalue("pg_server_url")), 2)
        state_url, analysis_url = next(databases)
        request.addfinalizer(lambda: next(databases, None))
    else:
        state_url = f"sqlite:///{root / 'edge.db'}"
        analysis_url = f"sqlite:///{root / 'analysis.db'}"
    hospital = root / "hospital"
    vocab = load_default()
    write_hospital(hospital, patients=PATIENTS, seed=SEED, variant=get_variant(VARIANT))
    truth = _truth(hospital, vocab)
    # a scan that went wrong: indexed, but not an image
    index = hospital / "lab_sheets" / "index.csv"
    first = index.read_bytes().decode("gbk").splitlines()[1].split(",")
    (hospital / "lab_sheets" / CORRUPT).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    with index.open("ab") as fh:
        fh.write((",".join([CORRUPT, *first[1:]]) + "\n").encode("gbk"))
    home = root / "home"
    home.mkdir()
    edge = Edge(hospital, home, state_url, analysis_url, truth, [])
    scans_only = _mapping(hospital, lis=False)
    edge.runs.append(_sync(edge, scans_only))
    edge.runs.append(_sync(edge, scans_only))
    edge.runs.append(_sync(edge, _mapping(hospital, lis=True)))
    yield edge


def _row_of(rows: list[dict[str, Any]], edge: Edge, line: Line) -> dict[str, Any] | None:
    visit = edge.visit_id(line.admission_id)
    found = [
        r
        for r in rows
        if r["visit_occurrence_id"] == visit
        and r["measurement_source_value"] == line.analyte
        and str(r["measurement_date"])[:10] == line.report_date
    ]
    assert len(found) <= 1, found  # one fact, one row
    return found[0] if found else None


def _matches(row: dict[str, Any] | None, line: Line) -> bool:
    return row is not None and math.isclose(row["value_as_number"], line.value, rel_tol=1e-6)


def test_ocr_values_land_in_measurement_with_provenance_and_confidence(edge: Edge) -> None:
    run = edge.runs[0]
    scanned = [r for r in run.measurements if r["src_table"] == SCANS[1]]
    assert scanned and all(r["src_system"] == SCANS[0] for r in scanned)
    assert len({r["src_row"] for r in scanned}) == len(scanned)  # one source row each
    matched = 0
    for line in edge.truth:
        row = _row_of(scanned, edge, line)
        if _matches(row, line):
            matched += 1
            assert row is not None
            assert row["person_id"] == row["visit_person"]  # the index's patient and stay
    share = matched / len(edge.truth)
    confidences = [r["confidence"] for r in scanned]
    print(
        f"scans: {matched}/{len(edge.truth)} truth items matched ({share:.3f}); "
        f"{len(scanned)} rows; confidence {min(confidences):.4f}-{max(confidences):.4f}"
    )
    assert share >= MIN_MATCHED
    assert all(c is not None and 0 < c <= 1 for c in confidences)
    assert len(scanned) <= len(edge.truth)  # nothing invented


def test_a_corrupt_sheet_is_quarantined_counted_and_the_run_goes_on(edge: Edge) -> None:
    run = edge.runs[0]
    counts = run.report.counts[SCANS]
    assert run.quarantine[CORRUPT][0] == "sheet_unreadable"
    assert "corrupt" in run.quarantine[CORRUPT][1]
    assert counts.quarantined >= 1 and counts.balanced
    assert counts.read == counts.skipped + counts.loaded + counts.merged + counts.quarantined
    sheets = {line.sheet for line in edge.truth}
    assert run.ocr_calls == len(sheets) + 1  # every indexed sheet, the corrupt one too
    assert counts.loaded == len([r for r in run.measurements if r["src_table"] == SCANS[1]])


def test_a_second_sync_ocrs_nothing_and_changes_nothing(edge: Edge) -> None:
    first, second = edge.runs[0], edge.runs[1]
    assert second.ocr_calls == 0
    assert second.report.counts[SCANS].read == 0
    key = ("measurement_id", "value_as_number", "confidence", "src_row")
    assert sorted(tuple(r[k] for k in key) for r in second.measurements) == sorted(
        tuple(r[k] for k in key) for r in first.measurements
    )


def test_the_lis_outranks_the_scans_for_the_same_fact(edge: Edge) -> None:
    """Merge rules: a fact given by two sources is one row whose base is the
    best-ranked source; the scan source samples no values, so it ranks last; a
    value that differs is a conflict, not an overwrite."""
    before, after = edge.runs[0], edge.runs[2]
    assert after.ocr_calls == 0  # the new mapping did not make the scans be read again
    ranks = after.report.ranks
    assert ranks["lis/lab_results"] < ranks["scans/lab_sheets"]
    scanned_ids = {r["measurement_id"] for r in before.measurements if r["src_table"] == SCANS[1]}
    by_id = {r["measurement_id"]: r for r in after.measurements}
    assert scanned_ids <= set(by_id)  # no fact lost, none doubled
    taken_over = [by_id[i] for i in scanned_ids if by_id[i]["src_system"] == "lis"]
    assert len(taken_over) >= MIN_MATCHED * len(scanned_ids)
    assert all(r["confidence"] is None for r in taken_over)  # a system of record's value
    misread = 0
    for line in edge.truth:
        scan_row = _row_of(
            [r for r in before.measurements if r["src_table"] == SCANS[1]], edge, line
        )
        if scan_row is not None and not _matches(scan_row, line):
            misread += 1
        row = _row_of(after.measurements, edge, line)
        if scan_row is not None and row is not None and row["src_system"] == "lis":
            assert _matches(row, line)  # the LIS value, not the OCR's
    assert after.report.conflicts >= misread
    assert after.report.counts[("lis", "lab_results")].merged >= len(taken_over)
