"""A run's phases as span events (training/spans.py): only within a sampled trace, through the real worker
over gRPC with the traceparent in StartRun's metadata, and as WatchRun's PhaseSpan messages."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import json_format

from conftest import DATASET, DATASET_SHA256, TINY_BERT, TOKENIZER
from makam.worker.v1 import worker_pb2 as pb
from makam.worker.v1 import worker_pb2_grpc
from makam_worker.convert import event_to_proto
from makam_worker.events import EventLog, read_events
from makam_worker.server import create_server
from makam_worker.training import spans

DEADLINE = 120
SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
NOT_SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


@pytest.fixture(autouse=True)
def no_recorder():
    yield
    spans.stop()


@pytest.mark.parametrize("value, expected", [
    (SAMPLED, True), (NOT_SAMPLED, False), ("", False), (None, False),
    ("00-00000000000000000000000000000000-b7ad6b7169203331-01", False),  # an all-zero trace id is invalid
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1", False),
    ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", False),
])
def test_sampled(value, expected):
    assert spans.sampled(value) is expected


def test_phases_record_only_within_a_sampled_trace(tmp_path):
    events = EventLog(tmp_path / "events.jsonl")
    with spans.phase("data preparation"):
        pass
    assert spans.begin("epoch", epoch=1) is None
    (tmp_path / spans.TRACE_FILE).write_text(NOT_SAMPLED)
    assert not spans.start(tmp_path, events)
    with spans.phase("data preparation"):
        pass
    assert read_events(events.path) == []

    (tmp_path / spans.TRACE_FILE).write_text(SAMPLED + "\n")
    assert spans.start(tmp_path, events)
    with spans.phase("data preparation", family="encoder", skipped=None) as span:
        span["rows"] = 12
    epoch = spans.begin("epoch", epoch=1)
    epoch.end(step=4)
    with pytest.raises(ValueError), spans.phase("evaluation", split="validation"):
        raise ValueError("no labels")
    recorded = read_events(events.path)
    assert [(e["type"], e["name"]) for e in recorded] == [("span", "data preparation"), ("span", "epoch"), ("span", "evaluation")]
    assert recorded[0]["attributes"] == {"family": "encoder", "rows": 12}
    assert recorded[1]["attributes"] == {"epoch": 1, "step": 4}
    assert [e["error"] for e in recorded] == ["", "", "ValueError: no labels"]
    for e in recorded:
        assert 0 < e["start_time_unix_nano"] <= e["end_time_unix_nano"]

    message = event_to_proto(recorded[2])
    assert message.WhichOneof("event") == "span"
    assert message.span.name == "evaluation" and message.span.error == "ValueError: no labels"
    assert message.span.start_time_unix_nano == recorded[2]["start_time_unix_nano"]
    assert json_format.MessageToDict(message.span.attributes) == {"split": "validation"}


def start_request(run_id: str, family: str = "encoder") -> pb.StartRunRequest:
    request = pb.StartRunRequest(run_id=run_id, train_dataset_sha256=DATASET_SHA256)
    request.model.family = family
    request.hyperparameters.update({"validation_fraction": 0.25, "test_fraction": 0.2, "seed": 3})
    if family == "encoder":
        request.model.config.update(TINY_BERT)
        request.model.tokenizer.update(TOKENIZER)
        request.hyperparameters.update({"epochs": 2, "batch_size": 8, "learning_rate": 3e-3})
    return request


def test_a_run_in_a_sampled_trace_reports_its_phases_over_grpc(tmp_path):
    server, port = create_server("127.0.0.1:0", tmp_path / "state", cancel_grace_s=3.0)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = worker_pb2_grpc.WorkerServiceStub(channel)
    try:
        def chunks():
            yield pb.UploadDatasetRequest(header=pb.DatasetHeader(sha256=DATASET_SHA256, size_bytes=len(DATASET)))
            yield pb.UploadDatasetRequest(chunk=DATASET)

        stub.UploadDataset(chunks(), timeout=DEADLINE)
        # Started together, so their imports overlap: one in a sampled trace, one with none.
        stub.StartRun(start_request("traced"), metadata=[("traceparent", SAMPLED)], timeout=DEADLINE)
        stub.StartRun(start_request("untraced"), timeout=DEADLINE)
        stub.StartRun(start_request("tfidf", "tfidf"), metadata=[("traceparent", SAMPLED)], timeout=DEADLINE)
        traced = list(stub.WatchRun(pb.WatchRunRequest(run_id="traced"), timeout=DEADLINE))
        untraced = list(stub.WatchRun(pb.WatchRunRequest(run_id="untraced"), timeout=DEADLINE))
        tfidf = list(stub.WatchRun(pb.WatchRunRequest(run_id="tfidf"), timeout=DEADLINE))
    finally:
        channel.close()
        server.stop(0).wait()

    assert traced[-1].finished.state == pb.RUN_STATE_SUCCEEDED, traced[-1]
    assert untraced[-1].finished.state == pb.RUN_STATE_SUCCEEDED
    assert not [e for e in untraced if e.WhichOneof("event") == "span"]
    phases = [e.span for e in traced if e.WhichOneof("event") == "span"]
    attrs = [json_format.MessageToDict(p.attributes) for p in phases]
    assert [p.name for p in phases] == ["data preparation", "model and tokenizer", "tokenizer", "epoch", "evaluation",
                                        "epoch", "evaluation", "evaluation", "packing"]
    assert [a.get("epoch") for a in attrs] == [None, None, None, 1, 1, 2, 2, None, None]
    assert attrs[-2]["split"] == "test" and attrs[-2]["final"] is True and attrs[-1]["size_bytes"] > 0
    assert all(p.error == "" and 0 < p.start_time_unix_nano <= p.end_time_unix_nano for p in phases)
    # In order, one after another: each phase ends before the next begins.
    for a, b in zip(phases, phases[1:]):
        assert a.end_time_unix_nano <= b.start_time_unix_nano, (a.name, b.name)
    # Spans sit between the run's events, numbered like them, before the final event.
    seqs = [e.seq for e in traced]
    assert seqs == list(range(1, len(traced) + 1))

    # tfidf's one pass, its evaluations and the refit on train + validation before the test split.
    assert tfidf[-1].finished.state == pb.RUN_STATE_SUCCEEDED, tfidf[-1]
    assert [e.span.name for e in tfidf if e.WhichOneof("event") == "span"] == [
        "data preparation", "epoch", "evaluation", "refit", "evaluation", "packing"]
