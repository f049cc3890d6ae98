"""Trained entity recogniser: the `onco_deid_ner` component.

Rules written from examples miss names, employers, addresses and ages written in
ways nobody wrote down. A small statistical NER per language (a spaCy token tagger
over BILUO tags on hash embeddings and a two-layer CNN, trained in the repo by
`train_ner.py` on the tuned annotated sets, shipped in `models/ner_en/` and
`models/ner_zh/`) adds what it finds as weak `Hit`s, so the clinical keep-list of
`onco_deid_resolve` still drops any that touch a drug, marker, TNM string, eponym or
the treating hospital. A tagger, not spaCy's transition-based `ner`: the parser's
per-token state loop cost more than the CNN, and the tagger adds as much recall.

The model reads its own tokens (`onco_deid_ner_tokenizer.v1`): one token per Chinese
character, per run of other letters, per run of digits, per newline, per other
symbol. The de-identifier's tokenizer keeps punctuation on English words ("Smith,")
and jieba may join a name to the word after it, so entity edges would fall inside
tokens. Nothing is downloaded: the models are blank pipelines loaded from the package.

Off unless `ONCOFED_DEID_NER=1` (see `pipeline.ner_enabled`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.vocab import Vocab

from edge_node.deid_text import unknown
from edge_node.deid_text.lexicon import lexicon
from edge_node.deid_text.rules import HAN, Hit

MODELS_DIR = Path(__file__).resolve().parent / "models"
LABELS = ("NAME", "ORGANIZATION", "ADDRESS", "AGE")
# The model tags each token: O (outside), or B(egin)/I(nside)/L(ast)/U(nit) of a type.
TAGS = ("O", *(f"{m}-{label}" for label in LABELS for m in "BILU"))

# A newline and a wider gap (column layouts: "Patient: X        MRN: Y") are tokens
# too: an entity rarely runs across them.
_TOKEN = re.compile(rf"[{HAN}]|[^\W\d_{HAN}]+|\d+|\n|\t[ \t]*|  [ \t]*|[^\s\w]|_")


def token_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each model token in `text`."""
    return [m.span() for m in _TOKEN.finditer(text)]


_LEAD = re.compile(r"[\W_]+")  # no entity starts with a symbol or a space
_TRAIL = re.compile(r"[\s,;:(/\-–—_]+$")
_AGE_END = re.compile(r"[,;(\n]")
_NOT_AGE_AFTER = re.compile(
    r"[ \t]*(?:%|(?i:min|mins|minutes?|sec|seconds?|hours?|hrs?|h|days?|weeks?|months?|mg|ml|"
    r"kg|g|mmhg|bpm|times|cycles?)\b|分钟|小时|天|周|个月|次|毫克|%)"
)
# Hospitals and clinics are scenery, not PHI (the rules find the employer ones by context).
_HOSPITAL = re.compile(
    r"(?:医院|醫院|卫生院|衛生院|诊所|診所|(?i:hospital|clinic|infirmary|hospice))$"
)


_NAME_END = re.compile(r"[ \t]*\S*\d")  # a name stops before a word with a digit: "83F"
_WORD_BEFORE_DOT = re.compile(r"[^\W\d_]{2}\.$")
_LATIN_WORD = re.compile(r"[^\W\d_]+")
_ALL_HAN = re.compile(rf"[{HAN}]+")
_SENTENCE_START = re.compile(r"(?:^|[\n.!?;:][ \t]*|\t[ \t]*|  [ \t]*)\Z")
_PARTICLES = frozenset(
    {"van", "von", "der", "den", "ter", "bin", "binti", "binte", "del", "della", "dos", "das"}
    | {"le", "la"}
)


