"""De-identification speed: MB/s per core vs a plain regex pass over the same text.

Run with `make bench`, or alone with `.venv/bin/python -m pytest
tests/benchmarks/test_deid_speed.py -s -q -p no:cacheprovider -m benchmark`.
The text is the English (and, reported alongside, the Chinese) half of the
annotated dev set (edge_node/deid_text/devset/dev.jsonl), repeated to about 2 MB;
the baseline is one pass of a handful of plain regular expressions (dates, phones,
long numbers, capitalised word pairs) over the same text. Both rates are printed
in wall-clock time and in this process's CPU time (the per-core figure, which
other work on a shared machine does not distort), with the ratio.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from edge_node.deid_text import detect
from edge_node.deid_text.evaluate import load, split_path

pytestmark = pytest.mark.benchmark

TARGET_BYTES = 2_000_000
ZH_TARGET_BYTES = 500_000
BASELINE = [
    re.compile(r"\d{1,2}[/-]\d{1,2}[/-]\d{2,4}"),
    re.compile(r"\+?\d[\d -]{7,}\d"),
    re.compile(r"\b\d{6,}\b"),
    re.compile(r"\b[A-Z][a-z]+ [A-Z][a-z]+\b"),
    re.compile(r"[\w.]+@[\w.]+"),
]


def _notes(lang: str, target: int) -> list[str]:
    texts = [r["text"] for r in load(split_path("dev")) if r["lang"] == lang]
    notes: list[str] = []
    size = 0
    while size < target:
        for n in texts:
            notes.append(n)
            size += len(n.encode())
    return notes


def _timed(work: Callable[[], int]) -> tuple[int, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    found = work()
    return found, time.perf_counter() - wall, time.process_time() - cpu


def _rates(lang: str, target: int) -> tuple[float, float, float, float, int, int]:
    notes = _notes(lang, target)
    mb = sum(len(n.encode()) for n in notes) / 1e6
    for n in notes[:50]:  # build the pipeline and warm its caches outside the timing
        detect(n, lang)
    spans, deid_wall, deid_cpu = _timed(lambda: sum(len(detect(n, lang)) for n in notes))
    plain, rx_wall, rx_cpu = _timed(
        lambda: sum(len(rx.findall(n)) for n in notes for rx in BASELINE)
    )
    return mb / deid_wall, mb / deid_cpu, mb / rx_wall, mb / rx_cpu, spans, plain


def test_deid_speed_vs_plain_regex() -> None:
    mb = sum(len(n.encode()) for n in _notes("en", TARGET_BYTES)) / 1e6
    d_wall, d_cpu, r_wall, r_cpu, spans, plain = _rates("en", TARGET_BYTES)
    print(
        f"\n{mb:.1f} MB English notes: deid {d_cpu:.2f} MB/s CPU ({d_wall:.2f} wall, "
        f"{spans} spans); plain regex {r_cpu:.2f} MB/s CPU ({r_wall:.2f} wall, {plain} matches); "
        f"ratio {r_cpu / d_cpu:.1f}x slower (CPU), {r_wall / d_wall:.1f}x (wall)"
    )
    z_wall, z_cpu, _, zr_cpu, z_spans, _ = _rates("zh", ZH_TARGET_BYTES)
    print(
        f"Chinese notes: deid {z_cpu:.2f} MB/s CPU ({z_wall:.2f} wall, {z_spans} spans); "
        f"plain regex {zr_cpu:.2f} MB/s CPU; ratio {zr_cpu / z_cpu:.1f}x (CPU)"
    )
    assert spans > 0 and plain > 0 and z_spans > 0
