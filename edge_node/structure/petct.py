"""petct reports: entity rules and field assembly (placeholder until the rules land)."""

from __future__ import annotations

from edge_node.structure.core import Extraction, Mention
from edge_node.structure.text import Section

FIELDS: tuple[str, ...] = ()


def find(text: str, norm: str, lang: str, secs: list[Section]) -> list[Mention]:
    return []


def assemble(
    mentions: list[Mention], text: str, norm: str, lang: str, secs: list[Section]
) -> Extraction:
    return Extraction.empty(FIELDS)
