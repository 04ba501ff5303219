"""The tfidf family on imbalanced data: class_weights (null, "balanced" or {label: weight}) weigh its
training examples as scikit-learn's class_weight would. Runs go through the worker's training child.

The data: a common class whose texts are drawn from ten shared words, and a rare one (4 of 52
training texts) that adds one word of its own. At C=0.05 the unweighted fit never predicts the rare
class; weighted, it finds every rare validation text.
"""

from __future__ import annotations

import random

import pytest

from conftest import jsonl, read_events, write_run_dir
from makam_worker.training.child import EXIT_FAILED, EXIT_OK, execute

TFIDF = {"family": "tfidf", "name": "", "config": None, "tokenizer": None}
SHARED = ["gece", "yol", "deniz", "rüzgar", "ay", "yıldız", "sokak", "kapı", "bahar", "kış"]


def rows(n: int, label: str, seed: int, own: str | None = None) -> list[dict]:
    r = random.Random(seed)
    return [{"text": " ".join(r.sample(SHARED, 4) + ([own] if own else [])), "label": label} for _ in range(n)]


def dataset(common: str, rare: str) -> tuple[bytes, bytes]:
    train = rows(48, common, 1) + rows(4, rare, 2, own="zurna")
    validation = rows(12, common, 3) + rows(4, rare, 4, own="zurna")
    return jsonl(train), jsonl(validation)


def run(tmp_path, name: str, common: str = "bol", rare: str = "nadir", **hp) -> list[dict]:
    train, validation = dataset(common, rare)
    run_dir = write_run_dir(tmp_path, name, {"C": 0.05, **hp}, model=dict(TFIDF), dataset=train, validation=validation)
    code = execute(run_dir)
    events = read_events(run_dir)
    assert code == EXIT_OK, events[-1]
    return events


def rare_recall(events: list[dict], rare: str = "nadir") -> float:
    final = events[-1]["final_metrics"]
    assert final["evaluated_on"] == "validation"  # no test split: the one fit is measured there
    return final["test"]["per_class"][rare]["recall"]


@pytest.mark.parametrize("classifier", ["linear_svc", "logreg"])
def test_balanced_class_weights_make_the_rare_class_predicted(tmp_path, classifier):
    assert rare_recall(run(tmp_path, "plain", classifier=classifier)) == 0.0
    assert rare_recall(run(tmp_path, "balanced", classifier=classifier, class_weights="balanced")) == 1.0


def test_a_weight_map_names_labels_even_when_they_are_digits(tmp_path):
    # scikit-learn's own class_weight map refuses labels "0"/"1" (it looks them up as ints).
    assert rare_recall(run(tmp_path, "plain", common="0", rare="1"), "1") == 0.0
    assert rare_recall(run(tmp_path, "weighted", common="0", rare="1", class_weights={"1": 12}), "1") == 1.0
    # Weighing the common class instead pushes the other way: still no rare prediction.
    assert rare_recall(run(tmp_path, "other", common="0", rare="1", class_weights={"0": 12}), "1") == 0.0


def test_a_weight_for_a_label_the_data_lacks_fails_the_run_naming_it(tmp_path):
    train, validation = dataset("bol", "nadir")
    run_dir = write_run_dir(tmp_path, "unknown", {"class_weights": {"caz": 2}}, model=dict(TFIDF),
                            dataset=train, validation=validation)
    assert execute(run_dir) == EXIT_FAILED
    finished = read_events(run_dir)[-1]
    assert finished["error_code"] == "invalid_hyperparameters"
    assert "class_weights" in finished["error_message"] and "'caz'" in finished["error_message"]
