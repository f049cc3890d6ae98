"""Free-text de-identification of clinical notes (Chinese and English).

`detect(text, lang)` returns identifier spans; `deidentify(...)` also rewrites the
text; `edge_node.deid_text.cli.register(app)` adds `deid-text` and `deid-eval`.
Rules and word lists live in `data/` (CSV); the spaCy components are registered as
`onco_deid_*` factories in `pipeline.py`. See `/work/shared/contracts/deid.md`.
"""

from __future__ import annotations

from edge_node.deid_text.core import Result, Settings, deidentify, detect

__all__ = ["Result", "Settings", "deidentify", "detect"]
