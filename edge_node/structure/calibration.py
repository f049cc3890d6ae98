"""Confidence of extracted values, calibrated on the annotated development set.

A field's confidence is how often the extractor was right when it gave that field a
value on the development reports, (right + 1) / (given + 2) (Laplace's rule, so a
field seen a few times is not called certain). A rule that knows a value is weaker
(an uncertain mention: "考虑", "suspicious for") sets a lower confidence itself;
the lower of the two is kept. The table is `data/calibration.json`, rebuilt with

    oncofed-edge structure-eval --in <dev reports> --truth <dev truth> \\
        --calibration-out edge_node/structure/data/calibration.json
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from edge_node.structure.core import Extraction

DEFAULT = 0.5  # a field never measured on annotated reports
_FILE = "calibration.json"


@cache
def table() -> dict[str, dict[str, float]]:
    ref = resources.files("edge_node.structure") / "data" / _FILE
    if not ref.is_file():
        return {}
    raw = json.loads(ref.read_text(encoding="utf-8"))
    return {
        kind: {name: float(entry["confidence"]) for name, entry in fields.items()}
        for kind, fields in raw.get("fields", {}).items()
    }


def apply(kind: str, ex: Extraction) -> None:
    """Give every non-null field a confidence (see the module docstring)."""
    known = table().get(kind, {})
    for name, value in ex.fields.items():
        if value in (None, []):
            continue
        measured = known.get(name, DEFAULT)
        ex.confidence[name] = round(min(ex.confidence.get(name, 1.0), measured), 3)


def build(given: dict[tuple[str, str], tuple[int, int]], source: str) -> dict[str, Any]:
    """The calibration file's content from (kind, field) -> (right, given) counts."""
    fields: dict[str, dict[str, Any]] = {}
    for (kind, name), (right, n) in sorted(given.items()):
        fields.setdefault(kind, {})[name] = {
            "right": right,
            "given": n,
            "confidence": round((right + 1) / (n + 2), 3),
        }
    return {"version": 1, "built": date.today().isoformat(), "source": source, "fields": fields}


def write(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    table.cache_clear()
