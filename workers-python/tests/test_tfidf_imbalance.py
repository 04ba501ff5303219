"""The tfidf family on imbalanced data: class_weights (null, "balanced" or {label: weight}) weigh its
training examples as scikit-learn's class_weight would. Runs go through the worker's training child.

The data: a common class whose texts are drawn from ten shared words, and a rare one (4 of 52
training texts) that adds one word of its own. At C=0.05 the unweighted fit never predicts the rare
class; weighted, it finds every rare validation text.
"""

from __future__ import annotations

import json
import random

import pytest

from card_blocks import run_card_loader
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


# --- decision_offsets: per-label score offsets fit on validation ------------------------------------------


def run_with_test(tmp_path, name: str, **hp) -> tuple:
    train, validation = dataset("bol", "nadir")
    test = jsonl(rows(12, "bol", 5) + rows(4, "nadir", 6, own="zurna"))
    run_dir = write_run_dir(tmp_path, name, {"C": 0.05, **hp}, model=dict(TFIDF), dataset=train,
                            validation=validation, test=test)
    code = execute(run_dir)
    events = read_events(run_dir)
    assert code == EXIT_OK, events[-1]
    return run_dir, events


@pytest.mark.parametrize("refit", [True, False])
def test_decision_offsets_fit_on_validation_find_the_rare_class_on_test(tmp_path, refit):
    _, plain = run_with_test(tmp_path, "plain", refit=refit)
    run_dir, shifted = run_with_test(tmp_path, "offsets", refit=refit, decision_offsets="validation")
    for events in (plain, shifted):
        assert events[-1]["final_metrics"]["evaluated_on"] == "test"
    assert plain[-1]["final_metrics"]["test"]["per_class"]["nadir"]["recall"] == 0.0
    final = shifted[-1]["final_metrics"]
    assert final["test"]["per_class"]["nadir"]["recall"] == 1.0
    model = json.loads(next(run_dir.rglob("metrics.json")).read_text())["model"]
    offsets = model["decision_offsets"]
    assert set(offsets) == {"bol", "nadir"} and offsets["nadir"] - offsets["bol"] > 0
    assert model["decision_offsets_fit_on"] == "validation" and "decision offsets" in model["source"]
    # The validation figures stay those measured before the offsets (they were fit on that split).
    metrics = [e for e in plain if e["type"] == "metrics"], [e for e in shifted if e["type"] == "metrics"]
    assert [m["macro_f1"] for m in metrics[0]] == [m["macro_f1"] for m in metrics[1]]


def test_the_shipped_pipeline_carries_the_offsets(tmp_path):
    run_dir, events = run_with_test(tmp_path, "offsets", decision_offsets="validation")
    artifact = next(run_dir.rglob("model.joblib")).parent
    texts = [r["text"] for r in rows(12, "bol", 5) + rows(4, "nadir", 6, own="zurna")]
    predicted = run_card_loader(artifact, texts)  # the card's own loading code, without makam
    assert predicted.count("nadir") == 4 and predicted[-4:] == ["nadir"] * 4


def test_without_a_test_split_the_offsets_warn_that_the_figures_are_optimistic(tmp_path):
    events = run(tmp_path, "offsets", decision_offsets="validation")
    def warned(events: list[dict]) -> bool:
        return any(e["type"] == "log" and e["message"].startswith("decision_offsets:") for e in events)

    assert warned(events) and "optimistic" in next(e["message"] for e in events if e.get("message", "").startswith("decision_offsets:"))
    assert not warned(run(tmp_path, "plain"))


