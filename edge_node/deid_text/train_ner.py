"""Train the entity recognisers of `ner.py` from the tuned annotated sets.

    python -m edge_node.deid_text.train_ner [--lang en|zh|all] [--epochs N] [--no-save]

Data: the notes of the splits in `TRAIN_SPLITS` (never independent4 to 6, the sets
the component is judged on), grouped by language; their gold NAME,
ORGANIZATION, ADDRESS and AGE spans are the entities, every other character is
"outside". Every 5th hand-written note (sorted by the SHA-1 of its id) is held out
for early stopping: after each epoch the model is scored on it (entity recall,
character precision) and the epoch with the best F2 (recall weighs four times
precision, as in the contract) is the one written to `models/ner_<lang>/`. Fixed
seed, so the same data gives the same model.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.util import minibatch

from edge_node.deid_text.evaluate import load, split_path
from edge_node.deid_text.ner import (
    LABELS,
    MODELS_DIR,
    TAGS,
    blank,
    entities,
    model_dir,
    recogniser,
    token_spans,
)

TRAIN_SPLITS = ("dev", "heldout", "independent", "independent2", "independent3")
SEED = 20261129
EPOCHS = 20
BATCH = 8
DROPOUT = 0.2
HOLDOUT_EVERY = 5
WIDTH = 64
DEPTH = 2
WINDOW = 2
EMBED_ROWS = 2000
VERSION = "2.0"


@dataclass(frozen=True)
class Note:
    id: str
    split: str
    text: str
    ents: tuple[tuple[int, int, str], ...]  # gold spans of LABELS
    phi: tuple[tuple[int, int], ...]  # every gold span, for precision


@dataclass(frozen=True)
class Score:
    gold: int
    found: int
    predicted_chars: int
    correct_chars: int

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else 1.0

    @property
    def precision(self) -> float:
        return self.correct_chars / self.predicted_chars if self.predicted_chars else 1.0

    @property
    def f2(self) -> float:
        r, p = self.recall, self.precision
        return 5 * p * r / (4 * p + r) if p + r else 0.0


def note_lang(rec: dict[str, Any]) -> str:
    lang = rec.get("lang")
    if lang in ("en", "zh"):
        return str(lang)
    from edge_node.deid_text.core import guess_lang

    return guess_lang(rec["text"])


def notes(lang: str, splits: Sequence[str] = TRAIN_SPLITS) -> list[Note]:
    untrained = sorted(set(splits) - set(TRAIN_SPLITS))
    if untrained:
        # the sets the model is measured on, never trained on
        raise ValueError(f"not a training split: {', '.join(untrained)}")
    out = []
    for split in splits:
        for rec in load(split_path(split)):
            if note_lang(rec) != lang:
                continue
            phi = tuple(sorted((g["start"], g["end"]) for g in rec["phi"]))
            ents = tuple(
                sorted((g["start"], g["end"], g["type"]) for g in rec["phi"] if g["type"] in LABELS)
            )
            out.append(Note(str(rec["id"]), split, rec["text"], ents, phi))
    return out


def split_notes(data: Sequence[Note]) -> tuple[list[Note], list[Note]]:
    """(train, held out): every HOLDOUT_EVERY-th hand-written note in SHA-1 order of
    its id; the template-generated sets (`dev`, `heldout`) are all trained on."""
    hand = sorted(
        (n for n in data if n.split.startswith("independent")),
        key=lambda n: hashlib.sha1(f"{n.split}/{n.id}".encode()).hexdigest(),
    )
    held = {id(n) for i, n in enumerate(hand) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1}
    return [n for n in data if id(n) not in held], [n for n in data if id(n) in held]


def _token_entities(text: str, ents: Sequence[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Gold spans moved to model-token edges: every token a span touches is inside it."""
    spans = token_spans(text)
    out: list[tuple[int, int, str]] = []
    for s, e, label in ents:
        inside = [t for t in spans if t[0] < e and t[1] > s]
        if not inside:
            continue
        start, end = inside[0][0], inside[-1][1]
        if out and start < out[-1][1]:  # overlapping gold spans: keep the first
            continue
        out.append((start, end, label))
    return out


def examples(nlp: Language, data: Sequence[Note]) -> list[Example]:
    out = []
    for n in data:
        doc = nlp.make_doc(n.text)
        spans = doc.user_data["onco_ner_spans"]
        # doc.text drops the spaces between tokens: map character offsets by token
        starts = {s: i for i, (s, _) in enumerate(spans)}
        ends = {e: i for i, (_, e) in enumerate(spans)}
        tags = ["O"] * len(doc)
        for s, e, label in _token_entities(n.text, n.ents):
            i, j = starts[s], ends[e]
            if i == j:
                tags[i] = f"U-{label}"
            else:
                tags[i] = f"B-{label}"
                tags[i + 1 : j] = [f"I-{label}"] * (j - i - 1)
                tags[j] = f"L-{label}"
        out.append(Example.from_dict(doc, {"tags": tags}))
    return out


