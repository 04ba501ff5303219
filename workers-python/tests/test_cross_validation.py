"""k-fold cross-validation (`cv_folds`): folds over train + validation, stratified and seeded, the
test split untouched; each fold a whole run of the family; the result's `cross_validation` holds
each fold's best-epoch validation figures and their mean and spread, and the shipped model, its
events and its test figures are those of the run without folds."""

from __future__ import annotations

import statistics

from conftest import read_events, write_run_dir, jsonl
from makam_worker.training.child import EXIT_FAILED, EXIT_OK, execute
from makam_worker.training.cross_validation import folds
from makam_worker.training.data import Splits
from test_refit import RUNS, TEST, TRAIN, VALIDATION


def splits_of(n_a: int, n_b: int) -> Splits:
    texts = [f"a {i}" for i in range(n_a)] + [f"b {i}" for i in range(n_b)]
    labels = [0] * n_a + [1] * n_b
    half = len(texts) // 2
    return Splits(label_names=["a", "b"], train_texts=texts[:half:], train_labels=labels[:half],
                  validation_texts=texts[half:], validation_labels=labels[half:],
                  test_texts=["t"], test_labels=[0])


def test_folds_cover_train_and_validation_once_stratified_seeded_without_test():
    splits = splits_of(20, 10)
    cut = folds(splits, 5, seed=3)
    assert len(cut) == 5
    seen = [t for f in cut for t in f.validation_texts]
    assert sorted(seen) == sorted(splits.train_texts + splits.validation_texts)  # each text validates once
    for f in cut:
        assert not set(f.train_texts) & set(f.validation_texts)
        assert len(f.train_texts) + len(f.validation_texts) == 30
        assert sorted(f.validation_labels) == [0, 0, 0, 0, 1, 1]  # stratified: 20:10 in every fold
        assert f.test_texts == [] and not f.has_test
    assert [f.validation_texts for f in folds(splits, 5, seed=3)] == [f.validation_texts for f in cut]
    assert [f.validation_texts for f in folds(splits, 5, seed=4)] != [f.validation_texts for f in cut]


def run(root, family: str, name: str, **extra) -> tuple[int, list[dict]]:
    model, hp = RUNS[family]
    run_dir = write_run_dir(root, name, {**hp, "seed": 1, **extra}, model=dict(model), dataset=jsonl(TRAIN),
                            validation=jsonl(VALIDATION), test=jsonl(TEST))
    return execute(run_dir), read_events(run_dir)


def test_tfidf_cross_validation_reports_each_fold_and_leaves_the_shipped_model_as_it_was(tmp_path):
    code, plain = run(tmp_path, "tfidf", "plain")
    assert code == EXIT_OK
    code, events = run(tmp_path, "tfidf", "cv", cv_folds=4)
    assert code == EXIT_OK
    result, without = events[-1]["final_metrics"], plain[-1]["final_metrics"]
    cv = result["cross_validation"]
    assert cv["folds"] == 4 and cv["over"] == "train+validation"
    assert cv["examples"] == len(TRAIN) + len(VALIDATION)
    assert [r["fold"] for r in cv["per_fold"]] == [1, 2, 3, 4]
    assert sum(r["validation_examples"] for r in cv["per_fold"]) == len(TRAIN) + len(VALIDATION)
    for name in ("accuracy", "macro_f1"):
        values = [r[name] for r in cv["per_fold"]]
        assert cv["mean"][name] == statistics.fmean(values)
        assert cv["sd"][name] == statistics.stdev(values)
    assert cv["mean"]["validation_loss"] is None  # LinearSVC: no probabilities, no loss
    # The folds train on validation's "kiraz" texts too, unlike the shipped model's first pass.
    assert cv["mean"]["accuracy"] != result["validation"]["accuracy"]
    # The shipped model, its metrics and its test figures are the plain run's.
    assert result["evaluated_on"] == without["evaluated_on"] == "test"
    assert result["test"] == without["test"] and result["validation"] == without["validation"]
    assert len([e for e in events if e["type"] == "metrics"]) == len([e for e in plain if e["type"] == "metrics"]) == 1
    logs = [e["message"] for e in events if e["type"] == "log" and e["message"].startswith("cross-validation: fold")]
    assert len(logs) == 4
    assert not (tmp_path / "cv" / "work" / "cross-validation").exists()  # the folds' models are deleted


def test_a_neural_family_runs_its_folds_through_the_training_loop(tmp_path):
    code, events = run(tmp_path, "scratch", "scratch-cv", cv_folds=2, epochs=2)
    assert code == EXIT_OK, events[-1]
    cv = events[-1]["final_metrics"]["cross_validation"]
    assert cv["folds"] == 2 and len(cv["per_fold"]) == 2
    for row in cv["per_fold"]:
        assert row["best_epoch"] in (1, 2)
        assert 0 <= row["accuracy"] <= 1 and row["validation_loss"] > 0
    assert cv["mean"]["validation_loss"] > 0
    assert len([e for e in events if e["type"] == "metrics"]) == 2  # the shipped run's two epochs only


def test_more_folds_than_texts_fails_naming_the_hyperparameter(tmp_path):
    model, _ = RUNS["tfidf"]
    run_dir = write_run_dir(tmp_path, "small", {"cv_folds": 5, "validation_fraction": 0.5}, model=dict(model),
                            dataset=jsonl(TRAIN[:2] + TRAIN[8:10]))  # 4 texts, 2 per label
    assert execute(run_dir) == EXIT_FAILED
    finished = read_events(run_dir)[-1]
    assert finished["error_code"] == "invalid_hyperparameters"
    assert "cv_folds 5" in finished["error_message"]
