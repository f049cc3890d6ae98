"""The trained clause classifiers: shipped models, predictions, bad input, retraining."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from edge_node.structure import classify, train
from edge_node.structure.classify import TASKS, scores
from edge_node.structure.classify import classify as run_classify

CLEAR = {
    "tendency": [
        ("右肺上叶结节，FDG代谢明显增高，考虑周围型肺癌。", "malignant"),
        ("Hypermetabolic subcarinal node, consistent with nodal metastasis.", "malignant"),
        ("右肺下叶斑片影，考虑炎性病变。", "benign"),
        ("Non-avid hypodense liver lesion, consistent with a simple cyst.", "benign"),
        ("左肺上叶磨玻璃结节，性质待定，建议随访。", "indeterminate"),
        ("Indeterminate 5 mm nodule; recommend follow-up CT.", "indeterminate"),
    ],
    "smoking": [
        ("吸烟20年，目前仍吸烟，每日1包。", "current"),
        ("Current smoker, 30 pack-years.", "current"),
        ("吸烟30年，已戒烟5年。", "former"),
        ("Ex-smoker, quit in 2012.", "former"),
        ("否认吸烟饮酒史。", "never"),
        ("Lifelong non-smoker.", "never"),
    ],
}
NO_STATEMENT = {
    "tendency": [
        "左肾上腺结节，大小约1.3cm，SUVmax 2.8。",
        "A 1.7 cm right lower lobe nodule, SUVmax 4.9.",
    ],
    "smoking": ["吸烟史不详。", "Smoking history unknown."],
}


def _accuracy(nlp: Any, task: str, clauses: list[train.Clause]) -> float:
    return train.evaluate(nlp, task, clauses).accuracy


def test_models_ship_inside_the_package_and_load_without_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the classifier tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    classify.pipeline.cache_clear()
    package = Path(classify.__file__).resolve().parent
    for task in TASKS:
        path = classify.model_dir(task)
        assert path.is_relative_to(package)
        nlp = classify.pipeline(task)
        assert nlp.meta["name"] == f"onco_{task}"
        textcat: Any = nlp.get_pipe("textcat")
        assert set(textcat.labels) == set(TASKS[task])
        assert run_classify(task, CLEAR[task][0][0], None)[0] == CLEAR[task][0][1]


def test_pipeline_is_loaded_once_per_process() -> None:
    assert classify.pipeline("smoking") is classify.pipeline("smoking")


@pytest.mark.parametrize(
    ("task", "text", "label"), [(t, x, y) for t, rows in CLEAR.items() for x, y in rows]
)
def test_unambiguous_clauses(task: str, text: str, label: str) -> None:
    got, p = run_classify(task, text, None)
    assert got == label
    assert 0.5 < p <= 1.0


@pytest.mark.parametrize(("task", "text"), [(t, x) for t, xs in NO_STATEMENT.items() for x in xs])
def test_a_clause_that_states_nothing_gives_none(task: str, text: str) -> None:
    label, p = run_classify(task, text, None)
    assert label is None
    assert p > 0.0  # the no-statement class won, with its probability


@pytest.mark.parametrize("task", list(TASKS))
def test_probabilities_cover_every_class_and_sum_to_one(task: str) -> None:
    for text, _ in CLEAR[task]:
        probs = scores(task, text, None)
        assert set(probs) == set(TASKS[task])
        assert all(0.0 <= v <= 1.0 for v in probs.values())
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        _, p = run_classify(task, text, None)
        assert p == pytest.approx(max(probs.values()), abs=1e-4)


def test_width_and_numbers_do_not_change_the_judgement() -> None:
    half = scores("smoking", "吸烟30年,已戒10年", "zh")
    full = scores("smoking", "吸烟３０年，已戒１０年", "zh")
    other_numbers = scores("smoking", "吸烟45年，已戒2年", "zh")
    assert half == pytest.approx(full)
    assert half == pytest.approx(other_numbers)


@pytest.mark.parametrize("text", ["", "   ", "\n", "12.5", "，。；"])
def test_empty_text_gives_none_not_a_crash(text: str) -> None:
    for task in TASKS:
        assert run_classify(task, text, None) == (None, 0.0)
        assert scores(task, text, "en") == {}


def test_unknown_task_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown classifier task"):
        run_classify("histology", "adenocarcinoma", "en")


def test_tokenizer_reads_both_languages() -> None:
    nlp = classify.blank()
    words = [t.text for t in nlp(classify.prepare("Ex-smoker; 已戒烟10年"))]
    assert words == ["ex", "-", "smoker", ";", "已", "戒", "烟", "0", "年"]


def test_training_data_is_well_formed_and_eval_clauses_are_unseen() -> None:
    for task, labels in TASKS.items():
        clauses, errors = train.load(classify.TRAINING_DIR / f"{task}.jsonl", task)
        evals, eval_errors = train.load(classify.TRAINING_DIR / f"{task}.eval.jsonl", task)
        assert errors == [] and eval_errors == []
        assert {c.label for c in clauses} == set(labels)
        assert {c.lang for c in clauses} == {"zh", "en"}
        assert all(c.source for c in clauses)
        assert len(evals) == 60
        assert not {c.text for c in evals} & {c.text for c in clauses}


def test_malformed_training_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "smoking.jsonl"
    good = {"text": "Never smoked.", "label": "never", "lang": "en", "source": "test"}
    path.write_text(
        "\n".join(
            [
                json.dumps(good),
                "{not json",
                json.dumps({**good, "label": "sometimes"}),
                json.dumps({**good, "text": "  "}),
                json.dumps({"label": "never"}),
            ]
        ),
        encoding="utf-8",
    )
    clauses, errors = train.load(path, "smoking")
    assert [c.text for c in clauses] == ["Never smoked."]
    assert len(errors) == 4
    assert all(e.startswith("smoking.jsonl:") for e in errors)


def test_split_is_stratified_and_independent_of_line_order() -> None:
    clauses, _ = train.load(classify.TRAINING_DIR / "smoking.jsonl", "smoking")
    tr, held = train.split(clauses)
    _, held2 = train.split(list(reversed(clauses)))
    assert {c.text for c in held} == {c.text for c in held2}
    assert not {c.text for c in tr} & {c.text for c in held}
    assert {c.label for c in held} == set(TASKS["smoking"])


@pytest.mark.parametrize("task", list(TASKS))
def test_shipped_model_was_trained_on_the_committed_data(task: str) -> None:
    data = classify.TRAINING_DIR / f"{task}.jsonl"
    recorded = classify.pipeline(task).meta["onco_training"]
    assert recorded["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest(), (
        f"models/{task} is stale: run `python -m edge_node.structure.train --task {task}`"
    )
    assert recorded["seed"] == train.SEED


@pytest.mark.parametrize("task", list(TASKS))
def test_retraining_with_the_fixed_seed_reproduces_the_shipped_model(task: str) -> None:
    clauses, _ = train.load(classify.TRAINING_DIR / f"{task}.jsonl", task)
    evals, _ = train.load(classify.TRAINING_DIR / f"{task}.eval.jsonl", task)
    retrained = train.train(task, clauses)
    shipped = classify.pipeline(task)
    assert _accuracy(retrained, task, evals) == pytest.approx(
        _accuracy(shipped, task, evals), abs=0.02
    )
    # the held-out figure recorded in the shipped model's meta is reproduced too
    tr, held = train.split(clauses)
    recorded = shipped.meta["onco_training"]["heldout_accuracy"]
    assert _accuracy(train.train(task, tr), task, held) == pytest.approx(recorded, abs=0.02)
    assert _accuracy(retrained, task, evals) >= 0.85
