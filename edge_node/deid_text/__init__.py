"""Free-text de-identification of clinical notes (Chinese and English).

`detect(text, lang)` returns identifier spans; `deidentify(...)` also rewrites the
text; `edge_node.deid_text.cli.register(app)` adds `deid-text` and `deid-eval`.
Rules and word lists live in `data/` (CSV); the spaCy components are registered as
`onco_deid_*` factories in `pipeline.py`. See `/work/shared/contracts/deid.md`.

`detect`, `deidentify` and `Result` are loaded on first use (they import spaCy and
jieba, seconds of start-up that commands not de-identifying text should not pay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge_node.deid_text.settings import Settings

if TYPE_CHECKING:
    from edge_node.deid_text.core import Result, deidentify, detect

__all__ = ["Result", "Settings", "deidentify", "detect"]


def __getattr__(name: str) -> Any:
    if name in ("Result", "deidentify", "detect"):
        from edge_node.deid_text import core

        return getattr(core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