def trim(text: str, s: int, e: int, label: str) -> tuple[int, int]:
    """The entity without the symbols and spaces at its edges; an age ends at a comma,
    a name before its first word with a digit."""
    lead = _LEAD.match(text, s, e)
    if lead:
        s = lead.end()
    cut = _AGE_END if label == "AGE" else _NAME_END if label == "NAME" else None
    found = cut.search(text, s, e) if cut is not None else None
    if found:
        e = found.start()
    trail = _TRAIL.search(text[s:e])
    if trail:
        e = s + trail.start()
    if label == "NAME" and text.endswith(".", s, e) and _WORD_BEFORE_DOT.search(text, s, e):
        e -= 1  # a full stop after a whole word ends the sentence, not an initial
    return s, e


class NerTokenizer:
    """`token_spans` as a spaCy tokenizer (offsets are kept in `doc.user_data`)."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab

    def __call__(self, text: str) -> Doc:
        spans = token_spans(text)
        words = [text[s:e] for s, e in spans]
        doc = Doc(self.vocab, words=words, spaces=[False] * len(words))
        doc.user_data["onco_ner_spans"] = spans
        return doc

    # nothing to store: the pattern above is the whole tokenizer
    def to_disk(self, path: Path, **kwargs: Any) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def from_disk(self, path: Path, **kwargs: Any) -> NerTokenizer:
        return self

    def to_bytes(self, **kwargs: Any) -> bytes:
        return b""

    def from_bytes(self, data: bytes, **kwargs: Any) -> NerTokenizer:
        return self


@spacy.registry.tokenizers("onco_deid_ner_tokenizer.v1")
def ner_tokenizer() -> Callable[[Language], NerTokenizer]:
    def make(nlp: Language) -> NerTokenizer:
        return NerTokenizer(nlp.vocab)

    return make


def blank(lang: str) -> Language:
    """The empty pipeline a model is trained and run with."""
    return spacy.blank(
        "zh" if lang == "zh" else "en",
        config={"nlp": {"tokenizer": {"@tokenizers": "onco_deid_ner_tokenizer.v1"}}},
    )


def model_dir(lang: str) -> Path:
    return MODELS_DIR / ("ner_zh" if lang == "zh" else "ner_en")


@cache
def model(lang: str) -> Language:
    """The shipped model of `lang` ("zh" or anything else: English), loaded once."""
    path = model_dir(lang)
    if not (path / "config.cfg").is_file():
        raise FileNotFoundError(
            f"no trained NER model in {path}; run `python -m edge_node.deid_text.train_ner`"
            " or turn the component off with ONCOFED_DEID_NER=0"
        )
    return spacy.load(path)


def tag_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """(first token, end token, type) of the entities in per-token BILUO tags.

    Lenient: an I- or L- tag that does not continue an open entity of its type
    starts one (a tagger, unlike a transition parser, can emit such a sequence)."""
    out: list[tuple[int, int, str]] = []
    start, label = -1, ""
    for i, tag in enumerate(tags):
        move, _, kind = tag.partition("-")
        if start >= 0 and (move in ("O", "B", "U") or kind != label):
            out.append((start, i, label))
            start = -1
        if move == "O":
            continue
        if start < 0:
            start, label = i, kind
        if move in ("L", "U"):
            out.append((start, i + 1, label))
            start = -1
    if start >= 0:
        out.append((start, len(tags), label))
    return out


def recogniser(nlp: Language) -> TrainablePipe:
    """The model's trainable component (a token tagger named `ner`)."""
    pipe = nlp.get_pipe("ner")
    if not isinstance(pipe, TrainablePipe):
        raise TypeError("the pipeline has no trainable ner component")
    return pipe


