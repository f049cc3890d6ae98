"""The figures reached on the annotated sets (honest thresholds, not targets).

Held-out (never tuned on) was first scored at entity recall 0.9727, character
precision 0.984; after fixes found by the unit tests (village addresses, name runs
across column gaps) it is at 0.9755 / 0.997, no clinical term lost. The issue's
target (recall >= 0.99) is NOT reached there: the misses are names outside the
lexicons in unlabelled positions and "91 yo"-style ages. Dev (tuned on): 1.0 / 0.996.
"""

from __future__ import annotations

from edge_node.deid_text.evaluate import evaluate, load, split_path


def test_dev_figures() -> None:
    rep = evaluate(load(split_path("dev")))
    assert rep.notes >= 200
    assert rep.recall >= 0.99
    assert rep.precision >= 0.90
    assert rep.clinical_lost == []


def test_heldout_figures() -> None:
    rep = evaluate(load(split_path("heldout")))
    assert rep.notes >= 200
    assert rep.recall >= 0.97
    assert rep.precision >= 0.95
    assert rep.clinical_lost == []