@pytest.mark.parametrize("refit", [True, False])
def test_cross_fit_offsets_learn_from_rare_training_texts_the_validation_split_lacks(tmp_path, refit):
    # The validation split holds no rare text: offsets fit there leave the rare class unpredicted, while
    # out-of-fold scores over train + validation see its 4 training texts (so 4 folds, not 5).
    train, _ = dataset("bol", "nadir")
    test = jsonl(rows(12, "bol", 5) + rows(4, "nadir", 6, own="zurna"))
    recall, models = {}, {}
    for mode in ("validation", "cross_fit"):
        run_dir = write_run_dir(tmp_path, mode, {"C": 0.05, "refit": refit, "decision_offsets": mode}, model=dict(TFIDF),
                                dataset=train, validation=jsonl(rows(12, "bol", 3)), test=test)
        code = execute(run_dir)
        events = read_events(run_dir)
        assert code == EXIT_OK, events[-1]
        recall[mode] = events[-1]["final_metrics"]["test"]["per_class"]["nadir"]["recall"]
        models[mode] = json.loads(next(run_dir.rglob("metrics.json")).read_text())["model"]
    assert recall == {"validation": 0.0, "cross_fit": 1.0}
    model = models["cross_fit"]
    assert model["decision_offsets_fit_on"] == "cross_fit" and model["decision_offsets_folds"] == 4
    assert model["decision_offsets"]["nadir"] - model["decision_offsets"]["bol"] > 0
    assert "decision offsets fit on cross_fit" in model["source"]


def test_out_of_fold_scores_come_from_models_that_never_saw_the_example():
    import numpy as np

    from makam_worker.training.families.tfidf import cross_fit_folds, out_of_fold_scores

    seen: list[set[str]] = []

    class Memorising:  # scores 1 for the label of a text it was fit on, else 0
        def __init__(self, texts, labels):
            self.known, self.classes_ = dict(zip(texts, labels)), np.array(sorted({names[i] for i in labels}))
            seen.append(set(texts))

        def decision_function(self, texts):
            return np.array([[float(self.known.get(t) == c) for c in range(len(self.classes_))] for t in texts])

    names = ["a", "b", "c"]
    labels = [0] * 20 + [1] * 6 + [2] * 3
    texts = [f"t{i}" for i in range(len(labels))]
    assert cross_fit_folds(labels) == 3 and cross_fit_folds([0] * 20 + [1] * 9) == 5
    scores = out_of_fold_scores(Memorising, texts, labels, names, seed=1)
    assert scores.shape == (29, 3) and not scores.any()  # no example was scored by a model fit on it
    assert len(seen) == 3 and all(len(s) < len(texts) for s in seen)
    assert set().union(*(set(texts) - s for s in seen)) == set(texts)  # each held out once


def test_fit_offsets_never_lowers_macro_f1_and_leaves_an_unhelpful_label_at_0():
    import numpy as np

    from makam_worker.training.families.tfidf import fit_offsets, macro_f1

    rng = np.random.default_rng(0)
    references = rng.choice(3, size=300, p=[0.8, 0.15, 0.05])
    scores = rng.normal(size=(300, 3))
    scores[np.arange(300), references] += 1.0
    scores[:, 0] += 1.5  # the majority's scores run high, as an unweighted fit's do
    offsets = fit_offsets(scores, references)
    assert macro_f1(references, (scores + offsets).argmax(1)) > macro_f1(references, scores.argmax(1)) + 0.05
    assert offsets[0] < 0 or (offsets[1] > 0 and offsets[2] > 0)
    # A label that never appears and is never predicted gains nothing from an offset: it stays 0.
    padded = np.column_stack([scores, np.full(300, -50.0)])
    assert fit_offsets(padded, references)[3] == 0.0


# --- term_weighting: binary presence features -----------------------------------------------------------


@pytest.mark.parametrize("weighting", ["sublinear_tfidf", "binary"])
def test_term_weighting_binary_gives_unnormalised_presence(tmp_path, weighting):
    import joblib

    run(tmp_path, weighting, term_weighting=weighting)
    pipeline = joblib.load(next((tmp_path / weighting).rglob("model.joblib")))
    short, long = pipeline.named_steps["features"].transform(["zurna", "zurna zurna zurna gece yol deniz ay"]).toarray()
    word = pipeline.named_steps["features"].transformer_list[0][1].vocabulary_["zurna"]
    if weighting == "binary":
        assert set(short) | set(long) == {0.0, 1.0}  # present or not, however often and however long the text
        assert short[word] == long[word] == 1.0
    else:
        assert short[word] > long[word] > 0  # tf-idf, normalised per text: the longer text dilutes it
