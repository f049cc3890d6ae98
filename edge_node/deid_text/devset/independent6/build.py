"""Build independent6.jsonl from the marked-up notes in source/.

The markup and the builder are those of the first independent set, in
``devset/handwritten.py``, so all the sets are built and checked the same way.

    python -m edge_node.deid_text.devset.independent6.build [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

from edge_node.deid_text.devset import handwritten
from edge_node.deid_text.devset.handwritten import CONTRACT_TYPES, SourceError, render

THIS = handwritten.HandwrittenSet(Path(__file__).parent, "independent6.jsonl")
SOURCE_DIR, OUTPUT, build, main = THIS.source_dir, THIS.output, THIS.build, THIS.main

__all__ = ["CONTRACT_TYPES", "OUTPUT", "SOURCE_DIR", "SourceError", "build", "main", "render"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
