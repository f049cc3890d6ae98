"""The spaCy pipeline: rule components registered as `onco_deid_*` factories.

Built on `spacy.blank("en")` or `spacy.blank("zh")` with our own registered
tokenizer (`onco_deid_tokenizer.v1`: whitespace for English, jieba for Chinese), so
nothing is downloaded. Components add `Hit`s to `doc.user_data["onco_deid_hits"]`; the last one
(`onco_deid_resolve`) applies the clinical keep-list and merges overlaps into
`doc._.phi` as (start, end, type) character offsets into `doc.text`. Before it,
`onco_deid_context` adds hits found by their neighbours (`context.py`).
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Callable, Iterator
from functools import lru_cache

import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.vocab import Vocab

import edge_node.deid_text.ner  # noqa: F401  registers the onco_deid_ner factory
from edge_node.deid_text import context, generic, rules, unknown
from edge_node.deid_text.lexicon import (
    ascii_lower,
    clinical_terms,
    lexicon,
    quiet_jieba,
    trie_pattern,
)
from edge_node.deid_text.rules import Hit

Span3 = tuple[int, int, str]
COMPONENTS = (
    "onco_deid_patterns",
    "onco_deid_addresses",
    "onco_deid_organizations",
    "onco_deid_names",
    "onco_deid_context",
    "onco_deid_ner",  # trained NER (ner.py): after the rules whose types win a tie
    "onco_deid_unknown",
    "onco_deid_resolve",
)

if not Doc.has_extension("phi"):
    Doc.set_extension("phi", default=None)


_WORDS = re.compile(r"\S+|\s+")
_PERSON_TAGS = ("nr", "nrfg", "nrt")


def jieba_words(text: str) -> list[str]:
    import jieba

    quiet_jieba()
    words: list[str] = jieba.lcut(text)
    return words


@lru_cache(maxsize=65536)
def person_tag(word: str) -> str:
    """The tag "nr" for a word jieba's dictionary tags as a person name, or for a word of
    two to four Chinese characters it does not know (its HMM found it: mostly names).

    jieba's own part-of-speech pass (jieba.posseg) tags in context but is five times
    slower than segmentation; the name rules check the surname either way.
    """
    import jieba.posseg

    quiet_jieba()
    if len(word) >= 2 and (word[-1] in _NOT_NAME_END or word in lexicon().titles_zh):
        return ""  # a role or a unit, even where jieba's dictionary says "nr": 麻醉师
    tag = jieba.posseg.dt.word_tag_tab.get(word)
    if tag is not None:
        return tag if tag.startswith("nr") else ""
    if 2 <= len(word) <= 4 and all("\u4e00" <= c <= "\u9fff" for c in word):
        return "nr"
    return ""


_NOT_NAME_END = set("师医士员者科室院区部")


class FastTokenizer:
    """Whitespace tokens for English; for Chinese, jieba words tagged "nr" when they
    may be a person's name (`person_tag`).

    spaCy's rule tokenizer was the slowest step for English and the detectors
    work on the text, not on tokens; jieba now segments each Chinese note once
    (it ran a second, part-of-speech pass before, five times slower).
    """

    def __init__(self, vocab: Vocab, lang: str) -> None:
        self.vocab = vocab
        self.lang = lang

    def __call__(self, text: str) -> Doc:
        text = context.fold_width(text)  # one character for one: offsets unchanged
        tags: list[str] | None = None
        if self.lang == "zh" and rules.has_han(text):
            words = jieba_words(text)
            tags = [person_tag(w) for w in words]
            spaces = [False] * len(words)
        else:
            words, spaces = [], []
            for w in _WORDS.findall(text):
                if w == " " and words and not spaces[-1] and not words[-1].isspace():
                    spaces[-1] = True
                else:
                    words.append(w)
                    spaces.append(False)
        doc = Doc(self.vocab, words=words, spaces=spaces, tags=tags) if words else Doc(self.vocab)
        # spaCy rebuilds doc.text from the tokens on every access; keep the input.
        doc.user_data["onco_deid_text"] = text
        return doc


@spacy.registry.tokenizers("onco_deid_tokenizer.v1")
def create_tokenizer() -> Callable[[Language], FastTokenizer]:
    def make(nlp: Language) -> FastTokenizer:
        return FastTokenizer(nlp.vocab, nlp.lang or "en")

    return make


def _text(doc: Doc) -> str:
    if "onco_deid_text" not in doc.user_data:
        doc.user_data["onco_deid_text"] = doc.text
    text: str = doc.user_data["onco_deid_text"]
    return text


def _low(doc: Doc) -> str:
    """The text with ASCII letters lower-cased (same offsets), for case-blind label scans."""
    if "onco_deid_low" not in doc.user_data:
        doc.user_data["onco_deid_low"] = ascii_lower(_text(doc))
    low: str = doc.user_data["onco_deid_low"]
    return low


def _hits(doc: Doc) -> list[Hit]:
    # Kept in user_data: the `doc._` extension look-up is slow for a hot path.
    hits: list[Hit] = doc.user_data.setdefault("onco_deid_hits", [])
    return hits


def _boundary(doc: Doc) -> rules.Boundaries | None:
    if doc.lang_ != "zh" or not len(doc):
        return None
    starts = set(doc.to_array("IDX").tolist()) | {len(_text(doc))}
    return starts.__contains__


def _person_tokens(doc: Doc) -> list[tuple[int, int]]:
    """Token spans tagged as possible person names (nr, nrfg, nrt; see `person_tag`)."""
    if doc.lang_ != "zh" or not len(doc):
        return []
    wanted = {doc.vocab.strings[t] for t in _PERSON_TAGS}
    arr = doc.to_array(["IDX", "TAG"]).tolist()
    ends = [idx for idx, _ in arr[1:]] + [len(_text(doc))]
    return [(idx, end) for (idx, tag), end in zip(arr, ends, strict=True) if tag in wanted]


@Language.component("onco_deid_patterns")
def patterns_component(doc: Doc) -> Doc:
    _hits(doc).extend(rules.patterns(_text(doc), _low(doc)))
    return doc


@Language.component("onco_deid_addresses")
def addresses_component(doc: Doc) -> Doc:
    _hits(doc).extend(rules.addresses(_text(doc), _boundary(doc), _low(doc)))
    return doc


@Language.component("onco_deid_organizations")
def organizations_component(doc: Doc) -> Doc:
    _hits(doc).extend(rules.organizations(_text(doc), _boundary(doc), _low(doc)))
    return doc


@Language.component("onco_deid_names")
def names_component(doc: Doc) -> Doc:
    _hits(doc).extend(rules.names(_text(doc), _boundary(doc), _person_tokens(doc), _low(doc)))
    return doc


@Language.component("onco_deid_context")
def context_component(doc: Doc) -> Doc:
    hits = _hits(doc)
    hits[:] = context.detect(_text(doc), hits, _low(doc))
    return doc


@Language.component("onco_deid_unknown")
def unknown_component(doc: Doc) -> Doc:
    """Last detector: flags capitalised words not known to be safe (`unknown.py`)."""
    hits = _hits(doc)
    text = _text(doc)
    hits.extend(unknown.detect(text, hits))
    hits.extend(generic.detect(text, _low(doc)))
    hits[:] = generic.grow_addresses(text, generic.grow_dates(text, hits))
    return doc


@Language.component("onco_deid_resolve")
def resolve_component(doc: Doc) -> Doc:
    doc._.phi = resolve(_text(doc), _hits(doc), _low(doc))
    return doc


_FILTERABLE = frozenset({"NAME", "ADDRESS", "ORGANIZATION", "MRN", "OTHER"})


# After an eponym, a word that makes it the name of a disease, not of a person.
_DISEASE_AFTER = re.compile(
    r"(?:'s)?[ \t\-]*(?i:tumou?r|lymphoma|syndrome|disease|sarcoma|node|sign|phenomenon|"
    r"reaction|cell|cells|procedure|operation|classification|score|ulcer|triad|"
    r"瘤|淋巴瘤|肉瘤|综合征|病|征)"
)


def protected_terms(text: str, low: str) -> list[tuple[int, int, str]]:
    """Clinical terms and TNM strings in the note, sorted: what the keep-list guards."""
    found = set(clinical_terms(low))
    found.update((s, e, "staging") for s, e in rules.tnm_spans(text))
    found.update(context.protected(text))
    found.update(_institutions(text, low))
    if "NCT" in text or "ISRCTN" in text or "ChiCTR" in text:
        found.update((m.start(), m.end(), "clinical") for m in _TRIAL_ID.finditer(text))
    return sorted(found)


# A public trial registration number names a study, not a person: NCT01234567,
# ISRCTN12345678, ChiCTR2000012345.
_TRIAL_ID = re.compile(r"(?:NCT\d{8}|ISRCTN\d{8}|ChiCTR(?:-[A-Z]{2,5}-)?\d{8,10})(?![0-9])")


_UPW = rf"[{rules.UP}][\w'’.&\-]{{0,40}}"  # bounded: no quadratic scan of a long run
_STREET_AFTER = r"(?![ \t]+(?:Road|Rd|Street|St|Lane|Ln|Avenue|Ave|Drive|Dr|Way|Close|Place)\b)"
# Other hospitals, cancer centres and departments are scenery, not PHI ("MD Anderson
# Cancer Center", "The Christie NHS Foundation Trust", "Hospital Kuala Lumpur",
# "Interventional Pulmonology", "Palliative Care"), unless named as an employer.
_INSTITUTION = re.compile(
    rf"Hospital(?:[ \t][{rules.UP}][{rules.LO}]+){{1,2}}{_STREET_AFTER}(?=[ \t]*(?:[—–,.;:)\n]|$))"
    rf"|(?:The[ \t])?(?:{_UPW}[ \t](?:(?:of|for|and|&|–|-|de|da|do)[ \t])?){{0,5}}"
    r"(?:Hospital|Hospice|Infirmary|Cancer Cent(?:re|er)|Medical Cent(?:re|er)|Health Cent(?:re|er)|"  # noqa: E501
    r"Institute|Memorial|NHS(?: Foundation)? Trust|Universitätsmedizin|Cancer Hospital|Clinic)"
    rf"{_STREET_AFTER}(?![ \t]*(?i:number|no\b|#|id\b))"
    rf"(?:[ \t][{rules.UP}][{rules.LO}]+(?=[ \t]*(?:[—–,.;:)\n]|$)))?"
    rf"|(?:[{rules.UP}][a-z]+(?:al|ive|ic|ary)[ \t])?(?:[{rules.UP}][a-z]+(?:al|ive|ic|ary|ogy))[ \t]"  # noqa: E501
    r"(?:Surgery|Care|Medicine|Oncology|Service|Services|Nursing|Radiology|Pulmonology|Team)(?![A-Za-z])"
    rf"|[{rules.UP}][a-z]+olog(?:y|ical)(?![A-Za-z])"
    # an eponymous grading or scoring system: "Edmondson-Steiner II级", "Child-Pugh A"
    rf"|[{rules.UP}][a-z]+-[{rules.UP}][a-z]+(?=[ \t]*(?:[IVX]+|\d)?[ \t]*(?:级|分级|分期|评分|(?i:grade|grading|score|class|classification|criteria|stage)\b))"  # noqa: E501
)
_EMPLOYED_BEFORE = re.compile(
    r"(?i:\b(?:job|works?|worked|working|employed|employer|employee|nurse|cleaner|porter)\b[^\n.;]{0,12})$"
)


# Every branch of `_INSTITUTION` has one of these (capitalised) words or a hyphen between
# capitals: the full pattern runs only around them.
_INSTITUTION_GATE = re.compile(
    r"Hospital|Hospice|Infirmary|Cent(?:re|er)|Institute|Memorial|Trust|Universitätsmedizin|Clinic|"
    r"Surgery|Care|Medicine|Oncology|Service|Nursing|Radiology|Pulmonology|Team|"
    rf"[{rules.UP}][a-z]*olog|[a-z]-[{rules.UP}]"
)
# (Kept as the definition: the tests check the two scans below against it.)
# The same gate in two fast scans (`institution_gate_spans`): its capitalised words and
# "…olog" from their capital (one class first: the scan skips the rest), grouped by the
# first letter, which a look-behind checks; and the hyphen of "[a-z]-[A-Z]" found as a
# literal. (The one alternation has no first character to skip to: every place is tried.)
_GATE_WORDS = (
    "Hospital", "Hospice", "Infirmary", "Centre", "Center", "Institute", "Memorial", "Trust",
    "Universitätsmedizin", "Surgery", "Care", "Medicine", "Oncology", "Service", "Nursing",
    "Radiology", "Pulmonology", "Team", "Clinic",
)  # fmt: skip
_INSTITUTION_WORD_GATE = re.compile(
    rf"[{rules.UP}](?:"
    + "|".join(
        f"(?<={first}){trie_pattern(w[1:] for w in _GATE_WORDS if w[0] == first)}"
        for first in sorted({w[0] for w in _GATE_WORDS})
    )
    + "|[a-z]*olog)"
)
_HYPHEN_CAPITAL = re.compile(rf"-(?<=[a-z]-)[{rules.UP}]")


def institution_gate_spans(text: str) -> list[tuple[int, int]]:
    """The spans of `_INSTITUTION_GATE.finditer(text)`.

    A word match holds no capital after its first letter and no hyphen, so no match
    of either scan starts inside another of the same scan; where they overlap (a
    hyphen match from a word's last letter, a word from a hyphen match's capital) the
    one starting first is the one the single alternation finds.
    """
    spans = [m.span() for m in _INSTITUTION_WORD_GATE.finditer(text)]
    if "-" in text:
        joins = [(m.start() - 1, m.end()) for m in _HYPHEN_CAPITAL.finditer(text)]
        if joins:
            out: list[tuple[int, int]] = []
            last_end = -1
            for s, e in sorted(spans + joins):
                if s >= last_end:
                    out.append((s, e))
                    last_end = e
            return out
    return spans


def _institutions(text: str, low: str) -> Iterator[tuple[int, int, str]]:
    spans = rules.span_windows(institution_gate_spans(text), text, 110, 40)
    for m in rules.in_windows(_INSTITUTION, text, spans):
        if _EMPLOYED_BEFORE.search(text, max(0, m.start() - 30), m.start()):
            continue
        yield m.start(), m.end(), "institution"


def keep_filter(
    text: str, hits: list[Hit], protected: list[tuple[int, int, str]] | None = None
) -> list[Hit]:
    """Drop hits that would remove clinical content (drugs, markers, eponyms, TNM)."""
    if not hits:
        return hits
    if protected is None:
        protected = protected_terms(text, ascii_lower(text))
    if not protected:
        return hits
    starts = [p[0] for p in protected]
    longest = max(p[1] - p[0] for p in protected)
    out: list[Hit] = []
    for h in hits:
        if h.type not in _FILTERABLE:
            out.append(h)
            continue
        # Only terms starting less than `longest` before the hit can reach into it.
        lo = bisect.bisect_left(starts, h.start - longest)
        hi = bisect.bisect_left(starts, h.end, lo)
        overlapping = [p for p in protected[lo:hi] if p[1] > h.start]
        if not overlapping:
            out.append(h)
            continue
        if not h.strong:
            continue
        # A strong hit is dropped only when it *is* the clinical word (or inside it):
        # "Dr. Wilson" stays a name, "主治医师" or "信迪利单抗" is not one.
        inside = [p for p in overlapping if p[0] <= h.start and h.end <= p[1]]
        if any(p[2] != "eponym" or p[1] - p[0] > h.end - h.start for p in inside):
            continue  # a clinical word, or a longer eponym phrase ("Sister Mary Joseph")
        if inside and h.type != "NAME":
            continue
        if not inside and all(p[2] == "institution" for p in overlapping):
            # reaching into a clinical term or an institution: keep what lies outside it
            out.extend(_outside(text, h, overlapping))
            continue
        if any(p[2] == "eponym" and _DISEASE_AFTER.match(text, p[1]) for p in inside):
            continue  # "Patient Hodgkin lymphoma", "Re: Pancoast tumour": the disease
        out.append(h)
    return out


def _outside(text: str, h: Hit, terms: list[tuple[int, int, str]]) -> Iterator[Hit]:
    pos = h.start
    for s, e, _ in sorted(terms):
        if s > pos and text[pos:s].strip(" \t,.;:-"):
            yield Hit(pos, s, h.type, h.strong)
        pos = max(pos, e)
    if pos < h.end and text[pos : h.end].strip(" \t,.;:-"):
        yield Hit(pos, h.end, h.type, h.strong)


def resolve(text: str, hits: list[Hit], low: str | None = None) -> list[Span3]:
    """Keep-list, name propagation, then overlapping hits merged into one span."""
    protected = protected_terms(text, ascii_lower(text) if low is None else low)
    hits = keep_filter(text, hits, protected)
    hits = hits + keep_filter(text, rules.propagate(text, hits), protected)
    hits.sort(key=lambda h: (h.start, -h.end))
    merged: list[tuple[int, int, str, int]] = []
    priority = {"ID_NUMBER": 9, "PHONE": 8, "EMAIL": 8, "URL": 8, "IP": 8, "MRN": 7, "DATE": 6}
    for h in hits:
        s, e = h.start, h.end
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e <= s:
            continue
        rank = (e - s) * 10 + priority.get(h.type, 5)
        if merged and s < merged[-1][1]:
            ps, pe, pt, prank = merged[-1]
            best = (pt, prank) if prank >= rank else (h.type, rank)
            merged[-1] = (ps, max(pe, e), best[0], best[1])
        else:
            merged.append((s, e, h.type, rank))
    return bridge_names(text, [(s, e, t) for s, e, t, _ in merged])


# Between two parts of one name found apart: a comma ("Pham, Quoc Bao"), a particle
# ("Ferreira da Silva", "Siti binte Osman", "Seán Ó Briain"), a nickname in quotes.
_NAME_GAP = re.compile(
    r"[ \t]?,[ \t]?| (?:(?:da|de|do|dos|das|del|della|di|du|van|von|der|den|ter|le|la|bin|"
    r"binti|binte|bte|al|el|y|Ó|Ní|Nic|Mac|Mc|Ui|Uí|\"[A-Za-z]+\")[ \t]+)*"
)
_ADDRESS_GAP = re.compile(r"[ \t]*,[ \t]*")
# Before a name: an Irish or Gaelic prefix ("Ó Briain"), a capitalised given name that
# is no English word ("Kamala Rajendran"), a nickname; after it, an initial.
_NAME_PREFIX = re.compile(r"(?:Ó|Ní|Nic|Mac|Mc|Ua|Uí|O')[ \t]+$")
_NAME_BEFORE = re.compile(rf"(?<![\w'’])([{rules.UP}][{rules.LO}]+)[ \t]+(?:\"[A-Za-z]+\"[ \t]+)?$")
_NAME_AFTER = re.compile(
    rf"[ \t]+(?:[A-Z](?=[ \t]{{2,}}|[ \t]*$|\n)|(?:de|van|von|da|der|den|binte|bin)[ \t]+"
    rf"[{rules.UP}][{rules.LO}]+)|-(?=[ \t]*\n)",
    re.M,
)


def bridge_names(text: str, spans: list[Span3]) -> list[Span3]:
    """Name spans joined across the gaps between parts of one name, and grown over
    the prefix, given name or initial next to them."""
    if not any(t in ("NAME", "ADDRESS") for _, _, t in spans):
        return spans
    out: list[Span3] = []
    prev_end = 0
    for start, end, t in spans:
        s, e = start, end
        if t == "NAME":
            lo = max(prev_end, s - 24)
            pre = _NAME_PREFIX.search(text, lo, s)
            if pre:
                s = pre.start()
            before = _NAME_BEFORE.search(text, max(prev_end, s - 40), s)
            if before and not unknown.dictionary_word(before.group(1)):
                s = before.start(1)
            after = _NAME_AFTER.match(text, e)
            if after:
                e = after.end()
        if out and out[-1][2] == t and t in ("NAME", "ADDRESS") and s >= out[-1][1]:
            gap = (_NAME_GAP if t == "NAME" else _ADDRESS_GAP).fullmatch(text, out[-1][1], s)
            if gap is not None and "\n" not in text[out[-1][1] : s]:
                out[-1] = (out[-1][0], e, t)
                prev_end = e
                continue
        if out and s < out[-1][1]:
            ps, pe, pt = out[-1]
            out[-1] = (ps, max(pe, e), pt)
        else:
            out.append((s, e, t))
        prev_end = out[-1][1]
    return out


NER_ENV = "ONCOFED_DEID_NER"


def ner_enabled() -> bool:
    """Whether `onco_deid_ner` runs: off unless ONCOFED_DEID_NER is 1, on, true or yes.

    Off by default: it makes English about three times slower, for 0.901 -> 0.929
    recall on the untuned independent6 (precision 0.923 -> 0.912); a site that puts
    recall first turns it on (models/README.md)."""
    return os.environ.get(NER_ENV, "0").strip().lower() in ("1", "on", "true", "yes")


def build(lang: str, ner: bool | None = None) -> Language:
    """The de-identification pipeline for "en" or "zh" (blank, jieba-segmented);
    `ner` None follows `ner_enabled()`."""
    return _build(lang, ner_enabled() if ner is None else ner)


@lru_cache(maxsize=4)
def _build(lang: str, ner: bool) -> Language:
    tokenizer = {"nlp": {"tokenizer": {"@tokenizers": "onco_deid_tokenizer.v1"}}}
    nlp = spacy.blank("zh" if lang == "zh" else "en", config=tokenizer)
    nlp.max_length = 10**8
    for name in COMPONENTS:
        nlp.add_pipe(name, config={"enabled": ner} if name == "onco_deid_ner" else {})
    return nlp


def runner(lang: str, ner: bool | None = None) -> Callable[[str], Doc]:
    """`_runner`; `ner` None follows `ner_enabled()` (read on every call)."""
    return _runner(lang, ner_enabled() if ner is None else ner)


@lru_cache(maxsize=4)
def _runner(lang: str, ner: bool) -> Callable[[str], Doc]:
    """`build(lang)` as a function of the text: its tokenizer, then each component.

    The same steps as `nlp(text)` without `Language.__call__`'s per-document
    bookkeeping, which costs about a tenth of the time on short English notes.
    For a text with no Chinese the detectors read only the text, never the tokens
    (word boundaries and person tags are Chinese-only), so the Doc is left without
    tokens: building them was a tenth of the English time.
    """
    nlp = _build(lang, ner)
    steps = [proc for _, proc in nlp.pipeline]
    make_doc = nlp.make_doc
    vocab = nlp.vocab

    def run(text: str) -> Doc:
        if lang == "zh" and rules.has_han(text):
            doc = make_doc(text)
        else:
            doc = Doc(vocab)
            doc.user_data["onco_deid_text"] = context.fold_width(text)
        for proc in steps:
            doc = proc(doc)
        return doc

    return run
