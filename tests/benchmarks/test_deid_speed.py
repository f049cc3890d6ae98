"""De-identification speed on English notes: MB/s per core vs a plain regex pass.

Run with `make bench`. The text is the English half of the annotated dev set
(edge_node/deid_text/devset/dev.jsonl), repeated to about 2 MB; the baseline is one
pass of a handful of plain regular expressions (dates, phones, long numbers,
capitalised word pairs) over the same text. Prints both rates and the ratio.
"""

from __future__ import annotations

import re
import time

import pytest

from edge_node.deid_text import detect
from edge_node.deid_text.evaluate import load, split_path

pytestmark = pytest.mark.benchmark

TARGET_BYTES = 2_000_000
BASELINE = [
    re.compile(r"\d{1,2}[/-]\d{1,2}[/-]\d{2,4}"),
    re.compile(r"\+?\d[\d -]{7,}\d"),
    re.compile(r"\b\d{6,}\b"),
    re.compile(r"\b[A-Z][a-z]+ [A-Z][a-z]+\b"),
    re.compile(r"[\w.]+@[\w.]+"),
]


def _notes() -> list[str]:
    english = [r["text"] for r in load(split_path("dev")) if r["lang"] == "en"]
    notes: list[str] = []
    size = 0
    while size < TARGET_BYTES:
        for n in english:
            notes.append(n)
            size += len(n.encode())
    return notes


def test_deid_speed_vs_plain_regex() -> None:
    notes = _notes()
    mb = sum(len(n.encode()) for n in notes) / 1e6
    detect(notes[0], "en")  # build the pipeline outside the timing

    started = time.perf_counter()
    spans = sum(len(detect(n, "en")) for n in notes)
    deid_s = time.perf_counter() - started

    started = time.perf_counter()
    plain = sum(len(rx.findall(n)) for n in notes for rx in BASELINE)
    regex_s = time.perf_counter() - started

    deid_rate, regex_rate = mb / deid_s, mb / regex_s
    print(
        f"\n{mb:.1f} MB English notes: deid {deid_rate:.2f} MB/s ({spans} spans), "
        f"plain regex {regex_rate:.2f} MB/s ({plain} matches), "
        f"ratio {regex_rate / deid_rate:.0f}x slower"
    )
    assert spans > 0 and plain > 0
