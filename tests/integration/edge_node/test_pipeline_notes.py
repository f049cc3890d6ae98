"""Notes reach the CDM scrubbed: a small synthetic hospital (Chinese A, English B) with
identifiers planted in its notes (`truth/phi.jsonl`) is synced with the default
policy, and every loaded note is read against the truth of its source note."""

from __future__ import annotations

import json
import multiprocessing
import re
import sqlite3
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from edge_node.pipeline import events, workers
from edge_node.pipeline.deid import DeidPolicy, Pseudonymizer, SiteSecret
from edge_node.pipeline.sealed import open_quarantine
from edge_node.pipeline.state import QuarantinedRecord
from edge_node.pipeline.sync import run_sync
from edge_node.security.vault import require_vault
from ops.synth.hospital import write_hospital
from ops.synth.mappings import mapping_text
from ops.synth.variants import get_variant
from shared_cdm.db import make_engine

PATIENTS, SEED = 40, 5
NOTE_TABLES = ("discharge_summary", "pathology_report")
_TNM = re.compile(r"[cp]?T[0-4X][a-c]?N[0-3X][a-c]?M[01X][a-c]?")
_HISTOLOGY = re.compile(r"腺癌|鳞状细胞癌|小细胞癌|大细胞癌|[A-Za-z]*carcinoma")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_YMD = re.compile(r"(?P<y>\d{4})\s*[-./年]\s*(?P<m>\d{1,2})\s*[-./月]\s*(?P<d>\d{1,2})")
_DMY = re.compile(r"(?<!\d)(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{4})")
_D_MON_Y = re.compile(
    rf"(?P<d>\d{{1,2}})[ -](?P<mon>{'|'.join(_MONTHS)})[a-z]*\.?[ -](?P<y>\d{{4}})"
)
BINARY_NOTE = "\x00\x01\x02\x03\x04\x05\x06\x07" * 40


@dataclass
class Synced:
    variant: str
    hospital: Path
    home: Path
    notes: dict[int, dict[str, Any]]  # note_id -> CDM row
    visits: dict[int, date]  # visit_occurrence_id -> (shifted) visit_start_date
    quarantine: list[dict[str, Any]]
    binary_key: str  # the source note spoiled with binary bytes
    seconds: float


