"""Build independent3.jsonl from the marked-up notes in source/.

The markup, header lines and offset arithmetic are those of the first
independent set; its builder is reused unchanged so all three sets are built
and checked the same way.

    python -m edge_node.deid_text.devset.independent3.build [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from edge_node.deid_text.devset.independent import build as first
from edge_node.deid_text.devset.independent.build import CONTRACT_TYPES, SourceError, render

HERE = Path(__file__).parent
SOURCE_DIR = HERE / "source"
OUTPUT = HERE / "independent3.jsonl"

__all__ = ["CONTRACT_TYPES", "OUTPUT", "SOURCE_DIR", "SourceError", "build", "main", "render"]


def build(source_dir: Path = SOURCE_DIR) -> list[dict[str, Any]]:
    return first.build(source_dir)


def main(argv: list[str]) -> int:
    text = render(build())
    if "--check" in argv:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.is_file() else ""
        if current != text:
            print(f"{OUTPUT.name} is stale; run without --check to rebuild", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {text.count(chr(10))} notes to {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
