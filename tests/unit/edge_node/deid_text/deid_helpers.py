"""Span checks shared by the de-identification tests: is a value found, or left alone."""

from __future__ import annotations

from edge_node.deid_text import detect


def covered(text: str, value: str, lang: str) -> bool:
    """Every non-space character of `value` (its first place in `text`) is in a span."""
    start = text.index(value)
    spans = detect(text, lang)
    return all(
        any(s <= i < e for s, e, _ in spans)
        for i in range(start, start + len(value))
        if not text[i].isspace()
    )


def touched(text: str, value: str, lang: str) -> bool:
    """Some span overlaps `value` (its first place in `text`)."""
    start = text.index(value)
    return any(s < start + len(value) and e > start for s, e, _ in detect(text, lang))
