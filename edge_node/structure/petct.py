"""petct reports: lesions (site, size, SUVmax, tendency, role) and their count.

`find` reports the site, size and SUVmax mentions it sees (for inspection; they
carry their own negation, so the generic ConText pass leaves them alone);
`assemble` matches the findings' and the impression's mentions of one lesion into
one record (`lesions.py`) and cites every mention of every lesion it reports.
"""

from __future__ import annotations

import re

from edge_node.structure import lesions
from edge_node.structure.core import Extraction, Mention
from edge_node.structure.text import Section, sections

FIELDS: tuple[str, ...] = ("lesions", "lesion_count")


def find(text: str, norm: str, lang: str, secs: list[Section]) -> list[Mention]:
    norm = lesions.simplify(norm)
    out = [
        Mention("lesion_site", h.start, h.end, {"site": h.site, "detail": h.detail}, context=False)
        for h in lesions.site_hits(norm)
    ]
    out += [Mention("size_cm", n.start, n.end, n.value, context=False) for n in lesions.sizes(norm)]
    out += [Mention("suvmax", n.start, n.end, n.value, context=False) for n in lesions.suvs(norm)]
    out.sort(key=lambda m: (m.start, m.end))
    return out


def assemble(
    mentions: list[Mention], text: str, norm: str, lang: str, secs: list[Section]
) -> Extraction:
    ex = Extraction.empty(FIELDS)
    simple = lesions.simplify(norm)
    if simple != norm:
        # a report in traditional characters ("右肺上葉", "印象"): read it as simplified
        norm, secs = simple, sections(simple)
    try:
        found = lesions.build(text, norm, lang, secs)
    except (ValueError, IndexError, KeyError) as exc:  # a rule tripping must not lose the batch
        ex.errors.append(f"petct: {type(exc).__name__}: {exc}")
        return ex
    records = [lesions.record(les) for les in found]
    ex.fields["lesions"] = records
    ex.fields["lesion_count"] = len(records)
    if not found:
        # "no lesion" is a statement too: cite the text that judges the report
        spans = [(s.start, s.end) for s in secs if s.name in ("impression", "diagnosis")]
        for start, end in spans or [(0, len(text))]:
            a, b = _trim(norm, start, end)
            if a < b:
                ex.cite("lesion_count", a, b)
    for les in found:
        for p in les.parts:
            a, b = _trim(norm, p.start, p.end)
            if a < b:
                ex.cite("lesions", a, b)
                ex.cite("lesion_count", a, b)
    return ex


_ITEM = re.compile(r"[\s,;:.]*(?:(?:\d{1,2}|[一二三四五六七八九十])\s*[.,)](?!\d)|[-*•])?\s*")


def _trim(norm: str, a: int, b: int) -> tuple[int, int]:
    """The span without surrounding blanks, separators or an item number ("1. ", "- ")."""
    m = _ITEM.match(norm, a, b)
    if m:
        a = m.end()
    while b > a and norm[b - 1] in " \t\n,;:.。":
        b -= 1
    return a, b
