"""Every event a run writes fits in a gRPC message, whatever the labels: a report keyed by huge labels
is cut down to a summary marked `truncated` (the full report stays in the artifact's metrics.json)."""

import json

from makam_worker.convert import event_to_proto
from makam_worker.events import MAX_EVENT_BYTES, EventLog, read_events

GRPC_MAX = 16 * 1024 * 1024


def huge_report(labels: list[str]) -> dict:
    per_class = {name: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 3} for name in labels}
    evaluation = {
        "split": "test", "examples": 30, "accuracy": 0.9, "weighted_f1": 0.8, "macro_f1": 0.7,
        "majority_baseline_accuracy": 0.1, "majority_label": labels[0], "per_class": per_class,
        "confusion_matrix": {"labels": labels, "matrix": [[1] * len(labels) for _ in labels]},
    }
    return {"family": "tfidf", "evaluated_on": "test", "accuracy": 0.9, "weighted_f1": 0.8, "macro_f1": 0.7,
            "majority_baseline_accuracy": 0.1, "best_epoch": 1, "test": evaluation, "validation": evaluation,
            "data": {"label_counts": {name: 3 for name in labels}}}


def test_a_finished_event_of_ten_labels_of_500_kb_fits_a_grpc_message(tmp_path):
    labels = [f"{i}" + "x" * 500_000 for i in range(10)]
    log = EventLog(tmp_path / "events.jsonl")
    log.append("started", pid=1, device="cpu", train_examples=60, validation_examples=0, total_steps=1, labels=labels)
    log.append("finished", state="SUCCEEDED", error_code="", error_message="", retryable=False,
               final_metrics=huge_report(labels))
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    sizes = [len(line) for line in lines]
    print(f"event line sizes: {sizes} bytes (limit {MAX_EVENT_BYTES})")
    assert max(sizes) <= MAX_EVENT_BYTES
    started, finished = read_events(tmp_path / "events.jsonl")
    assert finished["type"] == "finished" and finished["state"] == "SUCCEEDED" and finished["seq"] == 2
    summary = finished["final_metrics"]
    assert summary["truncated"] is True
    assert summary["accuracy"] == 0.9 and summary["macro_f1"] == 0.7  # the headline figures stay
    assert "per_class" not in summary["test"]
    assert len(started["labels"]) == 10  # each label clipped, none lost from the list
    for event in (started, finished):
        assert event_to_proto(event).ByteSize() < GRPC_MAX


def test_an_event_that_fits_is_written_as_it_is(tmp_path):
    labels = ["arabesk", "pop", "rock", "türkü"]
    log = EventLog(tmp_path / "events.jsonl")
    log.append("finished", state="SUCCEEDED", error_code="", error_message="", retryable=False,
               final_metrics=huge_report(labels))
    (finished,) = read_events(tmp_path / "events.jsonl")
    assert "truncated" not in finished["final_metrics"]
    assert finished["final_metrics"] == json.loads(json.dumps(huge_report(labels)))