def entities(nlp: Language, text: str) -> list[Hit]:
    """The model's entities in `text` as weak hits (character offsets into `text`)."""
    if not text.strip():
        return []
    doc = nlp.make_doc(text)
    pipe = recogniser(nlp)
    # the predicted tag ids, without writing them on Token objects (a tenth of the time)
    labels: tuple[str, ...] = pipe.labels
    ids = pipe.predict([doc])[0]
    spans: list[tuple[int, int]] = doc.user_data["onco_ner_spans"]
    out: list[Hit] = []
    for first, end, label in tag_spans([labels[int(i)] for i in ids]):
        s, e = trim(text, spans[first][0], spans[end - 1][1], label)
        value = text[s:e]
        # a lone symbol or digit run is no name, employer or address
        if e <= s or not (label == "AGE" or any(c.isalpha() for c in value)):
            continue
        if label == "AGE" and _NOT_AGE_AFTER.match(text, e):
            continue  # "ninety minutes", "93%": a duration or a value
        if _HOSPITAL.search(value) or (label == "NAME" and not plausible_name(value)):
            continue
        if (
            label == "NAME"
            and common_first_word(value)
            and _SENTENCE_START.search(text, max(0, s - 16), s)
        ):
            continue  # "Mass in the right upper lobe", "Ninety percent of the dose"
        if label in ("ADDRESS", "ORGANIZATION") and len(value) < 3 and _ALL_HAN.fullmatch(value):
            continue  # 予, 洛 of a drug name, a bare 公司: no address or employer is so short
        out.append(Hit(s, e, label, False))
    return out


_RETYPE = frozenset({*LABELS, "OTHER"})


def plausible_name(value: str) -> bool:
    """False for what the model took for a name but cannot be one: a lone initial
    ("E.") or character, a Chinese run longer than a full name (多器官功能衰竭) or not
    starting with a surname, a lower-case
    English word in it ("J-tube"; name particles aside)."""
    han = sum(1 for c in value if "\u4e00" <= c <= "\u9fff")
    if han > 4 or (han == 1 and len(value) == 1):
        return False
    if han == len(value):  # a Chinese name starts with a surname; 氮平 of 奥氮平 does not
        lex = lexicon()
        return value[0] in lex.surnames_zh or value[:2] in lex.compound_surnames_zh
    words = _LATIN_WORD.findall(value)
    if not han and sum(len(w) for w in words) < 2:
        return False
    if words and all(w.lower() in _PARTICLES for w in words):
        return False
    return not any(
        w[0].islower() and len(w) > 2 and w not in _PARTICLES and unknown.dictionary_word(w)
        for w in words
    )


def common_first_word(value: str) -> bool:
    """True for one capitalised dictionary word that no name list holds: at the start
    of a sentence the capital says nothing, and the model takes such words for names."""
    return (
        _LATIN_WORD.fullmatch(value) is not None
        and value not in lexicon().names_en
        and unknown.dictionary_word(value)
    )


def with_rule_types(found: list[Hit], hits: list[Hit]) -> list[Hit]:
    """Each entity with the type of the rule hit it overlaps most, when that hit is
    at least as long: where both found the same span the rules' type is the more
    precise ("Employer: ..." is ORGANIZATION even when the model read an address)."""
    if not hits:
        return found
    out = []
    for h in found:
        best, most = h.type, 0
        for r in hits:
            if r.type not in _RETYPE:
                continue
            overlap = min(h.end, r.end) - max(h.start, r.start)
            if overlap > most and r.end - r.start >= h.end - h.start:
                best, most = r.type, overlap
        out.append(h._replace(type=best))
    return out


@Language.factory("onco_deid_ner", default_config={"enabled": True})
def make_ner_component(nlp: Language, name: str, enabled: bool) -> Callable[[Doc], Doc]:
    lang = "zh" if nlp.lang == "zh" else "en"
    if enabled:
        model(lang)  # fail when the pipeline is built, not on the first note

    def component(doc: Doc) -> Doc:
        if not enabled:
            return doc
        text = doc.user_data.get("onco_deid_text")
        if text is None:
            text = doc.user_data["onco_deid_text"] = doc.text
        found = entities(model(lang), text)
        if found:
            hits: list[Hit] = doc.user_data.setdefault("onco_deid_hits", [])
            hits.extend(with_rule_types(found, hits))
        return doc

    return component