def build(
    lang: str,
    width: int = WIDTH,
    depth: int = DEPTH,
    rows: int = EMBED_ROWS,
    window: int = WINDOW,
) -> Language:
    """A token tagger (softmax over the BILUO tags) on a hash-embedding CNN: one
    matrix product per token on top of the CNN, where a transition parser took
    more time than the CNN itself."""
    nlp = blank(lang)
    tagger = nlp.add_pipe(
        "tagger",
        name="ner",
        config={
            "model": {
                "@architectures": "spacy.Tagger.v2",
                "normalize": False,
                "tok2vec": {
                    "@architectures": "spacy.HashEmbedCNN.v2",
                    "pretrained_vectors": None,
                    "width": width,
                    "depth": depth,
                    "embed_size": rows,
                    "window_size": window,
                    "maxout_pieces": 3,
                    "subword_features": True,
                },
            }
        },
    )
    for tag in TAGS:
        tagger.add_label(tag)  # type: ignore[attr-defined]
    return nlp


def score(nlp: Language, data: Sequence[Note]) -> Score:
    gold = found = pred_chars = correct = 0
    for n in data:
        hits = entities(nlp, n.text)
        covered = bytearray(len(n.text) + 1)
        for h in hits:
            covered[h.start : h.end] = b"\x01" * (h.end - h.start)
        in_gold = bytearray(len(n.text) + 1)
        for s, e in n.phi:
            in_gold[s:e] = b"\x01" * (e - s)
        for s, e, _ in n.ents:
            gold += 1
            found += all(covered[i] or n.text[i].isspace() for i in range(s, e))
        for h in hits:
            pred_chars += h.end - h.start
            correct += sum(in_gold[h.start : h.end])
    return Score(gold, found, pred_chars, correct)


def train(
    lang: str,
    data: Sequence[Note],
    held: Sequence[Note] = (),
    seed: int = SEED,
    epochs: int = EPOCHS,
    log: bool = False,
) -> tuple[Language, list[Score]]:
    """A model trained on `data` with a fixed seed; with `held`, the weights of the
    epoch scoring the best F2 on it (ties: the earlier epoch). Returns the model and
    each epoch's score on `held`."""
    spacy.util.fix_random_seed(seed)
    rng = random.Random(seed)
    nlp = build(lang)
    train_examples = examples(nlp, data)
    optimizer = nlp.initialize(lambda: train_examples)
    scores: list[Score] = []
    best: tuple[float, bytes] | None = None
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        order = train_examples[:]
        rng.shuffle(order)
        losses: dict[str, float] = {}
        for batch in minibatch(order, size=BATCH):
            nlp.update(batch, sgd=optimizer, drop=DROPOUT, losses=losses)
        if held:
            sc = score(nlp, held)
            scores.append(sc)
            if best is None or sc.f2 > best[0]:
                best = (sc.f2, recogniser(nlp).to_bytes())
            if log:
                print(
                    f"  {lang} epoch {epoch:2d}: loss {losses.get('ner', 0.0):8.1f}  held-out "
                    f"recall {sc.recall:.3f} precision {sc.precision:.3f} F2 {sc.f2:.3f}"
                    f"  ({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
    if best is not None:
        recogniser(nlp).from_bytes(best[1])
    return nlp, scores


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(lang: str, out_dir: Path, epochs: int = EPOCHS, save: bool = True) -> dict[str, Any]:
    data = notes(lang)
    tr, held = split_notes(data)
    n_ents = sum(len(n.ents) for n in data)
    print(f"{lang}: {len(data)} notes ({len(tr)} train, {len(held)} held out), {n_ents} entities")
    t0 = time.perf_counter()
    nlp, scores = train(lang, tr, held, epochs=epochs, log=True)
    seconds = time.perf_counter() - t0
    best = max(range(len(scores)), key=lambda i: (scores[i].f2, -i))
    sc = scores[best]
    result: dict[str, Any] = {
        "lang": lang,
        "notes": len(data),
        "train_notes": len(tr),
        "heldout_notes": len(held),
        "best_epoch": best + 1,
        "heldout_recall": round(sc.recall, 4),
        "heldout_precision": round(sc.precision, 4),
        "train_seconds": round(seconds),
    }
    print(
        f"  kept epoch {best + 1}: held-out recall {sc.recall:.3f} precision {sc.precision:.3f}"
        f"; {seconds:.0f} s"
    )
    if save:
        digest = hashlib.sha256()
        for split in TRAIN_SPLITS:
            digest.update(split_path(split).read_bytes())
        nlp.meta.update(
            {
                "name": f"onco_deid_ner_{lang}",
                "version": VERSION,
                "description": "OncoFed de-identifier NER (edge_node.deid_text.train_ner)",
                "onco_training": {
                    "splits": list(TRAIN_SPLITS),
                    "sha256": digest.hexdigest(),
                    "seed": SEED,
                    "epochs": epochs,
                    **result,
                },
            }
        )
        target = out_dir / model_dir(lang).name
        target.parent.mkdir(parents=True, exist_ok=True)
        nlp.to_disk(target)
        result["model_bytes"] = size_of(target)
        print(f"  wrote {target} ({result['model_bytes'] / 1024:.0f} KB)")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m edge_node.deid_text.train_ner", description=__doc__
    )
    ap.add_argument("--lang", choices=["en", "zh", "all"], default="all")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--out", type=Path, default=MODELS_DIR, help="models directory")
    ap.add_argument("--no-save", action="store_true", help="report held-out figures only")
    args = ap.parse_args(argv)
    if args.epochs < 1:
        ap.error("--epochs must be at least 1")
    for lang in ["en", "zh"] if args.lang == "all" else [args.lang]:
        run(lang, args.out, args.epochs, save=not args.no_save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
