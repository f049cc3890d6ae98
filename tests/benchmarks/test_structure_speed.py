"""Structuring speed: reports per second against a tokenizer-only pass over the same
reports (targets: at least 0.2 of the tokenizer's rate, and at least 100 reports
per second on one core).

Run alone with `.venv/bin/python -m pytest tests/benchmarks/test_structure_speed.py
-s -q -p no:cacheprovider -m benchmark`. The reports are the development sets in
`edge_node/structure/devset/` (pathology, PET-CT, discharge; zh and en), each
structured five times. "Tokenizer" is the same spaCy pipeline's tokenizer alone
(jieba for Chinese); "structure" is the whole pipeline (`pipeline.extract`). Both
in this process's CPU time, pipelines built before timing, best of three.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import resources

import pytest

from edge_node.structure.core import KINDS
from edge_node.structure.pipeline import build, extract
from edge_node.structure.text import detect_lang

pytestmark = pytest.mark.benchmark

REPEAT = 5


def _reports() -> list[tuple[str, str, str]]:
    folder = resources.files("edge_node.structure") / "devset"
    out = []
    for kind in KINDS:
        ref = folder / f"{kind}.jsonl"
        for line in ref.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                out.append((kind, rec["text"], rec.get("lang") or detect_lang(rec["text"])))
    return out


def _cpu(action: Callable[[], object]) -> float:
    runs = []
    for _ in range(3):
        start = time.process_time()
        action()
        runs.append(time.process_time() - start)
    return min(runs)


def test_structuring_rate_against_the_tokenizer() -> None:
    reports = _reports()
    assert len(reports) >= 130
    for kind, text, lang in reports:
        extract(kind, text, lang)  # pipelines built and warm before timing

    def tokenize() -> None:
        for _ in range(REPEAT):
            for kind, text, lang in reports:
                build(kind, lang).tokenizer(text)

    def structure() -> None:
        for _ in range(REPEAT):
            for kind, text, lang in reports:
                extract(kind, text, lang)

    n = len(reports) * REPEAT
    tok, full = _cpu(tokenize), _cpu(structure)
    tok_rate, rate = n / tok, n / full
    chars = sum(len(t) for _, t, _ in reports) * REPEAT
    print(
        f"\n{n} reports ({chars / n:.0f} characters on average): tokenizer {tok_rate:.0f}/s CPU, "
        f"structure {rate:.0f}/s CPU; ratio {rate / tok_rate:.3f}"
    )
    assert rate / tok_rate >= 0.2
    assert rate >= 100
