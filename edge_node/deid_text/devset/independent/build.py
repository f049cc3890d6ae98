"""Build independent.jsonl from the marked-up notes in source/.

The markup and the builder are in ``devset/handwritten.py``, shared by every
hand-written set so all are built and checked the same way.

    python -m edge_node.deid_text.devset.independent.build [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

from edge_node.deid_text.devset.handwritten import (
    CONTRACT_TYPES,
    HEADER,
    KEEP,
    LANGS,
    MARK,
    HandwrittenSet,
    Note,
    SourceError,
    read_notes,
    render,
    strip_marks,
)

THIS = HandwrittenSet(Path(__file__).parent, "independent.jsonl")
SOURCE_DIR, OUTPUT, build, main = THIS.source_dir, THIS.output, THIS.build, THIS.main

__all__ = [
    "CONTRACT_TYPES",
    "HEADER",
    "KEEP",
    "LANGS",
    "MARK",
    "OUTPUT",
    "SOURCE_DIR",
    "Note",
    "SourceError",
    "build",
    "main",
    "read_notes",
    "render",
    "strip_marks",
]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
