"""Lab-sheet OCR speed: total seconds per sheet against the raw OCR call on the
same image (target: at most 1.2x; the models are the floor).

Run alone with `.venv/bin/python -m pytest tests/benchmarks/test_ocr_speed.py
-s -q -p no:cacheprovider -m benchmark`. Sheets come from the generator (seed
3: scans as PNG/PDF, phone photos and forwarded JPEGs, zh and en). "Raw" is
`RapidOcrEngine.read` on the decoded page; "total" is `LabReader.read_file` on
the file (decode or PDF render, OCR, table, parsing, units). Both are timed in
wall-clock and in this process's CPU time, alternating per sheet, best of two.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_node.ocr.engine import RapidOcrEngine
from edge_node.ocr.labs import LabReader, load_pages
from ops.synth.ocr_sheets import write_lab_sheets
from shared_cdm.vocab import load_default

pytestmark = pytest.mark.benchmark

SHEETS = 12


def _best(action: Callable[[], object]) -> tuple[float, float]:
    runs = []
    for _ in range(2):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(r[0] for r in runs), min(r[1] for r in runs)


def test_ocr_time_per_sheet_against_the_raw_ocr_call(tmp_path: Path) -> None:
    write_lab_sheets(tmp_path, SHEETS, seed=3)
    paths = sorted(p for p in tmp_path.iterdir() if p.suffix != ".jsonl")
    engine = RapidOcrEngine()
    reader = LabReader(engine, load_default())
    reader.read_file(paths[0])  # models loaded once, before timing
    raw_wall = raw_cpu = total_wall = total_cpu = 0.0
    for path in paths:
        (page,) = load_pages(path)
        wall, cpu = _best(lambda page=page: engine.read(page))
        raw_wall, raw_cpu = raw_wall + wall, raw_cpu + cpu
        wall, cpu = _best(lambda path=path: reader.read_file(path))
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
    n = len(paths)
    print(
        f"\nOCR per sheet over {n} sheets: "
        f"raw {raw_wall / n:.2f} s wall ({raw_cpu / n:.2f} s CPU), "
        f"total {total_wall / n:.2f} s wall ({total_cpu / n:.2f} s CPU); "
        f"ratio {total_wall / raw_wall:.3f} wall, {total_cpu / raw_cpu:.3f} CPU"
    )
    assert total_wall / raw_wall <= 1.2
