"""The OCR development set generator: degraded sheets and contract-shaped truth."""

from __future__ import annotations

import json
from pathlib import Path

from ops.synth.ocr_sheets import DEGRADATIONS, MARKERS, write_lab_sheets
from shared_cdm.vocab import load_default

KEYS = ["name", "code", "loinc", "value", "qualifier", "unit", "reference_range", "flag",
        "value_std", "unit_std"]  # fmt: skip


def test_sheets_and_truth(tmp_path: Path) -> None:
    counts = write_lab_sheets(tmp_path / "a", 12, seed=5)
    assert counts == dict.fromkeys(DEGRADATIONS, 4)
    truth = [json.loads(line) for line in (tmp_path / "a" / "truth.jsonl").read_text().splitlines()]
    assert len(truth) == 12
    assert {t["degradation"] for t in truth} == set(DEGRADATIONS)
    assert {t["language"] for t in truth} == {"zh", "en"}
    suffixes = {Path(t["file"]).suffix for t in truth}
    assert suffixes <= {".png", ".pdf", ".jpg"} and ".jpg" in suffixes
    codes = {m.code for m in MARKERS}
    vocab = load_default()
    for sheet in truth:
        assert (tmp_path / "a" / sheet["file"]).stat().st_size > 5_000
        assert 3 <= len(sheet["items"]) <= 9
        for item in sheet["items"]:
            assert list(item) == KEYS
            assert item["code"] in codes and item["qualifier"] in (None, "<")
            assert item["flag"] in (None, "H")
            analyte = vocab.analyte_by_alias(item["code"])
            assert analyte is not None and item["unit_std"] == analyte.standard_unit


def test_same_seed_same_files(tmp_path: Path) -> None:
    write_lab_sheets(tmp_path / "a", 3, seed=9)
    write_lab_sheets(tmp_path / "b", 3, seed=9)
    write_lab_sheets(tmp_path / "c", 3, seed=10)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert any(f.endswith(".pdf") for f in files)  # PDFs too carry no timestamp
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    same = [(tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files]
    assert all(same)
    assert (tmp_path / "a" / "truth.jsonl").read_text() != (
        tmp_path / "c" / "truth.jsonl"
    ).read_text()
