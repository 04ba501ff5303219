"""Macro F1 averages over the labels in the evaluated split or predicted on it, as scikit-learn's
f1_score does by default, not over every label of the dataset."""

from __future__ import annotations

import json

import pytest
from sklearn.metrics import f1_score

from conftest import jsonl, read_events, write_run_dir
from makam_worker.training.child import EXIT_OK, execute
from makam_worker.training.metrics import classification_metrics

LABELS = ["a", "b", "c"]
# "c" is a label of the dataset, absent from this split and never predicted.
REFERENCES = [0, 0, 0, 0, 1, 1, 1]
PREDICTIONS = [0, 0, 0, 1, 1, 1, 0]


def test_macro_f1_is_sklearns_over_the_labels_present_or_predicted():
    scores = classification_metrics(REFERENCES, PREDICTIONS, LABELS)
    expected = f1_score(REFERENCES, PREDICTIONS, average="macro")
    assert scores["macro_f1"] == pytest.approx(expected)
    # Counting "c" as an F1 of 0 would give two thirds of it.
    assert scores["macro_f1"] != pytest.approx(f1_score(REFERENCES, PREDICTIONS, labels=[0, 1, 2], average="macro",
                                                       zero_division=0))
    assert scores["weighted_f1"] == pytest.approx(f1_score(REFERENCES, PREDICTIONS, average="weighted"))
    assert scores["macro_f1_over"] == "present_or_predicted"
    # Per class and the confusion matrix still list every label of the dataset.
    assert scores["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert scores["confusion_matrix"]["labels"] == LABELS


def test_a_label_predicted_but_absent_from_the_split_counts():
    references, predictions = [0, 0, 1, 1], [0, 2, 1, 1]
    scores = classification_metrics(references, predictions, LABELS)
    assert scores["macro_f1"] == pytest.approx(f1_score(references, predictions, average="macro", zero_division=0))


def test_a_tfidf_run_reports_sklearns_macro_f1_on_a_split_missing_a_label(tmp_path):
    words = {"a": "elma armut", "b": "kedi köpek", "c": "deniz dalga"}
    train = [{"text": f"{w} {i}", "label": label} for label, w in words.items() for i in range(8)]
    validation = [{"text": f"{words[label]} x{i}", "label": label} for label in ("a", "b") for i in range(4)]
    run_dir = write_run_dir(tmp_path, "tfidf", {"seed": 1}, model={"family": "tfidf", "name": "", "config": None,
                                                                   "tokenizer": None},
                            dataset=jsonl(train), validation=jsonl(validation))
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    evaluation = read_events(run_dir)[-1]["final_metrics"]["test"]
    # The references and predictions back from the confusion matrix (rows true, columns predicted).
    matrix = evaluation["confusion_matrix"]["matrix"]
    references = [t for t, row in enumerate(matrix) for p, n in enumerate(row) for _ in range(n)]
    predictions = [p for t, row in enumerate(matrix) for p, n in enumerate(row) for _ in range(n)]
    assert 2 not in references
    assert evaluation["macro_f1"] == pytest.approx(f1_score(references, predictions, average="macro", zero_division=0))
    assert evaluation["macro_f1_over"] == "present_or_predicted"
    card = (run_dir / "model" / "README.md").read_text()
    assert "macro F1 (over the labels in this split or predicted)" in card
    metrics = json.loads((run_dir / "model" / "metrics.json").read_text())
    assert metrics["evaluation"]["macro_f1"] == evaluation["macro_f1"]
