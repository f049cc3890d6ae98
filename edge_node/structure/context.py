"""A ConText-style pass (Harkema et al.) for Chinese and English: is a mention negated,
uncertain or historical?

A "pre" cue governs the rest of its clause after it, up to a terminator ("但", "but");
a "post" cue governs the clause before it, back to a terminator. Cues are data
(`data/context.json`). Work on `text.normalize(...)` output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from edge_node.structure.text import clause_at, data

CATEGORIES = ("negated", "uncertain", "historical")


@dataclass(frozen=True)
class Assertion:
    negated: bool = False
    uncertain: bool = False
    historical: bool = False
    cues: tuple[tuple[str, int, int], ...] = ()  # (category, start, end)


def _alt(words: list[str], lang: str) -> str:
    parts = []
    for w in sorted(words, key=len, reverse=True):
        e = re.escape(w)
        if lang == "en" and w[:1].isalpha():
            e = r"\b" + e
        if lang == "en" and w[-1:].isalpha():
            e = e + r"\b"
        parts.append(e)
    return "|".join(parts)


@cache
def _cues(lang: str) -> dict[str, tuple[re.Pattern[str], re.Pattern[str]]]:
    spec = data("context.json")
    out = {}
    for cat in CATEGORIES:
        pre = spec[cat][f"{lang}_pre"]
        post = spec[cat][f"{lang}_post"]
        out[cat] = (re.compile(_alt(pre, lang)), re.compile(_alt(post, lang)))
    return out


@cache
def _terminator(lang: str) -> re.Pattern[str]:
    return re.compile(_alt(data("context.json")["terminators"][lang], lang) + r"|,")


def _scope_start(norm: str, lang: str, clause_start: int, pos: int) -> int:
    """Where the scope of a pre cue ending before `pos` may begin: after the last
    terminator between the clause start and `pos`."""
    start = clause_start
    for m in _terminator(lang).finditer(norm, clause_start, pos):
        start = m.end()
    return start


def _scope_end(norm: str, lang: str, pos: int, clause_end: int) -> int:
    m = _terminator(lang).search(norm, pos, clause_end)
    return m.start() if m else clause_end


def assertion(norm: str, start: int, end: int, lang: str, *, window: int = 60) -> Assertion:
    """The assertion status of the mention norm[start:end].

    Commas end a scope except for a negation in a list ("未见A、B及C" is one clause
    in the normalised text "未见a,b及c"): a pre negation reaches over commas.
    """
    lang = "zh" if lang == "zh" else "en"
    c_start, c_end = clause_at(norm, start)
    if c_end <= c_start:
        c_start, c_end = max(0, start - window), min(len(norm), end + window)
    found: dict[str, bool] = dict.fromkeys(CATEGORIES, False)
    cues: list[tuple[str, int, int]] = []
    for cat, (pre, post) in _cues(lang).items():
        lo = max(c_start, start - window)
        for m in pre.finditer(norm, lo, start):
            if m.end() > start:
                continue
            between = norm[m.end() : start]
            if cat != "negated" and _terminator(lang).search(between):
                continue
            if cat == "negated" and _blocks_negation(between, lang):
                continue
            found[cat] = True
            cues.append((cat, m.start(), m.end()))
        hi = min(c_end + 1, end + window, len(norm))  # the clause's own "?" counts
        for m in post.finditer(norm, end, hi):
            between = norm[end : m.start()]
            if _terminator(lang).search(between) or len(between) > 25:
                continue
            found[cat] = True
            cues.append((cat, m.start(), m.end()))
    return Assertion(found["negated"], found["uncertain"], found["historical"], tuple(cues))


_NEG_BREAK = {
    # a new statement starts: "无明显诱因出现咳嗽…诊断为肺癌" does not negate the cancer
    "zh": re.compile(r"但|然而|伴有?|另见|可见|见[^,]{0,3}(?:影|灶|结节)|示|考虑|出现|诊断|因"),
    "en": re.compile(
        r"\b(?:but|however|although|except|there is|there are|shows?|seen|due to|diagnosed)\b"
    ),
}


def _blocks_negation(between: str, lang: str) -> bool:
    return bool(_NEG_BREAK[lang].search(between)) or len(between) > 40


def negated(norm: str, start: int, end: int, lang: str) -> bool:
    return assertion(norm, start, end, lang).negated
