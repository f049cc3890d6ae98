"""Trained clause classifiers for the judgements where wording varies most.

Two tasks, each a spaCy `textcat` (bag of words and word pairs, exclusive classes)
trained in the repo from `training/<task>.jsonl` by `python -m edge_node.structure.train`
and shipped in `models/<task>/`:

- `tendency`: the clause that judges a PET-CT lesion -> `malignant`, `benign`,
  `indeterminate` ("考虑恶性可能大", "likely reactive", "性质待定，建议随访"); a
  clause that only describes (size, SUVmax) and judges nothing -> None.
- `smoking`: the sentence(s) about smoking -> `current`, `former`, `never`; one
  that does not tell ("吸烟史不详", advice to quit) -> None.

`classify(task, text, lang)` gives (label, probability of that label); `scores` gives
every class's probability (they sum to 1). Labels are the contract's values; the
model's own "no statement" class (`none` / `unknown`) comes back as None, so a value
the text does not state stays null. Models load once per process from the package
directory and nothing is downloaded: the pipeline is `spacy.blank("xx")` with the
tokenizer below (`onco_clause_tokenizer.v1`), one model for both languages (measured
against jieba words and per-language models: `training/README.md`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.vocab import Vocab

from edge_node.structure.text import HAN, normalize

MODELS_DIR = Path(__file__).resolve().parent / "models"
TRAINING_DIR = Path(__file__).resolve().parent / "training"

# class names in the model; the last one of each is "the text does not say"
TASKS: dict[str, tuple[str, ...]] = {
    "tendency": ("malignant", "benign", "indeterminate", "none"),
    "smoking": ("current", "former", "never", "unknown"),
}
NULL_LABELS = frozenset({"none", "unknown"})
MAX_CHARS = 2000  # a judging clause is short; a whole report passed by mistake is cut

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_WORD = re.compile(f"[a-z{HAN}]")


def prepare(text: str) -> str:
    """The model's view of a clause: width-folded, lower-cased, every number as "0"
    (years, pack counts and SUV values carry no judgement; one token for all of
    them lets "已戒3年" teach "已戒10年")."""
    return _NUMBER.sub("0", normalize(text.strip()[:MAX_CHARS]))


# one Chinese character, one English word, the number token, or one other symbol
_TOKEN = re.compile(rf"[{HAN}]|[a-z]+|0|[^\sa-z0{HAN}]")


class ClauseTokenizer:
    """Chinese as single characters, English as words, so one pipeline reads both
    languages: with word pairs and triples the model sees Chinese character n-grams
    ("已戒", "戒烟", "不除外") whatever a word segmenter would have cut, and English
    words and word pairs ("no longer", "ex-smoker" -> "ex", "-", "smoker")."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab

    def __call__(self, text: str) -> Doc:
        words: list[str] = []
        spaces: list[bool] = []
        for m in _TOKEN.finditer(text):
            words.append(m.group())
            spaces.append(m.end() < len(text) and text[m.end()].isspace())
        return Doc(self.vocab, words=words, spaces=spaces)

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterable[Doc]:
        for text in texts:
            yield self(text)

    # nothing to store: the rule above is the whole tokenizer
    def to_disk(self, path: Path, **kwargs: Any) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def from_disk(self, path: Path, **kwargs: Any) -> ClauseTokenizer:
        return self

    def to_bytes(self, **kwargs: Any) -> bytes:
        return b""

    def from_bytes(self, data: bytes, **kwargs: Any) -> ClauseTokenizer:
        return self


@spacy.registry.tokenizers("onco_clause_tokenizer.v1")
def clause_tokenizer() -> Callable[[Language], ClauseTokenizer]:
    def make(nlp: Language) -> ClauseTokenizer:
        return ClauseTokenizer(nlp.vocab)

    return make


def blank() -> Language:
    """The empty pipeline every model is trained and run with (multi-language,
    `onco_clause_tokenizer.v1`)."""
    return spacy.blank(
        "xx", config={"nlp": {"tokenizer": {"@tokenizers": "onco_clause_tokenizer.v1"}}}
    )


def model_dir(task: str) -> Path:
    if task not in TASKS:
        raise ValueError(f"unknown classifier task {task!r}; known: {', '.join(TASKS)}")
    return MODELS_DIR / task


@cache
def pipeline(task: str) -> Language:
    """The trained pipeline of one task, loaded from the package once per process."""
    path = model_dir(task)
    if not (path / "config.cfg").is_file():
        raise FileNotFoundError(
            f"no trained {task} model in {path}; run `python -m edge_node.structure.train`"
        )
    return spacy.load(path)


def scores(task: str, text: str, lang: str | None = None) -> dict[str, float]:
    """Probability of every class of `task` for `text` (summing to 1). Empty text,
    or text with no word in it (only numbers, punctuation), gives an empty dict.
    `lang` is accepted for symmetry with `extract`: the model reads both languages."""
    model_dir(task)
    clean = prepare(text) if isinstance(text, str) else ""
    if not _WORD.search(clean):  # empty, or only numbers and punctuation
        return {}
    cats = pipeline(task)(clean).cats
    return {label: float(cats.get(label, 0.0)) for label in TASKS[task]}


def classify(task: str, text: str, lang: str | None = None) -> tuple[str | None, float]:
    """(label, probability) of the most probable class. Label None when the text is
    empty or the model reads it as stating nothing (`none` / `unknown`); the
    probability is then that of the no-statement class (0.0 for empty text)."""
    probs = scores(task, text, lang)
    if not probs:
        return None, 0.0
    label, p = max(probs.items(), key=lambda kv: kv[1])
    return (None if label in NULL_LABELS else label), round(p, 4)
