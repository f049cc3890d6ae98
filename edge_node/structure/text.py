"""Text helpers shared by every kind: width folding, language, clauses, sections.

`normalize` maps the text one character for one (full-width forms and Chinese
punctuation to ASCII, ASCII letters to lower case), so a match in the normalised
text has the same offsets in the input text: evidence points at what the reader
sees.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

_FOLD = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_FOLD |= {
    ord(k): ord(v)
    for k, v in {
        "\u3000": " ",
        "\u00a0": " ",
        "\u2002": " ",
        "\u2003": " ",
        "\u2009": " ",
        "，": ",",
        "；": ";",
        "：": ":",
        "（": "(",
        "）": ")",
        "【": "[",
        "】": "]",
        "、": ",",
        "“": '"',
        "”": '"',
        "‘": "'",
        "’": "'",
        "×": "x",
        "＊": "*",
        "－": "-",
        "—": "-",
        "–": "-",
        "～": "~",
        "〜": "~",
        **{chr(0x2460 + i): str(i + 1) for i in range(9)},  # ① .. ⑨
        "﹪": "%",
        "．": ".",
        "≥": "≥",
        "≤": "≤",
        "\u00b7": ".",
    }.items()
}
_UPPER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
# full-width capitals straight to lower case: translate() makes one pass
_TABLE = _FOLD | _UPPER | {c + 0xFEE0: v for c, v in _UPPER.items()}

HAN = "\u4e00-\u9fff"
_HAN_RE = re.compile(f"[{HAN}]")


def normalize(text: str) -> str:
    """`text` folded to ASCII where a one-for-one mapping exists, lower-cased ASCII."""
    out = text.translate(_TABLE)
    assert len(out) == len(text)
    return out


def detect_lang(text: str) -> str:
    """ "zh" when Chinese characters make up a fair share of the text, else "en"."""
    sample = text[:4000]
    han = len(_HAN_RE.findall(sample))
    letters = sum(1 for c in sample if c.isascii() and c.isalpha())
    return "zh" if han and han * 3 >= letters // 2 else "en"


# Clause ends: Chinese full stop, semicolons, line breaks, and an English full stop
# that is not a decimal point or an abbreviation's dot before a digit/letter.
_CLAUSE_END = re.compile(r"[。;!?\n]|\.(?=\s|$)")


def clauses(norm: str) -> list[tuple[int, int]]:
    """(start, end) of each clause of the normalised text, whitespace trimmed."""
    out: list[tuple[int, int]] = []
    start = 0
    for m in _CLAUSE_END.finditer(norm):
        _push(out, norm, start, m.start())
        start = m.end()
    _push(out, norm, start, len(norm))
    return out


def _push(out: list[tuple[int, int]], s: str, a: int, b: int) -> None:
    while a < b and s[a].isspace():
        a += 1
    while b > a and s[b - 1].isspace():
        b -= 1
    if a < b:
        out.append((a, b))


def clause_at(norm: str, pos: int) -> tuple[int, int]:
    """The clause holding position `pos`."""
    for a, b in clauses(norm):
        if a <= pos < b:
            return a, b
    return pos, pos


@cache
def data(name: str) -> Any:
    """A JSON data file from `edge_node/structure/data/`."""
    ref = resources.files("edge_node.structure") / "data" / name
    return json.loads(ref.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Section:
    name: str  # canonical: "findings", "impression", "diagnosis", "history", ...
    start: int  # first character after the heading
    end: int


@cache
def _heading_re() -> tuple[re.Pattern[str], dict[str, str]]:
    spec: dict[str, list[str]] = data("sections.json")["headings"]
    names: dict[str, str] = {}
    alts = []
    for canonical, words in spec.items():
        for w in sorted(words, key=len, reverse=True):
            names[normalize(w)] = canonical
            alts.append(re.escape(normalize(w)))
    alts.sort(key=len, reverse=True)
    # A heading starts a line (after an optional item number "2." / "二、"), or follows
    # a sentence end; never an item number after a sentence end ("SUV 8.8.\n" is a value).
    pattern = re.compile(
        r"(?:(?:^|(?<=\n))[ \t#*\[]*(?:(?:[一二三四五六七八九十]+|\d{1,2})[.,、)]\s*)?"
        r"|(?<=[。;\]])[ \t#*\[]*|(?<=\D\.)[ \t]*)"
        r"(" + "|".join(alts) + r")[ \t\]]*(?::|\n)"
    )
    return pattern, names


def sections(norm: str) -> list[Section]:
    """Sections found by their headings ("检查所见:", "IMPRESSION:", "诊断意见\n").
    Text before the first heading is the section "body"."""
    pattern, names = _heading_re()
    found = [(m.start(), m.end(), names[m.group(1)]) for m in pattern.finditer(norm)]
    out: list[Section] = []
    prev_end, prev_name = 0, "body"
    for start, end, name in found:
        if start > prev_end or prev_name != "body":
            out.append(Section(prev_name, prev_end, start))
        prev_end, prev_name = end, name
    out.append(Section(prev_name, prev_end, len(norm)))
    return [s for s in out if s.end > s.start]


def word_alternation(
    words: Iterable[str], *, bound: bool = True, flexible_space: bool = False
) -> str:
    """A regex matching any of `words`, the longest where several match at a place;
    words starting or ending with an ASCII letter or digit get boundaries there
    (`bound`); with `flexible_space` a space matches any run of white space.

    Built as a prefix tree: `re` tries a flat alternation's branches one by one at
    every position, a tree only the branch of the character in front of it. Longer
    continuations come before a word's end, so the longest word still wins and a
    word whose end boundary fails falls back to a shorter one."""
    root: dict[str, Any] = {}
    for w in words:
        if not w:
            continue
        node = root
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def word_char(ch: str) -> bool:
        return bound and ch.isascii() and ch.isalnum()

    def piece(ch: str) -> str:
        return r"\s+" if flexible_space and ch == " " else re.escape(ch)

    def emit(node: dict[str, Any], last: str) -> str:
        alts = [piece(ch) + emit(child, ch) for ch, child in sorted(node.items()) if ch]
        if "" in node:
            alts.append(r"(?![a-z0-9])" if word_char(last) else "")
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    # The start boundary is checked after the first character ("c(?<![a-z0-9]c)", the
    # same test as "(?<![a-z0-9])c"): with every branch opening on a literal, `re`
    # jumps between the positions holding a possible first character instead of
    # trying every branch at every position.
    return "|".join(
        piece(ch) + (rf"(?<![a-z0-9]{piece(ch)})" if word_char(ch) else "") + emit(child, ch)
        for ch, child in sorted(root.items())
        if ch
    )


@cache
def required_literal(pattern: re.Pattern[str]) -> str:
    """The longest run of plain characters every match of `pattern` contains ("上叶"
    for "右肺?上叶", "upper" for r"\\bright\\s+upper\\s+lobe\\b"), "" when there is none:
    a text without it holds no match, so `in` (fast) can skip a whole scan."""
    if pattern.flags & re.IGNORECASE:
        return ""
    return _longest_run(list(re._parser.parse(pattern.pattern, pattern.flags)))  # type: ignore[attr-defined]


@cache
def required_literals(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """One plain string per top-level alternative of `pattern` ("(?:a|b)" counts as its
    alternatives) that every match of that alternative contains; None when some
    alternative has none. A text holding none of them holds no match."""
    if pattern.flags & re.IGNORECASE:
        return None
    parsed = re._parser.parse(pattern.pattern, pattern.flags)  # type: ignore[attr-defined]
    items = list(parsed)
    # "(?:a|b)" alone: look inside the group
    while len(items) == 1 and str(items[0][0]) == "SUBPATTERN":
        items = list(items[0][1][-1])
    if len(items) == 1 and str(items[0][0]) == "BRANCH":
        branches = [list(b) for b in items[0][1][1]]
    else:
        branches = [items]
    out = []
    for seq in branches:
        lit = _longest_run(seq)
        if not lit:
            return None
        out.append(lit)
    return tuple(dict.fromkeys(out))


def _longest_run(seq: list[Any]) -> str:
    best, run = "", ""
    for op, arg in seq:
        name = str(op)
        if name == "LITERAL":
            run += chr(arg)
        elif name not in ("AT", "ASSERT", "ASSERT_NOT"):  # zero width: keeps the run
            best, run = max(best, run, key=len), ""
    return max(best, run, key=len)


_SPECIAL = frozenset("\\.^$*+?{}[]()|")


def literal_first(pattern: str) -> str:
    """`pattern` with the word boundary or negative look-behinds opening a top-level
    alternative moved after its first character, when that is a plain one:
    "\\bmet" -> "m(?<!\\wm)et", "(?<!腺)淋巴瘤" -> "淋(?<!(?:腺)淋)巴瘤". The same test
    on the same text, so the same matches; but an alternative that opens on a
    character is tried only where that character stands, and when all of them do,
    `re` skips straight to the candidate positions."""
    if "(?x" in pattern:
        return pattern  # verbose: blanks are not characters
    return "|".join(_literal_first_one(alt) for alt in _top_alternatives(pattern))


def _top_alternatives(pattern: str) -> list[str]:
    out, depth, start, i, n = [], 0, 0, 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1  # a "]" first in a class is a character
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    out.append(pattern[start:])
    return out


def _group_end(pattern: str, i: int) -> int:
    """Index of the ")" closing the group opened at `i`, -1 if none."""
    inner = pattern[i + 1 :]
    depth, j, n = 0, 0, len(inner)
    while j < n:
        ch = inner[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "[":
            j += 1
            if j < n and inner[j] == "^":
                j += 1
            if j < n and inner[j] == "]":
                j += 1
            while j < n and inner[j] != "]":
                j += 2 if inner[j] == "\\" else 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                return i + 1 + j
            depth -= 1
        j += 1
    return -1


def _literal_first_one(alt: str) -> str:
    tests: list[str | None] = []  # None: a word boundary; else a look-behind's body
    i = 0
    while True:
        if alt.startswith("\\b", i):
            tests.append(None)
            i += 2
        elif alt.startswith("(?<!", i):
            j = _group_end(alt, i)
            if j == -1:
                return alt
            tests.append(alt[i + 4 : j])
            i = j + 1
        else:
            break
    if not tests or i >= len(alt) or alt[i] in _SPECIAL or alt[i + 1 : i + 2] in tuple("?*+{"):
        return alt
    ch = alt[i]
    moved = []
    for body in tests:
        if body is None:
            if not (ch.isascii() and ch.isalnum()):
                return alt  # "\\b" before a non-word character tests the other side
            moved.append(rf"(?<!\w{ch})")
        else:
            moved.append(f"(?<!(?:{body}){ch})")
    return ch + "".join(moved) + alt[i + 1 :]
