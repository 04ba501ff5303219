"""The training child's work, run in this process through `execute` (the child's main minus signals)."""

import hashlib
import json
import tarfile

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import EXAMPLES, LABELS, LEARNS, extract, jsonl, model_spec, read_events, write_run_dir
from makam_worker.training.child import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, execute


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = write_run_dir(tmp_path_factory.mktemp("train"), "learns", LEARNS)
    assert execute(run_dir) == EXIT_OK, (run_dir / "train.log").read_text() if (run_dir / "train.log").exists() else ""
    return run_dir


def test_events_tell_the_whole_run_in_order(trained):
    events = read_events(trained)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    started, finished = events[0], events[-1]
    assert started["type"] == "started" and started["labels"] == LABELS and started["device"] == "cpu"
    assert started["train_examples"] + started["validation_examples"] == len(EXAMPLES)
    metrics = [e for e in events if e["type"] == "metrics"]
    assert [m["epoch"] for m in metrics] == list(range(1, LEARNS["epochs"] + 1))
    progress = [e for e in events if e["type"] == "progress"]
    assert progress[-1]["step"] == started["total_steps"] and progress[-1]["learning_rate"] == 0.0
    assert finished["type"] == "finished" and finished["state"] == "SUCCEEDED"
    summary = finished["final_metrics"]
    # No test split: the best epoch's weights are evaluated again on validation, and say so.
    assert summary["evaluated_on"] == "validation" and started["test_examples"] == 0
    best = metrics[summary["best_epoch"] - 1]
    assert summary["accuracy"] == best["accuracy"] and summary["macro_f1"] == max(m["macro_f1"] for m in metrics)


def test_artifact_unpacks_and_loads_with_from_pretrained(trained, tmp_path):
    archive = trained / "model.tar.gz"
    assert (trained / "model.tar.gz.sha256").read_text().strip() == hashlib.sha256(archive.read_bytes()).hexdigest()
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    extract(archive, tmp_path)
    assert {"config.json", "model.safetensors", "tokenizer.json", "labels.json", "metrics.json", "README.md"} <= names
    assert json.loads((tmp_path / "labels.json").read_text()) == LABELS

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    texts = [e["text"] for e in EXAMPLES]
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    predicted = [model.config.id2label[i] for i in logits.argmax(-1).tolist()]
    assert set(predicted) <= set(LABELS)
    correct = sum(p == e["label"] for p, e in zip(predicted, EXAMPLES))
    assert correct / len(EXAMPLES) > 0.6  # chance is 1/3


def test_metrics_json_has_the_summary_history_and_baseline(trained):
    metrics = json.loads((trained / "model" / "metrics.json").read_text())
    assert {"summary", "history", "label_counts", "hyperparameters", "majority_baseline_accuracy",
            "per_class", "confusion_matrix", "labels"} <= set(metrics)
    summary = metrics["summary"]
    assert {"accuracy", "weighted_f1", "macro_f1", "validation_loss", "train_loss",
            "majority_baseline_accuracy"} <= set(summary)
    assert len(metrics["history"]) == LEARNS["epochs"]
    assert metrics["hyperparameters"]["epochs"] == LEARNS["epochs"]
    assert set(metrics["label_counts"]["train"]) == set(LABELS)
    # Three balanced labels: chance and the majority baseline are 1/3.
    assert summary["accuracy"] > 0.6 > summary["majority_baseline_accuracy"]


def test_same_seed_gives_the_same_metrics(trained, tmp_path):
    again = write_run_dir(tmp_path, "again", LEARNS)
    assert execute(again) == EXIT_OK
    history = lambda d: json.loads((d / "model" / "metrics.json").read_text())["history"]  # noqa: E731
    assert history(again) == history(trained)


def test_fine_tunes_from_a_local_path_with_a_new_label_set(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("MAKAM_MODEL_ROOTS", str(trained))  # a local path must lie under a model root
    two_labels = [e for e in EXAMPLES if e["label"] != "şehir"]
    spec = {"family": "encoder", "name": str(trained / "model"), "config": None, "tokenizer": None}
    run_dir = write_run_dir(tmp_path, "from-path", {**LEARNS, "epochs": 2}, model=spec, dataset=jsonl(two_labels))
    assert execute(run_dir) == EXIT_OK
    config = json.loads((run_dir / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "aşk", "1": "doğa"}  # the 3-label head was replaced


def test_bad_dataset_fails_with_a_stable_code_and_no_retry(tmp_path):
    run_dir = write_run_dir(tmp_path, "one-label", LEARNS, dataset=b'{"text": "a", "label": "x"}\n' * 4)
    assert execute(run_dir) == EXIT_FAILED
    finished = read_events(run_dir)[-1]
    assert (finished["state"], finished["error_code"], finished["retryable"]) == ("FAILED", "invalid_dataset", False)


def test_bad_hyperparameters_fail_naming_the_field(tmp_path):
    run_dir = write_run_dir(tmp_path, "bad-hp", {"epochs": 2, "learning_rat": 0.1})
    assert execute(run_dir) == EXIT_FAILED
    finished = read_events(run_dir)[-1]
    assert finished["error_code"] == "invalid_hyperparameters" and "learning_rat" in finished["error_message"]


def test_missing_model_fails_with_model_not_found(tmp_path):
    spec = {"family": "encoder", "name": str(tmp_path / "no-such-model"), "config": None, "tokenizer": None}
    run_dir = write_run_dir(tmp_path, "missing", LEARNS, model=spec)
    assert execute(run_dir) == EXIT_FAILED
    finished = read_events(run_dir)[-1]
    assert (finished["error_code"], finished["retryable"]) == ("model_not_found", False)


def test_unexpected_errors_fail_as_training_error_without_a_traceback(tmp_path):
    spec = {**model_spec(), "config": {"model_type": "bert", "hidden_size": 30, "num_attention_heads": 4}}
    run_dir = write_run_dir(tmp_path, "odd-heads", LEARNS, model=spec)
    assert execute(run_dir) == EXIT_FAILED
    finished = read_events(run_dir)[-1]
    assert finished["state"] == "FAILED" and finished["error_code"] in {"invalid_model_config", "training_error"}
    assert "Traceback" not in finished["error_message"]


def test_a_stop_request_exits_between_steps_without_a_finished_event(tmp_path):
    run_dir = write_run_dir(tmp_path, "stopped", LEARNS)
    calls = iter(range(10**6))
    assert execute(run_dir, should_stop=lambda: next(calls) >= 5) == EXIT_CANCELLED
    assert all(e["type"] != "finished" for e in read_events(run_dir))
