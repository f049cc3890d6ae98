"""Train the clause classifiers of `classify.py` from `training/<task>.jsonl`.

    python -m edge_node.structure.train [--task tendency|smoking|all]

For each task: split the annotated clauses (every 5th clause of each label, in
a fixed hash order, is held out), train a `textcat` (bag of words and word pairs,
exclusive classes) on the rest with a fixed seed, print held-out accuracy per
class, then train again on all clauses with the same seed and settings and write
that pipeline to `models/<task>/` (`Language.to_disk`). If
`training/<task>.eval.jsonl` exists (clauses written after training, never tuned
on), the shipped model's accuracy on it is printed too. Same data + same seed ->
same model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.util import minibatch

from edge_node.structure.classify import MODELS_DIR, TASKS, TRAINING_DIR, blank, prepare

SEED = 20261129
EPOCHS = 20
BATCH = 16
NGRAM = 2
HASH_LENGTH = 2**14  # hashed n-gram table: a few thousand distinct features fit
HOLDOUT_EVERY = 5
VERSION = "1.0"


@dataclass(frozen=True)
class Clause:
    text: str
    label: str
    lang: str
    source: str


@dataclass(frozen=True)
class Report:
    n: int
    correct: int
    per_class: dict[str, tuple[int, int]]  # label -> (correct, n)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0


def load(path: Path, task: str) -> tuple[list[Clause], list[str]]:
    """Clauses of a JSONL file; a malformed line is reported and skipped."""
    clauses: list[Clause] = []
    errors: list[str] = []
    labels = set(TASKS[task])
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, label = row["text"], row["label"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError("empty text")
            if label not in labels:
                raise ValueError(f"label {label!r} not in {sorted(labels)}")
            clauses.append(Clause(text, label, str(row.get("lang") or ""), str(row.get("source"))))
        except (ValueError, KeyError, TypeError) as exc:
            errors.append(f"{path.name}:{no}: {exc}")
    return clauses, errors


def _key(c: Clause) -> str:
    return hashlib.sha1(c.text.encode("utf-8")).hexdigest()


def split(
    clauses: Sequence[Clause], fold: int = HOLDOUT_EVERY - 1, folds: int = HOLDOUT_EVERY
) -> tuple[list[Clause], list[Clause]]:
    """(train, held out): every `folds`-th clause of each label in hash order, from
    position `fold`, so the split is stratified and does not move when lines are
    reordered. The default is the held-out split the command reports."""
    train: list[Clause] = []
    held: list[Clause] = []
    for label in sorted({c.label for c in clauses}):
        group = sorted((c for c in clauses if c.label == label), key=_key)
        for i, c in enumerate(group):
            (held if i % folds == fold else train).append(c)
    return train, held


def cross_validate(task: str, clauses: Sequence[Clause], folds: int) -> str:
    """Accuracy over `folds` folds (each clause held out once), overall and among
    the predictions whose probability reaches 0.5 / 0.7 / 0.9 (with the share of
    clauses they cover): how far a caller can trust a confident answer."""
    scored: list[tuple[float, bool]] = []
    for fold in range(folds):
        tr, held = split(clauses, fold, folds)
        nlp = train(task, tr)
        for c in held:
            cats = nlp(prepare(c.text)).cats
            guess = max(cats, key=lambda k: cats[k])
            scored.append((cats[guess], guess == c.label))
    lines = [f"  {folds}-fold cross-validation: accuracy {_share(scored)}"]
    for floor in (0.5, 0.7, 0.9):
        kept = [s for s in scored if s[0] >= floor]
        lines.append(
            f"    p >= {floor}: accuracy {_share(kept)}, covers {len(kept) / len(scored):.2f}"
        )
    return "\n".join(lines)


def _share(scored: Sequence[tuple[float, bool]]) -> str:
    ok = sum(1 for _, right in scored if right)
    return f"{ok / len(scored):.3f} ({ok}/{len(scored)})" if scored else "-"


def build(task: str) -> Language:
    nlp = blank()
    textcat = nlp.add_pipe(
        "textcat",
        config={
            "model": {
                "@architectures": "spacy.TextCatBOW.v3",
                "exclusive_classes": True,
                "ngram_size": NGRAM,
                "no_output_layer": False,
                "length": HASH_LENGTH,
            }
        },
    )
    for label in TASKS[task]:
        textcat.add_label(label)  # type: ignore[attr-defined]
    return nlp


def _examples(nlp: Language, task: str, clauses: Iterable[Clause]) -> list[Example]:
    out = []
    for c in clauses:
        cats = {label: float(label == c.label) for label in TASKS[task]}
        out.append(Example.from_dict(nlp.make_doc(prepare(c.text)), {"cats": cats}))
    return out


def train(task: str, clauses: Sequence[Clause], seed: int = SEED, epochs: int = EPOCHS) -> Language:
    """A textcat trained on `clauses`; deterministic for a given seed."""
    spacy.util.fix_random_seed(seed)
    rng = random.Random(seed)
    nlp = build(task)
    examples = _examples(nlp, task, clauses)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(epochs):
        order = examples[:]
        rng.shuffle(order)
        for batch in minibatch(order, size=BATCH):
            nlp.update(batch, sgd=optimizer)
    return nlp


def evaluate(nlp: Language, task: str, clauses: Sequence[Clause]) -> Report:
    per: dict[str, list[int]] = {label: [0, 0] for label in TASKS[task]}
    correct = 0
    for c in clauses:
        cats = nlp(prepare(c.text)).cats
        guess = max(cats, key=lambda k: cats[k])
        per[c.label][1] += 1
        if guess == c.label:
            per[c.label][0] += 1
            correct += 1
    return Report(len(clauses), correct, {k: (v[0], v[1]) for k, v in per.items()})


def describe(title: str, report: Report) -> str:
    lines = [f"  {title}: accuracy {report.accuracy:.3f} ({report.correct}/{report.n})"]
    for label, (ok, n) in report.per_class.items():
        acc = f"{ok / n:.3f}" if n else "  -  "
        lines.append(f"    {label:<14} {acc} ({ok}/{n})")
    return "\n".join(lines)


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(
    task: str, out_dir: Path, data_dir: Path = TRAINING_DIR, save: bool = True, folds: int = 0
) -> dict[str, Any]:
    """Train, report and (if `save`) write one task's model; returns the figures."""
    data = data_dir / f"{task}.jsonl"
    clauses, errors = load(data, task)
    for err in errors:
        print(f"  skipped {err}", file=sys.stderr)
    if not clauses:
        raise SystemExit(f"{task}: no usable clauses in {data}")
    counts = Counter(c.label for c in clauses)
    langs = Counter(c.lang for c in clauses)
    print(f"{task}: {len(clauses)} clauses {dict(counts)} {dict(langs)}")
    tr, held = split(clauses)
    held_report = evaluate(train(task, tr), task, held)
    print(describe(f"held-out split ({len(tr)} train / {len(held)} held out)", held_report))
    if folds > 1:
        print(cross_validate(task, clauses, folds))
    t0 = time.perf_counter()
    nlp = train(task, clauses)  # the shipped model: all clauses, same seed and settings
    seconds = time.perf_counter() - t0
    result: dict[str, Any] = {
        "task": task,
        "clauses": len(clauses),
        "heldout_accuracy": round(held_report.accuracy, 4),
        "train_seconds": round(seconds, 1),
    }
    eval_path = data_dir / f"{task}.eval.jsonl"
    if eval_path.is_file():
        eval_clauses, eval_errors = load(eval_path, task)
        for err in eval_errors:
            print(f"  skipped {err}", file=sys.stderr)
        ev = evaluate(nlp, task, eval_clauses)
        print(describe(f"eval file {eval_path.name} (shipped model)", ev))
        result["eval_accuracy"] = round(ev.accuracy, 4)
    if save:
        nlp.meta.update(
            {
                "name": f"onco_{task}",
                "version": VERSION,
                "description": f"OncoFed {task} clause classifier (edge_node.structure.train)",
                "onco_training": {
                    "data": data.name,
                    "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
                    "clauses": len(clauses),
                    "seed": SEED,
                    "epochs": EPOCHS,
                    "heldout_accuracy": result["heldout_accuracy"],
                },
            }
        )
        target = out_dir / task
        target.parent.mkdir(parents=True, exist_ok=True)
        nlp.to_disk(target)
        result["model_bytes"] = size_of(target)
        print(f"  wrote {target} ({result['model_bytes'] / 1024:.0f} KB)")
    print(f"  training time of the shipped model {seconds:.1f} s")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_node.structure.train", description=__doc__)
    ap.add_argument("--task", choices=[*TASKS, "all"], default="all")
    ap.add_argument("--out", type=Path, default=MODELS_DIR, help="models directory")
    ap.add_argument("--data", type=Path, default=TRAINING_DIR, help="training data directory")
    ap.add_argument("--no-save", action="store_true", help="report accuracy only")
    ap.add_argument(
        "--folds", type=int, default=0, help="also print k-fold cross-validated accuracy"
    )
    args = ap.parse_args(argv)
    tasks = list(TASKS) if args.task == "all" else [args.task]
    for task in tasks:
        run(task, args.out, args.data, save=not args.no_save, folds=args.folds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
