"""Structuring of pathology, PET-CT and discharge reports (contracts/structured-report.md).

`extract(kind, text, lang)` turns one report into contract fields with evidence
offsets into the input text. Each kind is a spaCy pipeline (`pipeline.py`) whose
components are registered as `onco_*` factories; the rules and lexicons are data
files in `data/`, versioned with the package.
"""

from edge_node.structure.core import KINDS, Extraction

__all__ = ["KINDS", "Extraction"]