def _source_notes(hospital: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(logical table, record id) -> {physical table, text, admission id}."""
    generation = json.loads((hospital / "truth" / "generation.json").read_text("utf-8"))
    out: dict[tuple[str, str], dict[str, Any]] = {}
    with sqlite3.connect(hospital / "emr.db") as db:
        for logical in NOTE_TABLES:
            spec = generation["emr_tables"][logical]
            cols = spec["columns"]
            key = cols.get("document_id") or cols.get("report_id")
            query = (
                f'SELECT "{key}", "{cols["text"]}", "{cols["admission_id"]}" FROM "{spec["table"]}"'
            )
            for rid, text, adm in db.execute(query):
                out[(logical, str(rid))] = {"table": spec["table"], "text": text, "adm": adm}
    return out


@pytest.fixture(scope="module", params=["A", "B"])
def synced(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Synced:
    variant = str(request.param)
    hospital = tmp_path_factory.mktemp(f"notes{variant}")
    write_hospital(hospital, patients=PATIENTS, seed=SEED, variant=get_variant(variant))
    (hospital / "mapping.yaml").write_text(mapping_text(variant), encoding="utf-8")
    # one note of a patient who is loaded is spoiled: it must be quarantined, not copied
    sources = _source_notes(hospital)
    (logical, rid), spoiled = next(
        (k, v) for k, v in sorted(sources.items()) if k[0] == "pathology_report"
    )
    generation = json.loads((hospital / "truth" / "generation.json").read_text("utf-8"))
    cols = generation["emr_tables"][logical]["columns"]
    key = cols.get("document_id") or cols.get("report_id")
    with sqlite3.connect(hospital / "emr.db") as db:
        db.execute(
            f'UPDATE "{spoiled["table"]}" SET "{cols["text"]}" = ? WHERE "{key}" = ?',
            (BINARY_NOTE, rid),
        )
    home = hospital / "edge"
    state, analysis = f"sqlite:///{home / 'edge.db'}", f"sqlite:///{home / 'analysis.db'}"
    report = run_sync(
        home=home,
        state_db_url=state,
        analysis_db_url=analysis,
        mapping_file=hospital / "mapping.yaml",
    )
    assert report.status == "finished"
    engine = make_engine(analysis)
    with engine.connect() as conn:
        notes = {r.note_id: dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM note"))}
        visits = {
            r[0]: r[1]
            for r in conn.execute(
                sa.text("SELECT visit_occurrence_id, visit_start_date FROM visit_occurrence")
            )
        }
    engine.dispose()
    state_engine = make_engine(state)
    with state_engine.connect() as conn:
        quarantine = [  # reasons and rows are sealed: opened with conftest's vault key
            open_quarantine(require_vault(home), dict(r._mapping))
            for r in conn.execute(sa.select(QuarantinedRecord))
        ]
    state_engine.dispose()
    visits = {
        k: v if isinstance(v, date) else date.fromisoformat(str(v)) for k, v in visits.items()
    }
    return Synced(variant, hospital, home, notes, visits, quarantine, rid, report.seconds)


def _loaded(synced: Synced) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(logical table, record id, source note, CDM note) for every note the sync loaded."""
    secret = SiteSecret.load_or_create(SiteSecret.path_in(synced.home))
    keys = Pseudonymizer(secret)
    out = []
    for (logical, rid), source in _source_notes(synced.hospital).items():
        note_id = keys.surrogate_id("row", f"emr/{source['table']}/{rid}")
        if note_id in synced.notes:
            out.append((logical, rid, source, synced.notes[note_id]))
    return out


def _planted(synced: Synced) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for line in (synced.hospital / "truth" / "phi.jsonl").read_text("utf-8").splitlines():
        span = json.loads(line)
        if span["system"] == "emr" and span["table"] in NOTE_TABLES:
            out.setdefault((span["table"], span["record_id"]), []).append(span)
    return out


def _present(piece: str, text: str) -> bool:
    if piece.isascii() and piece[:1].isalpha():  # a Latin name inside a word is not it
        return re.search(rf"(?<![A-Za-z]){re.escape(piece)}(?![A-Za-z])", text) is not None
    return piece in text


def test_no_planted_identifier_is_in_a_loaded_note(synced: Synced) -> None:
    planted = _planted(synced)
    loaded = _loaded(synced)
    assert len(loaded) > PATIENTS  # most notes are of cancer patients
    checked = 0
    leaks = []
    for logical, rid, source, note in loaded:
        text = note["note_text"]
        assert text, (logical, rid)
        for span in planted.get((logical, rid), []):
            assert source["text"][span["start"] : span["end"]] == span["text"]
            if span["type"] == "DATE":
                continue  # shifted, not removed: see the date test
            if span["type"] == "AGE_OVER_89":  # the age with what follows it ("90岁")
                piece = source["text"][span["start"] : span["end"] + 3]
            else:
                piece = span["text"]
            checked += 1
            if _present(piece, text):
                leaks.append((rid, span["type"], span["subtype"], piece))
    assert checked > 5 * len(loaded)
    assert not leaks, f"{len(leaks)} planted identifiers in loaded notes, e.g. {leaks[:5]}"


def test_clinical_content_survives(synced: Synced) -> None:
    tnm = histology = 0
    for _, rid, source, note in _loaded(synced):
        for match in _TNM.findall(source["text"]):
            assert match in note["note_text"], (rid, match)
            tnm += 1
        for match in _HISTOLOGY.findall(source["text"]):
            assert match in note["note_text"], (rid, match)
            histology += 1
    assert tnm > PATIENTS // 2
    assert histology > PATIENTS // 2


def test_a_note_date_moves_with_its_visit(synced: Synced) -> None:
    """Where the note wrote its stay's admission date, the scrubbed note writes the
    shifted visit_start_date of the CDM."""
    planted = _planted(synced)
    checked = 0
    for logical, rid, _, note in _loaded(synced):
        visit = note["visit_occurrence_id"]
        if visit is None or visit not in synced.visits:
            continue
        for span in planted.get((logical, rid), []):
            if (span["type"], span["subtype"]) != ("DATE", "admission"):
                continue
            written = _dates_in(note["note_text"])
            assert synced.visits[visit] in written, (rid, span["text"], synced.visits[visit])
            checked += 1
    assert checked > PATIENTS // 2


def _dates_in(text: str) -> set[date]:
    """Every date written in `text` the ways the synthetic notes write them."""
    found: set[date] = set()
    for m in _YMD.finditer(text):
        found |= _date(m["y"], m["m"], m["d"])
    for m in _DMY.finditer(text):
        found |= _date(m["y"], m["m"], m["d"])
    for m in _D_MON_Y.finditer(text):
        found |= _date(m["y"], str(_MONTHS.index(m["mon"]) + 1), m["d"])
    return found


def _date(y: str, m: str, d: str) -> set[date]:
    try:
        return {date(int(y), int(m), int(d))}
    except ValueError:
        return set()


def test_a_note_that_cannot_be_scrubbed_is_quarantined(synced: Synced) -> None:
    held = [q for q in synced.quarantine if q["row_key"] == synced.binary_key]
    assert [q["code"] for q in held] == ["note_binary"]
    assert "binary" in held[0]["reason"]
    for note in synced.notes.values():
        assert "\x00" not in note["note_text"]


def test_omit_loads_notes_without_text(synced: Synced, tmp_path: Path) -> None:
    home = tmp_path / "omit"
    report = run_sync(
        home=home,
        state_db_url=f"sqlite:///{home / 'edge.db'}",
        analysis_db_url=f"sqlite:///{home / 'analysis.db'}",
        mapping_file=synced.hospital / "mapping.yaml",
        deid_policy=DeidPolicy(note_text="omit"),
    )
    assert report.status == "finished"
    engine = make_engine(f"sqlite:///{home / 'analysis.db'}")
    with engine.connect() as conn:
        texts = [r[0] for r in conn.execute(sa.text("SELECT note_text FROM note"))]
    engine.dispose()
    # the spoiled note too: nothing is scrubbed, nothing is copied; and no imaging
    # report becomes a note (the scrubbed run made one per study)
    documents = [n for n in synced.notes.values() if not n["note_title"].endswith("#report")]
    assert len(documents) < len(synced.notes)
    assert len(texts) == len(documents) + 1
    assert set(texts) == {""}


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    """Every row the query returns but the day it was run (`nlp_date`), in one order."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = [
            tuple(v for k, v in r._mapping.items() if k != "nlp_date")
            for r in conn.execute(sa.text(query))
        ]
    engine.dispose()
    return sorted(rows, key=repr)


def test_worker_processes_load_the_same_notes(
    synced: Synced, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scrubbing and structuring in worker processes (every batch, however small)
    give the rows the in-process run gave, and quarantine the same note."""
    monkeypatch.setattr(workers, "MIN_POOL_ITEMS", 1)
    state, analysis = f"sqlite:///{tmp_path / 'edge.db'}", f"sqlite:///{tmp_path / 'analysis.db'}"
    report = run_sync(
        home=synced.home,  # the same site secret: the same keys and date offsets
        state_db_url=state,
        analysis_db_url=analysis,
        mapping_file=synced.hospital / "mapping.yaml",
        text_workers=2,
    )
    assert report.status == "finished"
    before = f"sqlite:///{synced.home / 'analysis.db'}"
    for query in (
        "SELECT * FROM note",
        "SELECT * FROM note_nlp",
        "SELECT * FROM measurement WHERE measurement_type_concept_id = 32858",
    ):
        assert _rows(analysis, query) == _rows(before, query), query
    assert _rows(analysis, "SELECT * FROM note_nlp")  # structuring ran
    engine = make_engine(state)
    with engine.connect() as conn:
        held = [
            open_quarantine(require_vault(synced.home), dict(r._mapping))
            for r in conn.execute(sa.select(QuarantinedRecord))
        ]
    codes = [q["code"] for q in held if q["row_key"] == synced.binary_key]
    engine.dispose()
    assert codes == ["note_binary"]


def test_worker_processes_stop_when_a_sync_fails(
    synced: Synced, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "MIN_POOL_ITEMS", 1)
    running: list[multiprocessing.Process] = []

    def fail(*_args: object) -> None:
        running.extend(multiprocessing.active_children())
        raise RuntimeError("the analysis database went away")

    monkeypatch.setattr(events, "notes_to_structure", fail)
    with pytest.raises(RuntimeError, match="went away"):
        run_sync(
            home=synced.home,
            state_db_url=f"sqlite:///{tmp_path / 'edge.db'}",
            analysis_db_url=f"sqlite:///{tmp_path / 'analysis.db'}",
            mapping_file=synced.hospital / "mapping.yaml",
            text_workers=2,
        )
    assert running  # the workers were up when the sync failed
    assert not [p for p in running if p.is_alive()]
